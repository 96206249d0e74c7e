"""Per-pixel label assignment for the FCOS heads (Eq. 2-5).

Every score-map cell (x, y) maps back to the instance at (X, Y) = (offset + s*x,
offset + s*y) (Eq. 2, offset from :func:`model.core.config.derive_sizes`). A cell is
positive when that point lies strictly inside the ground truth (all four distances of
Eq. 3 positive); its regression target is the distances to the four sides and its
center-ness target is Eq. 5; negative cells have center-ness target 0 (Eq. 4).

``scheme="ellipse"`` is the assignment NanoTrack v3's head was trained with (SiamBAN's):
positive inside the ellipse with semi-axes (w/4, h/4) around the box centre, negative
outside the one with semi-axes (w/2, h/2), ignored (label -1) in between; the cell
nearest the centre is positive whenever it lies inside the box, so a box smaller than
the stride still has one. Fine-tuning features for that frozen head with the paper's
labels would teach it to score the box's rim as target.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Targets:
    """Training targets for a batch; S = score size.

    labels (B, S, S) float 1 positive / 0 negative; ltrb (B, 4, S, S) distances
    (l*, t*, r*, b*) in instance pixels (meaningful where positive); centerness (B, S, S).
    """

    labels: torch.Tensor  # 1 positive, 0 negative, -1 ignored (ellipse scheme only)
    ltrb: torch.Tensor
    centerness: torch.Tensor


def ltrb_targets(grid: torch.Tensor, boxes_xyxy: torch.Tensor) -> torch.Tensor:
    """Eq. 3 with all distances positive inside the box.

    grid (2, S, S) instance coordinates of the cells; boxes_xyxy (B, 4) ground truth
    (x0, y0, x1, y1) -> (B, 4, S, S): l* = X - x0, t* = Y - y0, r* = x1 - X, b* = y1 - Y.
    """
    xs, ys = grid[0][None], grid[1][None]
    x0, y0, x1, y1 = (boxes_xyxy[:, i, None, None] for i in range(4))
    return torch.stack([xs - x0, ys - y0, x1 - xs, y1 - ys], dim=1)


def centerness_from_ltrb(ltrb: torch.Tensor) -> torch.Tensor:
    """Eq. 4-5: sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) where all four are > 0, else 0.

    ltrb (..., 4, ...) with the distances along dim -3 (B, 4, S, S) -> (B, S, S).
    """
    left, top, right, bottom = ltrb.unbind(dim=-3)
    inside = torch.minimum(torch.minimum(left, right), torch.minimum(top, bottom)) > 0
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=1e-6)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=1e-6)
    return torch.where(inside, (lr.clamp(min=0) * tb.clamp(min=0)).sqrt(), torch.zeros_like(lr))


def ellipse_labels(grid: torch.Tensor, boxes_xyxy: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """(B, S, S) labels 1 / 0 / -1 of the ellipse scheme (module docstring); ``inside``
    (B, S, S) marks the cells inside each box."""
    xs, ys = grid[0][None], grid[1][None]
    x0, y0, x1, y1 = (boxes_xyxy[:, i, None, None] for i in range(4))
    half_w, half_h = ((x1 - x0) / 2).clamp(min=1e-6), ((y1 - y0) / 2).clamp(min=1e-6)
    radius = ((xs - (x0 + x1) / 2) / half_w) ** 2 + ((ys - (y0 + y1) / 2) / half_h) ** 2  # 1 on the outer ellipse
    labels = torch.where(radius < 0.25, 1.0, torch.where(radius < 1.0, -1.0, 0.0))
    nearest = radius.flatten(1).argmin(dim=1)
    flat = labels.flatten(1)
    rows = torch.arange(len(flat), device=flat.device)
    flat[rows, nearest] = torch.where(inside.flatten(1)[rows, nearest], 1.0, flat[rows, nearest])
    return flat.view_as(labels)


def assign_targets(grid: torch.Tensor, boxes_xyxy: torch.Tensor, scheme: str = "box") -> Targets:
    """Labels (Eq. 2, or the ellipse scheme), ltrb (Eq. 3) and center-ness (Eq. 4-5)
    for ground truths (B, 4) xyxy."""
    ltrb = ltrb_targets(grid, boxes_xyxy)
    inside = ltrb.min(dim=1).values > 0
    labels = inside.float() if scheme == "box" else ellipse_labels(grid, boxes_xyxy, inside)
    return Targets(labels=labels, ltrb=ltrb, centerness=centerness_from_ltrb(ltrb))


def decode_ltrb(grid: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """Predicted boxes at every cell: (B, 4, S, S) distances -> (B, 4, S, S) xyxy."""
    xs, ys = grid[0][None], grid[1][None]
    return torch.stack([xs - ltrb[:, 0], ys - ltrb[:, 1], xs + ltrb[:, 2], ys + ltrb[:, 3]], dim=1)
