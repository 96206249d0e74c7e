"""``python main.py bench``: speed and memory of the trackers and of the application.

    python main.py bench [--quick] [--json OUT.json]

Measured in one run, on the same frames (the first frames of each sequence under
``--data``), so that the ratios hold even on a busy machine:

* per-frame ``track`` time (median, p90) and fps, each tracker alone as the command line
  runs it (ONNX Runtime's workers spinning between operators), of the shipped HNSE-Nano model
  (``nano``: ``nano_he.pt``) and the earlier lite model (their weights when present, else
  untrained weights of the same architecture), the paper's ResNet-50 configuration
  (untrained), every inference backend of the lite and ResNet-50 models, NanoTrack v3
  with its own post-processing (``nanotrack3``, when its weights file is found) and
  OpenCV's CSRT, KCF and NanoTrack (v2);
* the extra time of the inspection maps (``inspect=True`` over ``False``, nano);
* the application's loop: both shipped variants (``nano_he``, ``nano_nohe``) tracking with the six heatmaps of the
  :class:`~hnse_gui.heatmaps.HeatmapGrid` drawn offscreen, against the same two models
  headless;
* the application's peak memory (a ``gui --demo`` run in a subprocess) and the memory
  growth while tracking a long synthetic video file;
* seconds from launching ``gui`` to its first frame on screen.

The table goes to stdout and, with the command and the date, into the "Speed" section
of ``BENCHMARKS.md``; ``--json`` writes the numbers.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "sequences"
WEIGHTS = REPO_ROOT / "resources" / "weights"
CONFIGS = REPO_ROOT / "resources" / "configs"
OPENCV_TRACKERS = ("opencv:CSRT", "opencv:KCF", "opencv:NANO")
EXTRA_BACKENDS = ("eager", "torch")  # timed besides each model's default backend
SPEED_HEADING = "## Speed"


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much a run measures."""

    frames_per_clip: int  # frames of each sequence every tracker times
    clips: int | None  # sequences used (None: all)
    r50_frames: int  # frames each ResNet-50 backend times, in all
    gui_frames_per_clip: int
    long_video_frames: int
    demo_frames: int
    startup_runs: int


FULL = Scale(frames_per_clip=60, clips=None, r50_frames=30, gui_frames_per_clip=40, long_video_frames=10_000,
             demo_frames=100, startup_runs=3)
QUICK = Scale(frames_per_clip=12, clips=3, r50_frames=6, gui_frames_per_clip=10, long_video_frames=1_000,
              demo_frames=10, startup_runs=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="fewer frames (a 1,000-frame long video instead of 10,000): under two minutes")
    parser.add_argument("--json", metavar="FILE", help="write the numbers to this JSON file")
    parser.add_argument("--data", metavar="DIR", default=str(DEFAULT_DATA),
                        help="folder of sequences to time on (default: ../shared/data/sequences)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and ONNX Runtime (default: torch's default)")
    parser.add_argument("--record", metavar="MD", default=str(REPO_ROOT / "BENCHMARKS.md"),
                        help="markdown file whose Speed section gets this run's table (default: BENCHMARKS.md)")
    parser.add_argument("--no-record", action="store_true", help="do not write the markdown file")


def run(args) -> int:
    import torch

    from model.data.sequences import read_dataset
    from model.core.errors import InputError

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    scale = QUICK if args.quick else FULL
    data = Path(args.data)
    sequences = read_dataset(data)[: scale.clips]
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    report = run_benchmark(sequences, scale, log=log)
    table = format_table(report)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(report["json"], indent=1) + "\n")
    if not args.no_record:
        command = "python main.py " + " ".join(sys.argv[sys.argv.index("bench"):] if "bench" in sys.argv
                                               else ["bench"])
        record_run(Path(args.record), table, command)
    return 0


# --- the models -------------------------------------------------------------------------

def shipped_tracker(model: str, inspect: bool, seed: int, exclusive: bool = True):
    """The shipped model ``model`` (e.g. "nano_he", "lite_nohe") with its default backend,
    or an untrained network of the architecture of ``resources/configs/<model>.yaml``.

    ``exclusive`` (see :func:`~model.tracking.inference.make_backend`): timed alone, as the
    command line runs it; the application loop, which runs two models a frame, is not."""
    from model.tracking.tracker import Tracker

    weights = WEIGHTS / f"{model}.pt"
    if weights.is_file():
        return (Tracker.from_checkpoint(weights, inspect=inspect, exclusive=exclusive),
                str(weights.relative_to(REPO_ROOT)))
    return _untrained(CONFIGS / f"{model}.yaml", inspect, seed, exclusive), f"untrained ({model}.yaml)"


