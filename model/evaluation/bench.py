"""Speed and memory measurements behind ``python main.py bench``.

Everything here measures one thing and returns plain numbers; :mod:`hnse_cli.bench`
chooses the models, runs the measurements in one process and writes the report.

* :func:`time_trackers`: per-frame ``track`` time of several trackers on the same
  frames, taking turns clip by clip, so that a background load slows all of them alike
  and their ratios stay fair. (Not frame by frame: the runtimes' worker threads keep
  spinning a moment after each call, which would slow whichever runtime runs next.)
* :func:`paired_overhead_ms`: the median per-frame extra time of one tracker over
  another on the same frames (the inspection maps' cost);
* :func:`long_video_rss`: RSS growth while tracking a long video file;
* :func:`write_synthetic_video`: such a file, rendered from a
  :class:`~model.data.synthetic.SyntheticSequence` and written with ``cv2.VideoWriter``
  so that the real decoder is exercised;
* :func:`child_peak_rss_mb`, :func:`seconds_to_line`: the application in a subprocess
  (peak memory of a scripted run, time from launch to its first frame).
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from model.data.sequences import Sequence
from model.core.errors import InputError


@dataclass
class Clip:
    """The frames a benchmark tracks: start on ``frames[0]`` from ``box``, track the rest."""

    name: str
    frames: list[np.ndarray]
    box: tuple[float, float, float, float]


def clips_from_sequences(sequences: Iterable[Sequence], frames_per_clip: int) -> list[Clip]:
    """From each sequence, ``frames_per_clip`` frames from its first present box on."""
    clips = []
    for sequence in sequences:
        present = np.flatnonzero(np.isfinite(sequence.boxes).all(axis=1))
        if not len(present):
            continue
        start = int(present[0])
        stop = min(len(sequence), start + frames_per_clip)
        frames = [sequence.frames[i] for i in range(start, stop)]
        clips.append(Clip(sequence.name, frames, tuple(float(v) for v in sequence.boxes[start])))
    return clips


def timing(ms: list[float]) -> dict[str, float]:
    """``fps`` (frames over the summed time), ``ms_median`` and ``ms_p90`` of per-frame times."""
    if not ms:
        raise ValueError("no frames were timed")
    values = np.asarray(ms, dtype=np.float64)
    return {"fps": float(1000.0 * len(values) / values.sum()), "ms_median": float(np.median(values)),
            "ms_p90": float(np.percentile(values, 90))}


def time_trackers(trackers: dict[str, object], clips: list[Clip],
                  frame_limits: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Per-frame ``track`` times (ms) of each tracker over ``clips``, in turns: every
    tracker tracks a clip before the next clip.

    ``init`` is not timed. ``frame_limits[name]`` caps how many frames that tracker
    times in all (a slow model gets the first frames of each clip only: the cap is
    shared out evenly over the clips).
    """
    limits = frame_limits or {}
    times: dict[str, list[float]] = {name: [] for name in trackers}
    for clip_index, clip in enumerate(clips):
        for name, tracker in trackers.items():
            share = _share(limits.get(name), len(clips), clip_index)
            if share <= 0:
                continue
            tracker.init(clip.frames[0], clip.box)
            for frame in clip.frames[1:share + 1]:
                start = time.perf_counter()
                tracker.track(frame)
                times[name].append(1000.0 * (time.perf_counter() - start))
    return times


def _share(limit: int | None, clips: int, index: int) -> int:
    """Frames clip ``index`` of ``clips`` gets out of ``limit`` (None: all of them)."""
    if limit is None:
        return sys.maxsize - 1
    return limit // clips + (1 if index < limit % clips else 0)


def paired_overhead_ms(base: object, extra: object, clips: list[Clip]) -> float:
    """Median over frames of (``extra``'s time - ``base``'s time) on the same frame, ms."""
    times = time_trackers({"base": base, "extra": extra}, clips)
    return float(np.median(np.asarray(times["extra"]) - np.asarray(times["base"])))


def frames_per_second(step: Callable[[np.ndarray], None], clips: list[Clip],
                      init: Callable[[np.ndarray, tuple], None]) -> float:
    """Frames per second of ``step(frame)`` over the clips (``init`` untimed per clip)."""
    elapsed, count = 0.0, 0
    for clip in clips:
        init(clip.frames[0], clip.box)
        start = time.perf_counter()
        for frame in clip.frames[1:]:
            step(frame)
        elapsed += time.perf_counter() - start
        count += len(clip.frames) - 1
    return count / elapsed if elapsed > 0 else float("nan")


# --- the machine's load -----------------------------------------------------------------

@dataclass(frozen=True)
class CpuSample:
    """CPU seconds the whole machine (``/proc/stat``) and this process with its reaped
    children have used, at ``wall`` seconds."""

    machine_busy: float
    own: float
    wall: float


