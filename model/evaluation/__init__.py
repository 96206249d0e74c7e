"""Evaluation: one-pass runs of any tracker through the same harness, the OTB/LaSOT and GOT-10k
metrics with the paired bootstrap, and the speed and memory benchmark.
"""
