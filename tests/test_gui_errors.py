"""The window with bad input: every file it cannot open is reported in a dialog and the
status bar, and the window goes on working; closing with unsaved changes asks first.

The window's own dialogs run, through a QMessageBox that records what it would show and
answers questions from a script instead of waiting for a user (pytest-qt, offscreen).
The window uses the bundled sample clip, so these tests need no shared data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt5 import QtCore, QtWidgets  # noqa: E402

from hnse_gui.app import SAMPLE  # noqa: E402
from hnse_gui.document import Flag  # noqa: E402
from hnse_gui.main_window import MainWindow  # noqa: E402
from hnse_gui.store import load_project, save_project  # noqa: E402
from test_gui import VARIANTS  # noqa: E402  (small untrained variants)
from test_sequences import make_plain  # noqa: E402
from test_sources import write_video  # noqa: E402
from test_store import CORRUPTIONS, _rewrite, make_document  # noqa: E402


@pytest.fixture
def dialogs(monkeypatch):
    """Replace QMessageBox: dialogs are recorded in ``shown`` (their text), ``question``
    returns the next of ``answers`` (Cancel when none is left)."""

    class RecordingMessageBox(QtWidgets.QMessageBox):
        shown: list[str] = []
        answers: list[int] = []

        def open(self):
            self.shown.append(self.text())

        def exec_(self):
            self.shown.append(self.text())
            return QtWidgets.QMessageBox.Ok

        @staticmethod
        def question(parent, title, text, *buttons):
            RecordingMessageBox.shown.append(text)
            answers = RecordingMessageBox.answers
            return answers.pop(0) if answers else QtWidgets.QMessageBox.Cancel

    monkeypatch.setattr(QtWidgets, "QMessageBox", RecordingMessageBox)
    return RecordingMessageBox


@pytest.fixture
def window(qtbot, tmp_path, dialogs) -> MainWindow:
    """The window on the sample clip, with its own questions (no answers patched in)."""
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    settings.setValue("autosave/interval_s", 0)
    window = MainWindow(VARIANTS, settings, tmp_path / "recovery", torch_threads=1)
    qtbot.addWidget(window)
    window.show()
    assert window.open_media(SAMPLE)
    yield window
    if window.isVisible():  # whatever a test left unsaved is thrown away at teardown
        dialogs.answers[:] = [QtWidgets.QMessageBox.Discard]
        window.close()


def bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path the window is asked to open, text its error names)."""
    cases = {}
    notes = folder / "notes.mp4"
    notes.write_text("hello, I am text")
    cases["not a video"] = (notes, str(notes))
    whole = write_video(folder / "whole.avi", "MJPG").read_bytes()
    (folder / "truncated.avi").write_bytes(whole[:200])
    cases["truncated video"] = (folder / "truncated.avi", "truncated.avi")
    cases["video with zero frames"] = (write_video(folder / "empty.avi", "MJPG", count=0), "empty.avi")
    (folder / "empty_folder").mkdir()
    cases["empty image folder"] = (folder / "empty_folder", "empty_folder")
    sequence = make_plain(folder / "bad_truth", "10,20,30,40\n10,twenty,30,40\n", count=2)
    cases["unparsable ground truth"] = (sequence, "groundtruth.txt line 2")
    for name in ("other schema version", "missing dataset", "wrong shape", "wrong dtype", "bad origin"):
        path = folder / f"{name.replace(' ', '_')}.h5"
        save_project(make_document(), path)
        _rewrite(path, CORRUPTIONS[name][0])
        cases[f"project: {name}"] = (path, CORRUPTIONS[name][1])
    truncated = folder / "truncated.h5"
    save_project(make_document(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    cases["project: truncated"] = (truncated, str(truncated))
    missing_video = folder / "missing_video.h5"
    save_project(make_document(), missing_video)  # its video, videos/clip.mp4, does not exist
    cases["project: its video is missing"] = (missing_video, "clip.mp4")
    other_length = make_document(frame_count=40)
    other_length.video_path = str(SAMPLE)  # 120 frames
    save_project(other_length, folder / "other_length.h5")
    cases["project: another frame count than its video"] = (folder / "other_length.h5", "40 frames")
    return cases


def test_bad_files_are_reported_and_the_window_stays_usable(window, dialogs, tmp_path):
    document = window.document
    for name, (path, detail) in bad_inputs(tmp_path).items():
        dialogs.shown.clear()
        assert not window.open_path(path), name
        assert len(dialogs.shown) == 1 and detail in dialogs.shown[0], (name, dialogs.shown)
        assert detail in window.statusBar().currentMessage(), name
        assert window.document is document, name  # the open work is untouched
        window.set_frame(5)
        window.step(1)
        assert window.frame_index == 6 and window.frame_view.image.image.mean() > 10, name
    # and it still opens good input afterwards
    assert window.open_media(SAMPLE) and window.document is not document
    assert window.document.frame_count == 120 and len(window.document.tracks) == 1


def test_closing_with_unsaved_changes_asks_first(window, dialogs, tmp_path, monkeypatch):
    window.toggle_flag(Flag.OCCLUDED)
    assert window.document.dirty

    dialogs.answers[:] = [QtWidgets.QMessageBox.Cancel]
    assert not window.close() and window.isVisible()
    assert dialogs.shown[-1].startswith("The annotations have unsaved changes")
    assert window.document.dirty

    saved = tmp_path / "kept.h5"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *args: (str(saved), ""))
    dialogs.answers[:] = [QtWidgets.QMessageBox.Save]
    assert window.close() and not window.isVisible()
    flags = load_project(saved).tracks[1].flags
    assert np.flatnonzero(flags & Flag.OCCLUDED).tolist() == [0]


def test_discarding_unsaved_changes_closes_without_writing(window, dialogs, tmp_path):
    window.toggle_flag(Flag.OCCLUDED)
    dialogs.answers[:] = [QtWidgets.QMessageBox.Discard]
    assert window.close() and not window.isVisible()
    assert dialogs.shown == ["The annotations have unsaved changes. Save them?"]
    assert not list(tmp_path.glob("*.h5"))


def test_without_a_display_the_application_says_how_to_run_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "main.py", "--settings", str(tmp_path / "settings.ini")], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: no display") and "xvfb-run -a" in line and "offscreen" in line
