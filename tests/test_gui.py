"""The desktop application driven through its real window (pytest-qt, offscreen).

Tracking runs through the real worker thread with small untrained networks (no weights
files), on the Crossing sequence of the development data.
Mouse input goes through the frame view's viewport, as a user's would.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt5 import QtCore, QtGui, QtWidgets  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from hnse_gui.document import Flag, Origin  # noqa: E402
from hnse_gui.edits import DELETE_TRACK  # noqa: E402
from hnse_gui.frame_view import CANDIDATE_COLOURS  # noqa: E402
from hnse_gui.main_window import MainWindow  # noqa: E402
from hnse_gui.worker import VariantSpec  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CROSSING = DATA / "sequences" / "Crossing"
RUN_TIMEOUT_MS = 300_000  # generous: the machine may be shared with training jobs
# Untrained networks, smaller than the shipped ones (an 18x18 score map, narrow heads)
# so that tracking is quick on a CPU; the pipeline through them is the real one.
SMALL = (("instance_size", 191), ("neck_channels", 32), ("head_channels", 32), ("tower_convs", 2),
         ("embed_channels", 32))
VARIANTS = [VariantSpec("with HE", None, he_head=True, seed=0, network=SMALL),
            VariantSpec("without HE", None, he_head=False, seed=1, network=SMALL)]

pytestmark = pytest.mark.skipif(not CROSSING.is_dir(), reason=f"development data missing: {CROSSING}")


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Build windows with untrained variants, autosave off, settings and recovery in tmp_path."""

    windows = []

    def make(autosave_s: int = 0) -> MainWindow:
        settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
        settings.setValue("autosave/interval_s", autosave_s)
        window = MainWindow(VARIANTS, settings, tmp_path / "recovery", torch_threads=1)
        window.files.ask_save_changes = lambda: QtWidgets.QMessageBox.Discard
        window.files.ask_recover = lambda path: False
        window.edits.ask_delete = lambda label, frame, has_box: DELETE_TRACK
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    yield make
    # Delete each window (and its pyqtgraph scene with every item in it) on the C++ side
    # now, in one piece: left to Python's garbage collector, items could go before a
    # scene that still has an update queued, and Qt would call into a destroyed item.
    for window in windows:
        window.files.ask_save_changes = lambda: QtWidgets.QMessageBox.Discard
        window.close()
        window.deleteLater()
    QtWidgets.QApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
    QtWidgets.QApplication.processEvents()


@pytest.fixture
def window(make_window) -> MainWindow:
    window = make_window()
    assert window.open_media(CROSSING)
    return window


# --- input helpers ----------------------------------------------------------------------


def _mouse(widget, kind, pos: QtCore.QPoint, button, buttons) -> None:
    event = QtGui.QMouseEvent(kind, QtCore.QPointF(pos), button, buttons, QtCore.Qt.NoModifier)
    QtWidgets.QApplication.sendEvent(widget, event)


def drag(window: MainWindow, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A left-button drag on the frame view between two points in frame pixels.

    QTest.mouseMove carries no pressed button in Qt 5, so the moves are sent as events,
    spaced like a real mouse's (pyqtgraph drops moves closer than its rate limit).
    """
    view = window.frame_view
    viewport = view.viewport()
    a, b = view.frame_to_widget(*start), view.frame_to_widget(*end)
    left = QtCore.Qt.LeftButton
    _mouse(viewport, QtCore.QEvent.MouseButtonPress, a, left, left)
    for t in np.linspace(0.1, 1.0, 8):
        point = QtCore.QPoint(round(a.x() + (b.x() - a.x()) * t), round(a.y() + (b.y() - a.y()) * t))
        QTest.qWait(15)
        _mouse(viewport, QtCore.QEvent.MouseMove, point, QtCore.Qt.NoButton, left)
    _mouse(viewport, QtCore.QEvent.MouseButtonRelease, b, left, QtCore.Qt.NoButton)
    QtWidgets.QApplication.processEvents()


def track(qtbot, window: MainWindow, direction: int, frames: int, threshold: float = 0.0):
    """Run the tracker from the current frame through the toolbar's settings; returns the RunEnd."""
    window.frames_spin.setValue(frames)
    window.threshold_spin.setValue(threshold)
    action = window.act_track_fwd if direction > 0 else window.act_track_back
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT_MS) as blocker:
        action.trigger()
    return blocker.args[0]


