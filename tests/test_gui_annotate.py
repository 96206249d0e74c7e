"""Annotation in the real window (pytest-qt, offscreen): renaming tracks, absent and
deleted boxes, keyboard focus, the score plot's range, undo texts, imports and exports."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
from PyQt5 import QtCore, QtWidgets  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from hnse_gui.document import Flag, Origin  # noqa: E402
from hnse_gui.edits import DELETE_BOX, DELETE_TRACK  # noqa: E402
from hnse_gui.track_list import LABEL_COLUMN  # noqa: E402
from tests.test_gui import CROSSING, DATA, drag, make_window, window  # noqa: E402,F401 (fixtures)

pytestmark = pytest.mark.skipif(not CROSSING.is_dir(), reason=f"development data missing: {CROSSING}")


def label_editor(qtbot, window) -> QtWidgets.QLineEdit:
    """The line edit editing a label in the Tracks list, once it has the focus."""
    qtbot.waitUntil(lambda: isinstance(QtWidgets.QApplication.focusWidget(), QtWidgets.QLineEdit), timeout=2000)
    editor = QtWidgets.QApplication.focusWidget()
    assert window.views.track_list.list.isAncestorOf(editor)
    return editor


def double_click(widget: QtWidgets.QWidget, pos: QtCore.QPoint) -> None:
    """A user's double-click: press and release, then the double-click (QTest sends only that)."""
    QTest.mouseClick(widget, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, pos)
    QTest.mouseDClick(widget, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier, pos)


def test_rename_a_track_by_double_click_f2_and_menu_without_firing_shortcuts(qtbot, window):
    document = window.document
    first = window.current_track
    window.act_new_box.trigger()
    drag(window, (100, 100), (130, 160))
    second = window.current_track
    assert second != first
    window.activateWindow()
    qtbot.waitActive(window)

    # double-click the label of the row that is not current: selecting it must not kill the editor
    tree = window.views.track_list.list
    item = tree.topLevelItem(0)
    rect = tree.visualRect(tree.indexFromItem(item, LABEL_COLUMN))
    double_click(tree.viewport(), rect.center())
    editor = label_editor(qtbot, window)
    QTest.qWait(100)  # a redraw after the selection
    assert editor.isVisible() and window.current_track == first
    levels = window.act_levels.isChecked()
    editor.selectAll()
    QTest.keyClicks(editor, "tall lady")  # t tracks, l toggles per-level maps, a flags absent, space plays
    assert window.session.run is None and window.act_levels.isChecked() == levels
    assert not window.playback.timer.isActive()
    assert editor.text() == "tall lady"
    QTest.keyClick(editor, QtCore.Qt.Key_Return)
    qtbot.waitUntil(lambda: document.track(first).label == "tall lady", timeout=2000)  # the delegate commits queued
    assert not document.track(first).flags.any()
    qtbot.waitUntil(window.frame_view.hasFocus, timeout=2000)  # the frame's keys work again
    assert "tall lady" in window.undo_stack.undoText()

    # F2 renames the current track
    QTest.keyClick(window.frame_view, QtCore.Qt.Key_F2)
    editor = label_editor(qtbot, window)
    editor.selectAll()
    QTest.keyClicks(editor, "walker")
    QTest.keyClick(editor, QtCore.Qt.Key_Enter)
    qtbot.waitUntil(lambda: document.track(first).label == "walker", timeout=2000)  # the delegate commits queued

    # and so does Edit › Rename track, listed in the Help dialog
    window.select_track(second)
    assert window.act_rename in window.menus["Edit"].actions()
    window.act_rename.trigger()
    editor = label_editor(qtbot, window)
    editor.selectAll()
    QTest.keyClicks(editor, "cyclist")
    QTest.keyClick(editor, QtCore.Qt.Key_Return)
    qtbot.waitUntil(lambda: document.track(second).label == "cyclist", timeout=2000)  # the delegate commits queued
    listed = {text: keys for rows in window.shortcut_table().values() for text, keys in rows}
    assert listed["Rename track"] == "F2"
    window.act_undo.trigger()
    assert document.track(second).label != "cyclist"


