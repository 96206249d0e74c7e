"""Metrics agree with the got10k toolkit (OTB and GOT-10k protocols) and LaSOT's definition."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from got10k.experiments.got10k import ExperimentGOT10k
from got10k.experiments.otb import ExperimentOTB
from got10k.utils import metrics as toolkit

from model.data.sequences import load_boxes_file
from model.evaluation.metrics import (
    center_error,
    normalized_center_error,
    overall_metrics,
    rect_iou,
    sequence_metrics,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OTB_EXPERIMENT = SimpleNamespace(nbins_iou=21, nbins_ce=51)  # what ExperimentOTB._calc_curves reads


def perturbed(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible tracker output: jittered, rescaled, and now and then far off."""
    boxes = gt.copy()
    boxes[:, :2] += rng.normal(0, 0.25, (len(gt), 2)) * gt[:, 2:]
    boxes[:, 2:] *= np.exp(rng.normal(0, 0.2, (len(gt), 2)))
    lost = rng.random(len(gt)) < 0.1
    boxes[lost, :2] += rng.uniform(-300, 300, (int(lost.sum()), 2))
    return boxes


def toolkit_scores(boxes: np.ndarray, gt: np.ndarray, frame_size) -> dict:
    """The got10k toolkit's own computation, as in ExperimentOTB.report / ExperimentGOT10k.report."""
    boxes = boxes.copy()
    boxes[0] = gt[0]
    ious, errors = toolkit.rect_iou(boxes.copy(), gt.copy()), toolkit.center_error(boxes, gt)
    success, precision = ExperimentOTB._calc_curves(OTB_EXPERIMENT, ious, errors)
    got_ious = toolkit.rect_iou(boxes[1:].copy(), gt[1:].copy(), bound=frame_size)
    ao, sr50, _, _ = ExperimentGOT10k._evaluate(None, got_ious, [])
    return dict(success=success, precision=precision, got_ious=got_ious, ao=ao, sr50=sr50,
                sr75=np.mean(got_ious > 0.75))


def real_ground_truths() -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    folder = SHARED_DATA / "sequences"
    if not folder.is_dir():
        pytest.skip("shared data not available")
    with open(folder / "MANIFEST.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        (row["name"], load_boxes_file(folder / row["name"] / "groundtruth.txt"), (int(row["width"]), int(row["height"])))
        for row in rows
    ]


def test_per_frame_measures_match_toolkit_on_random_boxes():
    rng = np.random.default_rng(0)
    boxes1 = np.column_stack([rng.uniform(-50, 200, (500, 2)), rng.uniform(0.5, 120, (500, 2))])
    boxes2 = np.column_stack([rng.uniform(-50, 200, (500, 2)), rng.uniform(0.5, 120, (500, 2))])
    np.testing.assert_allclose(rect_iou(boxes1, boxes2), toolkit.rect_iou(boxes1.copy(), boxes2.copy()), atol=1e-12)
    np.testing.assert_allclose(
        rect_iou(boxes1, boxes2, bound=(160, 120)),
        toolkit.rect_iou(boxes1.copy(), boxes2.copy(), bound=(160, 120)),
        atol=1e-12,
    )
    np.testing.assert_allclose(center_error(boxes1, boxes2), toolkit.center_error(boxes1, boxes2), atol=1e-12)
    assert 0.0 < rect_iou(boxes1, boxes2).max() < 1.0  # the random pairs do overlap sometimes


