"""Online tracking (Sec. 3.5): the tracker and what one frame returns, the inference backends that run
the per-frame network pass, and NanoTrack v3 with its own post-processing as a baseline.
"""