def test_absent_hides_the_box_on_the_frame(qtbot, window):
    track_id = window.current_track
    assert window.frame_view.editable_box() is not None
    window.act_absent.trigger()
    assert window.document.track(track_id).flags[0] & Flag.ABSENT
    window.views.redraw_document()
    assert window.frame_view.editable_box() is None
    window.select_track(None)  # not current: it would be drawn as a plain track box
    colour = tuple(window.document.track(track_id).color)
    assert colour not in window.frame_view._tracks.visible_colours()
    window.act_undo.trigger()
    window.views.redraw_document()
    assert colour in window.frame_view._tracks.visible_colours()


def test_delete_box_on_this_frame_and_confirmed_track_delete(qtbot, window):
    document, track_id = window.document, window.current_track
    window.act_delete_box.trigger()
    assert not document.track(track_id).origin.any() and track_id in document.tracks
    assert window.undo_stack.undoText() == "Delete box: Crossing, frame 1"
    window.act_undo.trigger()
    assert document.track(track_id).origin[0] == Origin.MANUAL

    asked = []
    answers = iter(["", DELETE_BOX, DELETE_TRACK])
    window.edits.ask_delete = lambda label, frame, has_box: asked.append((label, frame, has_box)) or next(answers)
    window.act_delete_track.trigger()  # cancelled: nothing goes
    assert document.track(track_id).origin[0] == Origin.MANUAL
    window.act_delete_track.trigger()  # only this frame's box
    assert track_id in document.tracks and not document.track(track_id).origin.any()
    window.act_delete_track.trigger()  # the whole track
    assert track_id not in document.tracks
    assert asked == [("Crossing", 0, True), ("Crossing", 0, True), ("Crossing", 0, False)]
    window.act_undo.trigger()
    window.act_undo.trigger()
    assert document.track(track_id).origin[0] == Origin.MANUAL


@pytest.mark.parametrize("key", [QtCore.Qt.Key_Return, QtCore.Qt.Key_Escape])
def test_focus_returns_to_the_frame_after_a_toolbar_field(qtbot, window, key):
    window.activateWindow()
    qtbot.waitActive(window)
    spin = window.frames_spin
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin, "12")
    QTest.keyClick(spin, key)
    qtbot.waitUntil(window.frame_view.hasFocus, timeout=2000)
    QTest.keyClick(QtWidgets.QApplication.focusWidget(), QtCore.Qt.Key_Right)
    assert window.frame_index == 1 and spin.value() == 12


def test_focus_returns_to_the_frame_after_a_dialog(qtbot, window):
    window.activateWindow()
    qtbot.waitActive(window)
    window.threshold_spin.setFocus()
    window.act_help.trigger()
    window.help_dialog.close()
    qtbot.waitUntil(window.frame_view.hasFocus, timeout=2000)
    window.threshold_spin.setFocus()
    QtCore.QTimer.singleShot(100, lambda: QtWidgets.QApplication.activeModalWidget().reject())
    window.act_goto.trigger()  # the "Go to frame" dialog, cancelled
    window.activateWindow()  # the offscreen platform does not reactivate the window by itself
    qtbot.waitUntil(window.frame_view.hasFocus, timeout=2000)
    QTest.keyClick(QtWidgets.QApplication.focusWidget(), QtCore.Qt.Key_Right)
    assert window.frame_index == 1


def test_the_title_names_the_opened_work_at_once(make_window):
    window = make_window()
    assert window.open_media(CROSSING)
    assert window.windowTitle() == "Crossing (unsaved)[*] — HNSE Studio"
    window.files.ask_folder = lambda title: str(DATA / "sequences" / "Dudek20")
    window.act_open_folder.trigger()
    assert window.windowTitle() == "Dudek20 (unsaved)[*] — HNSE Studio"


