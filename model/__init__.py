"""HNSE tracker library: network, losses, training, tracking and evaluation.

Nothing in this package imports Qt; it is usable from scripts and notebooks.
"""