def same_state(a, b) -> bool:
    """FrameState equality with NaN equal to NaN (repr round-trips floats exactly)."""
    return repr(a) == repr(b)


def assert_documents_equal(a, b) -> None:
    assert (a.video_path, a.frame_count, a.frame_size) == (b.video_path, b.frame_count, b.frame_size)
    assert (a.weights, a.primary_variant, a.review_threshold) == (b.weights, b.primary_variant, b.review_threshold)
    assert a.keep_maps == b.keep_maps and sorted(a.maps) == sorted(b.maps)
    for variant, by_frame in a.maps.items():
        assert sorted(by_frame) == sorted(b.maps[variant])
        for frame, maps in by_frame.items():
            assert sorted(maps) == sorted(b.maps[variant][frame])
            for name, values in maps.items():
                np.testing.assert_array_equal(values, b.maps[variant][frame][name])
    assert sorted(a.tracks) == sorted(b.tracks)
    for track_id, ta in a.tracks.items():
        tb = b.tracks[track_id]
        assert (ta.label, tuple(ta.color)) == (tb.label, tuple(tb.color))
        for name in ("boxes", "origin", "flags", "scores"):
            np.testing.assert_array_equal(getattr(ta, name), getattr(tb, name), err_msg=name)
        assert sorted(ta.variant_scores) == sorted(tb.variant_scores)
        for variant in ta.variant_scores:
            np.testing.assert_array_equal(ta.variant_scores[variant], tb.variant_scores[variant])
            np.testing.assert_array_equal(ta.variant_boxes[variant], tb.variant_boxes[variant])


# --- tests ------------------------------------------------------------------------------------


def test_sequence_opens_with_its_first_box_as_a_keyframe(window):
    document = window.document
    assert document.frame_count == 120 and document.frame_size == (360, 240)
    (track,) = document.tracks.values()
    np.testing.assert_allclose(track.boxes[0], [205, 151, 17, 50])
    assert track.origin[0] == Origin.MANUAL and (track.origin[1:] == Origin.NONE).all()
    assert window.frame_index == 0 and window.current_track == track.id
    assert window.frame_view.editable_box() == pytest.approx((205, 151, 17, 50))
    assert not document.dirty