def test_import_mot_and_boxes_undoably_and_export_cvat(window, tmp_path):
    document = window.document
    (first,) = document.tracks
    mot = tmp_path / "people.txt"
    mot.write_text("1,7,10,20,30,40,1,1,1\n2,7,12,20,30,40,1,1,0\n1,9,100,50,20,20,1,1,1\n")
    window.files.ask_open_path = lambda title, filters: str(mot)
    window.act_import_mot.trigger()
    assert len(document.tracks) == 3 and window.current_track != first
    assert sorted(track.label for track in document.tracks.values()) == ["Crossing", "id 7", "id 9"]
    assert window.undo_stack.undoText() == "Import MOT people.txt"
    window.act_undo.trigger()
    assert list(document.tracks) == [first]
    window.act_redo.trigger()
    assert len(document.tracks) == 3

    boxes = tmp_path / "walker.txt"
    boxes.write_text("5,6,7,8\nNaN,NaN,NaN,NaN\n9,10,11,12\n")
    window.files.ask_open_path = lambda title, filters: str(boxes)
    window.act_import_boxes.trigger()
    walker = document.track(window.current_track)
    assert walker.label == "walker" and walker.boxes[2].tolist() == [9, 10, 11, 12]

    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,1,1\n2,2,oops,2\n")
    window.files.ask_open_path = lambda title, filters: str(bad)
    before = sorted(document.tracks)
    window.act_import_boxes.trigger()
    assert str(bad) in window.last_error and "line 2" in window.last_error
    assert sorted(document.tracks) == before and window.undo_stack.undoText() == "Import boxes walker.txt"

    xml = tmp_path / "tracks.xml"
    window.files.ask_save_path = lambda *args: str(xml)
    window.act_export_cvat.trigger()
    text = xml.read_text()
    assert "<annotations>" in text and 'label="walker"' in text


def test_the_bundled_samples_recovery_file_goes_to_the_data_folder(make_window, tmp_path):
    from hnse_gui.app import SAMPLE

    window = make_window()
    assert window.open_media(SAMPLE)
    assert window.files.autosaver.target().parent == tmp_path / "recovery"


def test_copy_box_to_the_next_frame_and_go_there(window):
    document, track_id = window.document, window.current_track
    window.act_copy_forward.trigger()
    assert window.frame_index == 1 and document.track(track_id).origin[1] == Origin.MANUAL
    assert window.frame_view.editable_box() == pytest.approx(tuple(document.track(track_id).boxes[0]))
    listed = {text: keys for rows in window.shortcut_table().values() for text, keys in rows}
    assert listed["Copy box to next frame"] == "D" and listed["Play faster"] == ">"


def test_a_run_with_a_chosen_tracker_writes_the_track_with_its_boxes(qtbot, window):
    from model.tracking.nanotrack3 import default_weights

    from tests.test_gui import RUN_TIMEOUT_MS, track

    document, track_id = window.document, window.current_track
    choice = window.runs.tracker_choice
    texts = [choice.itemText(i) for i in range(choice.count())]
    assert texts[:3] == ["HNSE: both", "HNSE with HE", "HNSE without HE"]
    window.runs.load_models()
    qtbot.waitUntil(lambda: choice.findText("OpenCV CSRT") >= 0, timeout=RUN_TIMEOUT_MS)
    assert (choice.findText("NanoTrack v3") >= 0) == default_weights().is_file()
    choice.setCurrentIndex(choice.findText("OpenCV CSRT"))
    end = track(qtbot, window, +1, 5)
    assert (end.reason, end.frames_done) == ("done", 5)
    tracked = document.track(track_id)
    assert (tracked.origin[1:6] == Origin.TRACKED).all()
    assert sorted(tracked.variant_boxes) == ["OpenCV CSRT"]  # the models did not run
    assert tracked.boxes[1:6].tolist() == tracked.variant_boxes["OpenCV CSRT"][1:6].tolist()
    assert window.undo_stack.undoText() == f"Track forward with OpenCV CSRT: track {track_id}, frames 1–6"
    plotted = window.score_plot.curve_data("OpenCV CSRT")
    assert plotted[1:6].tolist() == tracked.variant_scores["OpenCV CSRT"][1:6].tolist()
    assert all(result is None for result in window.current_results().values())  # no heatmaps from CSRT
