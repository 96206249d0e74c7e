"""The headless ``track`` subcommand: real tracking runs, decode failures, bad inputs."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import main
from hnse_cli.track import DEFAULT_WEIGHTS
from hnse_gui.document import Flag, Origin
from hnse_gui.store import load_project
from model.evaluation.metrics import rect_iou

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DUDEK = DATA / "sequences" / "Dudek20"
needs_dudek = pytest.mark.skipif(not DUDEK.is_dir(), reason="shared data not found")


def first_box(sequence: Path) -> str:
    return (sequence / "groundtruth.txt").read_text().splitlines()[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A weights file of the lite model with untrained heads: a real network, quick to make."""
    torch = pytest.importorskip("torch")
    tracker_module = pytest.importorskip("model.tracking.tracker")
    checkpoint = pytest.importorskip("model.core.checkpoint")
    torch.set_num_threads(1)
    tracker = tracker_module.Tracker.random(seed=0)
    path = tmp_path_factory.mktemp("weights") / "lite_random.pt"
    checkpoint.save_checkpoint(path, tracker.net, tracker.config)
    return path


def track(*arguments) -> int:
    return main.main(["track", *map(str, arguments)])


@needs_dudek
def test_track_writes_a_project_the_application_opens(weights, tmp_path, capsys):
    out = tmp_path / "result.h5"
    code = track(DUDEK, "--init", first_box(DUDEK), "--weights", weights, "--out", out,
                 "--frames", 3, "--start", 2, "--backend", "eager", "--review-threshold", 0.5)
    assert code == 0
    stderr = capsys.readouterr().err
    assert "3/3 frames" in stderr and "fps" in stderr and str(out) in stderr
    document = load_project(out)
    track_ = document.tracks[1]
    assert document.frame_count == 20 and document.frame_size == (720, 480)
    assert document.weights == {"lite_random": str(weights)} and document.review_threshold == 0.5
    assert track_.origin.tolist() == [0, 0, Origin.MANUAL, Origin.TRACKED, Origin.TRACKED] + [0] * 15
    np.testing.assert_allclose(track_.boxes[2], [float(v) for v in first_box(DUDEK).split(",")])
    tracked = track_.boxes[3:5]
    assert np.isfinite(tracked).all() and (tracked[:, 2:] > 0).all()
    scores = track_.scores[3:5]
    assert ((scores >= 0) & (scores <= 1)).all()
    review = (track_.flags[3:5] & Flag.NEEDS_REVIEW) != 0
    assert review.tolist() == (scores < 0.5).tolist()


@needs_dudek
def test_track_txt_has_one_line_per_frame_and_flags_undecodable_frames(weights, tmp_path, capsys):
    folder = tmp_path / "clip"
    folder.mkdir()
    for index in (1, 2, 4):
        shutil.copy(DUDEK / "img" / f"{index:05d}.jpg", folder / f"{index:05d}.jpg")
    (folder / "00003.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path / "boxes.txt"
    assert track(folder, "--init", first_box(DUDEK), "--weights", weights, "--out", out, "--backend", "eager") == 0
    assert "1 failed to decode" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    assert lines[0] == first_box(DUDEK) and lines[2] == "NaN,NaN,NaN,NaN"
    assert all(np.isfinite([float(v) for v in lines[i].split(",")]).all() for i in (1, 3))

    project = tmp_path / "clip.h5"
    assert track(folder, "--init", first_box(DUDEK), "--weights", weights, "--out", project, "--backend", "eager") == 0
    flags = load_project(project).tracks[1].flags
    assert flags[2] & Flag.DECODE_FAILED and not (flags[[0, 1, 3]] & Flag.DECODE_FAILED).any()


@needs_dudek
@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="the shipped weights are not trained yet")
def test_track_with_shipped_weights_follows_the_target(tmp_path):
    out = tmp_path / "boxes.txt"
    assert track(DUDEK, "--init", first_box(DUDEK), "--out", out, "--frames", 6, "--backend", "eager") == 0
    predicted = np.loadtxt(out, delimiter=",")[:6]
    truth = np.loadtxt(DUDEK / "groundtruth.txt", delimiter=",")[:6]
    assert (rect_iou(predicted, truth) > 0.5).all()


@needs_dudek
@pytest.mark.parametrize("init, expected", [
    ("1,2,3", "expected 4 numbers"),
    ("a,b,c,d", "expected 4 numbers"),
    ("1,2,3,4,5", "expected 4 numbers"),
    ("10,10,0,20", "width and height must be positive"),
    ("10,10,20,-5", "width and height must be positive"),
    ("nan,10,20,20", "finite"),
    ("10,inf,20,20", "finite"),
    ("720,10,20,20", "outside the 720x480 frame 0"),
    ("-30,10,20,20", "outside the 720x480 frame 0"),
])
def test_bad_init_is_one_line_error(tmp_path, capsys, init, expected):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"checked after --init")
    assert track(DUDEK, f"--init={init}", "--weights", weights, "--out", tmp_path / "r.h5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert not (tmp_path / "r.h5").exists()


@needs_dudek
@pytest.mark.parametrize("options, expected", [
    (["--out", "{tmp}/r.csv"], "output must end in"),
    (["--out", "{tmp}/missing/r.h5"], "does not exist"),
    (["--out", "{tmp}/r.h5", "--weights", "{tmp}/nothing.pt"], "no such weights file"),
    (["--out", "{tmp}/r.h5", "--start", "20"], "--start 20 outside its 20 frames"),
    (["--out", "{tmp}/r.h5", "--frames", "0"], "--frames 0: must be at least 1"),
    (["--out", "{tmp}/r.h5", "--review-threshold", "1.5"], "must lie in 0..1"),
    (["--out", "{tmp}/r.h5", "--set", "motion=0.5"], "'motion=0.5' is not SETTING=VALUE"),
    (["--out", "{tmp}/r.h5", "--set", "motion_prediction=fast"], "motion_prediction needs a number"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, options, expected):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"never loaded: the options are refused first")
    options = [o.format(tmp=tmp_path) for o in options]
    if "--weights" not in options:
        options += ["--weights", str(weights)]
    assert track(DUDEK, "--init", "10,10,20,20", *options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_missing_source_and_bad_weights_file_are_one_line_errors(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"this is not a weights file")
    assert track(tmp_path / "nowhere.mp4", "--init", "1,1,5,5", "--weights", weights, "--out", tmp_path / "r.h5") == 2
    assert "nowhere.mp4" in capsys.readouterr().err
    folder = tmp_path / "frames"
    folder.mkdir()
    pytest.importorskip("cv2").imwrite(str(folder / "00001.png"), np.zeros((40, 60, 3), np.uint8))
    assert track(folder, "--init", "1,1,5,5", "--weights", weights, "--out", tmp_path / "r.h5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(weights) in err


@needs_dudek
def test_set_changes_the_tracking_settings_of_the_run(weights, tmp_path, monkeypatch):
    from model.tracking.tracker import Tracker

    used = []
    original = Tracker.init

    def init(self, frame, box):
        used.append(self.config.track)
        return original(self, frame, box)

    monkeypatch.setattr(Tracker, "init", init)
    for settings, expected in ((None, (0.0, 0.0)), ("motion_prediction=0.5&he_rerank=0.25", (0.5, 0.25))):
        extra = ["--set", settings] if settings else []
        assert track(DUDEK, "--init", first_box(DUDEK), "--weights", weights, "--out", tmp_path / "r.h5",
                     "--frames", 2, "--backend", "eager", *extra) == 0
        assert (used[-1].motion_prediction, used[-1].he_rerank) == expected
