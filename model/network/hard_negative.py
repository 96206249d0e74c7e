"""Hard negative samples emphasis (HE) branch (Sec. 3.3, Fig. 2).

Training: candidate boxes are taken from the score ranking, NMS (0.7) removes
duplicates, and each survivor is a positive (IoU > T_h = 0.8 with the ground truth) or a
hard negative (IoU < T_l = 0.3). Positives made by random shifts of the ground truth
balance the two, giving k positives + k hard negatives + the ground truth itself
(11 RoIs by default, Table 5). RoI Align (5x5) on Cat(phi_3, phi_4) and two
convolutions turn each RoI into a vector; the exemplar vector comes the same way from
the exemplar's ground-truth box. Eq. 6 then pulls positives towards the exemplar vector
and pushes hard negatives at least the margin away.
"""
from __future__ import annotations

import torch
from torch import nn

from model.core.geometry import pixel_to_feature_shift
from model.core.ops import box_iou, nms, roi_align


class EmbeddingHead(nn.Module):
    """RoI Align ``roi_size`` x ``roi_size`` + two valid 3x3 convolutions -> a vector.

    features (B, C, H, W) at ``stride`` (cell j centred on pixel stride*j); rois (K, 5)
    rows (batch index, x1, y1, x2, y2) in input pixels -> (K, channels).
    """

    def __init__(self, in_channels: int, channels: int, roi_size: int, stride: int):
        super().__init__()
        self.roi_size, self.stride = roi_size, stride
        self.conv1 = nn.Conv2d(in_channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, roi_size - 2)
        self.relu = nn.ReLU(inplace=True)

    def pool(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """The RoI Align step alone: (K, C, roi_size, roi_size), any C."""
        # Aligned RoI Align assumes cell j is centred on stride*(j + 1/2); ours on stride*j.
        shifted = torch.cat([rois[:, :1], rois[:, 1:] + pixel_to_feature_shift(self.stride)], dim=1)
        return roi_align(features, shifted, self.roi_size, spatial_scale=1.0 / self.stride,
                         sampling_ratio=2, aligned=True)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(self.pool(features, rois)))).flatten(1)


class ExemplarDistance(nn.Module):
    """Euclidean distance of each box's HE vector to the exemplar vector (Sec. 3.3, the
    distance Eq. 6 trains): features (1, C, H, W), boxes (K, 4) xyxy in input pixels,
    exemplar (D,) -> (K,). Tensors only, so that an inference backend can export it."""

    def __init__(self, embedding: EmbeddingHead):
        super().__init__()
        self.embedding = embedding

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
        return (self.embedding(features, rois) - exemplar).norm(dim=1)


def random_shifts(gt: torch.Tensor, count: int, iou_min: float, generator: torch.Generator,
                  max_tries: int = 8) -> torch.Tensor:
    """Up to ``count`` boxes made by shifting/rescaling ``gt`` (4,) xyxy with IoU > iou_min.

    Shifts of up to 10% of the size and scale changes of up to 10% keep most samples above
    T_h = 0.8; rejected draws are retried, and the ground truth itself fills any shortfall.
    """
    w, h = gt[2] - gt[0], gt[3] - gt[1]
    kept = []
    for _ in range(max_tries):
        draw = torch.rand(count * 4, 4, generator=generator, device=gt.device) * 0.2 - 0.1
        cx = (gt[0] + gt[2]) / 2 + draw[:, 0] * w
        cy = (gt[1] + gt[3]) / 2 + draw[:, 1] * h
        nw, nh = w * torch.exp(draw[:, 2]), h * torch.exp(draw[:, 3])
        boxes = torch.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], dim=1)
        kept.append(boxes[box_iou(boxes, gt[None])[:, 0] > iou_min])
        if sum(len(k) for k in kept) >= count:
            break
    boxes = torch.cat(kept)[:count]
    if len(boxes) < count:
        boxes = torch.cat([boxes, gt[None].expand(count - len(boxes), 4)])
    return boxes


def random_negatives(gt: torch.Tensor, count: int, iou_max: float, extent: float,
                     generator: torch.Generator, max_tries: int = 8) -> torch.Tensor:
    """``count`` boxes of the ground truth's size placed in the instance with IoU < iou_max.

    Used only when the score ranking yields fewer than k hard negatives (early in training,
    or on scenes without distractors), so every sample keeps the k + k + 1 structure. A
    ground truth that fills most of the instance leaves no such place (retrying forever
    would hang training): the ground truth moved sideways by its own width (IoU 0) fills
    any shortfall.
    """
    w, h = gt[2] - gt[0], gt[3] - gt[1]
    kept = []
    for _ in range(max_tries):
        x = torch.rand(count * 4, generator=generator, device=gt.device) * (extent - w).clamp(min=1)
        y = torch.rand(count * 4, generator=generator, device=gt.device) * (extent - h).clamp(min=1)
        boxes = torch.stack([x, y, x + w, y + h], dim=1)
        kept.append(boxes[box_iou(boxes, gt[None])[:, 0] < iou_max])
        if sum(len(k) for k in kept) >= count:
            break
    boxes = torch.cat(kept)[:count]
    if len(boxes) < count:
        side = 1.0 if float(gt[0] + gt[2]) < extent else -1.0  # towards the wider margin
        beside = gt + side * torch.stack([w, torch.zeros_like(w), w, torch.zeros_like(w)])
        boxes = torch.cat([boxes, beside[None].expand(count - len(boxes), 4)])
    return boxes


def select_rois(scores: torch.Tensor, boxes: torch.Tensor, gt: torch.Tensor, num_rois: int,
                pre_nms: int, nms_threshold: float, iou_high: float, iou_low: float, extent: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """RoIs and labels for one instance (Sec. 3.3).

    scores (M,) foreground probabilities and boxes (M, 4) xyxy predicted at every cell;
    gt (4,) xyxy. Returns rois (num_rois, 4) ordered [ground truth, k positives, k hard
    negatives] and labels (num_rois,) 1/0, with k = (num_rois - 1) // 2.
    """
    k = (num_rois - 1) // 2
    order = scores.argsort(descending=True)[:pre_nms]
    cand_boxes, cand_scores = boxes[order], scores[order]
    keep = nms(cand_boxes, cand_scores, nms_threshold)
    cand_boxes = cand_boxes[keep]
    iou = box_iou(cand_boxes, gt[None])[:, 0]
    positives = cand_boxes[iou > iou_high][:k]
    hard = cand_boxes[iou < iou_low][:k]
    if len(positives) < k:
        positives = torch.cat([positives, random_shifts(gt, k - len(positives), iou_high, generator)])
    if len(hard) < k:
        hard = torch.cat([hard, random_negatives(gt, k - len(hard), iou_low, extent, generator)])
    rois = torch.cat([gt[None], positives, hard])
    labels = torch.cat([torch.ones(k + 1, device=gt.device), torch.zeros(k, device=gt.device)])
    return rois, labels