def test_annotate_track_correct_undo_save_reopen(qtbot, window, tmp_path):
    document = window.document
    window.act_new_box.trigger()
    drag(window, (200, 148), (226, 204))
    assert len(document.tracks) == 2
    track_id = window.current_track
    drawn = document.track(track_id).boxes[0]
    np.testing.assert_allclose(drawn, [200, 148, 26, 56], atol=1.5)
    assert document.track(track_id).origin[0] == Origin.MANUAL

    window.act_keep_maps.trigger()  # the project keeps every tracked frame's maps
    end = track(qtbot, window, +1, 20)
    assert (end.reason, end.frames_done) == ("done", 20)
    assert sorted(document.maps["without HE"]) == list(range(1, 21))
    track_ = document.track(track_id)
    assert (track_.origin[1:21] == Origin.TRACKED).all() and (track_.origin[21:] == Origin.NONE).all()
    for variant in ("with HE", "without HE"):
        assert np.isfinite(track_.variant_scores[variant][1:21]).all()
        assert np.isfinite(track_.variant_boxes[variant][1:21]).all()
    np.testing.assert_array_equal(track_.boxes[1:21], track_.variant_boxes["with HE"][1:21])
    assert window.undo_stack.undoText() == f"Track forward: track {track_id}, frames 1–21"
    assert window.frame_index == 20
    # the score plot follows the document, one curve per variant
    plotted = window.score_plot.curve_data("without HE")
    np.testing.assert_array_equal(plotted[1:21], track_.variant_scores["without HE"][1:21])

    # the inspect views show what the tracker returned on this frame
    results = window.current_results()
    grid = window.inspect.grid
    for row, variant in enumerate(grid.variants):
        for column, name in enumerate(("score", "centerness", "hardneg")):
            np.testing.assert_array_equal(grid.shown_map(variant, column), results[variant].maps[name])
    window.act_final.trigger()
    np.testing.assert_array_equal(grid.shown_map("with HE", 0), results["with HE"].maps["final"])
    window.act_levels.trigger()
    for column, name in enumerate(("level2", "level3", "level4")):
        np.testing.assert_array_equal(grid.shown_map("without HE", column), results["without HE"].maps[name])
    candidates = results["with HE"].candidates
    assert len(candidates) > 0
    assert window.frame_view.candidate_colours() == [CANDIDATE_COLOURS[c.label] for c in candidates]
    window.inspect.set_overlay("hardneg")
    overlay = window.frame_view.overlay
    assert overlay.isVisible()
    rect = overlay.mapRectToParent(overlay.boundingRect())
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx(results["with HE"].map_box, abs=1e-3)

    # correct frame 10: drag the box's bottom-right handle; the frame becomes a keyframe
    window.set_frame(10)
    before = document.get_frame_state(track_id, 10)
    x, y, w, h = before.box
    drag(window, (x + w, y + h), (x + w + 9, y + h + 14))
    corrected = document.get_frame_state(track_id, 10)
    assert corrected.origin == Origin.MANUAL
    assert corrected.box[:2] == pytest.approx((x, y), abs=1e-3)
    assert corrected.box[2:] == pytest.approx((w + 9, h + 14), abs=1.5)
    window.act_undo.trigger()
    assert same_state(document.get_frame_state(track_id, 10), before)
    window.act_redo.trigger()
    assert same_state(document.get_frame_state(track_id, 10), corrected)

    # re-tracking from frame 5 keeps the keyframe and restarts from it
    window.set_frame(5)
    end = track(qtbot, window, +1, 7)
    assert end.reason == "done"
    assert same_state(document.get_frame_state(track_id, 10), corrected)
    assert document.track(track_id).origin[11] == Origin.TRACKED
    # the size learning rate is ~score * 0.33, tiny for an untrained net: frame 11 keeps the new size
    assert document.track(track_id).boxes[11][2:] == pytest.approx(corrected.box[2:], abs=1.0)

    # save, reopen in a new window, compare every field
    path = tmp_path / "crossing.h5"
    window.files.ask_save_path = lambda *args: str(path)
    window.act_save.trigger()
    assert path.is_file() and not document.dirty and window.project_path == path
    saved = document
    window.close()
    reopened = MainWindow(VARIANTS, window.settings, tmp_path / "recovery")
    qtbot.addWidget(reopened)
    assert reopened.open_path(path)
    assert_documents_equal(saved, reopened.document)
    assert reopened.project_path == path and not reopened.document.dirty
    assert reopened.act_keep_maps.isChecked()
    # a frame tracked in the earlier session shows its kept maps
    reopened.select_track(track_id)
    reopened.set_frame(20)
    np.testing.assert_array_equal(reopened.inspect.grid.shown_map("with HE", 1),
                                  saved.maps["with HE"][20]["centerness"])


def test_stop_ends_a_run_at_once_and_the_window_stays_responsive(qtbot, window):
    window.frames_spin.setValue(0)  # until stopped
    window.threshold_spin.setValue(0.0)
    window.act_track_fwd.trigger()
    track_ = window.document.track(window.current_track)

    def tracked() -> int:
        return int((track_.origin == Origin.TRACKED).sum())

    # importing torch holds the interpreter lock for seconds, once per session: measure
    # the event loop from the first tracked frame on, while frames are being tracked
    qtbot.waitUntil(lambda: tracked() >= 1, timeout=RUN_TIMEOUT_MS)
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    heartbeat = QtCore.QTimer()
    heartbeat.timeout.connect(tick)
    heartbeat.start(20)
    # a dozen heartbeats while frames keep being tracked, however fast the tracker is
    qtbot.waitUntil(lambda: tracked() >= 4 and len(gaps) > 10, timeout=RUN_TIMEOUT_MS)
    heartbeat.stop()
    with qtbot.waitSignal(window.runFinished, timeout=30_000) as blocker:
        stopped_at = time.perf_counter()
        QTest.keyClick(window, QtCore.Qt.Key_Escape)
    latency = time.perf_counter() - stopped_at
    end = blocker.args[0]
    assert end.reason == "stopped"
    assert 4 <= end.frames_done < 60
    assert latency < 10.0  # the frame in progress, on a busy machine
    assert len(gaps) > 10 and max(gaps) < 1.0  # the GUI thread never waited for the tracker
    assert tracked() == end.frames_done
    window.act_undo.trigger()
    assert tracked() == 0


