"""The Qt-free annotation document: edits, interpolation, tracking output, undo snapshots."""
import math

import numpy as np
import pytest

from hnse_gui.document import PALETTE, Change, Document, Flag, FrameState, Origin
from model.core.errors import InputError


@pytest.fixture
def document():
    return Document("clip.mp4", 20, (320, 240))


def test_add_track_gives_increasing_ids_and_unused_palette_colours(document):
    first, second = document.add_track("car"), document.add_track("person")
    assert (first.id, second.id) == (1, 2)
    assert first.color == PALETTE[0] and second.color == PALETTE[1]
    assert document.add_track("x", color=(1, 2, 3)).color == (1, 2, 3)
    assert first.boxes.shape == (20, 4) and first.boxes.dtype == np.float32
    assert np.isnan(first.boxes).all() and np.isnan(first.scores).all()
    assert first.origin.dtype == np.uint8 and not first.origin.any() and not first.flags.any()


def test_remove_and_restore_track_keeps_id_and_data(document):
    track = document.add_track("car")
    document.set_box(track.id, 3, (1, 2, 3, 4))
    removed = document.remove_track(track.id)
    assert track.id not in document.tracks
    document.restore_track(removed)
    assert document.get_frame_state(track.id, 3).box == (1, 2, 3, 4)
    with pytest.raises(ValueError):
        document.restore_track(removed)
    with pytest.raises(KeyError):
        document.remove_track(99)


def test_track_ids_are_never_reused(document):
    document.add_track("a")
    second = document.add_track("b")
    document.remove_track(second.id)
    assert document.add_track("c").id == 3


def test_set_track_label_and_colour_return_old_values(document):
    track = document.add_track("car")
    assert document.set_track_label(track.id, "bus") == "car" and track.label == "bus"
    assert document.set_track_color(track.id, (9, 8, 7)) == PALETTE[0] and track.color == (9, 8, 7)


def test_set_box_validates_and_removes(document):
    track = document.add_track("car")
    document.set_box(track.id, 0, (10, 20, 30, 40), Origin.MANUAL, score=0.5)
    state = document.get_frame_state(track.id, 0)
    assert state.box == (10, 20, 30, 40) and state.origin == Origin.MANUAL and state.score == 0.5
    for bad in [(1, 2, 0, 4), (1, 2, 3, -1), (1, math.nan, 3, 4), (1, 2, 3)]:
        with pytest.raises(InputError):
            document.set_box(track.id, 1, bad)
    document.set_box(track.id, 0, None, Origin.NONE)
    assert document.get_frame_state(track.id, 0).box is None
    with pytest.raises(IndexError):
        document.set_box(track.id, 20, (1, 2, 3, 4))


def test_set_flags_replaces_flags(document):
    track = document.add_track("car")
    document.set_flags(track.id, 4, Flag.OCCLUDED | Flag.NEEDS_REVIEW)
    assert document.get_frame_state(track.id, 4).flags == Flag.OCCLUDED | Flag.NEEDS_REVIEW
    document.set_flags(track.id, 4, Flag.ABSENT)
    assert document.get_frame_state(track.id, 4).flags == Flag.ABSENT


def test_keyframes_and_tracked_ranges(document):
    track = document.add_track("car")
    for frame in (2, 9):
        document.set_box(track.id, frame, (0, 0, 5, 5))
    for frame in [3, 4, 5, 10, 11, 19]:
        assert document.apply_tracking(track.id, frame, (1, 1, 5, 5), 0.9)
    assert document.keyframes(track.id).tolist() == [2, 9]
    assert document.tracked_ranges(track.id) == [(3, 6), (10, 12), (19, 20)]


