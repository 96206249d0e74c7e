"""Hard-negative RoI selection (model/network/hard_negative.py, Sec. 3.3) on constructed maps.

The ground truth is the 50 x 50 box (100, 100, 150, 150) in a 255-pixel instance. Peaks:

* A (score 0.9)  (102, 100, 152, 150): IoU 2400/2600 = 0.92 with the ground truth -> positive;
* A' (0.85)      (103, 101, 153, 151): IoU 0.92 with A -> removed by NMS (0.7);
* B (0.8)        (10, 10, 60, 60): far away -> hard negative;
* B' (0.75)      (11, 10, 61, 60): IoU 0.96 with B -> removed by NMS;
* C (0.7)        (190, 20, 240, 70): far away -> hard negative;
* D (0.6)        (120, 100, 170, 150): IoU 1500/3500 = 0.43 -> neither (between T_l and T_h).
"""
from __future__ import annotations

import pytest
import torch

from model.core.config import TrainConfig
from model.core.geometry import score_grid
from model.network.hard_negative import random_negatives, random_shifts, select_rois
from model.core.ops import box_iou, nms

GT = torch.tensor([100.0, 100.0, 150.0, 150.0])
EXTENT = 255.0
PEAKS = {
    "A": ([102.0, 100.0, 152.0, 150.0], 0.9),
    "A'": ([103.0, 101.0, 153.0, 151.0], 0.85),
    "B": ([10.0, 10.0, 60.0, 60.0], 0.8),
    "B'": ([11.0, 10.0, 61.0, 60.0], 0.75),
    "C": ([190.0, 20.0, 240.0, 70.0], 0.7),
    "D": ([120.0, 100.0, 170.0, 150.0], 0.6),
}
TRAIN = TrainConfig()


def _select(scores, boxes, num_rois=TRAIN.num_rois, gt=GT, seed=0):
    return select_rois(scores, boxes, gt, num_rois, TRAIN.candidate_pre_nms, TRAIN.nms_threshold, TRAIN.iou_high,
                       TRAIN.iou_low, EXTENT, torch.Generator().manual_seed(seed))


def _peak(name: str) -> torch.Tensor:
    return torch.tensor(PEAKS[name][0])


def _contains_row(rows: torch.Tensor, box: torch.Tensor) -> bool:
    return bool((rows - box).abs().max(dim=1).values.lt(1e-6).any())


def _iou(boxes: torch.Tensor) -> torch.Tensor:
    return box_iou(boxes, GT[None])[:, 0]


def test_the_constructed_peaks_have_the_stated_overlaps():
    boxes = torch.tensor([box for box, _ in PEAKS.values()])
    scores = torch.tensor([score for _, score in PEAKS.values()])
    torch.testing.assert_close(_iou(boxes[[0, 5]]), torch.tensor([2400 / 2600, 1500 / 3500]))
    assert _iou(boxes[[2, 3, 4]]).max() == 0
    kept = nms(boxes, scores, TRAIN.nms_threshold)
    assert kept.tolist() == [0, 2, 4, 5]  # A, B, C, D survive NMS


def test_rois_are_gt_then_positives_then_hard_negatives():
    boxes = torch.tensor([box for box, _ in PEAKS.values()])
    scores = torch.tensor([score for _, score in PEAKS.values()])
    rois, labels = _select(scores, boxes)
    assert rois.shape == (11, 4)
    assert labels.tolist() == [1.0] * 6 + [0.0] * 5
    torch.testing.assert_close(rois[0], GT)
    torch.testing.assert_close(rois[1], _peak("A"))  # the one candidate positive comes first
    torch.testing.assert_close(rois[6:8], torch.stack([_peak("B"), _peak("C")]))  # by score
    for suppressed in ("A'", "B'", "D"):
        assert not _contains_row(rois, _peak(suppressed)), suppressed
    # The shortfall is filled: 4 random shifts of the ground truth, 3 random negatives.
    assert (_iou(rois[:6]) > TRAIN.iou_high).all()
    assert (_iou(rois[6:]) < TRAIN.iou_low).all()
    assert len(set(map(tuple, rois[2:6].tolist()))) == 4


