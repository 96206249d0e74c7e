"""Shared test set-up.

Qt tests run without a display: the offscreen platform is chosen before any test
imports Qt (a test that needs a real X server, like the Xvfb screenshot test, sets
its own environment for the process it starts).
"""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
