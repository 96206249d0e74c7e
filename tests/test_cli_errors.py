"""Every subcommand turns a bad input into one line on stderr, naming the file (and line or
frame where it applies), and exit code 2; ``--debug`` lets the error through (a traceback).

The subcommands run in-process through :func:`main.main` on damaged videos, image folders,
ground-truth files, boxes, project files, YAML configs and weights files; the library
tests build the same damaged files (their builders are imported here) and check the
readers, these check what a user sees. The video cases also run as real processes,
where OpenCV and FFmpeg could add lines of their own on the same stderr.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import main
from model.core.checkpoint import save_checkpoint
from model.core.errors import HNSEError
from test_checkpoint import CONFIG, _exploits, net  # noqa: F401  (fixture: a small network)
from test_evaluate import moving_square_sequence
from test_sequences import make_plain, write_frames
from test_sources import write_video
from test_store import CORRUPTIONS, _rewrite, project  # noqa: F401  (fixture: a valid project file)

REPO = Path(__file__).resolve().parents[1]
NATIVE_LOG_VARIABLES = ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")
TINY_INIT = "2,2,5,5"  # inside the 16x12 frames of test_sequences.write_frames


@pytest.fixture(autouse=True)
def native_log_variables_restored(monkeypatch):
    """main() quiets OpenCV and FFmpeg through environment variables: undo that after each test."""
    for name in NATIVE_LOG_VARIABLES:
        monkeypatch.setenv(name, "")  # records the state before the test, restored after it
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def no_window(monkeypatch):
    """No bad input may get as far as the application's window (whose event loop would
    wait for a user): fail at once instead."""
    monkeypatch.setattr("hnse_gui.app.main", lambda *args, **kwargs: pytest.fail("the window opened"))


def run_cli(capsys, argv: list) -> tuple[int, str]:
    """Run ``main.py ARGV`` in-process; (exit code, stderr)."""
    code = main.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(capsys, argv: list, *names: str) -> str:
    """``argv`` exits with 2 and one ``error: ...`` line holding every one of ``names``;
    with ``--debug`` the project's error propagates instead (Python prints its traceback)."""
    code, err = run_cli(capsys, argv)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, (name, err)
    with pytest.raises(HNSEError) as raised:
        main.main(["--debug", *map(str, argv)])
    assert all(name in str(raised.value) for name in names)
    return err


# ---------------------------------------------------------------- frame sources


