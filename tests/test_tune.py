"""Tracking hyper-parameter tuning writes its choice into the weights file."""
import torch

from model.core.checkpoint import read_checkpoint, save_checkpoint
from model.core.config import Config, NetworkConfig
from model.data.synthetic import synthetic_sequence
from model.network import HNSENet
from model.tracking.tracker import Tracker
from model.training.tune import GRID, HE_GRID, tune_weights


def test_tune_stores_best_values_from_the_grid(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net_config = NetworkConfig(pretrained=False, neck_channels=32, head_channels=32, tower_convs=1, embed_channels=16)
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, HNSENet(net_config), Config(network=net_config), {"note": "kept"})
    sequences = [synthetic_sequence(seed, length=6, size=(200, 160)) for seed in (1, 2)]
    # Score each candidate by a known function of its values so the optimum is known.
    target = {"window_influence": 0.25, "penalty_k": 0.15, "size_lr": 0.2, "centerness_weight": 0.5,
              "motion_prediction": 0.5, "colour_rerank": 2.0, "he_rerank": 1.0}

    def fake_auc(tracker, sequences, max_frames):
        track = tracker.config.track
        return -sum(abs(getattr(track, name) - value) for name, value in target.items())

    monkeypatch.setattr("model.training.tune.success_auc", fake_auc)
    best = tune_weights(weights, sequences, log=lambda line: None)
    assert best == target
    payload = read_checkpoint(weights)
    assert {k: payload["config"]["track"][k] for k in {**GRID, **HE_GRID}} == target
    assert payload["meta"]["note"] == "kept" and "tuning" in payload["meta"]
    assert Tracker.from_checkpoint(weights).config.track.window_influence == 0.25


def test_success_auc_runs_the_real_tracker(tmp_path):
    from model.training.tune import success_auc

    tracker = Tracker.random(pretrained=False, neck_channels=32, head_channels=32, tower_convs=1, embed_channels=16)
    auc = success_auc(tracker, [synthetic_sequence(3, length=5, size=(200, 160))], max_frames=5)
    assert 0.0 <= auc <= 1.0


def test_he_rerank_is_tuned_only_with_an_he_head():
    from model.training.tune import grid_for

    with_he = Tracker.random(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, embed_channels=16)
    without = Tracker.random(he_head=False, pretrained=False, neck_channels=16, head_channels=16, tower_convs=1)
    assert "he_rerank" in grid_for(with_he) and "he_rerank" not in grid_for(without)


def test_min_gain_keeps_the_start_values_unless_the_gain_exceeds_it(tmp_path, monkeypatch):
    from model.training.tune import tune

    tracker = Tracker.random(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, he_head=False)
    start = tracker.config.track

    def fake_auc(candidate, sequences, max_frames):  # window 0.25 is better by 0.005, penalty 0.3 by 0.02
        track = candidate.config.track
        return 0.5 + 0.005 * (track.window_influence == 0.25) + 0.02 * (track.penalty_k == 0.3)

    monkeypatch.setattr("model.training.tune.success_auc", fake_auc)
    best, auc = tune(tracker, [], log=lambda line: None, min_gain=0.01)
    assert best["window_influence"] == start.window_influence and best["penalty_k"] == 0.3
    assert auc == 0.52


def test_tune_cli_start_writes_settings_before_tuning(tmp_path, monkeypatch):
    import main

    torch.manual_seed(0)
    net_config = NetworkConfig(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, embed_channels=16)
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, HNSENet(net_config), Config(network=net_config))
    data = tmp_path / "seq"
    (data / "img").mkdir(parents=True)
    sequence = synthetic_sequence(4, length=3, size=(200, 160))
    import cv2
    import numpy as np

    for i in range(3):
        cv2.imwrite(str(data / "img" / f"{i + 1:05d}.jpg"), sequence.frames[i])
    np.savetxt(data / "groundtruth.txt", sequence.boxes, delimiter=",")
    seen = []
    monkeypatch.setattr("model.training.tune.success_auc",
                        lambda tracker, sequences, max_frames: seen.append(tracker.config.track.he_rerank) or 0.5)
    assert main.main(["tune", str(weights), "--dataset", str(data), "--start", "he_rerank=0.25",
                      "--min-gain", "0.01"]) == 0
    assert seen[0] == 0.25  # the start point is the written value
    assert read_checkpoint(weights)["config"]["track"]["he_rerank"] == 0.25  # nothing beat it by 0.01


def test_tune_cli_refuses_bad_arguments_before_start_rewrites_the_file(tmp_path):
    import main

    net_config = NetworkConfig(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, embed_channels=16)
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, HNSENet(net_config), Config(network=net_config))
    before = weights.read_bytes()
    for bad in (["--restarts", "0"], ["--settings", "windows"], ["--validation"]):  # no train.validation
        assert main.main(["tune", str(weights), "--dataset", str(tmp_path), "--start", "he_rerank=0.25", *bad]) != 0
        assert weights.read_bytes() == before


def test_tuning_with_restarts_scores_every_restart_and_records_it(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net_config = NetworkConfig(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, he_head=False)
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, HNSENet(net_config), Config(network=net_config))
    sequences = [synthetic_sequence(seed, length=20, size=(200, 160)) for seed in (1, 2)]
    seen = []
    monkeypatch.setattr("model.training.tune.success_auc",
                        lambda tracker, segments, max_frames: seen.append([s.name for s in segments]) or 0.5)
    tune_weights(weights, sequences, log=lambda line: None, restarts=2)
    first, second = (s.name for s in sequences)
    assert seen[0] == [first, f"{first}@11", second, f"{second}@11"]
    tuning = read_checkpoint(weights)["meta"]["tuning"]
    assert tuning["restarts"] == 2 and tuning["sequences"] == [first, second]


def test_settings_restrict_the_tuning_to_the_named_ones(tmp_path, monkeypatch):
    import pytest

    from model.core.errors import InputError
    from model.training.tune import tune

    tracker = Tracker.random(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, he_head=False)
    tried = []

    def fake_auc(candidate, sequences, max_frames):
        track = candidate.config.track
        tried.append((track.window_influence, track.centerness_weight))
        return 0.5 + 0.1 * (track.window_influence == 0.25) + 0.01 * (track.centerness_weight == 0.5)

    monkeypatch.setattr("model.training.tune.success_auc", fake_auc)
    best, _ = tune(tracker, [], log=lambda line: None, settings=("centerness_weight",))
    assert best == {"centerness_weight": 0.5}  # the better window was never tried
    assert {window for window, _ in tried} == {tracker.config.track.window_influence}
    assert tune(tracker, [], log=lambda line: None, settings=("he_rerank",))[0] == {}  # no HE head: nothing to tune
    with pytest.raises(InputError, match="windows"):
        tune(tracker, [], log=lambda line: None, settings=("windows",))


def test_the_best_value_of_a_parameter_wins_not_the_first_above_the_margin(monkeypatch):
    from model.training.tune import tune

    tracker = Tracker.random(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, he_head=False)
    gains = {0.0: 0.006, 0.5: 0.009}  # over the start value 1.0, both above the margin

    def fake_auc(candidate, sequences, max_frames):
        return 0.5 + gains.get(candidate.config.track.centerness_weight, 0.0)

    monkeypatch.setattr("model.training.tune.success_auc", fake_auc)
    best, auc = tune(tracker, [], log=lambda line: None, min_gain=0.005, settings=("centerness_weight",))
    assert best == {"centerness_weight": 0.5} and abs(auc - 0.509) < 1e-12
