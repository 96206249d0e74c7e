"""The main window's rooms, each built on its own session without a window:
playback, files (title, questions, saving), edits, tracking runs and the views' frame label."""
from __future__ import annotations

import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pytestqt")
from PyQt5 import QtCore, QtWidgets  # noqa: E402

from hnse_gui.document import Document, Flag, Origin  # noqa: E402
from hnse_gui.edits import Edits  # noqa: E402
from hnse_gui.frame_view import FrameView  # noqa: E402
from hnse_gui.playback import Playback  # noqa: E402
from hnse_gui.project import ProjectFiles  # noqa: E402
from hnse_gui.runs import ActiveRun, TrackingRuns  # noqa: E402
from hnse_gui.session import Session  # noqa: E402
from hnse_gui.views import Views  # noqa: E402
from hnse_gui.worker import RunEnd, RunRequest, TrackStart  # noqa: E402

FRAMES = 10


def session_with_track(keyframes=(2, 7)) -> Session:
    """A 10-frame document whose one track has MANUAL boxes on ``keyframes``."""
    document = Document("/videos/clip.mp4", FRAMES, (64, 48))
    track = document.add_track("car")
    for frame in keyframes:
        document.set_box(track.id, frame, (10.0, 10.0, 20.0, 15.0), Origin.MANUAL)
    document.mark_saved()
    return Session(document=document, current_track=track.id)


def files_on(session: Session, qtbot, tmp_path) -> ProjectFiles:
    """Files of ``session`` on a bare widget, with settings and recovery in ``tmp_path``."""
    window = QtWidgets.QWidget()
    qtbot.addWidget(window)
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    return ProjectFiles(session, settings, tmp_path / "recovery", window, lambda: 0.3)


def edits_on(session: Session, qtbot) -> Edits:
    """Edits of ``session`` through a new undo stack (``edits.undo_stack``), on a bare frame view."""
    frame_view = FrameView()
    qtbot.addWidget(frame_view)
    return Edits(session, QtWidgets.QUndoStack(), frame_view)


def test_playback_clamps_to_the_video_and_says_when_the_frame_moves(qtbot):
    session = session_with_track()
    playback = Playback(session)
    shown = []
    playback.frameChanged.connect(shown.append)
    playback.set_frame(50)
    playback.step(3)  # already on the last frame: nothing moves
    playback.step(-100)
    playback.step(4)
    assert shown == [FRAMES - 1, 0, 4] and session.frame_index == 4
    playback.last()
    assert session.frame_index == FRAMES - 1


def test_playback_without_a_document_stays_put(qtbot):
    session = Session()
    playback = Playback(session)
    playback.set_frame(3)
    playback.toggle_play()
    assert session.frame_index == 0 and not playback.timer.isActive()


def test_playback_jumps_between_keyframes_and_flagged_frames(qtbot):
    session = session_with_track()
    session.document.set_flags(session.current_track, 5, Flag.OCCLUDED)
    playback = Playback(session)
    playback.jump_keyframe(1)
    assert session.frame_index == 2
    playback.jump_flagged(1)
    assert session.frame_index == 5
    playback.jump_keyframe(1)
    playback.jump_keyframe(1)  # no keyframe after the last one
    assert session.frame_index == 7
    playback.jump_keyframe(-1)
    assert session.frame_index == 2


def test_play_runs_to_the_last_frame_and_stops_and_waits_while_busy(qtbot):
    session = session_with_track()
    busy = [True]
    playback = Playback(session, busy=lambda: busy[0])
    playback.toggle_play()
    assert not playback.timer.isActive()  # tracking holds the worker
    busy[0] = False
    session.frame_index = FRAMES - 1
    playback.toggle_play()  # on the last frame, play starts over
    assert session.frame_index == 0 and playback.timer.isActive()
    qtbot.waitUntil(lambda: not playback.timer.isActive(), timeout=5000)
    assert session.frame_index == FRAMES - 1


def test_files_name_the_work_in_the_title(qtbot, tmp_path):
    session = Session()
    files = files_on(session, qtbot, tmp_path)
    window = files.window
    assert files.title() == "HNSE Studio"
    session.document = Document("/videos/clip.mp4", FRAMES, (64, 48))
    files.update_title()
    assert window.windowTitle() == "clip.mp4 (unsaved)[*] — HNSE Studio" and not window.isWindowModified()
    session.document.add_track("car")
    session.project_path = tmp_path / "work.h5"
    files.update_title()
    assert window.windowTitle() == "work.h5[*] — HNSE Studio" and window.isWindowModified()


def test_files_ask_before_dropping_changes_and_save_as_a_project(qtbot, tmp_path):
    session = session_with_track()
    files = files_on(session, qtbot, tmp_path)
    assert files.maybe_save()  # nothing unsaved: no question
    session.document.set_flags(session.current_track, 3, Flag.ABSENT)
    files.ask_save_changes = lambda: QtWidgets.QMessageBox.Cancel
    assert not files.maybe_save()
    files.ask_save_path = lambda *args: str(tmp_path / "work")
    saved = []
    files.saved.connect(lambda: saved.append(session.project_path))
    files.ask_save_changes = lambda: QtWidgets.QMessageBox.Save
    assert files.maybe_save()  # never saved before: save as, with the project suffix added
    assert saved == [tmp_path / "work.h5"] and (tmp_path / "work.h5").is_file()
    assert not session.document.dirty


