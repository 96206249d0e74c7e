"""Long runs lose nothing to odd frames: frames that change size or colour mode mid-sequence,
and a frame of a video that fails to decode. The tracker and ``main.py track`` keep going
(the broken frame flagged and skipped); ``main.py eval`` counts the broken frame and goes on."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import main
from hnse_gui.document import Flag
from hnse_gui.store import load_project
from model.tracking.tracker import Tracker
from test_checkpoint import net, weights_file  # noqa: F401  (fixtures: a small network and its weights file)
from test_evaluate import moving_square_sequence
from test_sources import N_FRAMES, avi_frame_chunks, write_video
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"
SAMPLE_BOX = (205.0, 151.0, 17.0, 50.0)  # the sample's first ground-truth box, on its 360x240 frames


def sample_frame(index: int) -> np.ndarray:
    return cv2.imread(str(SAMPLE / "img" / f"{index + 1:05d}.jpg"))


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def resized(frame: np.ndarray, scale: float) -> np.ndarray:
    return cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def assert_box_inside(box, frame_shape, where: str) -> None:
    height, width = frame_shape[:2]
    x, y, w, h = box
    assert np.isfinite(box).all() and w > 0 and h > 0, where
    assert x >= -1e-3 and y >= -1e-3 and x + w <= width + 1e-3 and y + h <= height + 1e-3, (where, box, width, height)


def test_tracker_follows_frames_of_changing_size_and_colour_mode(weights_file):  # noqa: F811
    tracker = Tracker.from_checkpoint(weights_file, backend="eager")
    tracker.init(sample_frame(0), SAMPLE_BOX)
    frames = {
        "greyscale (H, W)": grey(sample_frame(1)),
        "larger": resized(sample_frame(2), 1.5),
        "BGRA": cv2.cvtColor(sample_frame(3), cv2.COLOR_BGR2BGRA),
        "smaller greyscale": grey(resized(sample_frame(4), 0.5)),
        "taller than wide": cv2.resize(sample_frame(5), (120, 300)),
        "back to the first size": sample_frame(6),
    }
    for name, frame in frames.items():
        result = tracker.track(frame)
        assert_box_inside(result.box, frame.shape, name)
        assert 0.0 <= result.score <= 1.0 and result.maps["score"].ndim == 2, name


def write_mixed_folder(folder: Path) -> list[tuple[int, int]]:
    """Six frames of the sample in different sizes, colour modes and formats; their (H, W)."""
    folder.mkdir()
    frames = {
        "00001.png": sample_frame(0),
        "00002.png": grey(sample_frame(1)),
        "00003.jpg": resized(sample_frame(2), 1.25),
        "00004.png": cv2.cvtColor(sample_frame(3), cv2.COLOR_BGR2BGRA),
        "00005.png": (grey(resized(sample_frame(4), 0.5)).astype(np.uint16) * 257),  # 16-bit greyscale
        "00006.bmp": sample_frame(5),
    }
    for name, frame in frames.items():
        assert cv2.imwrite(str(folder / name), frame)
    return [frame.shape[:2] for frame in frames.values()]


def track(*arguments) -> int:
    return main.main(["track", *map(str, arguments)])


def test_track_cli_keeps_going_through_frames_of_changing_size_and_colour_mode(weights_file, tmp_path,  # noqa: F811
                                                                              capsys):
    shapes = write_mixed_folder(tmp_path / "mixed")
    init = ",".join(f"{v:g}" for v in SAMPLE_BOX)
    out = tmp_path / "boxes.txt"
    assert track(tmp_path / "mixed", "--init", init, "--weights", weights_file, "--out", out, "--backend", "eager") == 0
    err = capsys.readouterr().err
    assert "tracked 6 frames (" in err and "0 failed to decode" in err
    boxes = np.loadtxt(out, delimiter=",")
    assert boxes.shape == (6, 4)
    np.testing.assert_allclose(boxes[0], SAMPLE_BOX)
    for index, (box, shape) in enumerate(zip(boxes, shapes)):
        assert_box_inside(box, shape, f"frame {index}")

    project = tmp_path / "mixed.h5"
    assert track(tmp_path / "mixed", "--init", init, "--weights", weights_file, "--out", project,
                 "--backend", "eager") == 0
    assert "0 failed to decode" in capsys.readouterr().err
    document = load_project(project)
    assert document.frame_size == (360, 240)  # the first frame's
    assert not (document.tracks[1].flags & Flag.DECODE_FAILED).any()


@pytest.fixture
def video_with_broken_frame(tmp_path) -> Path:
    """test_sources' 12-frame MJPG clip (a red square moving right) with frame 5's data zeroed."""
    data = bytearray(write_video(tmp_path / "clip.avi", "MJPG").read_bytes())
    offset, size = avi_frame_chunks(bytes(data))[5]
    data[offset:offset + size] = bytes(size)
    broken = tmp_path / "broken.avi"
    broken.write_bytes(bytes(data))
    return broken


def test_track_cli_flags_and_skips_a_video_frame_that_fails_to_decode(weights_file, video_with_broken_frame,  # noqa: F811
                                                                      tmp_path, capsys):
    out = tmp_path / "boxes.txt"
    square = "2,10,11,21"  # the red square of test_sources.synthetic_frame(0)
    assert track(video_with_broken_frame, "--init", square, "--weights", weights_file, "--out", out,
                 "--backend", "eager") == 0
    assert f"tracked {N_FRAMES} frames" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert len(lines) == N_FRAMES and lines[5] == "NaN,NaN,NaN,NaN"
    for index in set(range(N_FRAMES)) - {5}:
        assert_box_inside([float(v) for v in lines[index].split(",")], (48, 64), f"frame {index}")

    project = tmp_path / "broken.h5"
    assert track(video_with_broken_frame, "--init", square, "--weights", weights_file, "--out", project,
                 "--backend", "eager") == 0
    assert "1 failed to decode" in capsys.readouterr().err
    flags = load_project(project).tracks[1].flags
    assert [int(i) for i in np.flatnonzero(flags & Flag.DECODE_FAILED)] == [5]


def test_eval_cli_counts_a_frame_that_fails_to_decode_and_goes_on(tmp_path, capsys):
    moving_square_sequence(tmp_path / "square")
    (tmp_path / "square" / "img" / "00006.jpg").write_bytes(b"\xff\xd8 broken")
    out = tmp_path / "scores.json"
    assert main.main(["eval", "--dataset", str(tmp_path / "square"), "--tracker", "opencv:KCF",
                      "--json", str(out)]) == 0
    scores = json.loads(out.read_text())["trackers"]["opencv:KCF"]["sequences"]["square"]
    assert scores["failed_frame_indices"] == [5] and scores["failed_frames"] == 1
    assert scores["frames"] == 11 and scores["success_auc"] > 0.5  # the frames after the broken one were tracked
    assert "square" in capsys.readouterr().out
