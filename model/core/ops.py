"""RoI Align, non-maximum suppression and box IoU.

The hard-negative emphasis branch (paper Sec. 3.3) needs two detection operators:

* **RoI Align** (He et al., Mask R-CNN) crops a fixed-size ``5 x 5`` regional feature
  out of the fused level-3/4 features ``Cat(phi_3, phi_4)`` for the exemplar's
  ground-truth box and for every selected RoI of the instance;
* **NMS** (threshold 0.7, Sec. 4.1) removes redundant candidate boxes taken from the
  score ranking before they are split into positives and hard negatives.

``torchvision.ops`` is used when torchvision imports; otherwise the plain-torch
implementations below take over. Both are exported (:func:`roi_align_torch`,
:func:`nms_torch`) so the tests can check that they agree, and :data:`BACKEND`
says which one :func:`roi_align` and :func:`nms` dispatch to.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import Tensor

try:  # a torchvision built for another torch raises RuntimeError, not ImportError
    import torchvision.ops as _torchvision_ops
except Exception:  # noqa: BLE001 - any failure means "not usable"
    _torchvision_ops = None

#: ``"torchvision"`` when :func:`roi_align` / :func:`nms` call ``torchvision.ops``,
#: ``"torch"`` when they use the plain-torch implementations of this module.
BACKEND = "torch" if _torchvision_ops is None else "torchvision"

__all__ = ["BACKEND", "box_iou", "greedy_keep", "nms", "nms_torch", "roi_align", "roi_align_torch"]


def box_iou(boxes_a, boxes_b):
    """Pairwise intersection-over-union of two sets of ``(x1, y1, x2, y2)`` boxes.

    Args:
        boxes_a: ``[N, 4]``.
        boxes_b: ``[M, 4]``, of the same kind: two tensors, or two numpy arrays (the
            tracker's few candidate boxes, where torch's per-call overhead would cost
            more than the arithmetic).

    Returns:
        ``[N, M]`` IoU of that kind, computed as ``inter / (area_a + area_b - inter)``
        like ``torchvision.ops.box_iou`` (two empty boxes give NaN, which no threshold
        exceeds).
    """
    xp = torch if isinstance(boxes_a, Tensor) else np
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    top_left = xp.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = xp.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    width_height = (bottom_right - top_left).clip(min=0)
    inter = width_height[..., 0] * width_height[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):  # numpy's 0/0: NaN, as torch's
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms_torch(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (paper Sec. 3.3; threshold 0.7 in Sec. 4.1).

    Visits boxes by decreasing score and drops every later box whose IoU with a kept
    box is strictly greater than ``iou_threshold`` (``torchvision.ops.nms`` semantics).

    Args:
        boxes: ``[K, 4]`` as ``(x1, y1, x2, y2)``.
        scores: ``[K]``.
        iou_threshold: IoU above which the lower-scoring box is suppressed.

    Returns:
        ``int64 [K']`` indices into ``boxes`` of the kept boxes, by decreasing score.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    return order[torch.as_tensor(greedy_keep(overlaps), dtype=torch.long, device=order.device)]


def greedy_keep(overlaps: np.ndarray) -> list[int]:
    """The greedy pass of NMS: ``overlaps`` is the ``[K, K]`` bool matrix "box i overlaps
    box j above the threshold" of boxes in decreasing score order; returns the ranks kept,
    each suppressing the later ones it overlaps.

    The pass is inherently sequential, so it runs on a host array, each step a cheap
    numpy row operation.
    """
    suppressed = np.zeros(len(overlaps), dtype=bool)
    kept = []
    for rank in range(len(overlaps)):
        if suppressed[rank]:
            continue
        kept.append(rank)
        suppressed |= overlaps[rank]
    return kept


def _bilinear_matrix(
    start: Tensor, bin_size: Tensor, grid: Tensor, max_grid: int, bins: int, length: int
) -> Tensor:
    """Per-RoI matrix that averages bilinear samples along one axis.

    Row ``b`` of RoI ``k`` holds, for every pixel index along the axis, the sum of the
    bilinear weights its ``grid[k]`` samples in bin ``b`` put on that pixel, divided by
    ``grid[k]``. Samples follow torchvision's ``roi_align_forward_kernel``: a sample
    beyond ``[-1, length]`` contributes nothing, one in ``[-1, 0]`` reads pixel 0 and
    one past ``length - 1`` reads pixel ``length - 1``.

    Args:
        start, bin_size: ``[K]`` RoI start and bin size in feature pixels.
        grid: ``[K]`` int64 number of samples per bin (entries <= 0 give zero rows).
        max_grid: ``grid.max()``, the number of sample slots allocated per bin.
        bins: output bins along the axis.
        length: feature-map size along the axis.

    Returns:
        ``[K, bins, length]`` in the dtype of ``start``.
    """
    dtype = start.dtype
    bin_index = torch.arange(bins, device=start.device, dtype=dtype)
    sample_index = torch.arange(max_grid, device=start.device, dtype=dtype)
    grid_float = grid.clamp(min=1).to(dtype)
    # Same operation order as the C++ kernel, so results agree to rounding.
    coord = (
        start[:, None, None]
        + bin_index[None, :, None] * bin_size[:, None, None]
        + (sample_index[None, None, :] + 0.5) * bin_size[:, None, None] / grid_float[:, None, None]
    )
    used = (sample_index[None, None, :] < grid[:, None, None]) & (coord >= -1.0) & (coord <= length)
    coord = coord.clamp(min=0)
    low = coord.floor().clamp(max=length - 1)
    # Past the last pixel both corners are that pixel, so the split of the weight
    # between them does not matter (the kernel also moves the sample onto it).
    high = (low + 1).clamp(max=length - 1)
    frac_high = coord - low
    weight = used.to(dtype) / grid_float[:, None, None]
    matrix = torch.zeros(start.shape[0], bins, length, device=start.device, dtype=dtype)
    matrix.scatter_add_(2, low.long(), (1 - frac_high) * weight)
    matrix.scatter_add_(2, high.long(), frac_high * weight)
    return matrix


def roi_align_torch(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> Tensor:
    """RoI Align (Mask R-CNN) in plain torch, with ``torchvision.ops.roi_align`` semantics.

    The paper (Sec. 3.3) pools a ``5 x 5`` regional feature from ``Cat(phi_3, phi_4)``.
    Each output bin averages ``grid_h x grid_w`` bilinear samples placed at the centres
    of a regular sub-grid of the bin. Bilinear sampling factorises into a weight along
    y times a weight along x, and so does torchvision's border rule, so the whole
    operator is ``A_y[k] @ features[batch_k] @ A_x[k]^T`` with small per-RoI
    interpolation matrices; autograd flows to ``features`` through the matrix
    products and the per-image products. As in torchvision, no gradient reaches ``rois``.

    Args:
        features: ``[N, C, H, W]``.
        rois: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in input coordinates.
        output_size: ``oh`` (square) or ``(oh, ow)``.
        spatial_scale: factor mapping RoI coordinates to feature pixels
            (``1 / stride``).
        sampling_ratio: samples per bin along each axis; ``<= 0`` picks
            ``ceil(roi_size / output_size)`` per RoI.
        aligned: shift RoI coordinates by -0.5 pixel so that pixel centres sit at
            integer + 0.5 (the corrected Mask R-CNN alignment). When False, RoIs are
            forced to be at least one pixel wide and high.

    Returns:
        ``[K, C, oh, ow]`` in the dtype and on the device of ``features``.
    """
    if features.dim() != 4 or rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"roi_align expects features [N, C, H, W] and rois [K, 5], got "
            f"{tuple(features.shape)} and {tuple(rois.shape)}"
        )
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    _, _, height, width = features.shape
    rois = rois.detach().to(features.dtype)
    offset = 0.5 if aligned else 0.0
    start_x = rois[:, 1] * spatial_scale - offset
    start_y = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_x
    roi_h = rois[:, 4] * spatial_scale - offset - start_y
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_w = roi_w / out_w
    bin_h = roi_h / out_h
    if sampling_ratio > 0:
        grid_h = torch.full_like(start_y, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(start_x, sampling_ratio, dtype=torch.long)
        max_grid_h = max_grid_w = sampling_ratio
    else:
        grid_h = torch.ceil(roi_h / out_h).long()
        grid_w = torch.ceil(roi_w / out_w).long()
        # One host sync: the number of sample slots is a shape.
        max_grid_h = max(int(grid_h.max()), 1) if len(rois) else 1
        max_grid_w = max(int(grid_w.max()), 1) if len(rois) else 1
    # A RoI without samples along an axis gets a zero matrix there, so it pools to zero.
    rows = _bilinear_matrix(start_y, bin_h, grid_h, max_grid_h, out_h, height)
    cols = _bilinear_matrix(start_x, bin_w, grid_w, max_grid_w, out_w, width)
    # Per batch image, two matrix products without copying the feature map once per
    # RoI (676 RoIs x 128 x 32 x 32 would be 350 MB): along y, one GEMM for all its RoIs,
    # (K_b * oh, H) @ (H, C * W); along x, one small product per RoI. (Broadcasting
    # (K_b, 1, oh, H) @ (C, H, W) instead costs K_b * C tiny products: ~10x slower.)
    if features.shape[0] == 1:  # one image (tracking): no per-image grouping, and a graph ONNX can export
        return rows[:, None] @ features[0] @ cols[:, None].transpose(2, 3)
    batch_index = rois[:, 0].long()
    channels = features.shape[1]
    out = features.new_zeros(len(rois), channels, out_h, out_w)
    for image in batch_index.unique().tolist():
        mask = batch_index == image
        count = int(mask.sum())
        along_y = rows[mask].reshape(-1, height) @ features[image].transpose(0, 1).reshape(height, -1)
        pooled = along_y.reshape(count, out_h * channels, width) @ cols[mask].transpose(1, 2)
        pooled = pooled.reshape(count, out_h, channels, out_w).transpose(1, 2)
        out = out.index_put((mask.nonzero()[:, 0],), pooled)
    return out


# roi_align_torch's defaults, applied to torchvision too so the backends agree.
_ROI_ALIGN_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(roi_align_torch).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def roi_align(
    features: Tensor, rois: Tensor, output_size: int | tuple[int, int], **options
) -> Tensor:
    """RoI Align (Mask R-CNN; paper Sec. 3.3, ``5 x 5`` on level-3/4 features).

    ``torchvision.ops.roi_align`` when available, :func:`roi_align_torch` otherwise.
    ``options`` are the keyword arguments ``spatial_scale``, ``sampling_ratio`` and
    ``aligned`` of :func:`roi_align_torch`, with its defaults on either backend
    (torchvision's own defaults differ). Returns ``[K, C, oh, ow]``.
    """
    if _torchvision_ops is None:
        return roi_align_torch(features, rois, output_size, **options)
    return _torchvision_ops.roi_align(
        features, rois, output_size, **{**_ROI_ALIGN_DEFAULTS, **options}
    )


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression (paper Sec. 3.3; threshold 0.7 in Sec. 4.1).

    ``torchvision.ops.nms`` when available, :func:`nms_torch` otherwise. Returns the
    ``int64`` indices of the kept boxes by decreasing score.
    """
    if _torchvision_ops is not None:
        return _torchvision_ops.nms(boxes, scores, iou_threshold)
    return nms_torch(boxes, scores, iou_threshold)