def test_interpolate_is_linear_between_keyframes_and_never_touches_manual(document):
    track = document.add_track("car")
    document.set_box(track.id, 2, (0, 0, 10, 10))
    document.set_box(track.id, 6, (40, 20, 30, 50))
    document.set_box(track.id, 10, (40, 20, 30, 50))
    document.apply_tracking(track.id, 4, (100, 100, 5, 5), 0.1)  # tracked, needs review: overwritten
    document.set_flags(track.id, 8, Flag.ABSENT)
    manual_before = track.boxes[[2, 6, 10]].copy()

    written = document.interpolate(track.id, 0, 20)

    assert written == 3 + 2  # frames 3-5, then 7 and 9 (8 is absent)
    np.testing.assert_allclose(track.boxes[3], [10, 5, 15, 20])
    np.testing.assert_allclose(track.boxes[4], [20, 10, 20, 30])
    np.testing.assert_array_equal(track.boxes[[2, 6, 10]], manual_before)
    assert track.origin[[2, 6, 10]].tolist() == [Origin.MANUAL] * 3
    assert track.origin[[3, 4, 5, 7, 9]].tolist() == [Origin.INTERPOLATED] * 5
    assert not track.flags[4] & Flag.NEEDS_REVIEW and np.isnan(track.scores[4])
    assert np.isnan(track.boxes[[0, 1, 8, 11, 19]]).all()  # outside two keyframes, or absent
    assert track.origin[[0, 1, 8, 11]].tolist() == [Origin.NONE] * 4


def test_interpolate_only_within_requested_range_and_not_across_empty_keyframe(document):
    track = document.add_track("car")
    document.set_box(track.id, 0, (0, 0, 10, 10))
    document.set_box(track.id, 5, None, Origin.MANUAL)  # a keyframe saying "no box here"
    document.set_box(track.id, 10, (0, 0, 10, 10))
    assert document.interpolate(track.id, 0, 10) == 0
    document.set_box(track.id, 5, (5, 5, 10, 10))
    assert document.interpolate(track.id, 6, 8) == 2
    assert track.origin[[6, 7, 8]].tolist() == [Origin.INTERPOLATED, Origin.INTERPOLATED, Origin.NONE]


def test_interpolate_fills_a_gap_between_tracked_boxes_from_them(document):
    track = document.add_track("car")
    document.set_box(track.id, 0, (0, 0, 10, 10))
    for frame, box in [(2, (10, 0, 10, 10)), (6, (50, 40, 30, 50)), (7, (60, 40, 30, 50))]:
        document.apply_tracking(track.id, frame, box, 0.9)
    document.set_box(track.id, 12, (0, 0, 10, 10))
    document.set_flags(track.id, 12, Flag.ABSENT)  # an absent anchor: nothing is filled up to it
    tracked_before = track.boxes[[2, 6, 7]].copy()

    assert document.interpolate(track.id, 0, 20) == 1 + 3  # frame 1, then frames 3-5

    np.testing.assert_allclose(track.boxes[1], [5, 0, 10, 10])  # between manual 0 and tracked 2
    np.testing.assert_allclose(track.boxes[3], [20, 10, 15, 20])  # a quarter of the way from 2 to 6
    np.testing.assert_allclose(track.boxes[5], [40, 30, 25, 40])
    np.testing.assert_array_equal(track.boxes[[2, 6, 7]], tracked_before)
    assert track.origin[[1, 3, 4, 5]].tolist() == [Origin.INTERPOLATED] * 4
    assert track.origin[[0, 2, 6, 7, 12]].tolist() == [Origin.MANUAL, *[Origin.TRACKED] * 3, Origin.MANUAL]
    assert np.isnan(track.boxes[8:12]).all()


def test_interpolate_redoes_interpolated_frames_after_an_anchor_moves(document):
    track = document.add_track("car")
    document.set_box(track.id, 0, (0, 0, 10, 10))
    document.apply_tracking(track.id, 4, (40, 0, 10, 10), 0.9)
    assert document.interpolate(track.id, 0, 5) == 3
    document.set_box(track.id, 4, (80, 0, 10, 10))  # the user corrects the tracker's box
    assert document.interpolate(track.id, 0, 5) == 3
    np.testing.assert_allclose(track.boxes[2], [40, 0, 10, 10])


