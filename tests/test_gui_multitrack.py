"""Tracking several tracks in one run through the real window (pytest-qt, offscreen):
each track follows its own trackers, stops on its own low score, and the run is one
undo step."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt5 import QtCore  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from hnse_gui.document import Flag, Origin  # noqa: E402
from tests.test_gui import CROSSING, RUN_TIMEOUT_MS, drag, make_window, track, window  # noqa: E402,F401 (fixtures)

pytestmark = pytest.mark.skipif(not CROSSING.is_dir(), reason=f"development data missing: {CROSSING}")

SECOND_BOX = (100, 100, 30, 60)  # a second track's first box, away from the sample track's (205, 151, 17, 50)


def add_second_track(window) -> tuple[int, int]:
    """Draw a second track on frame 0; returns (the sample track, the new one), the new one current."""
    first = window.current_track
    window.act_new_box.trigger()
    x, y, w, h = SECOND_BOX
    drag(window, (x, y), (x + w, y + h))
    second = window.current_track
    assert second != first and window.document.track(second).origin[0] == Origin.MANUAL
    return first, second


def track_all(qtbot, window, direction: int, frames: int):
    """Track every track from the current frame (Track all tracks forward / backward); returns the RunEnd."""
    window.frames_spin.setValue(frames)
    action = window.act_track_all_fwd if direction > 0 else window.act_track_all_back
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT_MS) as blocker:
        action.trigger()
    return blocker.args[0]


def test_track_all_follows_each_track_with_its_own_trackers_as_one_undo_step(qtbot, window):
    document = window.document
    first, second = add_second_track(window)
    window.threshold_spin.setValue(0.0)
    steps_before = window.undo_stack.count()

    end = track_all(qtbot, window, +1, 10)
    assert (end.reason, end.last_frame, end.frames_done, end.low_scores) == ("done", 10, 10, {})
    assert window.undo_stack.count() == steps_before + 1
    assert window.undo_stack.undoText() == f"Track forward: tracks {first}, {second}, frames 1–11"
    together = {track_id: document.get_range(track_id, 0, 12) for track_id in (first, second)}
    for track_id, part in together.items():
        assert (part.origin[1:11] == Origin.TRACKED).all() and part.origin[11] == Origin.NONE
        for variant in ("with HE", "without HE"):
            assert np.isfinite(part.variant_boxes[variant][1:11]).all()
    # each track stays by its own start box, far nearer it than the other's (the untrained nets drift little)
    start_boxes = {track_id: together[track_id].boxes[0] for track_id in together}
    apart = np.abs(start_boxes[first][:2] - start_boxes[second][:2]).max()
    for track_id, part in together.items():
        assert np.abs(part.boxes[1:11, :2] - start_boxes[track_id][:2]).max() < apart / 2
    # the heatmaps show the current track's own results
    assert window.frame_index == 10 and window.current_track == second
    assert window.current_results()["with HE"].box == pytest.approx(tuple(together[second].boxes[10]), abs=1e-4)

    # one undo takes back both tracks, one redo brings both back
    window.act_undo.trigger()
    for track_id in together:
        assert (document.track(track_id).origin[1:] == Origin.NONE).all()
    window.act_redo.trigger()
    for track_id, part in together.items():
        np.testing.assert_array_equal(document.track(track_id).boxes[:12], part.boxes)
        np.testing.assert_array_equal(document.track(track_id).variant_scores["without HE"][:12],
                                      part.variant_scores["without HE"])

    # backward from a later frame, both tracks at once
    window.set_frame(8)
    end = track_all(qtbot, window, -1, 3)
    assert (end.reason, end.last_frame, end.frames_done) == ("done", 5, 3)
    assert window.undo_stack.undoText() == f"Track backward: tracks {first}, {second}, frames 9–6"
    for track_id in together:
        assert (document.track(track_id).origin[5:8] == Origin.TRACKED).all()
    window.act_undo.trigger()
    window.act_undo.trigger()

    # each track alone (T on the current track) finds the same boxes: no track disturbed another's trackers
    for track_id in (first, second):
        window.select_track(track_id)
        window.set_frame(0)
        end = track(qtbot, window, +1, 10)
        assert end.reason == "done"
        assert window.undo_stack.undoText() == f"Track forward: track {track_id}, frames 1–11"
        other = second if track_id == first else first
        assert (document.track(other).origin[1:] == Origin.NONE).all()  # a single run leaves the other track be
        alone = document.get_range(track_id, 0, 12)
        for variant in ("with HE", "without HE"):
            np.testing.assert_allclose(alone.variant_boxes[variant], together[track_id].variant_boxes[variant],
                                       atol=1e-3)
        window.act_undo.trigger()


def test_a_track_whose_score_drops_stops_flagged_while_the_others_go_on(qtbot, window):
    document = window.document
    first, second = add_second_track(window)
    window.act_new_box.trigger()
    drag(window, (20, 20), (50, 60))
    absent = window.current_track
    window.act_absent.trigger()  # a track absent on this frame is not tracked
    window.select_track(second)
    frames = 8

    # the scores each track gets (the same in every run: the trackers are deterministic)
    window.threshold_spin.setValue(0.0)
    end = track_all(qtbot, window, +1, frames)
    assert end.reason == "done"
    scores = {track_id: document.track(track_id).variant_scores["with HE"].copy() for track_id in (first, second)}
    lowest = {track_id: float(np.min(scores[track_id][1:frames + 1])) for track_id in scores}
    assert (document.track(absent).origin[1:] == Origin.NONE).all()
    window.act_undo.trigger()
    window.set_frame(0)

    # a threshold between the two tracks' lowest scores stops one track and not the other
    going, dropping = sorted(lowest, key=lowest.get, reverse=True)
    assert lowest[going] > lowest[dropping]
    document.review_threshold = (lowest[going] + lowest[dropping]) / 2
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.act_track_all_fwd.trigger()
        assert window.statusBar().currentMessage() == f"tracking 2 tracks forward: {second}, {first}"
    end = blocker.args[0]
    stop = next(f for f in range(1, frames + 1) if scores[dropping][f] < document.review_threshold)
    assert (end.reason, end.frames_done, end.low_scores) == ("done", frames, {dropping: stop})
    dropped, kept = document.track(dropping), document.track(going)
    assert dropped.flags[stop] & Flag.NEEDS_REVIEW and (dropped.origin[1:stop + 1] == Origin.TRACKED).all()
    assert (dropped.origin[stop + 1:] == Origin.NONE).all()
    assert (kept.origin[1:frames + 1] == Origin.TRACKED).all() and not (kept.flags & Flag.NEEDS_REVIEW).any()
    np.testing.assert_array_equal(kept.variant_scores["with HE"], scores[going])  # undisturbed by the stop
    message = window.statusBar().currentMessage()
    assert message.startswith(f"tracked {frames} frames") and f"track {dropping} on frame {stop + 1}" in message
    assert "flagged for review" in message

    # when every track's score drops, the run ends there
    window.act_undo.trigger()
    window.set_frame(0)
    document.review_threshold = 0.99
    end = track_all(qtbot, window, +1, frames)
    assert (end.reason, end.last_frame, end.frames_done, end.low_scores) == ("low_score", 1, 1,
                                                                             {second: 1, first: 1})
    assert window.statusBar().currentMessage().startswith("every track stopped on a low score, after 1 frames")
    for track_id in (first, second):
        assert document.track(track_id).flags[1] & Flag.NEEDS_REVIEW


def test_track_all_needs_a_track_with_a_box_on_this_frame(qtbot, window):
    window.activateWindow()
    qtbot.waitActive(window)
    window.set_frame(5)
    QTest.keyClick(window, QtCore.Qt.Key_T, QtCore.Qt.ControlModifier)  # Track all tracks forward
    assert window.session.run is None
    assert window.statusBar().currentMessage() == "no track has a box on this frame to start from"
    listed = {text: keys for rows in window.shortcut_table().values() for text, keys in rows}
    assert listed["Track all tracks forward"] == "Ctrl+T" and listed["Track all tracks backward"] == "Ctrl+Shift+T"


def test_predict_motion_centres_the_search_ahead_for_the_next_runs_and_is_remembered(qtbot, make_window, window):
    from hnse_gui.main_window import PREDICTED_MOTION
    from model.tracking.tracker import VELOCITY_SMOOTHING

    document = window.document
    track_id = window.current_track
    assert not window.act_predict_motion.isChecked()
    track(qtbot, window, +1, 3)
    assert window.current_results()["with HE"].pipeline.search_shift == (0.0, 0.0)  # off: centred on the last box

    window.act_undo.trigger()
    window.set_frame(0)
    window.act_predict_motion.trigger()
    end = track(qtbot, window, +1, 6)
    assert end.frames_done == 6 and window.frame_index == 6
    boxes = document.track(track_id).boxes[:7]
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    velocity = np.zeros(2)
    for before, after in zip(centres[:-2], centres[1:-1]):  # what the tracker knew when it cropped frame 6
        velocity += VELOCITY_SMOOTHING * (after - before - velocity)
    shift = window.current_results()["with HE"].pipeline.search_shift
    assert shift == pytest.approx(tuple(PREDICTED_MOTION * velocity), abs=1e-3)
    assert np.abs(shift).max() > 0
    assert make_window().act_predict_motion.isChecked()  # the next session starts with it on


def test_colour_re_ranking_reaches_the_next_runs_and_is_remembered(qtbot, make_window, window):
    """Track › Re-rank look-alikes by colour: the variant without HE, which has no HE cue,
    gets a re-ranking map once the colour cue is on, and the switch outlives the session."""
    from hnse_gui.main_window import COLOUR_RERANK

    assert not window.act_colour_rerank.isChecked()
    track(qtbot, window, +1, 2)
    assert "rerank" not in window.current_results()["without HE"].maps
    window.act_undo.trigger()
    window.set_frame(0)
    window.act_colour_rerank.trigger()
    assert window.runs.track_settings == {"colour_rerank": COLOUR_RERANK}
    track(qtbot, window, +1, 2)
    results = window.current_results()
    assert "rerank" in results["without HE"].maps
    assert all("colour" in candidate.factors for candidate in results["without HE"].candidates)
    assert make_window().act_colour_rerank.isChecked()
    window.act_colour_rerank.trigger()
    assert window.runs.track_settings == {}
