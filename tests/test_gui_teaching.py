"""Teaching in the real window (pytest-qt, offscreen): the Pipeline dock follows the frames
(the step mode), the figure and score-curve exports, and the demo scenes."""
from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from hnse_gui.demo_scenes import DISTRACTORS, LENGTH, demo_scenes  # noqa: E402
from hnse_gui.document import Origin  # noqa: E402
from hnse_gui.figures import CURVES_SIZE_IN, heatmap_figure_size  # noqa: E402
from tests.test_gui import CROSSING, make_window, track, window  # noqa: E402,F401 (fixtures)

pytestmark = pytest.mark.skipif(not CROSSING.is_dir(), reason=f"development data missing: {CROSSING}")


def test_the_pipeline_dock_follows_the_frames_it_steps_over(qtbot, window):
    listed = {text: keys for rows in window.shortcut_table().values() for text, keys in rows}
    assert listed["Pipeline (step mode)"] == "P"
    assert list(listed.values()).count("P") == 1
    assert not window.pipeline_dock.isVisible()
    window.act_pipeline.trigger()
    qtbot.waitUntil(window.pipeline_dock.isVisible, timeout=2000)
    assert window.act_pipeline.isChecked()
    pipeline, why_box = window.views.pipeline, window.views.why_box
    assert pipeline.panels == () and why_box.rowCount() == 0  # frame 0: the keyframe, nothing tracked

    end = track(qtbot, window, +1, 3)
    assert (end.reason, end.frames_done) == ("done", 3)
    assert window.frame_index == 3
    seen = {}
    for frame in (3, 2, 1):  # step back over the tracked frames, then forward again
        if frame != 3:
            window.act_prev.trigger()
        assert window.frame_index == frame
        results = window.current_results()
        assert all(result is not None and result.pipeline is not None for result in results.values())
        assert pipeline.panels[:2] == ("exemplar", "search")
        for variant, result in results.items():
            assert pipeline.marked_cell(variant) == result.pipeline.best_cell
            np.testing.assert_array_equal(pipeline.panel_image(variant, "final"), result.maps["final"])
            assert why_box.row_cell(why_box.winner_row(variant)) == result.pipeline.best_cell
        seen[frame] = pipeline.panel_image("with HE", "search").copy()
    assert not np.array_equal(seen[1], seen[3])  # each frame's own search crop
    window.act_next.trigger()
    np.testing.assert_array_equal(pipeline.panel_image("with HE", "search"), seen[2])
    window.act_prev.trigger()
    window.act_prev.trigger()
    assert window.frame_index == 0 and pipeline.panels == ()  # back on the keyframe: no decision to show

    window.act_pipeline.trigger()  # hidden: left as it was, drawn again when shown
    assert not window.pipeline_dock.isVisible()
    window.act_next.trigger()
    assert pipeline.panels == ()
    window.act_pipeline.trigger()
    qtbot.waitUntil(lambda: pipeline.panels[:1] == ("exemplar",), timeout=2000)


def test_figure_and_score_curves_export_the_frame_and_the_track(qtbot, window, tmp_path):
    answers = []
    window.files.ask_save_path = lambda *args: answers.pop(0)
    window.act_export_figure.trigger()  # nothing tracked here yet: says so, writes nothing
    assert "no maps" in window.last_error
    track(qtbot, window, +1, 4)
    svg, png, curves, table = (tmp_path / name for name in ("maps.svg", "maps.png", "scores.png", "scores.csv"))
    answers[:] = [str(svg), str(png), str(curves), str(table)]
    window.act_export_figure.trigger()
    window.act_export_figure.trigger()
    window.act_export_scores.trigger()
    window.act_export_scores.trigger()
    assert answers == []
    assert ET.parse(svg).getroot().tag.endswith("svg")
    width, height = heatmap_figure_size(2)
    assert cv2.imread(str(png)).shape == (round(height * 300), round(width * 300), 3)
    assert cv2.imread(str(curves)).shape == (round(CURVES_SIZE_IN[1] * 300), round(CURVES_SIZE_IN[0] * 300), 3)
    with table.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["frame", "with HE", "without HE"]
    assert len(rows) == 1 + window.document.frame_count
    scores = window.document.track(window.current_track).variant_scores["with HE"]
    assert [float(r[1]) for r in rows[2:6]] == scores[1:5].tolist()
    assert rows[6][1] == ""  # an untracked frame: empty

    answers[:] = [str(tmp_path / "maps.jpg")]
    window.act_export_figure.trigger()
    assert "suffix" in window.last_error and not (tmp_path / "maps.jpg").exists()


def test_a_demo_scene_opens_with_its_ground_truth_and_first_box(qtbot, window, tmp_path):
    scenes = demo_scenes(3)
    assert [scene.name for scene in scenes] == ["synthetic_0500", "synthetic_0501", "synthetic_0502"]
    offered = []
    window.files.demo_cache_dir = lambda: tmp_path / "cache"
    window.files.ask_demo_scene = lambda descriptions: offered.extend(descriptions) or None
    window.act_open_demo.trigger()  # cancelled: the open work stays
    assert len(offered) == 8 and all(f"{DISTRACTORS} look-alikes" in text for text in offered)
    assert window.document.video_path == str(CROSSING)

    window.files.ask_demo_scene = lambda descriptions: 1
    window.act_open_demo.trigger()
    scene = scenes[1]
    folder = scene.folder(tmp_path / "cache")  # the folder the window opened, already written
    assert window.document.video_path == str(folder) and window.document.frame_count == LENGTH
    assert len(list((folder / "img").glob("*.jpg"))) == LENGTH
    np.testing.assert_allclose(window.session.reference_boxes, scene.sequence.boxes, atol=0.01)
    (track_id,) = window.document.tracks
    assert window.current_track == track_id and window.frame_index == 0
    assert window.document.track(track_id).origin[0] == Origin.MANUAL
    np.testing.assert_allclose(window.document.track(track_id).boxes[0], scene.sequence.boxes[0], atol=0.01)
    frame = window.session.source[10]
    assert np.abs(frame.astype(int) - scene.sequence.frames[10].astype(int)).mean() < 4  # the scene, as JPEG
    end = track(qtbot, window, +1, 2)
    assert (end.reason, end.frames_done) == ("done", 2)