def test_delete_box_empties_one_frame_and_keeps_user_flags(document):
    track = document.add_track("car")
    document.apply_tracking(track.id, 3, (1, 2, 3, 4), 0.1)
    document.set_flags(track.id, 3, Flag.OCCLUDED | Flag.NEEDS_REVIEW)
    document.apply_tracking(track.id, 4, (1, 2, 3, 4), 0.9)
    before = document.get_frame_state(track.id, 3)
    changes = []
    document.subscribe(changes.append)

    document.delete_box(track.id, 3)

    state = document.get_frame_state(track.id, 3)
    assert state.box is None and state.origin == Origin.NONE and math.isnan(state.score)
    assert state.flags == Flag.OCCLUDED
    assert changes == [Change("frames", track.id, 3, 4)]
    assert document.get_frame_state(track.id, 4).box == (1, 2, 3, 4)
    document.set_frame_state(track.id, 3, before)  # undo
    assert document.get_frame_state(track.id, 3) == before
    with pytest.raises(IndexError):
        document.delete_box(track.id, 20)


def test_add_track_takes_a_requested_id_only_if_never_given_out(document):
    document.add_track("a")
    assert document.next_track_id == 2
    assert document.add_track("seven", track_id=7).id == 7
    assert document.next_track_id == 8 and document.add_track("b").id == 8
    for used in (1, 5, 8):
        with pytest.raises(ValueError, match="given out before"):
            document.add_track("again", track_id=used)
    assert sorted(document.tracks) == [1, 7, 8]


def test_apply_tracking_refuses_manual_frames(document):
    track = document.add_track("car")
    document.set_box(track.id, 5, (1, 1, 5, 5))
    assert document.apply_tracking(track.id, 5, (50, 50, 5, 5), 0.9) is False
    assert document.apply_tracking(track.id, 5, (50, 50, 5, 5), 0.9, variant="with HE") is False
    state = document.get_frame_state(track.id, 5)
    assert state.box == (1, 1, 5, 5) and state.origin == Origin.MANUAL and state.variant_scores == {}


def test_apply_tracking_flags_low_scores_and_clears_them(document):
    track = document.add_track("car")
    document.review_threshold = 0.5
    document.set_flags(track.id, 3, Flag.OCCLUDED)
    assert document.apply_tracking(track.id, 3, (1, 1, 5, 5), 0.2)
    assert document.get_frame_state(track.id, 3).flags == Flag.OCCLUDED | Flag.NEEDS_REVIEW
    assert document.apply_tracking(track.id, 3, (1, 1, 5, 5), 0.8)
    state = document.get_frame_state(track.id, 3)
    assert state.flags == Flag.OCCLUDED and state.origin == Origin.TRACKED and state.score == pytest.approx(0.8)


def test_apply_tracking_variants_write_track_only_for_primary(document):
    track = document.add_track("car")
    document.primary_variant = "with HE"
    document.apply_tracking(track.id, 7, (1, 1, 5, 5), 0.9, variant="with HE")
    document.apply_tracking(track.id, 7, (60, 60, 8, 8), 0.4, variant="without HE")
    state = document.get_frame_state(track.id, 7)
    assert state.box == (1, 1, 5, 5) and state.score == pytest.approx(0.9)
    assert state.variant_boxes == {"with HE": (1, 1, 5, 5), "without HE": (60, 60, 8, 8)}
    assert state.variant_scores == pytest.approx({"with HE": 0.9, "without HE": 0.4})
    assert np.isnan(track.variant_scores["without HE"][6])


