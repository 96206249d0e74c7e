"""Loss terms of Eq. 6-8.

Normalisation, stated where it happens: the focal, center-ness and IoU losses are
divided by the number of positive cells in the batch (N_p, Eq. 7), clamped to at least
1 so a batch without positives gives finite (zero-regression) losses; the contrastive
loss is divided by the number of RoIs N (Eq. 6).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from model.core.geometry import box_iou_xyxy


def focal_loss(score_logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al.) on the 2-channel score map, summed over all cells.

    score_logits (B, 2, S, S) (background, foreground); labels (B, S, S) in {0, 1}, or
    -1 for cells left out of the loss. With a two-way softmax the foreground probability
    is sigmoid(l_fg - l_bg), so this is the binary focal loss on that difference.
    Returns the *sum*; divide by N_p.
    """
    counted = labels >= 0
    logit = (score_logits[:, 1] - score_logits[:, 0])[counted]
    labels = labels[counted]
    p = torch.sigmoid(logit)
    ce = F.binary_cross_entropy_with_logits(logit, labels, reduction="none")
    p_t = p * labels + (1 - p) * (1 - labels)
    alpha_t = alpha * labels + (1 - alpha) * (1 - labels)
    return (alpha_t * (1 - p_t) ** gamma * ce).sum()


def centerness_loss(centerness_logits: torch.Tensor, centerness_targets: torch.Tensor,
                    positive: torch.Tensor) -> torch.Tensor:
    """BCE on center-ness (Sec. 3.4) over the cells ``positive`` marks (the positive
    cells, or all of them: ``TrainConfig.centerness_cells``), summed. Shapes (B, 1|_, S, S)."""
    logits = centerness_logits.reshape(centerness_targets.shape)[positive]
    return F.binary_cross_entropy_with_logits(logits, centerness_targets[positive], reduction="sum")


def iou_loss(pred_ltrb: torch.Tensor, target_ltrb: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """-ln(IoU) between predicted and ground-truth boxes at positive cells (Eq. 7), summed.

    Both boxes share the cell's point, so IoU follows from the ltrb distances directly.
    pred_ltrb, target_ltrb (B, 4, S, S); positive (B, S, S) bool.
    """
    pred = pred_ltrb.permute(0, 2, 3, 1)[positive]
    target = target_ltrb.permute(0, 2, 3, 1)[positive]
    pred_boxes = torch.cat([-pred[:, :2], pred[:, 2:]], dim=1)
    target_boxes = torch.cat([-target[:, :2], target[:, 2:]], dim=1)
    iou = box_iou_xyxy(pred_boxes, target_boxes)
    return -torch.log(iou.clamp(min=1e-6)).sum()


def contrastive_loss(distances: torch.Tensor, labels: torch.Tensor, margin: float = 2.0) -> torch.Tensor:
    """Eq. 6: mean over RoIs of y d^2 + (1 - y) max(0, m - d)^2 (Hadsell et al.).

    distances (N,) Euclidean distances exemplar vector <-> RoI vectors; labels (N,) 1 for
    positives, 0 for hard negatives. Returns 0 for N = 0.
    """
    if distances.numel() == 0:
        return distances.sum()
    labels = labels.to(distances.dtype)
    per_roi = labels * distances.pow(2) + (1 - labels) * (margin - distances).clamp(min=0).pow(2)
    return per_roi.mean()


def distill_loss(score_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Beyond the paper: KL(teacher || student) of the 2-way softmax of every cell, summed
    over cells (divide by N_p, as the other terms). Both (B, 2, S, S) logits; the teacher's
    carry no gradient."""
    teacher = torch.log_softmax(teacher_logits.detach(), dim=1)
    student = torch.log_softmax(score_logits, dim=1)
    return (teacher.exp() * (teacher - student)).sum()


def total_loss(terms: dict[str, torch.Tensor], lambdas: tuple[float, float, float, float]) -> torch.Tensor:
    """Eq. 8: L = l1 L_sco + l2 L_cen + l3 L_reg + l4 L_contra."""
    l1, l2, l3, l4 = lambdas
    return l1 * terms["score"] + l2 * terms["centerness"] + l3 * terms["reg"] + l4 * terms["contra"]
