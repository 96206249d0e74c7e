"""The one-pass harness and ``main.py eval``: real OpenCV trackers on real and synthetic sequences."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from main import main
from model.data.sequences import read_sequence
from model.core.errors import InputError
from model.evaluation.evaluate import OpenCVTracker, evaluate, make_tracker, tracker_factory
from model.tracking.result import TrackResult

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEQUENCES = SHARED_DATA / "sequences"
NANOTRACK = SHARED_DATA / "baselines" / "nanotrack"
SCORE_KEYS = {"success_auc", "precision_20", "norm_precision_20", "ao", "sr50", "sr75", "fps", "frames", "failed_frames"}

needs_sequences = pytest.mark.skipif(not (SEQUENCES / "Dudek20").is_dir(), reason="shared data not available")


def moving_square_sequence(folder: Path, count: int = 12) -> list[tuple[float, float, float, float]]:
    """A textured square gliding over a dark background, with its ground truth; returns the boxes."""
    (folder / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    texture = rng.integers(100, 255, (24, 24, 3), dtype=np.uint8)
    boxes = []
    for index in range(count):
        frame = np.full((120, 160, 3), 30, np.uint8)
        x, y = 20 + 4 * index, 40 + 2 * index
        frame[y:y + 24, x:x + 24] = texture
        cv2.imwrite(str(folder / "img" / f"{index + 1:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        boxes.append((x, y, 24, 24))
    (folder / "groundtruth.txt").write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
    return boxes


@needs_sequences
def test_cli_evaluates_opencv_trackers_on_dudek(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", "--dataset", str(SEQUENCES), "--tracker", "opencv:KCF", "--tracker", "opencv:CSRT",
                 "--sequences", "Dudek20", "--max-frames", "20", "--json", str(out), "--plots", str(tmp_path / "plots")])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["trackers"]) == {"opencv:KCF", "opencv:CSRT"}
    for name, scores in result["trackers"].items():
        assert SCORE_KEYS <= set(scores["overall"])
        assert len(scores["overall"]["success_curve"]) == 21 and len(scores["overall"]["precision_curve"]) == 51
        sequence = scores["sequences"]["Dudek20"]
        assert SCORE_KEYS <= set(sequence)
        assert sequence["frames"] == 20 and sequence["failed_frames"] == 0 and sequence["init_frame"] == 0
        for key in ["success_auc", "precision_20", "norm_precision_20", "ao", "sr50", "sr75"]:
            assert 0.0 <= sequence[key] <= 1.0, (name, key)
        assert sequence["fps"] > 0
    assert result["trackers"]["opencv:CSRT"]["overall"]["success_auc"] > 0.3
    assert result["trackers"]["opencv:CSRT"]["overall"]["precision_20"] > 0.5

    table = capsys.readouterr().out
    assert "opencv:KCF" in table and "opencv:CSRT" in table and "Dudek20" in table
    for plot in ["success.png", "precision.png", "norm_precision.png"]:
        image = cv2.imread(str(tmp_path / "plots" / plot))
        assert image is not None and image.shape[0] > 100


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--tracker", "opencv:BOOSTING"], "unknown tracker 'opencv:BOOSTING'"),
        (["--tracker", "hnse:"], "unknown tracker 'hnse:'"),
        (["--tracker", "hnse:no/such/weights.pt"], "no/such/weights.pt: no such weights file"),
        (["--tracker", "opencv:KCF", "--max-frames", "0"], "--max-frames must be at least 1"),
    ],
)
def test_cli_refuses_bad_trackers_with_one_line(tmp_path, capsys, arguments, message):
    assert main(["eval", "--dataset", str(tmp_path), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_cli_refuses_bad_datasets(tmp_path, capsys):
    assert main(["eval", "--dataset", str(tmp_path / "missing"), "--tracker", "opencv:KCF"]) == 2
    assert "missing: no such dataset folder" in capsys.readouterr().err
    moving_square_sequence(tmp_path / "square")
    assert main(["eval", "--dataset", str(tmp_path / "square"), "--tracker", "opencv:KCF", "--sequences", "x"]) == 2
    assert "no sequence 'x'; it has square" in capsys.readouterr().err
    (tmp_path / "square" / "groundtruth.txt").write_text("1,2,3\n")
    assert main(["eval", "--dataset", str(tmp_path), "--tracker", "opencv:KCF"]) == 2
    assert "groundtruth.txt line 1: expected 4 values" in capsys.readouterr().err


def test_harness_starts_at_first_present_box_and_skips_broken_frames(tmp_path):
    boxes = moving_square_sequence(tmp_path / "square")
    lines = ["NaN,NaN,NaN,NaN"] + [",".join(map(str, box)) for box in boxes[1:]]
    (tmp_path / "square" / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "square" / "img" / "00006.jpg").write_bytes(b"broken")
    sequence = read_sequence(tmp_path / "square")
    progress = []

    reports = evaluate({"kcf": tracker_factory("opencv:KCF")}, [sequence],
                       progress=lambda *update: progress.append(update))
    run = reports["kcf"].runs[0]
    assert run.init_index == 1 and run.failed_frames == [5]
    assert run.tracker_calls == 10 and reports["kcf"].frames == 10 and reports["kcf"].failed_frames == 1
    assert np.isnan(run.boxes[[0, 5]]).all() and not np.isnan(run.boxes[[1, 2, 4, 6, 11]]).any()
    np.testing.assert_array_equal(run.boxes[1], boxes[1])  # the initial box is the output of the first frame
    assert run.metrics.frames == 10 and run.metrics.overlaps.size == 9
    assert run.metrics.success_auc > 0.6  # an easy, textured target
    assert progress[-1] == ("kcf", "square", 12, 12)


def test_max_frames_limits_every_sequence(tmp_path):
    moving_square_sequence(tmp_path / "square")
    reports = evaluate({"mil": tracker_factory("opencv:MIL")}, [read_sequence(tmp_path / "square")], max_frames=5)
    run = reports["mil"].runs[0]
    assert run.boxes.shape == (5, 4) and run.tracker_calls == 5 and run.metrics.frames == 5


def test_opencv_wrapper_gives_track_results_and_restarts(tmp_path):
    boxes = moving_square_sequence(tmp_path / "square", count=4)
    sequence_frames = [cv2.imread(str(p)) for p in sorted((tmp_path / "square" / "img").iterdir())]
    tracker = make_tracker("opencv:CSRT")
    assert isinstance(tracker, OpenCVTracker)
    for _ in range(2):  # init() starts over with a fresh OpenCV tracker
        tracker.init(sequence_frames[0], boxes[0])
        result = tracker.track(sequence_frames[1])
        assert isinstance(result, TrackResult) and 0.0 <= result.score <= 1.0
        assert abs(result.box[0] - boxes[1][0]) <= 3 and abs(result.box[1] - boxes[1][1]) <= 3


@pytest.mark.skipif(not NANOTRACK.is_dir(), reason="NanoTrack ONNX files not available")
def test_nanotrack_loads_from_the_shared_folder_or_the_environment(tmp_path, monkeypatch):
    boxes = moving_square_sequence(tmp_path / "square", count=3)
    frames = [cv2.imread(str(p)) for p in sorted((tmp_path / "square" / "img").iterdir())]
    monkeypatch.setenv("HNSE_NANOTRACK_DIR", str(NANOTRACK))
    tracker = make_tracker("opencv:NANO")
    tracker.init(frames[0], boxes[0])
    result = tracker.track(frames[1])
    assert 0.0 <= result.score <= 1.0 and result.box[2] > 0

    monkeypatch.setenv("HNSE_NANOTRACK_DIR", str(tmp_path))
    with pytest.raises(InputError, match="nanotrack_backbone_sim.onnx: NanoTrack model file not found"):
        make_tracker("opencv:NANO")


@needs_sequences
def test_hnse_checkpoint_goes_through_the_same_harness(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from model.core.checkpoint import save_checkpoint
    from model.tracking.tracker import Tracker

    random_tracker = Tracker.random(seed=0)
    save_checkpoint(tmp_path / "random.pt", random_tracker.net, random_tracker.config)
    sequence = read_sequence(SEQUENCES / "Dudek20")
    reports = evaluate({"hnse": tracker_factory(f"hnse:{tmp_path / 'random.pt'}")}, [sequence], max_frames=4)
    run = reports["hnse"].runs[0]
    assert run.tracker_calls == 4 and not np.isnan(run.boxes).any() and run.fps > 0
    assert np.all((run.scores >= 0) & (run.scores <= 1))


def test_comparison_table_bootstraps_every_pair_of_the_first_trackers():
    from hnse_cli.evaluate import comparison_table

    def tracker(*aucs):
        return {"sequences": {f"s{i}": {"success_auc": v} for i, v in enumerate(aucs)}}

    result = {"trackers": {"A": tracker(0.5, 0.6, 0.7), "B": tracker(0.6, 0.7, 0.8), "C": tracker(0.5, 0.6, 0.7)}}
    lines = comparison_table(result).splitlines()
    assert lines[1].startswith("  B - A: +0.100 [+0.100, +0.100]") and "B better on 3/3" in lines[1]
    assert lines[2].startswith("  C - A: +0.000") and lines[3].startswith("  C - B: -0.100")
    assert comparison_table({"trackers": {"A": tracker(0.5)}}) == ""


def test_hnse_tracker_names_can_override_tracking_settings(tmp_path):
    from model.core.checkpoint import save_checkpoint
    from model.core.config import Config, NetworkConfig
    from model.core.errors import InputError
    from model.evaluation.evaluate import tracker_factory
    from model.network import HNSENet

    net_config = NetworkConfig(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, embed_channels=16)
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, HNSENet(net_config), Config(network=net_config))
    tracker = tracker_factory(f"hnse:{weights}?he_rerank=0.5&he_candidates=8")()
    assert tracker.config.track.he_rerank == 0.5 and tracker.config.track.he_candidates == 8
    for bad, message in (("?nope=1", "not SETTING=VALUE"), ("?he_rerank=x", "needs a number")):
        with pytest.raises(InputError, match=message):
            tracker_factory(f"hnse:{weights}{bad}")


def test_restarts_track_each_sequence_again_from_later_frames(tmp_path):
    from model.evaluation.evaluate import base_sequence_name, restart_segments

    boxes = moving_square_sequence(tmp_path / "square", count=16)
    sequence = read_sequence(tmp_path / "square")
    segments = restart_segments([sequence], 3)
    assert [s.name for s in segments] == ["square", "square@6", "square@12"]  # frames round(16/3), round(32/3)
    assert segments[0] is sequence
    later = segments[2]
    assert np.isnan(later.boxes[:11]).all()
    np.testing.assert_array_equal(later.boxes[11:], sequence.boxes[11:])
    assert base_sequence_name(later.name) == "square"
    # a rest shorter than MIN_SEGMENT_FRAMES is not run; an evaluation's frame limit bounds the starts
    assert [s.name for s in restart_segments([sequence], 4)] == ["square", "square@5", "square@9"]  # @13: 4 left
    assert [s.name for s in restart_segments([sequence], 2, max_frames=10)] == ["square", "square@6"]
    with pytest.raises(InputError, match="restarts"):
        restart_segments([sequence], 0)

    reports = evaluate({"mil": tracker_factory("opencv:MIL")}, segments)
    run = reports["mil"].runs[2]
    assert run.init_index == 11 and run.tracker_calls == 5
    np.testing.assert_array_equal(run.boxes[11], boxes[11])


def test_comparison_table_averages_the_restarts_of_a_sequence():
    from hnse_cli.evaluate import comparison_table

    def tracker(scores):
        return {"sequences": {name: {"success_auc": v} for name, v in scores.items()}}

    a = tracker({"s0": 0.5, "s0@5": 0.3, "s1": 0.6})
    b = tracker({"s0": 0.7, "s0@5": 0.3, "s1": 0.6})
    line = comparison_table({"trackers": {"A": a, "B": b}}).splitlines()[1]
    assert line.startswith("  B - A: +0.050") and "B better on 1/2" in line  # s0: +0.1 as the mean of its runs


def test_compare_puts_saved_results_side_by_side_and_bootstraps_them(tmp_path, capsys):
    moving_square_sequence(tmp_path / "data" / "square")
    moving_square_sequence(tmp_path / "data" / "other", count=10)
    for tracker, name in (("opencv:KCF", "baseline"), ("opencv:MIL", "candidate")):
        assert main(["eval", "--dataset", str(tmp_path / "data"), "--tracker", tracker,
                     "--json", str(tmp_path / f"{name}.json")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "baseline.json"), str(tmp_path / "candidate.json")]) == 0
    out = capsys.readouterr().out
    assert "opencv:KCF" in out and "opencv:MIL" in out and "square" in out and "other" in out
    assert "  opencv:MIL - opencv:KCF: " in out
    # the same tracker in two files is told apart by the file's name
    assert main(["compare", str(tmp_path / "baseline.json"), str(tmp_path / "baseline.json")]) == 0
    assert "  opencv:KCF (baseline) - opencv:KCF: +0.000" in capsys.readouterr().out
    # runs on other sequences cannot be paired
    assert main(["eval", "--dataset", str(tmp_path / "data"), "--sequences", "square", "--tracker", "opencv:KCF",
                 "--json", str(tmp_path / "square_only.json")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "baseline.json"), str(tmp_path / "square_only.json")]) == 2
    error = capsys.readouterr().err
    assert "not the runs of" in error and "lacks other" in error and error.count("\n") == 1
    (tmp_path / "notes.json").write_text('{"a": 1}')
    assert main(["compare", str(tmp_path / "notes.json")]) == 2
    assert "not a result of eval --json" in capsys.readouterr().err


def test_compare_pairs_sequences_by_name_whatever_their_order_in_each_file():
    from hnse_cli.compare import merge_results
    from hnse_cli.evaluate import comparison_table

    def result(scores):
        return {"restarts": 1, "max_frames": None,
                "trackers": {"T": {"sequences": {name: {"success_auc": v} for name, v in scores}}}}

    merged = merge_results([("a.json", result([("s0", 0.5), ("s1", 0.9)])),
                            ("b.json", result([("s1", 0.9), ("s0", 0.7)]))])  # s0 +0.2, s1 equal
    line = comparison_table(merged).splitlines()[1]
    assert line.startswith("  T (b) - T: +0.100") and "B better on 1/2, worse on 0/2" in line
    with pytest.raises(InputError, match="restarts 8 differs"):
        merge_results([("a.json", result([("s0", 0.5)])), ("b.json", {**result([("s0", 0.5)]), "restarts": 8})])


def test_summary_table_adds_the_first_passes_when_there_are_restarts():
    from hnse_cli.evaluate import summary_table

    overall = {"success_auc": 0.5, "precision_20": 0.5, "norm_precision_20": 0.5, "ao": 0.5, "sr50": 0.5,
               "sr75": 0.5, "fps": 10.0, "frames": 40, "failed_frames": 0}

    def result(runs):
        return {"trackers": {"T": {"overall": overall, "sequences": {n: {"success_auc": v} for n, v in runs.items()}}}}

    lines = summary_table(result({"s0": 0.2, "s0@5": 0.9, "s1": 0.6, "s1@4": 0.9})).splitlines()
    first = lines.index(next(line for line in lines if line.startswith("first pass only (the 2 runs")))
    assert lines[first + 1].split() == ["T", "0.400"]  # (0.2 + 0.6) / 2: the restarts left out
    assert not any(line.startswith("first pass") for line in summary_table(result({"s0": 0.2, "s1": 0.6})).splitlines())