def test_edits_go_through_the_undo_stack_and_wait_for_a_run(qtbot):
    session = session_with_track()
    session.frame_index = 4
    edits = edits_on(session, qtbot)
    undo_stack = edits.undo_stack
    track = session.document.track(session.current_track)
    edits.make_keyframe()  # frame 4 has no box: the nearest earlier one, frame 2's, is kept
    edits.toggle_flag(Flag.NEEDS_REVIEW)
    assert undo_stack.count() == 2 and track.origin[4] == Origin.MANUAL and track.flags[4] == Flag.NEEDS_REVIEW
    session.run = ActiveRun(request=None, before=None)
    edits.undo()
    edits.toggle_flag(Flag.OCCLUDED)
    assert undo_stack.count() == 2 and track.flags[4] == Flag.NEEDS_REVIEW
    session.run = None
    edits.undo()
    edits.undo()
    assert track.flags[4] == 0 and track.origin[4] == Origin.NONE


def test_views_label_the_frame_with_the_current_tracks_state(qtbot):
    session = session_with_track()
    views = Views(session, ["with HE", "without HE"])
    qtbot.addWidget(views.frame_view)
    assert views.frame_label_text() == "frame 1 / 10"
    session.frame_index = 2
    session.document.set_flags(session.current_track, 2, Flag.OCCLUDED)
    assert views.frame_label_text() == "frame 3 / 10  manual  [occluded]"
    views.select_track(99)  # no such track: none is current
    assert session.current_track is None and views.frame_label_text() == "frame 3 / 10"


def test_runs_start_only_from_a_box_on_the_current_frame(qtbot):
    session = session_with_track()
    runs = TrackingRuns(session, QtWidgets.QUndoStack(), variants=[])
    messages = []
    runs.status.connect(lambda text, _ms: messages.append(text))
    try:
        assert not runs.start(1, 5)  # frame 0 has no box
        assert messages == ["the current track has no box on this frame to start from"]
        session.current_track = None
        assert not runs.start(1, 5)
        assert session.run is None and not runs.busy and runs.progress.isHidden()
    finally:
        runs.shutdown()


def test_a_run_that_changes_nothing_leaves_no_undo_step_and_says_what_undo_would_undo(qtbot):
    session = session_with_track(keyframes=(2,))
    document, track_id = session.document, session.current_track
    edits = edits_on(session, qtbot)
    undo_stack = edits.undo_stack
    runs = TrackingRuns(session, undo_stack, variants=[])
    messages = []
    for room in (runs, edits):
        room.status.connect(lambda text, _ms: messages.append(text))

    def run(changes: bool) -> None:
        request = RunRequest(run_id=1, tracks=(TrackStart(track_id, (10.0, 10.0, 20.0, 15.0)),), start_frame=2,
                             direction=1, max_frames=3, score_threshold=0.0)
        session.run = ActiveRun(request, {track_id: document.get_range(track_id, 2, 6)})
        if changes:
            for frame in (3, 4, 5):
                document.apply_tracking(track_id, frame, (11.0, 10.0, 20.0, 15.0), 0.9, "with HE")
        runs._finished(RunEnd(run_id=1, reason="done", last_frame=5, frames_done=3))

    try:
        run(changes=True)
        assert undo_stack.count() == 1
        assert undo_stack.undoText() == f"Track forward: track {track_id}, frames 3–6"
        run(changes=False)  # the same boxes again
        assert undo_stack.count() == 1
        assert messages[-1] == (f"tracked 3 frames; nothing changed, so nothing to undo "
                                f"(undo: Track forward: track {track_id}, frames 3–6)")
        edits.undo()
        assert messages[-1] == f"undone: Track forward: track {track_id}, frames 3–6"
        assert not document.track(track_id).origin[3:6].any()
        edits.redo()
        assert messages[-1] == f"redone: Track forward: track {track_id}, frames 3–6"
    finally:
        runs.shutdown()


def test_playback_speed_steps_through_its_speeds_and_retimes_a_running_timer(qtbot):
    session = session_with_track()
    playback = Playback(session)
    playback.toggle_play()
    normal = playback.timer.interval()
    assert playback.change_speed(1) == 2.0 and playback.timer.interval() == normal // 2
    assert playback.change_speed(10) == 4.0  # the fastest stays the fastest
    assert playback.change_speed(-3) == 0.5 and playback.timer.interval() == normal * 2
    playback.stop()


def test_copy_box_forward_makes_the_next_frame_a_keyframe(qtbot):
    session = session_with_track(keyframes=(2,))
    session.frame_index = 2
    edits = edits_on(session, qtbot)
    undo_stack = edits.undo_stack
    track = session.document.track(session.current_track)
    assert edits.copy_box_forward()
    assert track.origin[3] == Origin.MANUAL and track.boxes[3].tolist() == track.boxes[2].tolist()
    assert undo_stack.undoText() == "Copy box to frame 4"
    session.frame_index = 4  # no box here: nothing to copy
    assert not edits.copy_box_forward() and undo_stack.count() == 1
    session.frame_index = FRAMES - 1
    assert not edits.copy_box_forward()