def r50_tracker(config_path: Path = CONFIGS / "paper_r50.yaml"):
    """The paper's configuration with untrained weights, default backend, timed alone."""
    return _untrained(config_path, inspect=False, seed=0, exclusive=True)


def _untrained(config_path: Path, inspect: bool, seed: int, exclusive: bool = False):
    import torch

    from model.core.config import load_config
    from model.network import build_network
    from model.tracking.inference import make_backend
    from model.tracking.tracker import Tracker

    config = load_config(config_path)
    # No ImageNet file for ResNet-50 here (nor, maybe, NanoTrack v3's): timing does not depend on the values.
    network = dataclasses.replace(config.network, backbone_weights=None,
                                  pretrained=config.network.pretrained and config.network.backbone == "efficientnet_lite0")
    config = dataclasses.replace(config, network=network)
    torch.manual_seed(seed)
    net = build_network(network)
    return Tracker(net, config, inspect=inspect, backend=make_backend(net, net.cpu_backend, exclusive=exclusive))


def with_backend(tracker, backend: str, inspect: bool | None = None):
    """The same network and settings on another backend (or sharing this one's)."""
    from model.tracking.tracker import Tracker

    return Tracker(tracker.net, tracker.config, tracker.inspect if inspect is None else inspect, backend)


# --- the run ----------------------------------------------------------------------------

