"""NanoTrack v3 as its authors track with it: a baseline behind the same contract as
:class:`model.tracking.tracker.Tracker` (``init(frame, box)``, ``track(frame) -> TrackResult``).

The network is :mod:`model.network.nanotrack` loaded from NanoTrack v3's weights file;
the post-processing is v3's own (``nanotrack/tracker/nano_tracker.py``, settings of
``configv3.yaml``): softmax score, the scale/aspect penalty of Eq. 10-11 with k = 0.138,
a plain Hanning window (zero at the border) at influence 0.455, size learning rate
0.348, box clipped to the frame with sides of at least 10 px. No center-ness, no HE.
Crops are cut by :class:`model.core.geometry.CropWindow` (sub-pixel), where v3 rounds the
window to whole pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.core.config import NetworkConfig, derive_sizes
from model.core.errors import InputError
from model.core.geometry import CropWindow, context_size, map_rect, score_grid
from model.network.nanotrack import DEFAULT_WEIGHTS, BANHead, MobileNetV3Trunk, load_nanotrack_v3
from model.tracking.result import TrackResult
from model.network.targets import decode_ltrb
from model.tracking.tracker import as_bgr, scale_penalty

NANOTRACK3_ENV = "HNSE_NANOTRACK3_WEIGHTS"
# The geometry NanoTrack v3 was built with: stride 16, the central 4x4 of the 8x8
# exemplar features, a depth-wise correlation padded by 1 (score map 15x15).
NETWORK = NetworkConfig(backbone="nanotrack_v3", pretrained=False, stride=16, template_feature_crop=4,
                        xcorr_padding=1, he_head=False)


@dataclass(frozen=True)
class NanoTrack3Settings:
    """configv3.yaml's tracking section."""

    context_amount: float = 0.5
    window_influence: float = 0.455
    penalty_k: float = 0.138
    size_lr: float = 0.348
    min_size: float = 10.0


def default_weights() -> Path:
    """``$HNSE_NANOTRACK3_WEIGHTS``, else ``shared/data/baselines/nanotrack_v3/nanotrack_v3.pt``."""
    import os

    return Path(os.environ.get(NANOTRACK3_ENV) or DEFAULT_WEIGHTS)


class NanoTrack3Tracker:
    """NanoTrack v3 with its own post-processing (see the module docstring)."""

    def __init__(self, weights: str | Path | None = None, settings: NanoTrack3Settings = NanoTrack3Settings()):
        self.settings = settings
        self.sizes = derive_sizes(NETWORK)
        self.trunk, self.head = MobileNetV3Trunk().eval(), BANHead().eval()
        load_nanotrack_v3(self.trunk, self.head, weights or default_weights())
        self.grid = score_grid(self.sizes.score_size, self.sizes.offset, self.sizes.stride)
        hanning = np.hanning(self.sizes.score_size)
        self.window = np.outer(hanning, hanning)
        self.kernels = None
        self.center = np.zeros(2)
        self.size = np.zeros(2)

    @staticmethod
    def _tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).permute(2, 0, 1)[None].float()

    def _window(self, output_size: int) -> CropWindow:
        s_z = context_size(self.size[0], self.size[1], self.settings.context_amount)
        return CropWindow(self.center[0], self.center[1], s_z * output_size / NETWORK.exemplar_size, output_size)

    @torch.inference_mode()
    def init(self, frame: np.ndarray, box) -> None:
        frame = as_bgr(frame)
        x, y, w, h = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise InputError(f"initial box {tuple(box)} must have finite values and positive size")
        self.center, self.size = np.array([x + w / 2, y + h / 2]), np.array([w, h])
        self.channel_mean = frame.reshape(-1, 3).mean(axis=0)
        z = self._window(NETWORK.exemplar_size).extract(frame, self.channel_mean)
        self.kernels = self.head.template(self.trunk(self._tensor(z)))

    @torch.inference_mode()
    def track(self, frame: np.ndarray) -> TrackResult:
        if self.kernels is None:
            raise RuntimeError("track() called before init()")
        frame = as_bgr(frame)
        cfg = self.settings
        window = self._window(NETWORK.instance_size)
        out = self.head(self.kernels, self.trunk(self._tensor(window.extract(frame, self.channel_mean))))
        score = torch.softmax(out["score"], dim=1)[0, 1].numpy()
        boxes = decode_ltrb(self.grid, out["ltrb"])[0].numpy()  # (4, S, S) xyxy, crop pixels
        pred_w, pred_h = boxes[2] - boxes[0], boxes[3] - boxes[1]
        target_w, target_h = self.size * window.scale
        penalty = scale_penalty(pred_w, pred_h, target_w, target_h, cfg.penalty_k)
        final = np.nan_to_num(penalty * score * (1 - cfg.window_influence) + self.window * cfg.window_influence)
        best = np.unravel_index(int(np.argmax(final)), final.shape)
        x0, y0, x1, y1 = boxes[:, best[0], best[1]]
        cx, cy = window.crop_to_frame((x0 + x1) / 2, (y0 + y1) / 2)
        lr = float(penalty[best] * score[best] * cfg.size_lr)
        size = self.size * (1 - lr) + np.array([x1 - x0, y1 - y0]) / window.scale * lr
        height, width = frame.shape[:2]
        self.center = np.clip([cx, cy], 0, [width, height])
        self.size = np.clip(size, cfg.min_size, [max(width, cfg.min_size), max(height, cfg.min_size)])
        box = (float(self.center[0] - self.size[0] / 2), float(self.center[1] - self.size[1] / 2),
               float(self.size[0]), float(self.size[1]))
        return TrackResult(box=box, score=float(score[best]),
                           maps={"score": score.astype(np.float32), "final": final.astype(np.float32)},
                           search_box=window.frame_rect(),
                           map_box=map_rect(window, self.sizes.score_size, self.sizes.offset, self.sizes.stride))