def test_low_score_stops_the_run_and_flags_the_frame(qtbot, window):
    # an untrained network scores about its prior (0.01): far below this threshold
    end = track(qtbot, window, +1, 30, threshold=0.9)
    assert (end.reason, end.last_frame, end.frames_done) == ("low_score", 1, 1)
    track_ = window.document.track(window.current_track)
    assert track_.origin[1] == Origin.TRACKED and track_.flags[1] & Flag.NEEDS_REVIEW
    assert (track_.origin[2:] == Origin.NONE).all()
    assert "flagged for review" in window.statusBar().currentMessage()
    assert window.frame_index == 1


def test_tracking_backward_from_a_later_keyframe(qtbot, window):
    track_id = window.current_track
    window.set_frame(40)
    window.act_keyframe.trigger()  # copies frame 0's box (the nearest earlier one) to frame 40
    end = track(qtbot, window, -1, 3)
    assert (end.reason, end.last_frame) == ("done", 37)
    origin = window.document.track(track_id).origin
    assert (origin[37:40] == Origin.TRACKED).all() and origin[40] == Origin.MANUAL and origin[36] == Origin.NONE


def test_interpolation_between_keyframes(qtbot, window):
    document, track_id = window.document, window.current_track
    first = document.track(track_id).boxes[0].copy()
    window.set_frame(10)
    window.act_draw_box.trigger()
    drag(window, (230, 150), (250, 210))
    last = document.track(track_id).boxes[10].copy()
    assert document.track(track_id).origin[10] == Origin.MANUAL
    window.set_frame(5)
    window.act_interpolate.trigger()
    track_ = document.track(track_id)
    assert (track_.origin[1:10] == Origin.INTERPOLATED).all() and track_.origin[11] == Origin.NONE
    np.testing.assert_allclose(track_.boxes[5], (first + last) / 2, rtol=1e-6)
    np.testing.assert_allclose(track_.boxes[3], first + (last - first) * 0.3, rtol=1e-5)

    # the timeline draws interpolated frames lighter than the row's background, and a click jumps
    timeline = window.timeline
    image = timeline.grab().toImage()
    y = 6 + 16 // 2
    inside = QtGui.QColor(image.pixel(int(timeline.frame_x(5.5)), y))
    outside = QtGui.QColor(image.pixel(int(timeline.frame_x(60.5)), y))
    assert inside.lightness() > outside.lightness() + 40
    QTest.mouseClick(timeline, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier,
                     QtCore.QPoint(int(timeline.frame_x(60.5)), y))
    assert window.frame_index == 60

    window.act_undo.trigger()
    assert (document.track(track_id).origin[1:10] == Origin.NONE).all()
    window.act_interpolate_all.trigger()  # fills the only empty gap between keyframes: the same frames
    assert (document.track(track_id).origin[1:10] == Origin.INTERPOLATED).all()
    assert (document.track(track_id).origin[11:] == Origin.NONE).all()