@pytest.mark.parametrize("source", ["real", "random"])
def test_sequence_and_overall_scores_match_toolkit(source):
    rng = np.random.default_rng(1)
    if source == "real":
        ground_truths = real_ground_truths()
    else:
        ground_truths = [
            (f"random{k}", np.column_stack([rng.uniform(0, 300, (n, 2)), rng.uniform(5, 80, (n, 2))]), (400, 300))
            for k, n in enumerate([40, 75, 120])
        ]
    ours, theirs = [], []
    for name, gt, frame_size in ground_truths:
        boxes = perturbed(gt, rng)
        boxes[0] = gt[0]  # the harness reports the initial box for the first frame
        metrics = sequence_metrics(boxes, gt, init_index=0, frame_size=frame_size)
        expected = toolkit_scores(boxes, gt, frame_size)
        np.testing.assert_allclose(metrics.success, expected["success"], atol=1e-6, err_msg=name)
        np.testing.assert_allclose(metrics.precision, expected["precision"], atol=1e-6, err_msg=name)
        assert metrics.success_auc == pytest.approx(np.mean(expected["success"]), abs=1e-6)
        assert metrics.precision_20 == pytest.approx(expected["precision"][20], abs=1e-6)
        assert metrics.ao == pytest.approx(expected["ao"], abs=1e-6)
        assert metrics.sr50 == pytest.approx(expected["sr50"], abs=1e-6)
        assert metrics.sr75 == pytest.approx(expected["sr75"], abs=1e-6)
        assert 0.05 < metrics.success_auc < 0.9  # the perturbation leaves something to measure
        ours.append(metrics)
        theirs.append(expected)

    overall = overall_metrics(ours)
    # ExperimentOTB.report averages the curves over sequences; ExperimentGOT10k pools the frames.
    np.testing.assert_allclose(overall.success, np.mean([t["success"] for t in theirs], axis=0), atol=1e-6)
    np.testing.assert_allclose(overall.precision, np.mean([t["precision"] for t in theirs], axis=0), atol=1e-6)
    pooled, _, _, _ = ExperimentGOT10k._evaluate(None, np.concatenate([t["got_ious"] for t in theirs]), [])
    assert overall.ao == pytest.approx(pooled, abs=1e-6)


def test_absent_frames_are_left_out_like_the_got10k_cover_filter():
    rng = np.random.default_rng(2)
    gt = np.column_stack([rng.uniform(0, 300, (60, 2)), rng.uniform(5, 80, (60, 2))])
    boxes = perturbed(gt, rng)
    absent = rng.random(60) < 0.25
    absent[0] = False
    gt_with_absence = gt.copy()
    gt_with_absence[absent] = np.nan
    boxes[0] = gt[0]

    metrics = sequence_metrics(boxes, gt_with_absence, frame_size=(400, 300))
    visible = ~absent
    expected = toolkit_scores(boxes[visible], gt[visible], (400, 300))
    np.testing.assert_allclose(metrics.success, expected["success"], atol=1e-6)
    np.testing.assert_allclose(metrics.precision, expected["precision"], atol=1e-6)
    assert metrics.ao == pytest.approx(expected["ao"], abs=1e-6)
    assert metrics.frames == visible.sum()


def test_normalized_precision_follows_lasot():
    gt = np.array([[0, 0, 10, 20]] * 4, float)
    boxes = np.array([[0, 0, 10, 20], [1, 2, 10, 20], [2, 4, 10, 20], [2, 0, 10, 20]], float)
    np.testing.assert_allclose(normalized_center_error(boxes, gt), [0, np.sqrt(0.02), np.sqrt(0.08), 0.2])
    metrics = sequence_metrics(boxes, gt)
    assert metrics.norm_precision_20 == pytest.approx(3 / 4)  # 0.2 itself counts (<=)
    assert metrics.norm_precision[0] == pytest.approx(1 / 4)
    assert metrics.norm_precision[-1] == 1.0


def test_perfect_missing_and_skipped_boxes():
    gt = np.array([[10, 10, 20, 20], [12, 10, 20, 20], [14, 10, 20, 20], [16, 10, 20, 20]], float)
    perfect = sequence_metrics(gt, gt)
    assert perfect.success_auc == pytest.approx(20 / 21)  # IoU must be strictly above 1.0 at the last bin
    assert perfect.precision_20 == 1.0 and perfect.ao == pytest.approx(1.0) and perfect.sr75 == 1.0

    no_box = gt.copy()
    no_box[2] = np.nan  # the tracker gave nothing there: a failure, not a skipped frame
    missing = sequence_metrics(no_box, gt)
    assert missing.frames == 4 and missing.precision_20 == 0.75 and missing.sr50 == pytest.approx(2 / 3)

    skipped = sequence_metrics(no_box, gt, evaluated=np.array([True, True, False, True]))
    assert skipped.frames == 3 and skipped.precision_20 == 1.0 and skipped.overlaps.size == 2

    nothing = sequence_metrics(gt, np.full((4, 4), np.nan))
    assert nothing.frames == 0 and np.isnan(nothing.success_auc) and np.isnan(nothing.ao)
    assert overall_metrics([nothing, perfect]).success_auc == pytest.approx(20 / 21)
