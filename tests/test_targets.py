"""Label assignment (model/network/targets.py, Eq. 2-5) on a small grid worked out by hand.

The grid has 5 x 5 cells at instance coordinates 4, 12, 20, 28, 36 (offset 4, stride 8).
"""
from __future__ import annotations

import math

import torch

from model.core.geometry import score_grid, score_points
from model.network.targets import assign_targets, centerness_from_ltrb, decode_ltrb, ltrb_targets

GRID = score_grid(5, 4.0, 8)  # (2, 5, 5): GRID[0] = X, GRID[1] = Y


def test_grid_points_follow_eq2():
    assert score_points(5, 4.0, 8).tolist() == [4, 12, 20, 28, 36]
    assert GRID[0, 3, 1] == 12 and GRID[1, 3, 1] == 28  # (X, Y) of row 3, column 1


def test_labels_are_the_cells_strictly_inside_the_box():
    # x from 12 (exactly on column 1's point: l* = 0, so not inside) to 30; y from 10 to 22.
    targets = assign_targets(GRID, torch.tensor([[12.0, 10.0, 30.0, 22.0]]))
    expected = torch.zeros(1, 5, 5)
    expected[0, 1:3, 2:4] = 1  # rows Y = 12, 20; columns X = 20, 28
    torch.testing.assert_close(targets.labels, expected)


def test_labels_for_a_batch_and_a_box_outside_the_crop():
    boxes = torch.tensor([[0.0, 0.0, 13.0, 5.0], [-40.0, -40.0, -10.0, -10.0]])
    targets = assign_targets(GRID, boxes)
    assert targets.labels.shape == (2, 5, 5)
    positive = targets.labels[0].nonzero().tolist()
    assert positive == [[0, 0], [0, 1]]  # (X, Y) = (4, 4) and (12, 4)
    assert targets.labels[1].sum() == 0
    assert targets.centerness[1].abs().sum() == 0


def test_ltrb_at_known_points():
    ltrb = ltrb_targets(GRID, torch.tensor([[12.0, 10.0, 30.0, 22.0]]))
    assert ltrb.shape == (1, 4, 5, 5)
    # Cell row 1, column 2: (X, Y) = (20, 12) -> l = 8, t = 2, r = 10, b = 10.
    assert ltrb[0, :, 1, 2].tolist() == [8.0, 2.0, 10.0, 10.0]
    # Cell row 2, column 3: (X, Y) = (28, 20) -> l = 16, t = 10, r = 2, b = 2.
    assert ltrb[0, :, 2, 3].tolist() == [16.0, 10.0, 2.0, 2.0]
    # Outside (row 4, column 0): (4, 36) -> l = -8, t = 26, r = 26, b = -14.
    assert ltrb[0, :, 4, 0].tolist() == [-8.0, 26.0, 26.0, -14.0]


def test_centerness_is_one_at_the_centre_and_eq5_off_centre():
    # Box centred on (20, 12), the point of row 1, column 2.
    targets = assign_targets(GRID, torch.tensor([[10.0, 4.0, 30.0, 20.0]]))
    assert targets.centerness[0, 1, 2] == 1.0
    # Row 1, column 1: (12, 12) -> l = 2, r = 18, t = b = 8 -> sqrt(2/18 * 1) = 1/3.
    assert math.isclose(float(targets.centerness[0, 1, 1]), 1 / 3, rel_tol=1e-6)
    # Row 1, column 3: (28, 12) -> l = 18, r = 2 -> also 1/3 (Eq. 5 is symmetric).
    assert math.isclose(float(targets.centerness[0, 1, 3]), 1 / 3, rel_tol=1e-6)
    # Row 2, column 2: (20, 20) lies on the bottom edge (b = 0): not inside, so 0 (Eq. 4).
    assert targets.labels[0, 2, 2] == 0 and targets.centerness[0, 2, 2] == 0
    # Every negative cell has center-ness 0, every positive one a value in (0, 1].
    negative = targets.labels[0] == 0
    assert targets.centerness[0][negative].abs().max() == 0
    assert (targets.centerness[0][~negative] > 0).all() and (targets.centerness[0] <= 1).all()


def test_centerness_with_unequal_sides():
    # Row 1, column 2 of the box (12, 10, 30, 22): l = 8, t = 2, r = 10, b = 10 ->
    # sqrt(8/10 * 2/10) = 0.4.
    targets = assign_targets(GRID, torch.tensor([[12.0, 10.0, 30.0, 22.0]]))
    assert math.isclose(float(targets.centerness[0, 1, 2]), 0.4, rel_tol=1e-6)


def test_centerness_from_ltrb_directly():
    ltrb = torch.tensor([[3.0, 1.0, 12.0, 4.0], [5.0, 5.0, 5.0, 5.0], [0.0, 2.0, 3.0, 4.0], [-1.0, 2.0, 3.0, 4.0]])
    values = centerness_from_ltrb(ltrb[:, :, None, None])[:, 0, 0]
    torch.testing.assert_close(values, torch.tensor([math.sqrt(3 / 12 * 1 / 4), 1.0, 0.0, 0.0]))


def test_decode_ltrb_inverts_ltrb_targets_at_every_cell():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(6, 2, generator=generator) * 40 - 5
    sizes = torch.rand(6, 2, generator=generator) * 30 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    decoded = decode_ltrb(GRID, ltrb_targets(GRID, boxes))
    assert decoded.shape == (6, 4, 5, 5)
    torch.testing.assert_close(decoded, boxes[:, :, None, None].expand_as(decoded), rtol=0, atol=1e-5)


def test_ellipse_labels_positive_near_the_centre_ignored_on_the_rim_negative_outside():
    # Box x 4..36, y 4..36 (centre 20, 20; semi-axes 16): the inner ellipse (radius 8)
    # holds only the centre cell; cells within 16 px are ignored; the corners are outside.
    targets = assign_targets(GRID, torch.tensor([[4.0, 4.0, 36.0, 36.0]]), "ellipse")
    labels = targets.labels[0]
    assert labels[2, 2] == 1 and int((labels == 1).sum()) == 1
    assert labels[2, 1] == -1 and labels[1, 2] == -1 and labels[1, 1] == -1  # radius 0.25, 0.25, 0.5 of the outer
    assert labels[0, 0] == 0 and labels[2, 0] == 0  # radius 2 and 1 (on the outer ellipse: negative)
    box_labels = assign_targets(GRID, torch.tensor([[4.0, 4.0, 36.0, 36.0]])).labels[0]
    assert int(box_labels.sum()) == 9  # the paper's scheme: every cell strictly inside


def test_ellipse_labels_keep_one_positive_for_a_box_smaller_than_the_stride():
    targets = assign_targets(GRID, torch.tensor([[18.0, 25.0, 23.0, 30.0]]), "ellipse")  # holds (20, 28) only
    labels = targets.labels[0]
    assert labels[3, 2] == 1 and int((labels == 1).sum()) == 1 and int((labels == -1).sum()) == 0
    outside = assign_targets(GRID, torch.tensor([[21.0, 21.0, 26.0, 26.0]]), "ellipse")  # between cell points
    assert int((outside.labels == 1).sum()) == 0