def test_flags_shortcuts_and_undo(qtbot, window):
    document, track_id = window.document, window.current_track
    window.activateWindow()
    qtbot.waitActive(window)
    window.set_frame(3)
    QTest.keyClick(window, QtCore.Qt.Key_O)
    QTest.keyClick(window, QtCore.Qt.Key_A)
    assert Flag(int(document.track(track_id).flags[3])) == Flag.OCCLUDED | Flag.ABSENT
    QTest.keyClick(window, QtCore.Qt.Key_O)
    assert Flag(int(document.track(track_id).flags[3])) == Flag.ABSENT
    QTest.keyClick(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert Flag(int(document.track(track_id).flags[3])) == Flag.OCCLUDED | Flag.ABSENT
    QTest.keyClick(window, QtCore.Qt.Key_Right)
    assert window.frame_index == 4
    QTest.keyClick(window, QtCore.Qt.Key_End)
    assert window.frame_index == 119
    QTest.keyClick(window, QtCore.Qt.Key_BracketLeft)  # previous keyframe
    assert window.frame_index == 0
    window.act_next_flag.trigger()
    assert window.frame_index == 3


def test_help_lists_every_shortcut(window):
    table = window.shortcut_table()
    listed = {text: keys for rows in table.values() for text, keys in rows}
    assert listed["Track forward"] == "T" and listed["Stop tracking"] == "Esc"
    assert listed["Play / pause"] == "Space" and listed["Flag occluded"] == "O"
    for menu in window.menus.values():
        for action in menu.actions():
            if action.shortcuts():
                assert action.text().replace("&", "").rstrip("…") in listed
    window.act_help.trigger()
    table_widget = window.help_dialog.findChild(QtWidgets.QTableWidget)
    assert table_widget.rowCount() == len(listed)


def test_new_track_delete_and_undo(window):
    document = window.document
    window.act_new_box.trigger()
    drag(window, (100, 100), (130, 160))
    new_id = window.current_track
    assert len(document.tracks) == 2
    window.act_delete_track.trigger()
    assert new_id not in document.tracks
    window.act_undo.trigger()
    assert new_id in document.tracks and document.track(new_id).origin[0] == Origin.MANUAL
    window.act_undo.trigger()
    assert new_id not in document.tracks
    window.act_redo.trigger()
    assert document.track(new_id).boxes[0] == pytest.approx([100, 100, 30, 60], abs=1.5)


def test_errors_are_reported_and_the_window_stays_usable(window, tmp_path):
    document = window.document
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    assert not window.open_path(bad)
    assert str(bad) in window.last_error and str(bad) in window.statusBar().currentMessage()
    assert not window.open_path(tmp_path / "missing.mp4")
    assert "missing.mp4" in window.last_error
    assert window.document is document
    window.step(1)
    assert window.frame_index == 1


def test_autosave_and_recovery(qtbot, make_window, tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for name in ("00001.jpg", "00002.jpg", "00003.jpg"):
        shutil.copy(CROSSING / "img" / name, folder / name)
    window = make_window(autosave_s=1)
    assert window.open_media(folder)
    assert window.files.autosaver.interval_ms == 1000
    window.act_new_box.trigger()
    drag(window, (50, 60), (90, 120))
    recovery = tmp_path / "clip.recovery.h5"
    qtbot.waitUntil(recovery.is_file, timeout=5000)
    assert window.document.dirty  # an autosave is not a save
    kept = window.document.track(window.current_track).boxes.copy()

    # a second session finds the recovery file and offers it
    second = make_window()
    offered = []
    second.files.ask_recover = lambda path: offered.append(path) or True
    assert second.open_media(folder)
    assert offered == [recovery]
    np.testing.assert_array_equal(second.document.track(1).boxes, kept)
    assert second.document.dirty

    # closing with unsaved changes asks; Cancel keeps the window open
    second.files.ask_save_changes = lambda: QtWidgets.QMessageBox.Cancel
    assert not second.close() and second.isVisible()
    second.files.ask_save_changes = lambda: QtWidgets.QMessageBox.Discard
    assert second.close()
    assert not recovery.exists()  # discarded work leaves no recovery file


def test_drop_a_folder_opens_it(window, tmp_path):
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(DATA / "sequences" / "Dudek20"))])
    event = QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton,
                             QtCore.Qt.NoModifier)
    window.dropEvent(event)
    assert Path(window.document.video_path).name == "Dudek20"


def test_exports_write_the_documented_formats(window, tmp_path):
    text, csv = tmp_path / "boxes.txt", tmp_path / "boxes.csv"
    answers = iter([str(text), str(csv)])
    window.files.ask_save_path = lambda *args: next(answers)
    window.act_export_txt.trigger()
    window.act_export_mot.trigger()
    lines = text.read_text().splitlines()
    assert len(lines) == 120 and lines[0] == "205,151,17,50" and set(lines[1:]) == {"NaN,NaN,NaN,NaN"}
    assert csv.read_text().splitlines() == ["1,1,205,151,17,50,1,1,1"]  # MOT17 ground-truth layout


def test_a_video_file_opens_and_decodes_by_index(window, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (360, 240))
    frames = [cv2.imread(str(CROSSING / "img" / f"{i:05d}.jpg")) for i in range(1, 9)]
    for frame in frames:
        writer.write(frame)
    writer.release()
    assert window.open_media(video)
    assert window.document.frame_count == 8 and not window.document.tracks
    window.set_frame(6)
    shown = window.frame_view.image.image  # RGB
    difference = np.abs(shown.astype(int) - frames[6][..., ::-1].astype(int)).mean()
    assert difference < 10  # the same picture, through one more JPEG round
    assert np.abs(shown.astype(int) - frames[0][..., ::-1].astype(int)).mean() > difference