def test_clear_tracked_keeps_manual_and_interpolated(document):
    track = document.add_track("car")
    document.set_box(track.id, 0, (0, 0, 4, 4))
    document.set_box(track.id, 4, (4, 4, 4, 4))
    document.interpolate(track.id, 0, 5)
    for frame in range(5, 10):
        document.apply_tracking(track.id, frame, (1, 1, 4, 4), 0.1, variant="v")
        document.apply_tracking(track.id, frame, (1, 1, 4, 4), 0.1)
    assert document.clear_tracked(track.id, 0, 8) == 3
    assert track.origin[:10].tolist() == [1, 3, 3, 3, 1, 0, 0, 0, 2, 2]
    assert np.isnan(track.boxes[5:8]).all() and not track.flags[5:8].any()
    assert track.flags[8] == Flag.NEEDS_REVIEW
    assert np.isnan(track.variant_scores["v"][:8]).all() and track.variant_scores["v"][8] == pytest.approx(0.1)


def test_get_set_range_round_trip_restores_exactly(document):
    track = document.add_track("car")
    document.set_box(track.id, 2, (0, 0, 10, 10))
    document.set_box(track.id, 12, (50, 50, 10, 10))
    document.apply_tracking(track.id, 5, (3, 3, 3, 3), 0.7, variant="a")
    before = track.copy()
    snapshot = document.get_range(track.id, 0, 15)

    document.interpolate(track.id, 0, 15)
    document.apply_tracking(track.id, 4, (9, 9, 9, 9), 0.1, variant="b")  # a variant born after the snapshot
    document.set_flags(track.id, 14, Flag.OCCLUDED)
    document.set_range(track.id, 0, 15, snapshot)

    for name in ("boxes", "origin", "flags", "scores"):
        np.testing.assert_array_equal(getattr(track, name), getattr(before, name))
    np.testing.assert_array_equal(track.variant_scores["a"], before.variant_scores["a"])
    assert np.isnan(track.variant_scores["b"]).all() and np.isnan(track.variant_boxes["b"]).all()
    with pytest.raises(ValueError):
        document.set_range(track.id, 1, 16, snapshot)


def test_get_set_frame_state_round_trip(document):
    track = document.add_track("car")
    document.apply_tracking(track.id, 6, (3, 3, 3, 3), 0.2, variant="a")
    document.apply_tracking(track.id, 6, (4, 4, 4, 4), 0.2)
    saved = document.get_frame_state(track.id, 6)
    assert isinstance(saved, FrameState)
    document.set_box(track.id, 6, (7, 7, 7, 7), Origin.MANUAL)
    document.set_flags(track.id, 6, 0)
    document.set_frame_state(track.id, 6, saved)
    assert document.get_frame_state(track.id, 6) == saved


def test_listeners_receive_changes_and_revision_counts(document):
    changes: list[Change] = []
    document.subscribe(changes.append)
    assert not document.dirty
    track = document.add_track("car")
    document.set_box(track.id, 3, (1, 1, 1, 1))
    document.interpolate(track.id, 2, 9)
    assert [(c.kind, c.track_id, c.start, c.stop) for c in changes] == [
        ("track_added", 1, 0, 20), ("frames", 1, 3, 4), ("frames", 1, 2, 9)]
    assert document.revision == 3 and document.dirty
    document.mark_saved()
    assert not document.dirty
    document.unsubscribe(changes.append)
    document.set_flags(track.id, 0, Flag.ABSENT)
    assert len(changes) == 3 and document.dirty


def test_store_maps_only_when_kept_and_with_stable_layout(document):
    maps = {"score": np.ones((5, 5)), "final": np.zeros((5, 5))}
    assert document.store_maps("with HE", 0, maps) is False and document.maps == {}
    document.keep_maps = True
    assert document.store_maps("with HE", 0, maps)
    assert document.maps["with HE"][0]["score"].dtype == np.float32
    with pytest.raises(ValueError):
        document.store_maps("with HE", 1, {"score": np.ones((6, 6)), "final": np.zeros((6, 6))})
    with pytest.raises(ValueError):
        document.store_maps("with HE", 1, {"score": np.ones(5)})
    document.clear_maps()
    assert document.maps == {}
