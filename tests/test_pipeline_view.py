"""The teaching views of one tracked frame: the pipeline view, the "why this box" table and
the publication figures, checked against real :class:`~model.tracking.result.TrackResult`s of a
three-level network and of a one-level one (HNSE-Nano), each "with HE" and "without HE"."""
from __future__ import annotations

import csv
import dataclasses
import math
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("PyQt5")
pytest.importorskip("pytestqt")
from hnse_gui.figures import (CURVES_SIZE_IN, MAP_COLUMNS, export_heatmap_figure, export_score_curves, heatmap_figure,  # noqa: E402
                              heatmap_figure_size)
from hnse_gui.pipeline_view import PipelineView  # noqa: E402
from hnse_gui.why_box import WhyBoxTable  # noqa: E402
from model.core.config import load_config  # noqa: E402
from model.network import build_network  # noqa: E402
from model.tracking.tracker import Tracker  # noqa: E402

VARIANTS = ["with HE", "without HE"]
SMALL = dict(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, embed_channels=16, inspect=True)
MAP_PANELS = {
    "three": ("level2", "level3", "level4", "centerness", "penalty", "window", "final", "embed_dist"),
    "one": ("score", "centerness", "penalty", "window", "final", "embed_dist"),
}


def _frames() -> tuple[np.ndarray, np.ndarray]:
    """A textured frame with a red target, and the next one with the target moved."""
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (240, 320, 3)).astype(np.uint8), (0, 0), 3)
    first, second = texture.copy(), texture.copy()
    cv2.rectangle(first, (100, 80), (160, 130), (0, 0, 255), -1)
    cv2.rectangle(second, (106, 84), (166, 134), (0, 0, 255), -1)
    return first, second