def test_play_zoom_and_jump(qtbot, window):
    window.act_play.trigger()
    qtbot.waitUntil(lambda: window.frame_index >= 3, timeout=20_000)
    window.act_play.trigger()
    stopped_at = window.frame_index
    qtbot.wait(300)
    assert window.frame_index == stopped_at
    assert window.slider.value() == stopped_at
    width = window.frame_view.view.viewRange()[0][1] - window.frame_view.view.viewRange()[0][0]
    window.act_zoom_in.trigger()
    zoomed = window.frame_view.view.viewRange()[0][1] - window.frame_view.view.viewRange()[0][0]
    assert zoomed == pytest.approx(width / 1.25, rel=0.02)
    window.act_fit.trigger()
    window.slider.setValue(77)
    assert window.frame_index == 77


def test_an_undecodable_frame_ends_the_run_flagged(qtbot, make_window, tmp_path):
    folder = tmp_path / "damaged"
    folder.mkdir()
    for index in range(1, 6):
        shutil.copy(CROSSING / "img" / f"{index:05d}.jpg", folder / f"{index:05d}.jpg")
    (folder / "00003.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    window = make_window()
    assert window.open_media(folder)
    window.act_new_box.trigger()
    drag(window, (200, 148), (226, 204))
    end = track(qtbot, window, +1, 10)
    assert (end.reason, end.last_frame, end.frames_done) == ("decode_failed", 2, 1)
    track_ = window.document.track(window.current_track)
    assert track_.flags[2] & Flag.DECODE_FAILED and track_.origin[1] == Origin.TRACKED
    assert "00003.jpg" in window.last_error
    window.set_frame(2)  # the view shows a blank frame and says why, and the window goes on
    assert "00003.jpg" in window.statusBar().currentMessage()
    window.set_frame(4)
    assert window.frame_view.image.image.mean() > 10


SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights"


@pytest.mark.skipif(not list(SHIPPED_WEIGHTS.glob("*.pt")), reason="no shipped weights yet")
def test_shipped_weights_load_and_track(qtbot, tmp_path):
    from hnse_gui.app import default_variants

    variants = default_variants(SHIPPED_WEIGHTS)
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    settings.setValue("autosave/interval_s", 0)
    window = MainWindow(variants, settings, tmp_path / "recovery", torch_threads=1)
    window.files.ask_save_changes = lambda: QtWidgets.QMessageBox.Discard
    qtbot.addWidget(window)
    window.show()
    assert window.open_media(CROSSING)
    end = track(qtbot, window, +1, 2)
    assert end.reason == "done"
    for spec in variants:
        if Path(spec.weights).is_file():
            assert Path(spec.weights).name in window.runs.model_label.text()
            assert window.document.weights[spec.name] == spec.weights


@pytest.mark.parametrize("width", [1440, 1366])
def test_the_toolbar_shows_all_its_fields_on_a_laptop_screen(window, qtbot, width):
    """The run length, the stop score and the tracker choice stay on the toolbar (not in
    its overflow menu) at the window's default width and on a 1366-pixel laptop screen."""
    window.resize(width, 800)
    QtWidgets.QApplication.processEvents()
    toolbar = window.findChild(QtWidgets.QToolBar, "main-toolbar")
    for field in (window.frames_spin, window.threshold_spin, window.runs.tracker_choice):
        assert field.isVisible(), f"{field.currentText() if hasattr(field, 'currentText') else field.text()} overflows"
        assert field.geometry().right() <= toolbar.width()
    choice = window.runs.tracker_choice
    longest = max((choice.itemText(i) for i in range(choice.count())), key=choice.fontMetrics().horizontalAdvance)
    option = QtWidgets.QStyleOptionComboBox()
    choice.initStyleOption(option)
    field = choice.style().subControlRect(QtWidgets.QStyle.CC_ComboBox, option,
                                          QtWidgets.QStyle.SC_ComboBoxEditField, choice)
    assert choice.fontMetrics().horizontalAdvance(longest) <= field.width(), f"{longest!r} is cut in the closed box"
    choice.showPopup()
    try:
        assert choice.view().width() >= choice.fontMetrics().horizontalAdvance(longest)
    finally:
        choice.hidePopup()