def cpu_sample() -> CpuSample | None:
    """Now's :class:`CpuSample`; None where ``/proc/stat`` is missing (not Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return CpuSample(busy, own, time.monotonic())


def others_cpu_share(before: CpuSample | None, after: CpuSample | None) -> float:
    """Fraction of the machine's CPU capacity that *other* processes used between two
    samples (0: the benchmark had the machine to itself); NaN when unknown."""
    if before is None or after is None or after.wall <= before.wall:
        return float("nan")
    others = (after.machine_busy - before.machine_busy) - (after.own - before.own)
    return max(0.0, others) / ((after.wall - before.wall) * (os.cpu_count() or 1))


# --- long videos ------------------------------------------------------------------------

def write_synthetic_video(path: str | Path, length: int, seed: int = 0,
                          size: tuple[int, int] = (480, 360)) -> tuple[float, float, float, float]:
    """Write a ``length``-frame synthetic clip (MJPEG in AVI) to ``path``; returns the
    target's first box (x, y, w, h)."""
    from model.data.synthetic import SyntheticSequence

    sequence = SyntheticSequence(seed, length=length, size=size, distractors=3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    if not writer.isOpened():
        raise InputError(f"{path}: OpenCV cannot write an MJPEG video here")
    try:
        for index in range(length):
            writer.write(sequence[index])
    finally:
        writer.release()
    return tuple(float(v) for v in sequence.boxes[0])


def rss_mb() -> float:
    """This process's resident set size, MB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def long_video_rss(tracker, video: str | Path, box, baseline_frame: int = 500) -> dict[str, float]:
    """Track the whole ``video`` (decoded by :class:`~model.data.sources.VideoSource`) and
    report ``rss_baseline_mb`` (after ``baseline_frame``), ``rss_end_mb``, their difference
    ``growth_mb``, ``frames`` and ``fps``.

    Nothing is kept from frame to frame by the caller, so growth is the tracker's and the
    decoder's own.
    """
    from model.data.sources import open_frames

    gc.collect()
    baseline = None
    with open_frames(video) as frames:
        count = len(frames)
        baseline_frame = min(baseline_frame, count - 1)
        start = time.perf_counter()
        tracker.init(frames[0], box)
        for index in range(1, count):
            tracker.track(frames[index])
            if index == baseline_frame:
                baseline = rss_mb()
        elapsed = time.perf_counter() - start
    end = rss_mb()
    if baseline is None:  # a one-frame video
        baseline = end
    return {"rss_baseline_mb": baseline, "rss_end_mb": end, "growth_mb": end - baseline,
            "frames": count, "fps": (count - 1) / elapsed if elapsed > 0 else float("nan")}


# --- the application in a subprocess ----------------------------------------------------

def child_peak_rss_mb(command: list[str], timeout_s: float, env: dict | None = None) -> tuple[float, int]:
    """Run ``command``; return (its peak resident set size in MB, its exit code).

    The peak is the kernel's high-water mark ``VmHWM`` of the child, read while it
    runs (``ru_maxrss`` from ``wait4`` would not do: Linux carries the parent's
    high-water mark over into a forked child); where there is no ``/proc``, the
    sampled RSS. A child that fails raises :class:`InputError` with its last stderr line.
    """
    import psutil

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr_lines: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True)
    reader.start()  # a full stderr pipe would block the child
    status = Path(f"/proc/{process.pid}/status")
    peak_kb = 0
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        try:
            peak_kb = max(peak_kb, _high_water_kb(status) or psutil.Process(process.pid).memory_info().rss // 1024)
        except (OSError, psutil.Error):  # it has just exited
            pass
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.02)
    reader.join(timeout=5)
    process.stderr.close()
    if process.returncode != 0:
        last = stderr_lines[-1].decode(errors="replace").strip() if stderr_lines else ""
        raise InputError(f"{' '.join(command[1:4])}... exited with {process.returncode}"
                         f"{': ' + last if last else ''}")
    return peak_kb / 1024, process.returncode


def _high_water_kb(status: Path) -> int | None:
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def seconds_to_line(command: list[str], line: str, timeout_s: float, env: dict | None = None) -> float:
    """Seconds from launching ``command`` to it printing ``line`` on stdout (killed after
    ``timeout_s``)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killer = threading.Timer(timeout_s, process.kill)
    killer.start()
    try:
        for output in process.stdout:
            if output.strip() == line:
                return time.perf_counter() - start
        raise InputError(f"{' '.join(command[1:4])}... ended without printing {line!r} "
                         f"(exit code {process.wait()})")
    finally:
        killer.cancel()
        process.kill()  # the probe has said what it had to; a no-op once it has exited
        process.wait()
        process.stdout.close()
