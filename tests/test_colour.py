"""Colour histograms and their distance (model/tracking/colour.py)."""
from __future__ import annotations

import numpy as np
import pytest

from model.tracking.colour import COLOUR_BINS, bhattacharyya_distance, colour_histogram


def _image() -> np.ndarray:
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :40] = (0, 0, 255)  # BGR red left half
    image[:, 40:] = (255, 0, 0)  # blue right half
    return image


def test_a_histogram_is_normalised_over_the_box_alone():
    image = _image()
    left = colour_histogram(image, (0, 0, 40, 60))
    assert left.shape == (int(np.prod(COLOUR_BINS)),) and left.sum() == pytest.approx(1.0)
    assert np.count_nonzero(left) == 1  # one colour, one bin
    both = colour_histogram(image, (0, 0, 80, 60))
    assert sorted(both[both > 0]) == pytest.approx([0.5, 0.5])


def test_distance_is_zero_for_the_same_colours_and_one_for_disjoint_ones():
    image = _image()
    red_a, red_b = colour_histogram(image, (0, 0, 20, 30)), colour_histogram(image, (10, 20, 40, 60))
    blue = colour_histogram(image, (45, 0, 80, 60))
    assert bhattacharyya_distance(red_a, red_b) == pytest.approx(0.0, abs=1e-6)
    assert bhattacharyya_distance(red_a, blue) == pytest.approx(1.0)
    half = colour_histogram(image, (20, 0, 60, 60))
    assert 0.2 < bhattacharyya_distance(red_a, half) < 0.9


@pytest.mark.parametrize("box", [(-50, -50, -10, -10), (200, 200, 300, 300), (30, 30, 30, 30),
                                 (np.nan, 0, 10, 10)])
def test_boxes_outside_the_image_or_empty_still_give_a_histogram(box):
    histogram = colour_histogram(_image(), box)
    assert histogram.sum() == pytest.approx(1.0) and np.isfinite(histogram).all()
