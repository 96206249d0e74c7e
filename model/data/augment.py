"""Training crops and augmentation (Sec. 4.1).

The exemplar is a 127-pixel crop of the context window around the ground truth; the
instance a 255-pixel crop of the matching larger window, with the target randomly
translated (up to +-64 instance pixels) and rescaled, then colour-changed, blurred or
turned grey. Pixels outside the frame take the frame's mean colour.
"""
from __future__ import annotations

import cv2
import numpy as np

from model.core.geometry import CropWindow, context_size


def crop_pair_member(image: np.ndarray, box_xywh, out_size: int, exemplar_size: int, context: float,
                     shift: float, scale_jitter: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` around ``box_xywh`` to ``out_size`` pixels; return (crop, box xyxy in crop).

    The window is ``context_size * out_size / exemplar_size`` frame pixels wide, so the
    target occupies the same fraction of a 127 exemplar and of a 255 instance; the window
    centre moves by up to ``shift`` output pixels and its size by exp(+-scale_jitter).
    """
    x, y, w, h = box_xywh
    window_side = context_size(w, h, context) * out_size / exemplar_size
    window_side *= float(np.exp(rng.uniform(-scale_jitter, scale_jitter)))
    dx, dy = rng.uniform(-shift, shift, size=2) * window_side / out_size
    window = CropWindow(x + w / 2 + dx, y + h / 2 + dy, window_side, out_size)
    crop = window.extract(image)
    bx, by, bw, bh = window.box_to_crop((x, y, w, h))
    return crop, np.array([bx, by, bx + bw, by + bh], dtype=np.float32)


def color_augment(image: np.ndarray, rng: np.random.Generator, strength: float, blur_prob: float,
                  gray_prob: float) -> np.ndarray:
    """Per-channel gain and brightness change, optional Gaussian blur and greyscale."""
    out = image.astype(np.float32)
    gains = 1 + rng.uniform(-strength, strength, size=3)
    out = out * gains + rng.uniform(-strength, strength) * 64
    if rng.random() < blur_prob:
        sigma = rng.uniform(0.5, 1.5)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < gray_prob:
        gray = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        out = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
