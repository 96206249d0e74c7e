"""Pieces of the desktop application that need no window: colour scales, autosave paths."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("PyQt5")
from hnse_gui.autosave import RESOURCES, autosave_path, recovery_candidate, recovery_path  # noqa: E402
from hnse_gui.heatmaps import nice_ticks, shared_levels  # noqa: E402


@pytest.mark.parametrize("low, high, expected", [
    (0.0, 1.0, [0.0, 0.5, 1.0]),
    (0.0096, 0.0101, [0.0096, 0.0098, 0.0100]),
    (0.0, 0.0087, [0.0, 0.005]),
    (-1.2, 3.7, [0.0, 2.0]),
])
def test_nice_ticks_are_few_round_values_inside_the_range(low, high, expected):
    ticks = nice_ticks(low, high)
    np.testing.assert_allclose([value for value, _ in ticks], expected, atol=1e-12)
    assert all(low - 1e-12 <= value <= high + 1e-12 for value, _ in ticks)
    labels = [label for _, label in ticks]
    assert len(set(labels)) == len(labels)  # enough decimals to tell them apart


def test_shared_levels_cover_every_map_and_never_collapse():
    a = np.array([[0.1, 0.4], [np.nan, 0.2]], np.float32)
    b = np.array([[0.3, 0.9]], np.float32)
    assert shared_levels([a, None, b]) == pytest.approx((0.1, 0.9))
    assert shared_levels([np.zeros((3, 3), np.float32)]) == (0.0, 1.0)
    assert shared_levels([None, None]) == (0.0, 1.0)


def test_recovery_files_sit_beside_their_work(tmp_path):
    project = tmp_path / "p.h5"
    assert autosave_path(project, tmp_path / "fallback") == tmp_path / "p.autosave.h5"
    video = tmp_path / "clip.mp4"
    assert recovery_path(video, tmp_path / "fallback") == tmp_path / "clip.mp4.recovery.h5"
    assert recovery_candidate(None, video, tmp_path / "fallback") is None
    recovery_path(video, tmp_path / "fallback").write_bytes(b"x")
    assert recovery_candidate(None, video, tmp_path / "fallback") == tmp_path / "clip.mp4.recovery.h5"

    # a project's autosave counts only when it is newer than the project itself
    project.write_bytes(b"p")
    autosave_path(project, tmp_path / "fallback").write_bytes(b"a")
    os.utime(project, (1000, 1000))
    os.utime(autosave_path(project, tmp_path / "fallback"), (2000, 2000))
    assert recovery_candidate(project, video, tmp_path) == autosave_path(project, tmp_path)
    os.utime(project, (3000, 3000))
    assert recovery_candidate(project, video, tmp_path) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("where, name, prefix", [(recovery_path, "clip.mp4", "clip.mp4-"),
                                                 (autosave_path, "work.h5", "work-")])
def test_a_read_only_folder_sends_recovery_and_autosave_to_the_fallback(tmp_path, where, name, prefix):
    folder = tmp_path / "work"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        path = where(folder / name, tmp_path / "fallback")
    finally:
        folder.chmod(0o700)
    assert path.parent == tmp_path / "fallback" and path.name.startswith(prefix)


def test_the_shipped_sample_is_autosaved_in_the_fallback_not_in_resources(tmp_path):
    sample = RESOURCES / "sample"
    path = recovery_path(sample, tmp_path / "fallback")
    assert path.parent == tmp_path / "fallback" and path.name.startswith("sample-")
    assert autosave_path(RESOURCES / "sample.h5", tmp_path / "fallback").parent == tmp_path / "fallback"


def test_score_plot_covers_a_longer_video_opened_after_a_short_one(qtbot):
    pytest.importorskip("pytestqt")
    from hnse_gui.score_plot import ScorePlot

    plot = ScorePlot()
    qtbot.addWidget(plot)
    plot.set_frame_count(10)
    plot.set_frame_count(1000)  # the limits of the short video must not clamp the new range
    low, high = plot.getPlotItem().vb.viewRange()[0]
    assert low < 1 and high > 990


def test_score_plot_leaves_room_above_a_score_of_one(qtbot):
    """A confident tracker's curve (scores near 1) lies inside the plot, not on its edge."""
    pytest.importorskip("pytestqt")
    from hnse_gui.score_plot import ScorePlot

    plot = ScorePlot()
    qtbot.addWidget(plot)
    plot.resize(600, 150)
    plot.show()
    qtbot.waitExposed(plot)
    low, high = plot.getPlotItem().vb.viewRange()[1]
    assert low <= 0.0 and high >= 1.05


def test_heatmap_tooltips_explain_each_panel_and_the_hard_negative_black_centre(qtbot):
    pytest.importorskip("pytestqt")
    from hnse_gui.heatmaps import COLUMN_TITLES, HeatmapGrid

    grid = HeatmapGrid(["with HE", "without HE"])
    qtbot.addWidget(grid)
    for per_level in (False, True):
        grid.set_per_level(per_level)
        for col, name in enumerate(grid.columns()):
            tip = grid._titles[col].toolTip()
            assert tip and grid.images[1][col].toolTip() == tip and COLUMN_TITLES[name] in grid.toolTip()
    grid.set_per_level(False)
    hardneg = grid._titles[grid.columns().index("hardneg")].toolTip()
    assert "black centre" in hardneg and "zero" in hardneg and "chosen box" in hardneg
