"""Colour histograms of boxes, a cue beside the HE embedding for telling a target from
look-alikes (``TrackConfig.colour_rerank``; beyond the paper).

The network's features are trained to be alike for everything of a class, which is what
makes people in a crowd look-alikes; their clothes' colours often differ. A histogram of
hue, saturation and value over the box, compared by the Bhattacharyya distance, measures
that, and stays unchanged as a body turns or deforms.
"""
from __future__ import annotations

import cv2
import numpy as np

# hue x saturation x value bins: coarse on value, which the light changes most
COLOUR_BINS = (8, 8, 4)
_RANGES = [0, 180, 0, 256, 0, 256]


def colour_histogram(image: np.ndarray, box_xyxy) -> np.ndarray:
    """Normalised HSV histogram (``COLOUR_BINS``, flattened, sums to 1) of the pixels of
    ``image`` (H, W, 3 uint8 BGR) inside ``box_xyxy`` (pixels, clipped to the image and
    to at least one pixel)."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return np.full(int(np.prod(COLOUR_BINS)), 1.0 / np.prod(COLOUR_BINS), dtype=np.float32)
    left = int(np.clip(round(x0), 0, width - 1))
    top = int(np.clip(round(y0), 0, height - 1))
    right = int(np.clip(round(x1), left + 1, width))
    bottom = int(np.clip(round(y1), top + 1, height))
    patch = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_BGR2HSV)
    counts = cv2.calcHist([patch], [0, 1, 2], None, list(COLOUR_BINS), _RANGES).ravel()
    return counts / counts.sum()


def bhattacharyya_distance(p: np.ndarray, q: np.ndarray) -> float:
    """sqrt(1 - sum sqrt(p q)) of two normalised histograms: 0 for equal ones, 1 for disjoint."""
    return float(np.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q))))))