def _randomise_heads(net) -> None:
    """Untrained heads give near-constant maps, whose ties np.argmax (best cell) and the
    candidates' sort break differently; random head weights and unequal fusion logits make
    the maps vary and the fusion weights tell the levels apart."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if "head" in name.split(".")[0] and parameter.dim() == 4:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        if getattr(net, "fusion", None) is not None:
            for logits in net.fusion.logits.values():
                logits.copy_(torch.tensor([0.6, 0.0, -0.6]))


def _track(tracker: Tracker):
    _randomise_heads(tracker.net)
    first, second = _frames()
    tracker.init(first, (100, 80, 60, 50))
    return tracker.track(second), tracker


def _nano(config_name: str) -> Tracker:
    config = load_config(f"resources/configs/{config_name}.yaml")
    net_config = dataclasses.replace(config.network, pretrained=False)
    return Tracker(build_network(net_config), dataclasses.replace(config, network=net_config), inspect=True)


@pytest.fixture(scope="module")
def tracked():
    """kind -> ({variant: TrackResult}, {variant: Tracker}) for kind "three" and "one"."""
    trackers = {
        "three": (Tracker.random(**SMALL), Tracker.random(he_head=False, **SMALL)),
        "one": (_nano("nano_he"), _nano("nano_nohe")),
    }
    out = {}
    for kind, pair in trackers.items():
        runs = [_track(tracker) for tracker in pair]
        out[kind] = ({v: r for v, (r, _) in zip(VARIANTS, runs)}, {v: t for v, (_, t) in zip(VARIANTS, runs)})
    return out


@pytest.mark.parametrize("kind", ["three", "one"])
def test_panels_show_exactly_what_the_result_carries(qtbot, tracked, kind):
    results, trackers = tracked[kind]
    view = PipelineView(VARIANTS)
    qtbot.addWidget(view)
    view.set_results(results)
    assert view.panels == ("exemplar", "search") + MAP_PANELS[kind]
    for variant, result in results.items():
        pipeline = result.pipeline
        np.testing.assert_array_equal(view.panel_image(variant, "exemplar"), pipeline.exemplar[..., ::-1])
        np.testing.assert_array_equal(view.panel_image(variant, "search"), pipeline.search[..., ::-1])
        assert view.marked_box(variant, "exemplar") == pytest.approx(pipeline.exemplar_box)
        assert view.marked_box(variant, "search") == pytest.approx(pipeline.box_in_search)
        for name in MAP_PANELS[kind]:
            shown = view.panel_image(variant, name)
            if name not in result.maps:  # embed_dist without an HE head
                assert shown is None and variant == "without HE" and name == "embed_dist"
                continue
            assert shown.shape == result.maps[name].shape
            np.testing.assert_array_equal(shown, result.maps[name])
            title = view.panel_title(variant, name)
            assert "Eq." in title or "Sec." in title
        assert view.marked_cell(variant) == pipeline.best_cell
        # the cell is marked on the search crop where Eq. 2 puts it: offset + stride * index
        sizes = trackers[variant].sizes
        row, col = pipeline.best_cell
        assert view.marked_search_point(variant) == pytest.approx(
            (sizes.offset + sizes.stride * col, sizes.offset + sizes.stride * row), abs=1e-6)
        if kind == "three":
            for level, weight in zip(("level2", "level3", "level4"), pipeline.fusion_weights["score"]):
                assert f"w = {weight:.3f}" in view.panel_title(variant, level)
                assert "Eq. 9" in view.panel_title(variant, level)
        else:
            assert pipeline.fusion_weights is None
            assert "single level" in view.panel_title(variant, "score")


def test_view_follows_the_network_and_empties_missing_variants(qtbot, tracked):
    view = PipelineView(VARIANTS)
    qtbot.addWidget(view)
    view.set_results(tracked["three"][0])
    view.set_results({"with HE": tracked["one"][0]["with HE"], "without HE": None})
    assert view.panels == ("exemplar", "search") + MAP_PANELS["one"]
    assert view.marked_cell("with HE") == tracked["one"][0]["with HE"].pipeline.best_cell
    for name in view.panels:
        assert view.panel_image("without HE", name) is None
    assert view.marked_cell("without HE") is None and view.marked_search_point("without HE") is None
    view.set_results({})
    assert view.panels == ()


@pytest.mark.parametrize("kind", ["three", "one"])
def test_why_box_table_marks_the_best_cells_candidate_with_its_factors(qtbot, tracked, kind):
    results, _ = tracked[kind]
    table = WhyBoxTable(VARIANTS, top=4)
    qtbot.addWidget(table)
    table.set_results(results)
    assert table.rowCount() == sum(min(4, len(r.candidates)) for r in results.values())
    row = 0
    for variant, result in results.items():
        winner = table.winner_row(variant)
        assert winner is not None
        assert table.row_cell(winner) == result.pipeline.best_cell
        for candidate in result.candidates[:4]:
            assert table.item(row, 0).text() == variant
            assert table.row_cell(row) == candidate.cell
            assert table.row_factors(row) == candidate.factors
            assert bool(table.item(row, table.columnCount() - 1).text()) == (row == winner)
            row += 1
        factors = table.row_factors(winner)
        assert set(factors) == {"score", "centerness", "penalty", "window", "he", "colour", "final"}
        assert factors["final"] == max(c.factors["final"] for c in result.candidates)


def test_heatmap_figure_writes_svg_and_png_of_the_paper_size(tmp_path, tracked):
    results = {"three levels": tracked["three"][0]["with HE"], "one level": tracked["one"][0]["without HE"],
               "not tracked": None}
    _, frame = _frames()
    svg = export_heatmap_figure(results, frame, tmp_path / "maps.svg")
    assert ET.parse(svg).getroot().tag.endswith("svg")
    png = export_heatmap_figure(results, frame, tmp_path / "maps.png", dpi=100)
    width, height = heatmap_figure_size(2)
    assert cv2.imread(str(png)).shape == (round(height * 100), round(width * 100), 3)
    with pytest.raises(ValueError):
        export_heatmap_figure(results, frame, tmp_path / "maps.jpg")
    with pytest.raises(ValueError):
        export_heatmap_figure({"none": None}, frame, tmp_path / "none.png")


def test_heatmap_figure_shows_each_variants_final_map_and_the_he_distance_where_it_has_one(tracked):
    results = {"with HE": tracked["one"][0]["with HE"], "without HE": tracked["one"][0]["without HE"]}
    assert "embed_dist" in results["with HE"].maps and "embed_dist" not in results["without HE"].maps
    _, frame = _frames()
    figure = heatmap_figure(results, frame, dpi=50)
    columns = [name for name, _, _ in MAP_COLUMNS]
    # the panels come first in figure.axes, in rows; the colour bars' axes after them
    grid = np.array(figure.axes[: 2 * (1 + len(columns))], dtype=object).reshape(2, 1 + len(columns))
    for row, result in enumerate(results.values()):
        for col, name in enumerate(columns, start=1):
            ax = grid[row, col]
            if name in result.maps:
                np.testing.assert_array_equal(ax.images[0].get_array(), result.maps[name])
            else:
                assert not ax.images and [t.get_text() for t in ax.texts] == ["no HE branch"]
    assert {"embed_dist", "final"} <= set(columns)


def test_score_curves_as_csv_have_one_row_per_frame_and_as_png_the_column_size(tmp_path):
    with_he = np.linspace(0.2, 0.9, 10)
    with_he[3] = np.nan
    scores = {"with HE": with_he, "without HE": np.full(8, 0.5)}
    path = export_score_curves(scores, tmp_path / "scores.csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["frame", "with HE", "without HE"]
    assert [int(r[0]) for r in rows[1:]] == list(range(10))
    assert rows[4][1] == "" and rows[9][2] == "" and rows[10][2] == ""  # no score: empty
    np.testing.assert_array_equal([float(r[1]) for r in rows[1:] if r[1]], with_he[np.isfinite(with_he)])
    png = export_score_curves(scores, tmp_path / "scores.png", dpi=100)
    assert cv2.imread(str(png)).shape == (round(CURVES_SIZE_IN[1] * 100), round(CURVES_SIZE_IN[0] * 100), 3)
    with pytest.raises(ValueError):
        export_score_curves(scores, tmp_path / "scores.txt")
    assert math.isnan(scores["with HE"][3])  # the caller's arrays are left alone


def test_the_search_panel_says_how_far_the_motion_prediction_moved_the_crop(qtbot):
    tracker = _nano("nano_he").with_track_config(motion_prediction=1.0)
    first, second = _frames()
    tracker.init(first, (100, 80, 60, 50))
    still = tracker.track(second)
    assert still.pipeline.search_shift == (0.0, 0.0)  # no velocity yet: the crop is centred on the last position
    last_centre = tracker.center.copy()
    moved = tracker.track(second)
    sx, sy, sw, sh = moved.search_box
    assert moved.pipeline.search_shift == pytest.approx((sx + sw / 2 - last_centre[0], sy + sh / 2 - last_centre[1]))
    assert any(moved.pipeline.search_shift)
    view = PipelineView(["with HE"])
    qtbot.addWidget(view)
    view.set_results({"with HE": still})
    assert "motion prediction" not in view.panel_title("with HE", "search")
    view.set_results({"with HE": moved})
    dx, dy = (round(v, 1) + 0.0 for v in moved.pipeline.search_shift)
    assert f"({dx:+.1f}, {dy:+.1f}) px ahead (motion prediction)" in view.panel_title("with HE", "search")
    tiny = dataclasses.replace(moved, pipeline=dataclasses.replace(moved.pipeline, search_shift=(-0.01, 0.3)))
    view.set_results({"with HE": tiny})
    assert "(+0.0, +0.3) px ahead" in view.panel_title("with HE", "search")  # no "-0.0"