def not_a_video(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("hello, I am text")
    return path


def truncated_video(folder: Path) -> Path:
    data = write_video(folder / "whole.avi", "MJPG").read_bytes()
    path = folder / "truncated.avi"
    path.write_bytes(data[:200])  # the header of a whole file, cut inside the stream list
    return path


def video_with_zero_frames(folder: Path) -> Path:
    return write_video(folder / "empty.avi", "MJPG", count=0)


def empty_folder(folder: Path) -> Path:
    (folder / "frames").mkdir()
    return folder / "frames"


def folder_without_images(folder: Path) -> Path:
    (folder / "frames").mkdir()
    (folder / "frames" / "notes.txt").write_text("no frames here")
    return folder / "frames"


def folder_of_undecodable_images(folder: Path) -> Path:
    (folder / "frames").mkdir()
    for index in range(3):
        (folder / "frames" / f"{index:05d}.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    return folder / "frames"


def image_claiming_a_huge_size(folder: Path) -> Path:
    """A BMP whose header says it is 2**21 pixels wide: OpenCV raises on it rather than
    returning nothing, as it does for other undecodable images."""
    (folder / "frames").mkdir()
    data = bytearray(cv2.imencode(".bmp", np.zeros((24, 32, 3), np.uint8))[1].tobytes())
    data[18:22] = (1 << 21).to_bytes(4, "little")  # BITMAPINFOHEADER width
    (folder / "frames" / "00001.bmp").write_bytes(bytes(data))
    return folder / "frames"


# name -> (builder, text the message holds besides the path)
FRAME_SOURCES = {
    "not a video": (not_a_video, "not a video"),
    "truncated video": (truncated_video, ""),
    "video with zero frames": (video_with_zero_frames, "no decodable frames"),
    "missing video": (lambda folder: folder / "absent.mp4", ""),
    "empty image folder": (empty_folder, "no image files"),
    "folder without images": (folder_without_images, "no image files"),
    "undecodable images": (folder_of_undecodable_images, "00000.jpg: not a readable image, frame 0"),
    "image claiming a huge size": (image_claiming_a_huge_size, "00001.bmp: not a readable image, frame 0"),
}


@pytest.mark.parametrize("case", FRAME_SOURCES)
def test_track_refuses_a_bad_frame_source(tmp_path, capsys, case):
    build, detail = FRAME_SOURCES[case]
    source = build(tmp_path)
    weights = tmp_path / "never_read.pt"
    weights.write_bytes(b"the source is refused before the weights are read")
    assert_one_line_error(capsys, ["track", source, "--init", TINY_INIT, "--weights", weights,
                                   "--out", tmp_path / "out.h5"], str(source), detail)
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("case", FRAME_SOURCES)
def test_gui_refuses_a_bad_frame_source_before_any_window(tmp_path, capsys, case):
    build, detail = FRAME_SOURCES[case]
    source = build(tmp_path)
    assert_one_line_error(capsys, ["gui", source], str(source), detail)


def test_native_libraries_add_nothing_to_the_one_line(tmp_path):
    """Real processes, so that OpenCV's and FFmpeg's own stderr is seen, started without
    the variables that quiet them: main.py sets those itself (``--debug`` does not)."""
    env = {k: v for k, v in os.environ.items() if k not in NATIVE_LOG_VARIABLES}
    env["QT_QPA_PLATFORM"] = "offscreen"
    weights = tmp_path / "never_read.pt"
    weights.write_bytes(b"unused")
    runs = {}
    for name in ("not a video", "truncated video", "video with zero frames"):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        source = FRAME_SOURCES[name][0](folder)
        runs[name] = (source, ["track", source, "--init", TINY_INIT, "--weights", weights,
                               "--out", folder / "out.txt"])
    runs["--debug"] = (runs["not a video"][0], ["--debug", *runs["not a video"][1]])
    processes = {name: subprocess.Popen([sys.executable, str(REPO / "main.py"), *map(str, argv)], cwd=REPO,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, (_, argv) in runs.items()}  # started together: each spends seconds importing
    for name, process in processes.items():
        out, err = process.communicate(timeout=300)
        source = runs[name][0]
        if name == "--debug":
            assert process.returncode == 1 and "Traceback (most recent call last)" in err
            assert str(source) in err.rstrip().splitlines()[-1]
        else:
            assert (process.returncode, out) == (2, ""), (name, err)
            assert err.count("\n") == 1 and err.startswith(f"error: {source}: "), (name, err)


# ---------------------------------------------------------------- ground truth


# name -> (groundtruth.txt content, frame count, text the message holds)
GROUND_TRUTH = {
    "unparsable line": ("10,20,30,40\n10,twenty,30,40\n", 2, "line 2: cannot parse 'twenty'"),
    "too few columns": ("10,20,30,40\n10,20,30\n", 2, "line 2: expected 4 values"),
    "too many columns": ("10,20,30,40,50\n", 1, "line 1: expected 4 values"),
    "fewer boxes than frames": ("10,20,30,40\n", 3, "1 boxes for 3 frames"),
    "more boxes than frames": ("10,20,30,40\n" * 4, 2, "4 boxes for 2 frames"),
    "zero width": ("10,20,0,40\n", 1, "line 1: box has zero or negative size"),
    "negative height": ("10,20,30,40\n10,20,30,-4\n", 2, "line 2: box has zero or negative size"),
    "infinite value": ("10,20,30,inf\n", 1, "line 1: infinite value"),
    "not text": (b"10,20,30,40\n\xff\xfe\x00\n", 2, "not a text file"),
}


def broken_sequence(folder: Path, case: str) -> Path:
    text, count, _ = GROUND_TRUTH[case]
    sequence = make_plain(folder / "seq", "", count=count)
    truth = sequence / "groundtruth.txt"
    truth.write_bytes(text) if isinstance(text, bytes) else truth.write_text(text)
    return sequence


def commands_reading_a_dataset(sequence: Path, tmp_path: Path) -> dict[str, list]:
    weights = tmp_path / "never_read.pt"
    weights.write_bytes(b"the dataset is read first")
    return {
        "eval": ["eval", "--dataset", sequence, "--tracker", "opencv:KCF"],
        "tune": ["tune", weights, "--dataset", sequence],
        "bench": ["bench", "--quick", "--no-record", "--data", sequence],
        "gui": ["gui", sequence],
    }


@pytest.mark.parametrize("command", ["eval", "tune", "bench", "gui"])
@pytest.mark.parametrize("case", GROUND_TRUTH)
def test_bad_ground_truth_names_file_and_line(tmp_path, capsys, case, command):
    sequence = broken_sequence(tmp_path, case)
    argv = commands_reading_a_dataset(sequence, tmp_path)[command]
    assert_one_line_error(capsys, argv, str(sequence / "groundtruth.txt"), GROUND_TRUTH[case][2])


# ---------------------------------------------------------------- track --init boxes


@pytest.mark.parametrize("init, detail", [
    ("2,2,0,5", "width and height must be positive"),
    ("2,2,5,-1", "width and height must be positive"),
    ("nan,2,5,5", "finite"),
    ("2,2,inf,5", "finite"),
    ("2,2,5", "expected 4 numbers"),
    ("16,2,5,5", "lies outside the 16x12 frame 0"),
    ("-6,2,5,5", "lies outside the 16x12 frame 0"),
    ("2,-20,5,5", "lies outside the 16x12 frame 0"),
    ("0,0,17,5", "is larger than the 16x12 frame 0"),
    ("-100,-100,1000,1000", "is larger than the 16x12 frame 0"),
    ("2,2,5,1e30", "is larger than the 16x12 frame 0"),
])
def test_track_refuses_bad_init_boxes(tmp_path, capsys, init, detail):
    write_frames(tmp_path / "frames", 3)
    weights = tmp_path / "never_read.pt"
    weights.write_bytes(b"the box is refused before the weights are read")
    argv = ["track", tmp_path / "frames", f"--init={init}", "--weights", weights, "--out", tmp_path / "out.txt"]
    source = str(tmp_path / "frames") if "frame 0" in detail else f"--init {init!r}"
    assert_one_line_error(capsys, argv, source, detail)


# ---------------------------------------------------------------- project files


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_gui_refuses_a_damaged_project(project, capsys, case):  # noqa: F811
    edit, detail = CORRUPTIONS[case]
    _rewrite(project, edit)
    assert_one_line_error(capsys, ["gui", project], str(project), detail)


@pytest.mark.parametrize("cut", [0.0, 0.3, 0.9])
def test_gui_refuses_a_truncated_project(project, capsys, cut):  # noqa: F811
    data = project.read_bytes()
    project.write_bytes(data[: int(cut * len(data))])
    assert_one_line_error(capsys, ["gui", project], str(project))


def test_gui_refuses_a_project_that_is_not_hdf5(tmp_path, capsys):
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    assert_one_line_error(capsys, ["gui", path], str(path), "not a readable HDF5 file")


# ---------------------------------------------------------------- YAML configs


CONFIGS = {
    "unknown key": ("train:\n  epoks: 3\n", "epoks"),
    "unknown section": ("networks:\n  backbone: resnet50\n", "networks"),
    "number and text keys": ("1: 2\nfoo: 3\n", "unknown key(s) 1, foo"),
    "text for a number": ("train:\n  epochs: ten\n", "train.epochs"),
    "float for an integer": ("train:\n  epochs: 2.5\n", "train.epochs"),
    "number for a flag": ("network:\n  pretrained: 1\n", "network.pretrained"),
    "list for a number": ("track:\n  penalty_k: [0.1]\n", "track.penalty_k"),
    "section not a mapping": ("network: 3\n", "network"),
    "document not a mapping": ("[1, 2]\n", "expected a mapping"),
    "impossible sizes": ("network:\n  exemplar_size: 300\n", "exemplar_size < instance_size"),
    "invalid YAML": ("train:\n  epochs: 3\n  base_lr: [1, 2\n", "not valid YAML"),
    "nested too deeply": ("[" * 1000, "nested too deeply"),
    "not UTF-8": (b"train:\n  epochs: \xff\xfe\n", "not a text file"),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_train_refuses_a_bad_config(tmp_path, capsys, case):
    text, detail = CONFIGS[case]
    path = tmp_path / "config.yaml"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    assert_one_line_error(capsys, ["train", path, "--out", tmp_path / "run"], str(path), detail)
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_missing_config_and_a_folder(tmp_path, capsys):
    assert_one_line_error(capsys, ["train", tmp_path / "absent.yaml"], "absent.yaml", "cannot read config")
    assert_one_line_error(capsys, ["train", tmp_path], str(tmp_path), "cannot read config")


# ---------------------------------------------------------------- weights files


@pytest.fixture(scope="module")
def bad_weights(net, tmp_path_factory) -> dict[str, tuple[Path, str]]:  # noqa: F811
    """name -> (weights file, text the message holds); the code-running files would
    create ``marker`` if anything unpickled them."""
    folder = tmp_path_factory.mktemp("bad_weights")
    valid = folder / "valid.pt"
    save_checkpoint(valid, net, CONFIG)
    files = {}

    def add(name: str, detail: str) -> Path:
        path = folder / f"{name.replace(' ', '_')}.pt"
        files[name] = (path, detail)
        return path

    data = valid.read_bytes()
    add("truncated", "not a readable HNSE weights file").write_bytes(data[: len(data) // 2])
    add("text", "not a readable HNSE weights file").write_text("these are not weights\n")
    torch.save(net.state_dict(), add("plain state dict", "not an HNSE weights file"))
    save_checkpoint(add("another architecture", "do not match"), net,
                    replace(CONFIG, network=replace(CONFIG.network, he_head=False)))
    save_checkpoint(add("other layer sizes", "do not match"), net,
                    replace(CONFIG, network=replace(CONFIG.network, embed_channels=32)))
    marker = folder / "marker"
    payload = torch.load(valid, weights_only=True)
    for how, exploit in _exploits(marker).items():
        torch.save(exploit, add(f"runs code ({how})", "holds code"))
        torch.save({**payload, "meta": {"note": exploit}}, add(f"valid file running code ({how})", "holds code"))
    files["missing"] = (folder / "absent.pt", "")
    return files


@pytest.mark.parametrize("command", ["track", "eval", "tune"])
@pytest.mark.parametrize("case", ["truncated", "text", "plain state dict", "another architecture",
                                  "other layer sizes", "runs code (system)", "runs code (open)",
                                  "valid file running code (system)", "valid file running code (open)", "missing"])
def test_bad_weights_are_refused_without_running_their_code(tmp_path, capsys, bad_weights, case, command):
    weights, detail = bad_weights[case]
    write_frames(tmp_path / "frames", 3)
    sequence = make_plain(tmp_path / "seq")
    argv = {
        "track": ["track", tmp_path / "frames", "--init", TINY_INIT, "--weights", weights, "--out", tmp_path / "o.h5"],
        "eval": ["eval", "--dataset", sequence, "--tracker", f"hnse:{weights}"],
        "tune": ["tune", weights, "--dataset", sequence, "--max-frames", 2],
    }[command]
    assert_one_line_error(capsys, argv, str(weights), detail)
    assert not (weights.parent / "marker").exists()
    assert not (tmp_path / "o.h5").exists()


# ---------------------------------------------------------------- output paths


@pytest.mark.parametrize("option", ["--json", "--plots"])
def test_an_output_path_that_cannot_be_written_fails_before_the_run(tmp_path, capsys, option):
    """eval makes the folders of its outputs before evaluating: under a file that fails (an
    OSError), with one line and no progress lines before it."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    moving_square_sequence(tmp_path / "square", count=4)
    argv = ["eval", "--dataset", tmp_path / "square", "--tracker", "opencv:KCF", option, blocker / "out"]
    code, err = run_cli(capsys, argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and str(blocker) in err
    with pytest.raises(OSError):
        main.main(["--debug", *map(str, argv)])