def test_rois_from_a_whole_score_map():
    """A 26 x 26 map (offset 31, stride 8) where every background cell predicts a 10 x 10 box
    around its point with a low score; the peaks sit on cells of their own."""
    grid = score_grid(26, 31.0, 8).flatten(1).T  # (676, 2) cell points
    generator = torch.Generator().manual_seed(3)
    scores = torch.rand(len(grid), generator=generator) * 0.01
    boxes = torch.cat([grid - 5, grid + 5], dim=1)
    cells = {"A": 12 * 26 + 12, "A'": 12 * 26 + 13, "B": 2 * 26 + 2, "B'": 2 * 26 + 3, "C": 3 * 26 + 22,
             "D": 12 * 26 + 15}
    for name, cell in cells.items():
        boxes[cell] = _peak(name)
        scores[cell] = PEAKS[name][1]
    rois, labels = _select(scores, boxes)
    assert rois.shape == (11, 4) and labels.tolist() == [1.0] * 6 + [0.0] * 5
    torch.testing.assert_close(rois[1], _peak("A"))
    torch.testing.assert_close(rois[6:8], torch.stack([_peak("B"), _peak("C")]))
    # The next hard negatives are the best-scoring background boxes (none overlaps another
    # by more than the NMS threshold, and all are far from the ground truth).
    background = torch.ones(len(scores), dtype=torch.bool)
    background[list(cells.values())] = False
    best_background = boxes[background][scores[background].argsort(descending=True)[:3]]
    torch.testing.assert_close(rois[8:], best_background)
    assert (_iou(rois[1:6]) > TRAIN.iou_high).all()


@pytest.mark.parametrize("num_rois", [5, 21])
def test_num_rois_is_configurable(num_rois):
    boxes = torch.tensor([box for box, _ in PEAKS.values()])
    scores = torch.tensor([score for _, score in PEAKS.values()])
    rois, labels = _select(scores, boxes, num_rois=num_rois)
    k = (num_rois - 1) // 2
    assert rois.shape == (num_rois, 4)
    assert labels.tolist() == [1.0] * (k + 1) + [0.0] * k
    assert (_iou(rois[:k + 1]) > TRAIN.iou_high).all()
    assert (_iou(rois[k + 1:]) < TRAIN.iou_low).all()
    torch.testing.assert_close(rois[k + 1:k + 3], torch.stack([_peak("B"), _peak("C")]))


@pytest.mark.parametrize("gt", [[100.0, 100.0, 150.0, 150.0], [10.0, 200.0, 14.0, 250.0], [0.0, 0.0, 200.0, 40.0]])
def test_random_shifts_overlap_the_ground_truth_above_t_h(gt):
    gt = torch.tensor(gt)
    shifts = random_shifts(gt, 20, 0.8, torch.Generator().manual_seed(0))
    assert shifts.shape == (20, 4)
    assert (box_iou(shifts, gt[None])[:, 0] > 0.8).all()
    assert len(set(map(tuple, shifts.tolist()))) > 10  # really random, not the gt repeated


@pytest.mark.parametrize("gt", [[100.0, 100.0, 150.0, 150.0], [10.0, 200.0, 14.0, 250.0], [-60.0, 0.0, -10.0, 50.0]])
def test_random_negatives_overlap_the_ground_truth_below_t_l(gt):
    gt = torch.tensor(gt)
    negatives = random_negatives(gt, 20, 0.3, EXTENT, torch.Generator().manual_seed(0))
    assert negatives.shape == (20, 4)
    assert (box_iou(negatives, gt[None])[:, 0] < 0.3).all()
    assert (negatives[:, :2] >= 0).all() and (negatives[:, 2:] <= EXTENT).all()  # inside the instance
    torch.testing.assert_close(negatives[:, 2:] - negatives[:, :2], (gt[2:] - gt[:2]).expand(20, 2))


def test_random_negatives_for_a_ground_truth_that_fills_the_instance():
    """No box of this size fits in the instance with IoU < 0.3; selection must still end."""
    gt = torch.tensor([27.0, 27.0, 227.0, 227.0])
    negatives = random_negatives(gt, 5, 0.3, EXTENT, torch.Generator().manual_seed(0))
    assert negatives.shape == (5, 4)
    assert (box_iou(negatives, gt[None])[:, 0] < 0.3).all()
    rois, labels = _select(torch.tensor([0.9]), gt[None].clone(), gt=gt)
    assert rois.shape == (11, 4) and labels.sum() == 6
