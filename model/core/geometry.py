"""The one place that maps frame <-> crop <-> score-map coordinates, plus box helpers.

Conventions used everywhere in the project:

* boxes are ``xywh`` (top-left x, y, width, height) at the edges of the library and
  ``xyxy`` inside the network (IoU of ``xywh`` boxes: :func:`model.evaluation.metrics.rect_iou`);
  pixel ``k`` has its centre at coordinate ``k``;
* a *crop* is a square window of side ``window`` frame pixels centred on
  ``(cx, cy)``, resampled to ``out_size`` pixels: frame point ``p`` lands at
  ``(p - c) * scale + (out_size - 1) / 2`` with ``scale = out_size / window``;
* score-map cell ``i`` sits at crop coordinate ``offset + stride * i`` (Eq. 2 with the
  offset of :func:`model.core.config.derive_sizes`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch


# --- boxes -----------------------------------------------------------------------

def box_iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of two (..., 4) xyxy tensors that broadcast together."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


# --- crops ------------------------------------------------------------------------

def context_size(w: float, h: float, context_amount: float) -> float:
    """Side of the exemplar window: sqrt((w + p)(h + p)), p = context * (w + h) (Eq. 11 form)."""
    p = context_amount * (w + h)
    return math.sqrt(max(w + p, 1e-6) * max(h + p, 1e-6))


@dataclass(frozen=True)
class CropWindow:
    """A square window of ``window`` frame pixels centred on (cx, cy), resampled to ``out_size``."""

    cx: float
    cy: float
    window: float
    out_size: int

    @property
    def scale(self) -> float:
        return self.out_size / self.window

    def frame_to_crop(self, x, y):
        half = (self.out_size - 1) / 2
        return (x - self.cx) * self.scale + half, (y - self.cy) * self.scale + half

    def crop_to_frame(self, x, y):
        half = (self.out_size - 1) / 2
        return (x - half) / self.scale + self.cx, (y - half) / self.scale + self.cy

    def box_to_crop(self, box_xywh):
        """Frame xywh -> crop xywh."""
        x, y = self.frame_to_crop(box_xywh[0], box_xywh[1])
        return (x, y, box_xywh[2] * self.scale, box_xywh[3] * self.scale)

    def box_to_frame(self, box_xywh):
        """Crop xywh -> frame xywh."""
        x, y = self.crop_to_frame(box_xywh[0], box_xywh[1])
        return (x, y, box_xywh[2] / self.scale, box_xywh[3] / self.scale)

    def frame_rect(self):
        """The window as a frame xywh rectangle (pixel edges)."""
        half = self.window / 2
        return (float(self.cx - half), float(self.cy - half), float(self.window), float(self.window))

    def extract(self, frame: np.ndarray, fill=None) -> np.ndarray:
        """Resample the window from ``frame`` (H, W, 3 uint8); outside pixels get ``fill``
        (the frame's mean colour by default, as in Sec. 4.1's padding)."""
        if fill is None:
            fill = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
        s = self.scale
        half = (self.out_size - 1) / 2
        matrix = np.array([[s, 0, half - s * self.cx], [0, s, half - s * self.cy]], dtype=np.float64)
        return cv2.warpAffine(
            frame, matrix, (self.out_size, self.out_size), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in fill),
        )


# --- score map --------------------------------------------------------------------

def score_points(score_size: int, offset: float, stride: int) -> np.ndarray:
    """Crop coordinates of score-map cells (Eq. 2): (S,) array ``offset + stride * i``."""
    return offset + stride * np.arange(score_size, dtype=np.float64)


def score_grid(score_size: int, offset: float, stride: int, device=None) -> torch.Tensor:
    """(2, S, S) tensor of (X, Y) crop coordinates of every score cell (Eq. 2)."""
    points = torch.as_tensor(score_points(score_size, offset, stride), dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(points, points, indexing="ij")
    return torch.stack([xs, ys])


def map_rect(window: CropWindow, score_size: int, offset: float, stride: int):
    """Frame xywh rectangle covered by a score map drawn with one pixel per cell.

    Cell ``i`` is centred on crop coordinate ``offset + stride * i``, so the map's
    pixels span ``offset - stride / 2`` to ``offset + stride * (S - 1/2)``.
    """
    x0, y0 = window.crop_to_frame(offset - stride / 2, offset - stride / 2)
    side = stride * score_size / window.scale
    return (float(x0), float(y0), float(side), float(side))


def pixel_to_feature_shift(stride: int) -> float:
    """Shift to add to pixel boxes before ``roi_align(..., 1/stride, aligned=True)``.

    Our backbones centre feature cell ``j`` on pixel ``stride * j``; aligned RoI Align
    assumes ``stride * (j + 1/2)``.
    """
    return stride / 2
