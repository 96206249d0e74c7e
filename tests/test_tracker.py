"""Online tracking (model/tracking/tracker.py, Sec. 3.5).

The network is untrained, so the frame <-> crop <-> score-map geometry is checked by
replacing its per-frame pass with maps that peak at a chosen cell and regress a known
box: the tracker must report that box in frame pixels, worked out here from the paper's
conventions (Eq. 2, Eq. 11) rather than through the tracker's own helpers. The real
network then runs on hard frames, where the tracker must never throw.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.core.config import Config, NetworkConfig, TrackConfig
from model.core.errors import InputError
from model.network import HNSENet
from model.tracking.tracker import Tracker
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

WIDTH, HEIGHT = 640, 480
EXEMPLAR, INSTANCE, STRIDE = 127, 255, 8


@pytest.fixture(scope="module")
def net() -> HNSENet:
    torch.manual_seed(0)
    return HNSENet(NetworkConfig())


def _textured_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    return np.kron(frame, np.ones((8, 8, 1), dtype=np.uint8))  # 8-pixel blocks: some structure


# --- geometry -----------------------------------------------------------------------------

def _window_side(w: float, h: float) -> float:
    """Side in frame pixels of the search crop for a target of w x h (Eq. 11 with the
    context p = (w + h) / 2, scaled from the exemplar to the instance)."""
    p = (w + h) / 2
    return math.sqrt((w + p) * (h + p)) * INSTANCE / EXEMPLAR


def _peaked_track(net: HNSENet, cell: tuple[int, int], ltrb_at_cell, other_size):
    """A stand-in for ``net.track``: foreground probability 1 at ``cell`` and 0.01
    elsewhere, center-ness 1, and the given ltrb distances (instance pixels) at the cell;
    other cells regress a box of ``other_size`` around their point."""
    size = net.sizes.score_size

    def track(x: torch.Tensor) -> dict:
        assert x.shape == (1, 3, INSTANCE, INSTANCE)
        score = torch.full((size, size), 0.01)
        score[cell] = 1.0
        ltrb = torch.empty(4, size, size)
        ltrb[0::2] = other_size[0] / 2
        ltrb[1::2] = other_size[1] / 2
        ltrb[:, cell[0], cell[1]] = torch.tensor(ltrb_at_cell, dtype=torch.float32)
        return {"score": score, "centerness": torch.ones(size, size), "ltrb": ltrb, "levels": [score] * 3,
                "embedding_features": None}

    return track


GEOMETRY_CASES = {
    # name: (initial box xywh, (row, column) of the peak, target offset from the cell point
    #        in crop pixels, target size as a multiple of the initial size)
    "middle": ((300.0, 200.0, 40.0, 60.0), (5, 20), (2.5, -3.0), 1.0),
    "small target": ((100.0, 380.0, 12.0, 10.0), (20, 3), (-1.0, 2.0), 1.2),
    "large target": ((150.0, 100.0, 300.0, 250.0), (10, 16), (0.0, 0.0), 0.9),
    "top-left border": ((0.0, 0.0, 30.0, 30.0), (10, 10), (1.0, 1.0), 1.1),
    "bottom-right border": ((600.0, 440.0, 40.0, 40.0), (15, 15), (-2.0, 0.5), 0.8),
}


@pytest.mark.parametrize("case", GEOMETRY_CASES)
def test_the_peak_cell_maps_back_to_the_target_in_frame_pixels(net, monkeypatch, case):
    initial, cell, offset, scale_change = GEOMETRY_CASES[case]
    config = Config(network=net.config, track=TrackConfig(window_influence=0.0, penalty_k=0.0, size_lr=1.0))
    tracker = Tracker(net, config)
    tracker.init(_textured_frame(), initial)

    # Where everything lies, from the paper's conventions.
    x0, y0, w0, h0 = initial
    cx0, cy0 = x0 + w0 / 2, y0 + h0 / 2
    side = _window_side(w0, h0)
    scale = INSTANCE / side  # crop pixels per frame pixel
    half = (INSTANCE - 1) / 2
    crop_start = (math.ceil(EXEMPLAR / STRIDE) - 7) // 2
    offset0 = (EXEMPLAR - 1) / 2 - STRIDE * crop_start  # Eq. 2 with the valid correlation
    row, column = cell
    point = np.array([offset0 + STRIDE * column, offset0 + STRIDE * row])  # the cell in the crop
    np.testing.assert_allclose(net.grid[:, row, column].numpy(), point)
    cell_in_frame = np.array([cx0, cy0]) + (point - half) / scale

    # The target: centred near the cell, with a new size.
    w1, h1 = w0 * scale_change, h0 * scale_change
    centre = cell_in_frame + np.array(offset) / scale
    unclipped = (centre[0] - w1 / 2, centre[1] - h1 / 2, w1, h1)
    left, top = max(unclipped[0], 0.0), max(unclipped[1], 0.0)  # the reported box is clipped to the frame
    expected = (left, top, min(unclipped[0] + w1, WIDTH) - left, min(unclipped[1] + h1, HEIGHT) - top)
    crop_x0, crop_y0 = (centre - [w1 / 2, h1 / 2] - [cx0, cy0]) * scale + half
    crop_x1, crop_y1 = (centre + [w1 / 2, h1 / 2] - [cx0, cy0]) * scale + half
    ltrb = (point[0] - crop_x0, point[1] - crop_y0, crop_x1 - point[0], crop_y1 - point[1])
    assert min(ltrb) > 0  # the cell lies inside the target, as a positive cell would
    monkeypatch.setattr(net, "track", _peaked_track(net, cell, ltrb, (w0 * scale, h0 * scale)))

    result = tracker.track(_textured_frame(1))
    np.testing.assert_allclose(result.box, expected, atol=1e-3)
    assert result.score == pytest.approx(1.0)
    np.testing.assert_allclose(result.search_box, (cx0 - side / 2, cy0 - side / 2, side, side), atol=1e-6)

    # search_box: crop pixel u spans [u - 1/2, u + 1/2] of INSTANCE pixels over the box.
    sx, sy, sw, sh = result.search_box
    np.testing.assert_allclose([sx + (point[0] + 0.5) * sw / INSTANCE, sy + (point[1] + 0.5) * sh / INSTANCE],
                               cell_in_frame, atol=1e-6)
    # map_box: a map drawn with one pixel per cell puts the cell's pixel centre on the cell.
    mx, my, mw, mh = result.map_box
    size = result.maps["score"].shape[0]
    map_centre = np.array([mx + (column + 0.5) * mw / size, my + (row + 0.5) * mh / size])
    np.testing.assert_allclose(map_centre, cell_in_frame, atol=1e-6)
    assert np.all(np.abs(centre - map_centre) < np.array([mw, mh]) / size / 2)  # the target's cell
    assert np.unravel_index(result.maps["final"].argmax(), result.maps["final"].shape) == cell

    best = result.candidates[0]
    np.testing.assert_allclose(best.box, unclipped, atol=1e-3)
    assert best.label == "positive" and best.iou == pytest.approx(1.0)
    # every other cell scores 0.01 of the peak: background, however near, is no candidate
    assert len(result.candidates) == 1


@pytest.mark.parametrize("motion_prediction", [0.0, 0.5, 1.0])
def test_motion_prediction_leads_the_search_crop_by_the_smoothed_velocity(net, monkeypatch, motion_prediction):
    from model.tracking.tracker import VELOCITY_SMOOTHING

    config = Config(network=net.config, track=TrackConfig(window_influence=0.0, penalty_k=0.0, size_lr=0.0,
                                                          motion_prediction=motion_prediction))
    tracker = Tracker(net, config)
    initial = (300.0, 200.0, 40.0, 60.0)
    scale = INSTANCE / _window_side(*initial[2:])  # size_lr 0: every crop has this scale
    w, h = initial[2] * scale, initial[3] * scale
    # the peak two cells right of and one below the crop centre: the target moves every frame
    centre_cell = net.sizes.score_size // 2
    monkeypatch.setattr(net, "track", _peaked_track(net, (centre_cell + 1, centre_cell + 2), (w / 2, h / 2, w / 2, h / 2),
                                                    (w, h)))
    for start in (initial, (200.0, 150.0, 40.0, 60.0)):  # a second init forgets the first run's velocity
        tracker.init(_textured_frame(), start)
        centre = np.array([start[0] + start[2] / 2, start[1] + start[3] / 2])
        velocity = np.zeros(2)
        for index in range(4):
            result = tracker.track(_textured_frame(index + 1))
            sx, sy, sw, sh = result.search_box
            np.testing.assert_allclose([sx + sw / 2, sy + sh / 2], centre + motion_prediction * velocity, atol=1e-6)
            x, y, bw, bh = result.box
            new_centre = np.array([x + bw / 2, y + bh / 2])
            velocity += VELOCITY_SMOOTHING * (new_centre - centre - velocity)
            centre = new_centre
        assert np.linalg.norm(velocity) > 5  # the target did move: the prediction was exercised


# --- hard frames --------------------------------------------------------------------------

def _check_result(result, width: int = WIDTH, height: int = HEIGHT) -> None:
    x, y, w, h = result.box
    assert np.isfinite(result.box).all() and math.isfinite(result.score) and 0 <= result.score <= 1
    assert 0 <= x and 0 <= y and x + w <= width and y + h <= height  # clipped to the frame
    assert w > 0 and h > 0
    for name in ("score", "final", "centerness", "level2", "level3", "level4"):
        assert np.isfinite(result.maps[name]).all(), name


def _moving_square(count: int) -> list[np.ndarray]:
    """A textured square that leaves the frame on the right, then an empty scene."""
    frames = []
    texture = _textured_frame(5)[:64, :64]
    for index in range(count):
        frame = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
        x = 520 + 90 * index
        if x < WIDTH:
            frame[200:264, x:min(x + 64, WIDTH)] = texture[:, :min(64, WIDTH - x)]
        frames.append(frame)
    return frames


HARD_CASES = {
    # name: (first frame, initial box, frames to track)
    "blank frames": (_textured_frame(), (300, 200, 50, 40), [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 2),
    "greyscale": (_textured_frame()[..., 0], (300, 200, 50, 40), [_textured_frame(2)[..., 1]] * 2),
    "target leaves the frame": (_moving_square(1)[0], (520, 200, 64, 64), _moving_square(4)[1:]),
    "2-pixel box": (_textured_frame(), (320, 240, 2, 2), [_textured_frame(3)] * 2),
    "box larger than the frame": (_textured_frame(), (-50, -40, 800, 600), [_textured_frame(4)] * 2),
    "box partly outside": (_textured_frame(), (-20, 450, 60, 60), [_textured_frame(4)] * 2),
}


@pytest.mark.parametrize("case", HARD_CASES)
def test_hard_frames_never_throw(net, case):
    first, box, frames = HARD_CASES[case]
    tracker = Tracker(net, Config(network=net.config))
    tracker.init(first, box)
    for frame in frames:
        _check_result(tracker.track(frame))


@pytest.mark.parametrize("box", [
    (float("nan"), 10, 20, 20), (10, 10, math.inf, 20), (10, 10, 0, 20), (10, 10, 20, -5),
    (WIDTH, 10, 20, 20), (10, HEIGHT + 5, 20, 20), (-30, 10, 30, 20), (10, -25, 20, 25),
])
def test_init_rejects_bad_boxes(net, box):
    tracker = Tracker(net, Config(network=net.config))
    with pytest.raises(InputError) as error:
        tracker.init(_textured_frame(), box)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("colour_rerank", [0.0, 2.0])
def test_colour_re_ranking_picks_the_look_alike_of_the_exemplar_colour(net, monkeypatch, colour_rerank):
    """Two equally shaped candidates, the stronger one blue, the other the red of the
    exemplar: without the colour cue the stronger wins, with it the red one."""
    from model.core.geometry import CropWindow, context_size

    size = net.sizes.score_size
    centre = size // 2
    strong, red_cell = (centre, centre + 3), (centre, centre - 3)  # 6 cells (48 px) apart: disjoint boxes
    box = (300.0, 200.0, 40.0, 40.0)
    first = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    first[200:240, 300:340] = (0, 0, 255)  # BGR red target
    config = Config(network=net.config, track=TrackConfig(colour_rerank=colour_rerank, window_influence=0.0))
    tracker = Tracker(net, config, inspect=True)
    tracker.init(first, box)
    # where the next search crop will lie, to paint each candidate's box in the frame
    window = CropWindow(320.0, 220.0, _window_side(40, 40), INSTANCE)
    half = 12.0  # ltrb of every cell: a 24 x 24 crop-pixel box around its point
    following = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for cell, colour in ((strong, (255, 0, 0)), (red_cell, (0, 0, 255))):
        cx, cy = (float(v) for v in net.grid[:, cell[0], cell[1]])
        x, y, w, h = window.box_to_frame((cx - half, cy - half, 2 * half, 2 * half))
        following[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = colour

    def two_peaks(x):
        score = torch.full((size, size), 0.01)
        score[strong], score[red_cell] = 0.9, 0.8
        return {"score": score, "centerness": torch.ones(size, size), "ltrb": torch.full((4, size, size), half),
                "levels": [score] * 3, "embedding_features": None}

    monkeypatch.setattr(tracker.backend, "track", two_peaks)
    result = tracker.track(following)
    assert result.pipeline.best_cell == (red_cell if colour_rerank > 0 else strong)
    colour_factors = {c.cell: c.factors["colour"] for c in result.candidates}
    if colour_rerank > 0:
        assert colour_factors[red_cell] > 0.6 and colour_factors[strong] < 0.2  # distances ~0.1 and ~1
    else:
        assert set(colour_factors.values()) == {1.0}


def test_init_rejects_a_frame_that_is_not_an_image(net):
    tracker = Tracker(net, Config(network=net.config))
    with pytest.raises(InputError):
        tracker.init(np.zeros((HEIGHT, WIDTH, 2), np.uint8), (10, 10, 20, 20))


@pytest.mark.parametrize("he_rerank, colour_rerank", [(0.0, 0.0), (0.5, 0.0), (0.5, 2.0)])
def test_pipeline_pieces_explain_the_chosen_box(net, he_rerank, colour_rerank):
    """With inspection on, the result carries the crops, fusion weights, penalty and
    window maps, and each candidate's factors recompose its final score; the arg-max
    cell is the reported one and its decoded box is the box the tracker moved to."""
    config = Config(network=net.config, track=TrackConfig(he_rerank=he_rerank, colour_rerank=colour_rerank))
    tracker = Tracker(net, config, inspect=True)
    frame = _textured_frame(3)
    tracker.init(frame, (300, 200, 40, 50))
    result = tracker.track(np.roll(frame, 4, axis=1))
    pipe = result.pipeline
    assert pipe.exemplar.shape == (EXEMPLAR, EXEMPLAR, 3) and pipe.search.shape == (INSTANCE, INSTANCE, 3)
    assert pipe.exemplar_box[2] > 0 and pipe.exemplar_box[3] > 0
    for name in ("score", "centerness", "ltrb"):
        weights = pipe.fusion_weights[name]
        assert len(weights) == 3 and sum(weights) == pytest.approx(1.0)
    final = result.maps["final"]
    assert pipe.best_cell == tuple(int(v) for v in np.unravel_index(np.argmax(final), final.shape))
    for name in ("penalty", "window"):
        assert result.maps[name].shape == final.shape
    assert ("rerank" in result.maps) == (he_rerank > 0 or colour_rerank > 0)
    influence = config.track.window_influence
    for candidate in result.candidates:
        f = candidate.factors
        recomposed = ((f["score"] * f["centerness"] * f["penalty"] * (1 - influence) + f["window"])
                      * f["he"] * f["colour"])
        assert recomposed == pytest.approx(f["final"], rel=1e-4, abs=1e-6)
        assert f["final"] == pytest.approx(float(final[candidate.cell]), rel=1e-5)
    assert result.candidates[0].cell == pipe.best_cell  # NMS keeps the best-scoring box first
    # the decoded box's centre, mapped to the frame, is where the tracker now stands
    x, y, w, h = pipe.box_in_search
    window_side = result.search_box[2]
    scale = INSTANCE / window_side
    cx = result.search_box[0] + (x + w / 2 + 0.5) / scale
    assert cx == pytest.approx(tracker.center[0], abs=1.0)


def test_re_ranking_takes_the_distances_the_embed_dist_map_already_has(net, monkeypatch):
    """Inspecting, the re-ranking embeds only the objects the embed_dist map left out, and
    picks the boxes a tracker that does not inspect picks."""
    config = Config(network=net.config, track=TrackConfig(he_rerank=1.0, he_min_ratio=0.0))
    inspecting = Tracker(net, config, inspect=True)
    plain = Tracker(net, config, inspect=False, backend=inspecting.backend)
    distance = inspecting.backend.embedding_distance
    calls = []
    monkeypatch.setattr(inspecting.backend, "embedding_distance",
                        lambda features, boxes: calls.append(len(boxes)) or distance(features, boxes))
    # a map that knows every cell: the re-ranking has nothing left to embed
    monkeypatch.setattr(inspecting, "_embedding_map", lambda features, flat_boxes, score: distance(
        features, flat_boxes).reshape(score.shape).numpy())
    frame = _textured_frame(3)
    for tracker in (inspecting, plain):  # the same exemplar for both
        tracker.init(frame, (300, 200, 40, 50))
    plain_calls = 0
    for shift in (4, 8, 12):
        moved = np.roll(frame, shift, axis=1)
        result = inspecting.track(moved)
        assert calls == []
        assert result.maps["embed_dist"].shape == result.maps["final"].shape
        plain_result = plain.track(moved)
        plain_calls += len(calls)
        calls.clear()
        assert plain_result.box == pytest.approx(result.box, abs=1e-3)
    assert plain_calls > 0  # the re-ranking did need distances: it had look-alikes to tell apart


def test_the_chosen_cell_leads_the_candidates_even_on_a_flat_map(net, monkeypatch):
    """Ties (an untrained network's flat map): the first NMS candidate is the arg-max cell."""
    size = net.sizes.score_size

    def flat(x):
        return {"score": torch.full((size, size), 0.5), "centerness": torch.ones(size, size),
                "ltrb": torch.full((4, size, size), 20.0), "levels": [torch.full((size, size), 0.5)] * 3,
                "embedding_features": None}

    tracker = Tracker(net, Config(network=net.config, track=TrackConfig(window_influence=0.0)), inspect=True)
    frame = _textured_frame(5)
    tracker.init(frame, (300, 200, 40, 40))
    monkeypatch.setattr(tracker.backend, "track", flat)
    result = tracker.track(frame)
    assert result.candidates[0].cell == result.pipeline.best_cell == (0, 0)