def run_benchmark(sequences, scale: Scale, r50_config: Path = CONFIGS / "paper_r50.yaml", log=print) -> dict:
    """Every measurement; returns ``{"json": the report's JSON, "notes": details for the table}``.

    ``r50_config`` is the ResNet-50 model's YAML (the tests give one with small heads).
    """
    import torch

    from model.evaluation.bench import clips_from_sequences, cpu_sample, others_cpu_share, paired_overhead_ms, time_trackers, timing
    from model.evaluation.evaluate import make_tracker

    start = cpu_sample()
    notes = {"threads": torch.get_num_threads(), "cpu": _cpu_name(), "scale": scale}
    clips = clips_from_sequences(sequences, scale.frames_per_clip + 1)
    notes["clips"] = [clip.name for clip in clips]

    log("loading models (the first ONNX export of a network takes a while; it is cached)")
    nano, notes["nano_weights"] = shipped_tracker("nano_he", inspect=False, seed=0)
    lite, notes["lite_weights"] = shipped_tracker("lite_he", inspect=False, seed=0)
    r50 = r50_tracker(r50_config)
    notes["r50_config"] = Path(r50_config).name
    notes["backend"] = lite.backend.name
    # the HE model's re-ranking and its embedding output cost time: the no-HE file beside it shows how much
    nano_nohe, notes["nano_nohe_weights"] = shipped_tracker("nano_nohe", inspect=False, seed=1)
    trackers = {"nano": nano, "nano-nohe": nano_nohe, "lite": lite, "r50": r50}
    for backend in EXTRA_BACKENDS:
        if backend != lite.backend.name:
            trackers[f"lite-{backend}"] = with_backend(lite, backend)
            trackers[f"r50-{backend}"] = with_backend(r50, backend)
    from model.tracking.nanotrack3 import default_weights

    if default_weights().is_file():
        trackers["nanotrack3"] = make_tracker("nanotrack3")
    for name in OPENCV_TRACKERS:
        trackers[name] = make_tracker(name)
    limits = {name: scale.r50_frames for name in trackers if name.startswith("r50")}
    _warm_up(trackers, clips[0])

    log(f"timing {len(trackers)} trackers on {sum(len(c.frames) - 1 for c in clips)} frames of {len(clips)} clips")
    times = time_trackers(trackers, clips, limits)
    report = {"trackers": {name: timing(ms) for name, ms in times.items()}}
    notes["frames"] = {name: len(ms) for name, ms in times.items()}
    notes["backends"] = {name: tracker.backend.name for name, tracker in trackers.items() if hasattr(tracker, "backend")}
    del trackers, r50
    gc.collect()

    log("inspection maps: inspect=True against inspect=False")
    report["maps_overhead_ms"] = paired_overhead_ms(nano, with_backend(nano, nano.backend, inspect=True), clips)

    log("application loop: both variants with the six heatmaps, and headless")
    gui_clips = [dataclasses.replace(clip, frames=clip.frames[: scale.gui_frames_per_clip + 1]) for clip in clips]
    del nano_nohe
    # the application's own trackers: two models a frame, their workers sleeping between passes
    variants = {name: shipped_tracker(model, inspect=True, seed=seed, exclusive=False)[0]
                for name, model, seed in (("with HE", "nano_he", 0), ("without HE", "nano_nohe", 1))}
    report["gui"] = {
        "fps_dual_with_maps": dual_with_heatmaps_fps(
            {name: with_backend(t, t.backend, inspect=True) for name, t in variants.items()}, gui_clips),
        "fps_dual_headless": dual_headless_fps(variants, gui_clips),
    }
    del variants
    gc.collect()

    log(f"memory: {scale.long_video_frames}-frame video headless, then the application's --demo")
    report["memory"] = {}
    notes["long_video"] = long_video(with_backend(nano, nano.backend, inspect=True), scale.long_video_frames)
    report["memory"]["rss_growth_mb_10k"] = notes["long_video"]["growth_mb"]
    report["memory"]["peak_rss_mb"] = app_peak_rss_mb(scale.demo_frames)

    log("start-up: launch to first frame")
    starts = [startup_seconds() for _ in range(scale.startup_runs)]
    report["startup_s"] = sorted(starts)[len(starts) // 2]
    notes["startup_runs"] = starts
    notes["others_cpu_share"] = others_cpu_share(start, cpu_sample())
    return {"json": report, "notes": notes}


def _warm_up(trackers: dict, clip) -> None:
    """One untimed init + two frames each: first calls allocate and pick kernels."""
    for tracker in trackers.values():
        tracker.init(clip.frames[0], clip.box)
        for frame in clip.frames[1:3]:
            tracker.track(frame)


def dual_headless_fps(variants: dict, clips) -> float:
    """Frames per second of both variants tracking every frame, no maps, no GUI."""
    from model.evaluation.bench import frames_per_second

    plain = {name: with_backend(t, t.backend, inspect=False) for name, t in variants.items()}

    def init(frame, box):
        for tracker in plain.values():
            tracker.init(frame, box)

    def step(frame):
        for tracker in plain.values():
            tracker.track(frame)

    return frames_per_second(step, clips, init)


def dual_with_heatmaps_fps(variants: dict, clips) -> float:
    """Frames per second of both variants tracking with every map, the application's
    :class:`~hnse_gui.heatmaps.HeatmapGrid` showing their results each frame (offscreen
    unless a display is set), events processed so that each frame is painted."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtWidgets

    from hnse_gui.app import create_application
    from hnse_gui.heatmaps import HeatmapGrid
    from model.evaluation.bench import frames_per_second

    app = create_application()
    grid = HeatmapGrid(list(variants))
    grid.resize(560, 480)  # its size in the application's default layout
    grid.show()
    app.processEvents()

    def init(frame, box):
        for tracker in variants.values():
            tracker.init(frame, box)

    def step(frame):
        grid.set_results({name: tracker.track(frame) for name, tracker in variants.items()})
        grid.repaint()  # paint now, as the application's event loop would before the next frame
        QtWidgets.QApplication.processEvents()

    try:
        return frames_per_second(step, clips, init)
    finally:
        grid.close()
        grid.deleteLater()
        QtWidgets.QApplication.processEvents()


def long_video(tracker, frames: int) -> dict:
    """RSS growth of ``tracker`` over a ``frames``-frame synthetic video file."""
    from model.evaluation.bench import long_video_rss, write_synthetic_video

    with tempfile.TemporaryDirectory(prefix="hnse-bench-") as folder:
        video = Path(folder) / "long.avi"
        box = write_synthetic_video(video, frames)
        return long_video_rss(tracker, video, box, baseline_frame=500)


def _app_command(*extra: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "main.py"), "gui", *extra]


def _app_env(folder: str) -> dict:
    """Offscreen, with settings and autosave/recovery files kept out of the user's home."""
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["XDG_DATA_HOME"] = env["XDG_CONFIG_HOME"] = folder
    env.setdefault("XDG_RUNTIME_DIR", folder)
    return env


def app_peak_rss_mb(demo_frames: int) -> float:
    """Peak RSS (MB) of the application tracking ``demo_frames`` frames of the sample
    with both variants and every map (``gui --demo``)."""
    from model.evaluation.bench import child_peak_rss_mb

    with tempfile.TemporaryDirectory(prefix="hnse-bench-") as folder:
        command = _app_command("--demo", "--frames", str(demo_frames), "--settings", f"{folder}/settings.ini")
        peak, _ = child_peak_rss_mb(command, timeout_s=600, env=_app_env(folder))
    return peak


def startup_seconds() -> float:
    """Seconds from launching the application on its sample to the first frame painted."""
    from hnse_cli.gui import FIRST_FRAME_LINE
    from model.evaluation.bench import seconds_to_line

    with tempfile.TemporaryDirectory(prefix="hnse-bench-") as folder:
        command = _app_command("--exit-after-first-frame", "--settings", f"{folder}/settings.ini")
        return seconds_to_line(command, FIRST_FRAME_LINE, timeout_s=300, env=_app_env(folder))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- the report -------------------------------------------------------------------------

def _median_fps(result: dict, name: str) -> float:
    return 1000.0 / result["trackers"][name]["ms_median"]


# Tracker targets are judged on median frame times: a neighbour process preempting a
# thread makes single frames very slow (eager torch most), which the mean-based fps keeps.
TARGETS = (
    ("nano <= 8 ms a frame", lambda r: r["trackers"]["nano"]["ms_median"] <= 8.0),
    ("nano no slower than 1.5 x nanotrack3", lambda r: "nanotrack3" not in r["trackers"] or
     r["trackers"]["nano"]["ms_median"] <= 1.5 * r["trackers"]["nanotrack3"]["ms_median"]),
    ("lite >= 30 fps headless", lambda r: _median_fps(r, "lite") >= 30),
    ("lite at least as fast as CSRT", lambda r: _median_fps(r, "lite") >= _median_fps(r, "opencv:CSRT")),
    ("both variants with all maps drawn >= 25 fps", lambda r: r["gui"]["fps_dual_with_maps"] >= 25),
    ("r50 >= 1.3 x r50-eager", lambda r: _median_fps(r, "r50") >= 1.3 * _median_fps(r, "r50-eager")),
)


def format_table(report: dict) -> str:
    """The run as markdown: the trackers' table, the application's numbers, the targets."""
    result, notes = report["json"], report["notes"]
    backends = notes["backends"]
    lines = [
        f"{notes['cpu']}, {notes['threads']} threads; nano weights: {notes['nano_weights']} "
        f"(nano-nohe: {notes['nano_nohe_weights']}); "
        f"lite weights: {notes['lite_weights']}; "
        f"r50: untrained {notes['r50_config']}; frames: {', '.join(notes['clips'])}",
        "",
        "| tracker | backend | fps | median ms | p90 ms | frames |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in result["trackers"].items():
        backend = backends.get(name, "opencv" if name.startswith("opencv:") else "torch eager")
        lines.append(f"| {name} | {backend} | {row['fps']:.1f} | {row['ms_median']:.1f} | "
                     f"{row['ms_p90']:.1f} | {notes['frames'][name]} |")
    long_video = notes["long_video"]
    gui = result["gui"]
    memory = result["memory"]
    lines += [
        "",
        "| measure | value |",
        "|---|---:|",
        f"| inspection maps (inspect=True minus False, nano HE), median ms/frame | {result['maps_overhead_ms']:.1f} |",
        f"| both variants + six heatmaps drawn, fps | {gui['fps_dual_with_maps']:.1f} |",
        f"| both variants headless, fps | {gui['fps_dual_headless']:.1f} |",
        f"| application peak RSS (gui --demo), MB | {memory['peak_rss_mb']:.0f} |",
        f"| RSS growth over a {long_video['frames']}-frame video (frame 500 to end), MB | "
        f"{memory['rss_growth_mb_10k']:.1f} |",
        f"| launch to first frame, s | {result['startup_s']:.2f} |",
        "",
        f"Other processes used {notes['others_cpu_share']:.0%} of the CPUs during the run"
        + (": eager torch (OpenMP threads wait for each other when one is preempted) suffers most, so its "
           "times, and ratios to them, are inflated." if notes["others_cpu_share"] > 0.1 else "."),
        "",
        "Targets (trackers by median frame time): " + "; ".join(f"{label}: {'met' if check(result) else 'NOT met'}" for label, check in TARGETS),
    ]
    return "\n".join(lines)


BENCHMARKS_HEADER = """# Benchmarks

Measured with `python main.py bench` (speed, memory) on the machine each entry names.
Numbers measured in one run share its load, so compare within a run.

"""


def record_run(path: Path, table: str, command: str) -> None:
    """Append the run (date, command, table) at the end of the file's Speed section,
    creating the file or the section when missing; other sections stay as they are."""
    entry = f"### {time.strftime('%Y-%m-%d %H:%M %Z')}\n\n`{command}`\n\n{table}\n\n"
    text = path.read_text() if path.is_file() else BENCHMARKS_HEADER
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SPEED_HEADING), None)
    if start is None:
        text = text.rstrip("\n") + f"\n\n{SPEED_HEADING}\n\n{entry}"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before = "".join(lines[:end]).rstrip("\n") + "\n\n"
        after = "".join(lines[end:])
        text = before + entry + after
    path.write_text(text)
