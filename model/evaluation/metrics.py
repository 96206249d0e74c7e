"""One-pass evaluation metrics: the OTB, LaSOT and GOT-10k protocols.

Boxes are (N, 4) arrays of ``(x, y, w, h)``. The per-frame measures are those of
the got10k toolkit (``got10k/utils/metrics.py``), kept here rather than in
:mod:`model.core.geometry` because a benchmark number is only comparable when it is
computed exactly the benchmark's way:

* IoU of continuous boxes (area ``w * h``), with ``eps`` added to the union and the
  result clipped to [0, 1]; GOT-10k first clips both boxes to the frame;
* centre error between ``(x + (w - 1) / 2, y + (h - 1) / 2)`` centres, in pixels;
* LaSOT's normalised centre error: both centres divided by the ground-truth size.

Curves and scores:

* success (OTB): fraction of frames whose IoU is *strictly greater* than each of the
  21 thresholds 0, 0.05, ..., 1; the success AUC is the curve's mean (so a perfect
  tracker scores 20/21, as in the toolkit);
* precision (OTB): fraction with centre error <= 0, 1, ..., 50 px, read at 20 px;
* normalised precision (LaSOT): fraction with normalised error <= 0, 0.01, ..., 0.5,
  read at 0.2;
* AO, SR0.5, SR0.75 (GOT-10k): mean IoU and fractions of IoU > 0.5 / 0.75 over the
  frames after the initial one.

Frames whose ground truth is absent (a NaN row) are left out everywhere. A NaN
prediction is a frame where the tracker gave no box: IoU 0, infinite error.
Over a dataset the curves are averaged over sequences (OTB, LaSOT) while AO and SR
pool the frames of all sequences (as the GOT-10k toolkit does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0.0, 51.0)  # pixels
NORM_PRECISION_THRESHOLDS = np.arange(0, 51) / 100.0  # fractions of the target size
PRECISION_AT = 20  # index of 20 px in PRECISION_THRESHOLDS
NORM_PRECISION_AT = 20  # index of 0.2 in NORM_PRECISION_THRESHOLDS


def rect_iou(boxes1: np.ndarray, boxes2: np.ndarray, bound: tuple[float, float] | None = None) -> np.ndarray:
    """(N,) IoU of (N, 4) x, y, w, h boxes; with ``bound = (W, H)`` both are first clipped to the frame."""
    boxes1 = np.array(boxes1, dtype=float)
    boxes2 = np.array(boxes2, dtype=float)
    if bound is not None:
        boxes1, boxes2 = _clip_to_frame(boxes1, bound), _clip_to_frame(boxes2, bound)
    x1 = np.maximum(boxes1[..., 0], boxes2[..., 0])
    y1 = np.maximum(boxes1[..., 1], boxes2[..., 1])
    x2 = np.minimum(boxes1[..., 0] + boxes1[..., 2], boxes2[..., 0] + boxes2[..., 2])
    y2 = np.minimum(boxes1[..., 1] + boxes1[..., 3], boxes2[..., 1] + boxes2[..., 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = boxes1[..., 2] * boxes1[..., 3] + boxes2[..., 2] * boxes2[..., 3] - intersection
    return np.clip(intersection / (union + np.finfo(float).eps), 0.0, 1.0)


def _clip_to_frame(boxes: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """The toolkit's clipping: x into [0, W], then w into [0, W - x] (likewise y, h)."""
    boxes = boxes.copy()
    for axis, limit in enumerate(bound):
        boxes[:, axis] = np.clip(boxes[:, axis], 0, limit)
        boxes[:, axis + 2] = np.clip(boxes[:, axis + 2], 0, limit - boxes[:, axis])
    return boxes


def _centers(boxes: np.ndarray) -> np.ndarray:
    return boxes[..., :2] + (boxes[..., 2:] - 1) / 2


