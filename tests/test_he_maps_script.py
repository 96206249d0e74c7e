"""scripts/he_maps.py: the per-frame record behind BENCHMARKS' "Where the HE heatmaps differ"."""
import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.core.config import TrackConfig
from model.tracking.result import TrackResult

_spec = importlib.util.spec_from_file_location("he_maps", Path(__file__).parents[1] / "scripts" / "he_maps.py")
he_maps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(he_maps)

TRACK = replace(TrackConfig(), centerness_weight=1.0, window_influence=0.0)


def _result(score: np.ndarray, rerank: np.ndarray | None) -> TrackResult:
    ones = np.ones_like(score)
    before = score.copy()
    maps = {"score": score, "centerness": ones, "penalty": ones, "window": ones,
            "final": before * rerank if rerank is not None else before}
    if rerank is not None:
        maps["rerank"] = rerank
    return TrackResult(box=(0, 0, 1, 1), score=1.0, maps=maps)


def test_a_look_alike_pushed_away_that_would_have_won_counts_as_moved():
    score = np.zeros((5, 5), np.float32)
    score[1, 1], score[1, 2], score[3, 3] = 0.9, 0.8, 1.0  # object A (two cells), object B (best raw)
    rerank = np.zeros_like(score)
    rerank[1, 1] = rerank[1, 2] = 0.95
    rerank[3, 3] = 0.5
    record = he_maps.frame_record(_result(score, rerank), TRACK)
    assert record["lookalike"] and record["moved"] and np.isclose(record["ratio"], 0.5 / 0.95)


def test_one_object_or_no_rerank_map_is_no_look_alike():
    score = np.zeros((5, 5), np.float32)
    score[2, 2], score[2, 3] = 1.0, 0.7
    one_object = np.where(score > 0, 0.9, 0).astype(np.float32)
    assert he_maps.frame_record(_result(score, one_object), TRACK) == {"lookalike": False, "ratio": 1.0,
                                                                        "moved": False}
    assert he_maps.frame_record(_result(score, None), TRACK)["lookalike"] is False


def test_a_look_alike_the_embedding_prefers_has_a_ratio_above_one_and_leaves_the_box():
    score = np.zeros((5, 5), np.float32)
    score[1, 1], score[3, 3] = 1.0, 0.6
    rerank = np.zeros_like(score)
    rerank[1, 1], rerank[3, 3] = 0.8, 0.9
    record = he_maps.frame_record(_result(score, rerank), TRACK)
    assert record["lookalike"] and not record["moved"] and np.isclose(record["ratio"], 0.9 / 0.8)


def test_frame_ranges_are_one_based_and_merge_runs():
    assert he_maps.ranges([2, 3, 4, 9, 11, 12]) == "3-5, 10, 12-13"
    assert he_maps.ranges([]) == "-"
