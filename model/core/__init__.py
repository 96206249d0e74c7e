"""Foundations every other part builds on: configs and derived sizes, the frame <-> crop <-> score-map
geometry, RoI Align and NMS, weights files, and the one error type for bad input.
"""