def center_error(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N,) distance in pixels between the centres of (N, 4) x, y, w, h boxes."""
    boxes1, boxes2 = np.asarray(boxes1, dtype=float), np.asarray(boxes2, dtype=float)
    return np.sqrt(np.sum((_centers(boxes1) - _centers(boxes2)) ** 2, axis=-1))


def normalized_center_error(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """(N,) centre distance measured in ground-truth widths and heights (LaSOT)."""
    boxes, gt_boxes = np.asarray(boxes, dtype=float), np.asarray(gt_boxes, dtype=float)
    size = gt_boxes[..., 2:]
    return np.sqrt(np.sum((_centers(boxes) / size - _centers(gt_boxes) / size) ** 2, axis=-1))


def success_curve(ious: np.ndarray) -> np.ndarray:
    """(21,) fraction of ``ious`` strictly above each of :data:`SUCCESS_THRESHOLDS`."""
    return np.mean(np.asarray(ious, dtype=float)[:, None] > SUCCESS_THRESHOLDS[None, :], axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS) -> np.ndarray:
    """(T,) fraction of ``errors`` at or below each threshold."""
    return np.mean(np.asarray(errors, dtype=float)[:, None] <= thresholds[None, :], axis=0)


@dataclass
class Metrics:
    """Curves of one sequence or of a dataset, and the scores read from them.

    ``success`` (21,), ``precision`` (51,) and ``norm_precision`` (51,) are the curves
    over :data:`SUCCESS_THRESHOLDS`, :data:`PRECISION_THRESHOLDS` and
    :data:`NORM_PRECISION_THRESHOLDS` (NaN when no frame was evaluated);
    ``overlaps`` holds the GOT-10k IoUs AO and SR are taken from; ``frames`` counts the
    frames the curves were computed on.
    """

    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    overlaps: np.ndarray
    frames: int

    @property
    def success_auc(self) -> float:
        return float(np.mean(self.success))

    @property
    def precision_20(self) -> float:
        return float(self.precision[PRECISION_AT])

    @property
    def norm_precision_20(self) -> float:
        return float(self.norm_precision[NORM_PRECISION_AT])

    @property
    def ao(self) -> float:
        return float(np.mean(self.overlaps)) if self.overlaps.size else float("nan")

    @property
    def sr50(self) -> float:
        return float(np.mean(self.overlaps > 0.5)) if self.overlaps.size else float("nan")

    @property
    def sr75(self) -> float:
        return float(np.mean(self.overlaps > 0.75)) if self.overlaps.size else float("nan")

    def scores(self) -> dict[str, float]:
        """The scalar scores by name, as written to reports."""
        return {
            "success_auc": self.success_auc,
            "precision_20": self.precision_20,
            "norm_precision_20": self.norm_precision_20,
            "ao": self.ao,
            "sr50": self.sr50,
            "sr75": self.sr75,
        }


def _without_frames(overlaps: np.ndarray) -> Metrics:
    """Metrics when no frame could be scored: NaN curves."""
    return Metrics(
        success=np.full(len(SUCCESS_THRESHOLDS), np.nan),
        precision=np.full(len(PRECISION_THRESHOLDS), np.nan),
        norm_precision=np.full(len(NORM_PRECISION_THRESHOLDS), np.nan),
        overlaps=overlaps,
        frames=0,
    )


def sequence_metrics(
    boxes: np.ndarray,
    gt_boxes: np.ndarray,
    *,
    init_index: int | None = None,
    evaluated: np.ndarray | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Metrics:
    """Metrics of one sequence's predicted (N, 4) ``boxes`` against ``gt_boxes``.

    ``init_index`` is the frame the tracker started from (default: the first frame
    with a ground-truth box); GOT-10k's AO and SR leave it out. ``evaluated`` (N,) bool
    leaves other frames out of everything (frames that could not be decoded).
    ``frame_size = (W, H)`` clips the boxes to the frame for AO and SR, as GOT-10k does.
    """
    boxes, gt_boxes = np.asarray(boxes, dtype=float), np.asarray(gt_boxes, dtype=float)
    if boxes.shape != gt_boxes.shape or boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes {boxes.shape} and ground truth {gt_boxes.shape} must both be (N, 4)")
    keep = ~np.isnan(gt_boxes).any(axis=1)
    if evaluated is not None:
        keep &= np.asarray(evaluated, dtype=bool)
    if init_index is None:
        present = np.flatnonzero(~np.isnan(gt_boxes).any(axis=1))
        init_index = int(present[0]) if present.size else len(gt_boxes)
    boxes, gt_boxes = boxes[keep], gt_boxes[keep]
    after_init = np.flatnonzero(keep) > init_index

    no_box = np.isnan(boxes).any(axis=1)
    ious = np.where(no_box, 0.0, rect_iou(boxes, gt_boxes))
    errors = np.where(no_box, np.inf, center_error(boxes, gt_boxes))
    norm_errors = np.where(no_box, np.inf, normalized_center_error(boxes, gt_boxes))
    got_ious = np.where(no_box, 0.0, rect_iou(boxes, gt_boxes, bound=frame_size))[after_init]
    if not keep.any():
        return _without_frames(got_ious)
    return Metrics(
        success=success_curve(ious),
        precision=precision_curve(errors),
        norm_precision=precision_curve(norm_errors, NORM_PRECISION_THRESHOLDS),
        overlaps=got_ious,
        frames=int(keep.sum()),
    )


def overall_metrics(per_sequence: list[Metrics]) -> Metrics:
    """Dataset metrics: curves averaged over the sequences that have evaluated frames
    (OTB, LaSOT), GOT-10k overlaps pooled over all frames."""
    scored = [m for m in per_sequence if m.frames > 0]
    overlaps = np.concatenate([m.overlaps for m in per_sequence]) if per_sequence else np.zeros(0)
    if not scored:
        return _without_frames(overlaps)
    return Metrics(
        success=np.mean([m.success for m in scored], axis=0),
        precision=np.mean([m.precision for m in scored], axis=0),
        norm_precision=np.mean([m.norm_precision for m in scored], axis=0),
        overlaps=overlaps,
        frames=sum(m.frames for m in scored),
    )


def paired_bootstrap(a, b, resamples: int = 10000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean of the per-sequence differences ``b - a`` and its bootstrap interval.

    ``a``, ``b``: one score per sequence (the same sequences, in the same order). The
    sequences are resampled with replacement ``resamples`` times and the mean difference
    taken each time; the interval is the central ``level`` of those means (percentile
    bootstrap). A difference whose interval excludes 0 is one that nine or so sequences
    support, not only their mean. Returns ``mean``, ``low``, ``high``, ``wins`` (b > a),
    ``losses`` and ``n``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired_bootstrap needs two equal-length, non-empty score lists")
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high),
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "n": len(diff)}
