"""Synthetic scenes with look-alike distractors (model/data/synthetic.py)."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from model.data.synthetic import SyntheticSequence, synthetic_sequence


def test_same_seed_gives_the_same_sequence_and_another_seed_a_different_one():
    first, again, other = SyntheticSequence(5, length=40), SyntheticSequence(5, length=40), SyntheticSequence(6, length=40)
    assert np.array_equal(first.boxes, again.boxes)
    for index in (0, 17, 39):
        assert np.array_equal(first[index], again[index])
    assert not np.allclose(first.boxes, other.boxes)
    assert not np.array_equal(first[17], other[17])


@pytest.mark.parametrize("size", [(480, 360), (200, 320)])
def test_target_boxes_stay_inside_the_frame(size):
    width, height = size
    for seed in range(12):
        boxes = SyntheticSequence(seed, length=300, size=size).boxes
        assert boxes.shape == (300, 4) and np.isfinite(boxes).all()
        x, y, w, h = boxes.T
        assert (w > 1).all() and (h > 1).all()
        assert (x >= 0).all() and (y >= 0).all()
        assert (x + w <= width + 1e-6).all() and (y + h <= height + 1e-6).all()


def test_target_is_drawn_exactly_where_its_box_says():
    """The ground truth is the drawn target: inside its ellipse, the frame's pixels are
    the object patch resized to the box (the target is drawn on top of distractors)."""
    sequence = SyntheticSequence(3, length=30)
    for index in (0, 14, 29):
        x, y, w, h = sequence.boxes[index]
        size = (int(round(w)), int(round(h)))
        patch = cv2.resize(sequence.patch, size)
        mask = cv2.resize(sequence.mask, size) > 127
        region = sequence[index][int(round(y)):int(round(y)) + size[1], int(round(x)):int(round(x)) + size[0]]
        assert np.array_equal(region[mask], patch[mask])


def _best_match_away_from_target(frame: np.ndarray, box) -> float:
    """Highest normalised correlation of the target's centre (inside its ellipse) with
    any place of the frame whose centre lies outside the target's box, over a few
    scales (distractors are rescaled copies)."""
    x, y, w, h = box
    side_w, side_h = int(w * 0.4), int(h * 0.4)
    top, left = int(y + h / 2 - side_h / 2), int(x + w / 2 - side_w / 2)
    centre = frame[top:top + side_h, left:left + side_w]
    best = -1.0
    for scale in (0.9, 1.0, 1.1):
        template = cv2.resize(centre, (max(4, int(side_w * scale)), max(4, int(side_h * scale))))
        response = cv2.matchTemplate(frame, template, cv2.TM_CCOEFF_NORMED)
        rows, cols = np.mgrid[0:response.shape[0], 0:response.shape[1]]
        match_x, match_y = cols + template.shape[1] / 2, rows + template.shape[0] / 2
        response[(match_x > x) & (match_x < x + w) & (match_y > y) & (match_y < y + h)] = -1
        best = max(best, float(response.max()))
    return best


@pytest.mark.parametrize("seed", [1, 2])
def test_distractors_look_like_the_target(seed):
    """With distractors some other place of the frame matches the target's appearance
    almost perfectly; the same scene without them has no such place."""
    frames = (0, 15, 30, 45)
    with_distractors = SyntheticSequence(seed, length=50, distractors=3)
    alone = SyntheticSequence(seed, length=50, distractors=0)
    # The same target over the same background; only the look-alikes differ.
    assert np.array_equal(with_distractors.patch, alone.patch)
    assert np.array_equal(with_distractors.background, alone.background)
    look_alike = [_best_match_away_from_target(with_distractors[t], with_distractors.boxes[t]) for t in frames]
    background = [_best_match_away_from_target(alone[t], alone.boxes[t]) for t in frames]
    assert np.median(look_alike) > 0.9, look_alike
    assert max(background) < 0.65, background


def test_frames_are_rendered_on_demand():
    """A long sequence holds no frames (pickling it costs less than a few frames) and a
    frame is the same whatever was rendered before it."""
    sequence = SyntheticSequence(9, length=5000)
    frame_bytes = 480 * 360 * 3
    assert len(pickle.dumps(sequence)) < 4 * frame_bytes
    direct = SyntheticSequence(9, length=5000)[4321]
    for index in (0, 1, 4320):
        sequence[index]
    assert np.array_equal(sequence[4321], direct)
    assert sequence[4321].shape == (360, 480, 3) and sequence[4321].dtype == np.uint8


def test_synthetic_sequence_wraps_the_source_with_its_boxes():
    sequence = synthetic_sequence(4, length=12, size=(320, 240), distractors=2)
    assert len(sequence) == 12 and len(sequence.frames) == 12
    assert sequence.frames[0].shape == (240, 320, 3)
    assert np.array_equal(sequence.boxes, sequence.frames.boxes)
    assert sequence.name == "synthetic_0004"


def _library(classes: str) -> list:
    """Objects as load_object_library gives them, one flat colour each, with these class ids."""
    return [(np.full((40, 24, 3), 20 + 40 * i, np.uint8), np.full((40, 24), 255, np.uint8), class_id)
            for i, class_id in enumerate(classes)]


@pytest.mark.parametrize("seed", range(6))
def test_instance_distractors_are_other_objects_of_the_target_class(seed):
    """With ``instances`` each look-alike is another object of the target's class from the
    library (never the target itself, never another class); the scene is otherwise the one
    of copies, and without the option the look-alikes are copies of the target."""
    library = _library("aabbba")
    copies = SyntheticSequence(seed, length=20, objects=library)
    instances = SyntheticSequence(seed, length=20, objects=library, instances=True)
    target = next(i for i, obj in enumerate(library) if obj[0] is instances.patch)
    same_class = {i for i, obj in enumerate(library) if obj[2] == library[target][2]} - {target}
    looks = [next(i for i, obj in enumerate(library) if obj[0] is look) for look, _ in instances.looks[1:]]
    assert set(looks) <= same_class and len(looks) == 3
    assert all(look is copies.patch for look, _ in copies.looks)
    assert np.array_equal(copies.boxes, instances.boxes) and copies.patch is instances.patch
    assert np.array_equal(copies.background, instances.background)


def test_instance_distractors_fall_back_to_copies_when_the_class_has_one_object():
    library = _library("abc")
    sequence = SyntheticSequence(2, length=10, objects=library, instances=True)
    assert all(look is sequence.patch for look, _ in sequence.looks)
