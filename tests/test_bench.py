"""The benchmark (model/evaluation/bench.py, hnse_cli/bench.py): its measurements and its report.

The whole run is exercised on a tiny scale (a few frames, a 20-frame long video, the
application tracking one frame), with a ResNet-50 model whose heads are small so that
its ONNX export stays quick; the full run's numbers come from ``python main.py bench``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hnse_cli import bench as bench_cli
from model.evaluation import bench
from model.data.sequences import read_sequence
from model.data.sources import open_frames
from model.evaluation.evaluate import make_tracker
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

SEQUENCES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sequences"
needs_data = pytest.mark.skipif(not SEQUENCES.is_dir(), reason="shared data not found")


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch):
    """Exports go to a scratch cache shared by this module (and by the app it starts)."""
    monkeypatch.setenv("HNSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "onnx-cache"))


@pytest.fixture(scope="module")
def crossing():
    return read_sequence(SEQUENCES / "Crossing") if SEQUENCES.is_dir() else None


def test_timing_summarises_per_frame_times():
    summary = bench.timing([10.0, 20.0, 30.0, 40.0])
    assert summary["fps"] == pytest.approx(4 / 0.1)
    assert summary["ms_median"] == pytest.approx(25.0)
    assert summary["ms_p90"] == pytest.approx(37.0)
    with pytest.raises(ValueError):
        bench.timing([])


@needs_data
def test_clips_start_at_the_first_box(crossing):
    (clip,) = bench.clips_from_sequences([crossing], frames_per_clip=5)
    assert clip.name == "Crossing" and len(clip.frames) == 5
    assert clip.box == tuple(crossing.boxes[0])
    np.testing.assert_array_equal(clip.frames[4], crossing.frames[4])


@needs_data
def test_time_trackers_takes_turns_and_caps_frames(crossing):
    clips = bench.clips_from_sequences([crossing, crossing], frames_per_clip=6)
    trackers = {"kcf": make_tracker("opencv:KCF"), "capped": make_tracker("opencv:KCF")}
    times = bench.time_trackers(trackers, clips, {"capped": 3})
    assert len(times["kcf"]) == 2 * 5
    assert len(times["capped"]) == 3  # 2 frames of the first clip, 1 of the second
    assert all(t > 0 for t in times["kcf"] + times["capped"])


def test_record_run_keeps_runs_in_the_speed_section(tmp_path):
    record = tmp_path / "BENCHMARKS.md"
    bench_cli.record_run(record, "| first |", "python main.py bench")
    text = record.read_text()
    assert text.startswith("# Benchmarks") and "## Speed" in text and "| first |" in text
    # another engineer's section after ours: new runs still land in the Speed section
    record.write_text(text + "## Accuracy\n\n| tracker | AUC |\n")
    bench_cli.record_run(record, "| second |", "python main.py bench --quick")
    text = record.read_text()
    assert text.index("| first |") < text.index("| second |") < text.index("## Accuracy")
    assert "`python main.py bench --quick`" in text and text.count("## Speed") == 1
    assert text.rstrip().endswith("| tracker | AUC |")


def test_long_video_is_written_decoded_and_tracked(tmp_path):
    video = tmp_path / "long.avi"
    box = bench.write_synthetic_video(video, 30)
    with open_frames(video) as frames:
        assert len(frames) == 30 and frames.frame_size == (480, 360)
    rss = bench.long_video_rss(make_tracker("opencv:KCF"), video, box, baseline_frame=10)
    assert rss["frames"] == 30 and rss["fps"] > 0
    assert rss["growth_mb"] == pytest.approx(rss["rss_end_mb"] - rss["rss_baseline_mb"])


def test_child_peak_rss_is_the_child_s_own(tmp_path):
    allocate = "import numpy; a = numpy.ones(300 * 2**20 // 8); print(a.sum())"
    peak, code = bench.child_peak_rss_mb([sys.executable, "-c", allocate], timeout_s=60)
    assert code == 0 and peak > 300
    small, _ = bench.child_peak_rss_mb([sys.executable, "-c", "pass"], timeout_s=60)
    assert small < 100


def test_seconds_to_line_and_failures():
    assert bench.seconds_to_line([sys.executable, "-c", "print('ready')"], "ready", timeout_s=60) > 0
    with pytest.raises(Exception, match="without printing"):
        bench.seconds_to_line([sys.executable, "-c", "print('nope')"], "ready", timeout_s=60)


@needs_data
def test_tiny_run_reports_every_key(tmp_path, crossing):
    config = yaml.safe_load((bench_cli.CONFIGS / "paper_r50.yaml").read_text())
    config["network"].update(neck_channels=32, head_channels=32, tower_convs=1, embed_channels=16)
    small_r50 = tmp_path / "small_r50.yaml"
    small_r50.write_text(yaml.safe_dump(config))
    scale = bench_cli.Scale(frames_per_clip=3, clips=1, r50_frames=1, gui_frames_per_clip=2,
                            long_video_frames=20, demo_frames=1, startup_runs=1)
    report = bench_cli.run_benchmark([crossing], scale, r50_config=small_r50, log=lambda _: None)
    result = json.loads(json.dumps(report["json"]))  # plain JSON all through
    names = {"nano", "nano-nohe", "lite", "r50", "opencv:CSRT", "opencv:KCF", "opencv:NANO"}
    from model.tracking.nanotrack3 import default_weights

    if default_weights().is_file():
        names.add("nanotrack3")
    names |= {f"{model}-{backend}" for model in ("lite", "r50") for backend in ("eager", "torch")}
    assert set(result) == {"trackers", "maps_overhead_ms", "gui", "memory", "startup_s"}
    assert set(result["trackers"]) == names
    for name, row in result["trackers"].items():
        assert set(row) == {"fps", "ms_median", "ms_p90"}, name
        assert row["fps"] > 0 and 0 < row["ms_median"] <= row["ms_p90"], name
    assert set(result["gui"]) == {"fps_dual_with_maps", "fps_dual_headless"}
    assert all(value > 0 for value in result["gui"].values())
    assert set(result["memory"]) == {"peak_rss_mb", "rss_growth_mb_10k"}
    assert result["memory"]["peak_rss_mb"] > 100  # Qt + torch + two models
    assert result["startup_s"] > 0 and np.isfinite(result["maps_overhead_ms"])
    table = bench_cli.format_table(report)
    assert "| lite |" in table and "| nano |" in table and "Targets (trackers by median frame time):" in table
