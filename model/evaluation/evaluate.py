"""One-pass evaluation (OPE): run trackers through sequences from their first box and score them.

Every tracker sits behind the same small interface as :class:`model.tracking.tracker.Tracker`:
``init(frame, box)`` then ``track(frame)`` returning an object with ``.box`` (x, y, w, h)
and ``.score``. OpenCV's trackers are wrapped by :class:`OpenCVTracker` to look the
same, so the HNSE model and the baselines go through one harness::

    factories = {name: tracker_factory(name) for name in ["opencv:CSRT", "hnse:weights.pt"]}
    reports = evaluate(factories, read_dataset("data/sequences"))
    reports["opencv:CSRT"].overall.success_auc

A tracker starts on the first frame whose ground-truth box is present, from that box
(the box is also its output for that frame, as in the OTB toolkit), and then sees
every later frame. Only the tracker's own ``init``/``track`` calls are timed. A
frame that cannot be decoded is skipped and counted: the tracker never sees it and
the metrics leave it out (see :mod:`model.evaluation.metrics` for the protocols).

:func:`restart_segments` adds temporal-robustness runs (OTB's TRE): the same sequence
started again from later frames. A tracker that loses a look-alike crossing in one run
may hold it in another after a tiny change (another thread count moves a 13-sequence
split by 0.01 through a single sequence), so the mean over starts is a steadier score
to choose settings by than one pass.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from model.data.sequences import Sequence
from model.data.sources import FrameDecodeError
from model.core.errors import InputError
from model.evaluation.metrics import (
    NORM_PRECISION_THRESHOLDS,
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    Metrics,
    overall_metrics,
    sequence_metrics,
)
from model.tracking.result import TrackResult

OPENCV_TRACKERS = {"CSRT": "TrackerCSRT", "KCF": "TrackerKCF", "MIL": "TrackerMIL", "NANO": "TrackerNano"}
RESTART_SEPARATOR = "@"  # "Couple@13": Couple tracked from its frame 13
MIN_SEGMENT_FRAMES = 5  # a restart with fewer present boxes after it is not run


def restart_segments(sequences: list[Sequence], restarts: int, max_frames: int | None = None) -> list[Sequence]:
    """Each sequence, then (``restarts`` > 1) the same sequence started again at frames
    ``round(i * N / restarts)`` for i = 1 .. restarts - 1, N its length or ``max_frames``
    if shorter (the frames an evaluation with that limit sees; the ground truth before the
    start hidden, so the run starts from that frame's box), named ``NAME@FRAME`` with
    FRAME 1-based. Restarts with fewer than :data:`MIN_SEGMENT_FRAMES` present boxes
    from their start on are left out."""
    if restarts < 1:
        raise InputError(f"restarts must be at least 1, got {restarts}")
    segments = []
    for sequence in sequences:
        segments.append(sequence)
        length = len(sequence.boxes) if max_frames is None else min(len(sequence.boxes), max_frames)
        present = ~np.isnan(sequence.boxes[:length]).any(axis=1)
        for i in range(1, restarts):
            start = round(i * length / restarts)
            if present[start:].sum() < MIN_SEGMENT_FRAMES:
                continue
            boxes = sequence.boxes.copy()
            boxes[:start] = np.nan
            segments.append(Sequence(f"{sequence.name}{RESTART_SEPARATOR}{start + 1}", sequence.frames, boxes))
    return segments


def base_sequence_name(run_name: str) -> str:
    """The sequence a run of :func:`restart_segments` belongs to."""
    return run_name.split(RESTART_SEPARATOR, 1)[0]


NANOTRACK_FILES = {"backbone": "nanotrack_backbone_sim.onnx", "neckhead": "nanotrack_head_sim.onnx"}
NANOTRACK_DIR_ENV = "HNSE_NANOTRACK_DIR"
DEFAULT_NANOTRACK_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "baselines" / "nanotrack"
TRACKER_NAMES_HELP = ("hnse:WEIGHTS_FILE[?SETTING=VALUE&...], nanotrack3[:WEIGHTS_FILE] or opencv:"
                      + "|".join(OPENCV_TRACKERS))


class SingleTargetTracker(Protocol):
    """What the harness needs of a tracker (:class:`model.tracking.tracker.Tracker` is one)."""

    def init(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> None: ...

    def track(self, frame: np.ndarray) -> TrackResult: ...


class OpenCVTracker:
    """An OpenCV tracker (``cv2.Tracker``) with the :class:`model.tracking.tracker.Tracker` interface.

    ``create`` makes a fresh ``cv2`` tracker; :meth:`init` calls it, so one wrapper can
    start over on any number of sequences. OpenCV boxes are integer rectangles. When
    the tracker reports a loss, the last box is kept with score 0 (the metrics need a
    box every frame); OpenCV trackers without a confidence (``getTrackingScore() < 0``)
    score 1 while they report success.
    """

    def __init__(self, create: Callable[[], cv2.Tracker]):
        self._create = create
        self._tracker: cv2.Tracker | None = None
        self._box = (0.0, 0.0, 0.0, 0.0)

    def init(self, frame: np.ndarray, box) -> None:
        x, y, w, h = (float(v) for v in box)
        left, top = round(x), round(y)
        rect = (left, top, max(1, round(x + w) - left), max(1, round(y + h) - top))
        self._tracker = self._create()
        self._tracker.init(frame, rect)
        self._box = (x, y, w, h)

    def track(self, frame: np.ndarray) -> TrackResult:
        if self._tracker is None:
            raise RuntimeError("track() called before init()")
        try:
            ok, rect = self._tracker.update(frame)
        except cv2.error:  # some trackers throw instead of reporting a loss (e.g. a box leaving the frame)
            ok = False
        if not ok:
            return TrackResult(box=self._box, score=0.0)
        self._box = tuple(float(v) for v in rect)
        confidence = float(self._tracker.getTrackingScore())
        return TrackResult(box=self._box, score=min(confidence, 1.0) if confidence >= 0 else 1.0)


def _opencv_constructor(kind: str, nanotrack_dir: str | Path | None) -> Callable[[], cv2.Tracker]:
    tracker_class = getattr(cv2, OPENCV_TRACKERS[kind], None)
    if tracker_class is None:
        raise InputError(f"this OpenCV ({cv2.__version__}) has no cv2.{OPENCV_TRACKERS[kind]}; "
                         "install opencv-contrib-python")
    if kind != "NANO":
        return tracker_class.create
    folder = Path(nanotrack_dir or os.environ.get(NANOTRACK_DIR_ENV) or DEFAULT_NANOTRACK_DIR)
    params = cv2.TrackerNano_Params()
    for field, file_name in NANOTRACK_FILES.items():
        if not (folder / file_name).is_file():
            raise InputError(f"{folder / file_name}: NanoTrack model file not found "
                             f"(set {NANOTRACK_DIR_ENV} to the folder holding {' and '.join(NANOTRACK_FILES.values())})")
        setattr(params, field, str(folder / file_name))
    return lambda: tracker_class.create(params)


def tracker_factory(name: str, *, nanotrack_dir: str | Path | None = None) -> Callable[[], SingleTargetTracker]:
    """A function making a ready tracker for ``name``: ``hnse:WEIGHTS_FILE`` (with
    ``?SETTING=VALUE&...`` tracking settings overriding the file's, e.g.
    ``hnse:nano_he.pt?he_rerank=0``),
    ``nanotrack3`` (NanoTrack v3 with its own post-processing; ``nanotrack3:FILE`` names
    its weights, default :func:`model.tracking.nanotrack3.default_weights`) or
    ``opencv:CSRT|KCF|MIL|NANO``.

    The name is checked, and weights loaded, now, so that a bad name fails before any
    tracking. The HNSE tracker is loaded once and reused (its ``init`` starts it over);
    each OpenCV tracker is made anew. ``nanotrack_dir`` (else ``$HNSE_NANOTRACK_DIR``,
    else ``shared/data/baselines/nanotrack`` beside the repository) holds NanoTrack's
    two ONNX files.
    """
    kind, _, argument = name.partition(":")
    if kind == "hnse" and argument:
        argument, _, overrides = argument.partition("?")
        weights = Path(argument)
        if not weights.is_file():
            raise InputError(f"{weights}: no such weights file (tracker {name!r})")
        from model.tracking.tracker import Tracker  # torch loads only when an HNSE model is asked for

        # trackers run one after another, so each has the CPUs to itself
        tracker = Tracker.from_checkpoint(weights, inspect=False, exclusive=True)
        if overrides:
            tracker = tracker.with_track_config(**track_overrides(overrides, name))
        return lambda: tracker
    if kind == "nanotrack3":
        from model.tracking.nanotrack3 import NanoTrack3Tracker

        tracker = NanoTrack3Tracker(argument or None)
        return lambda: tracker
    if kind == "opencv" and argument.upper() in OPENCV_TRACKERS:
        create = _opencv_constructor(argument.upper(), nanotrack_dir)
        return lambda: OpenCVTracker(create)
    raise InputError(f"unknown tracker {name!r}; expected {TRACKER_NAMES_HELP}")


def track_overrides(text: str, name: str) -> dict:
    """``window_influence=0.3&he_rerank=0`` -> TrackConfig changes, checked by field and type."""
    import dataclasses

    from model.core.config import TrackConfig

    fields = {f.name: f.type for f in dataclasses.fields(TrackConfig)}
    changes = {}
    for item in text.split("&"):
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise InputError(f"tracker {name!r}: {item!r} is not SETTING=VALUE with a tracking setting "
                             f"({', '.join(fields)})")
        try:
            changes[key] = int(value) if fields[key] in (int, "int") else float(value)
        except ValueError:
            raise InputError(f"tracker {name!r}: {key} needs a number, not {value!r}") from None
    return changes


def make_tracker(name: str, *, nanotrack_dir: str | Path | None = None) -> SingleTargetTracker:
    """One tracker for ``name`` (see :func:`tracker_factory`)."""
    return tracker_factory(name, nanotrack_dir=nanotrack_dir)()


@dataclass
class SequenceRun:
    """One tracker on one sequence: its (N, 4) ``boxes`` and (N,) ``scores`` (NaN on
    frames it did not see), the frames that failed to decode, its time, and its metrics."""

    name: str
    boxes: np.ndarray
    scores: np.ndarray
    init_index: int | None
    failed_frames: list[int]
    tracker_calls: int
    tracker_seconds: float
    metrics: Metrics

    @property
    def fps(self) -> float:
        return self.tracker_calls / self.tracker_seconds if self.tracker_seconds > 0 else float("nan")


@dataclass
class TrackerReport:
    """One tracker over a dataset: its runs and the dataset metrics."""

    name: str
    runs: list[SequenceRun]
    overall: Metrics

    @property
    def frames(self) -> int:
        return sum(run.tracker_calls for run in self.runs)

    @property
    def failed_frames(self) -> int:
        return sum(len(run.failed_frames) for run in self.runs)

    @property
    def fps(self) -> float:
        seconds = sum(run.tracker_seconds for run in self.runs)
        return self.frames / seconds if seconds > 0 else float("nan")


Progress = Callable[[str, str, int, int], None]  # (tracker, sequence, frames done, frames in sequence)


def run_sequence(
    tracker: SingleTargetTracker,
    sequence: Sequence,
    *,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SequenceRun:
    """Track ``sequence`` (its first ``max_frames`` frames) one pass from its first present box."""
    count = len(sequence) if max_frames is None else min(len(sequence), max_frames)
    gt = sequence.boxes[:count]
    boxes = np.full((count, 4), np.nan)
    scores = np.full(count, np.nan)
    failed: list[int] = []
    init_index, calls, seconds, frame_size = None, 0, 0.0, None
    present = np.flatnonzero(~np.isnan(gt).any(axis=1))
    for index in range(int(present[0]) if present.size else count, count):
        try:
            frame = sequence.frames[index]
        except FrameDecodeError:
            failed.append(index)
            continue
        if init_index is None:
            if np.isnan(gt[index]).any():
                continue  # the first present frame did not decode: start at the next present one
            start = time.perf_counter()
            tracker.init(frame, tuple(gt[index]))
            seconds += time.perf_counter() - start
            boxes[index], scores[index] = gt[index], 1.0
            init_index, frame_size = index, (frame.shape[1], frame.shape[0])
        else:
            start = time.perf_counter()
            result = tracker.track(frame)
            seconds += time.perf_counter() - start
            boxes[index], scores[index] = result.box, result.score
        calls += 1
        if progress is not None:
            progress(index + 1, count)
    evaluated = np.ones(count, dtype=bool)
    evaluated[failed] = False
    metrics = sequence_metrics(boxes, gt, init_index=init_index, evaluated=evaluated, frame_size=frame_size)
    return SequenceRun(sequence.name, boxes, scores, init_index, failed, calls, seconds, metrics)


def evaluate(
    trackers: dict[str, Callable[[], SingleTargetTracker]],
    sequences: list[Sequence],
    *,
    max_frames: int | None = None,
    progress: Progress | None = None,
) -> dict[str, TrackerReport]:
    """Run every tracker (a factory called once per sequence) on every sequence."""
    reports = {}
    for tracker_name, factory in trackers.items():
        runs = []
        for sequence in sequences:
            report_frame = None if progress is None else functools.partial(progress, tracker_name, sequence.name)
            runs.append(run_sequence(factory(), sequence, max_frames=max_frames, progress=report_frame))
        reports[tracker_name] = TrackerReport(tracker_name, runs, overall_metrics([run.metrics for run in runs]))
    return reports


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _summary(metrics: Metrics, fps: float, frames: int, failed: int) -> dict:
    summary = {name: _finite_or_none(value) for name, value in metrics.scores().items()}
    summary.update(fps=_finite_or_none(fps), frames=frames, failed_frames=failed)
    return summary


def reports_to_json(reports: dict[str, TrackerReport]) -> dict:
    """Plain data for ``json.dump`` (NaN written as null): per tracker the overall scores
    with the curves, and per sequence the scores."""
    trackers = {}
    for name, report in reports.items():
        overall = _summary(report.overall, report.fps, report.frames, report.failed_frames)
        overall.update(
            success_curve=[_finite_or_none(v) for v in report.overall.success],
            precision_curve=[_finite_or_none(v) for v in report.overall.precision],
            norm_precision_curve=[_finite_or_none(v) for v in report.overall.norm_precision],
        )
        sequences = {
            run.name: {**_summary(run.metrics, run.fps, run.tracker_calls, len(run.failed_frames)),
                       "init_frame": run.init_index, "failed_frame_indices": run.failed_frames}
            for run in report.runs
        }
        trackers[name] = {"overall": overall, "sequences": sequences}
    return {
        "thresholds": {
            "success_iou": np.round(SUCCESS_THRESHOLDS, 6).tolist(),
            "precision_px": np.round(PRECISION_THRESHOLDS, 6).tolist(),
            "norm_precision": np.round(NORM_PRECISION_THRESHOLDS, 6).tolist(),
        },
        "trackers": trackers,
    }


def plot_curves(reports: dict[str, TrackerReport], folder: str | Path) -> list[Path]:
    """Write ``success.png``, ``precision.png`` and ``norm_precision.png`` into ``folder``:
    one curve per tracker, its score in the legend, best first."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = [
        ("success.png", "Success plot (one pass)", "Overlap threshold", SUCCESS_THRESHOLDS,
         lambda m: m.success, lambda m: m.success_auc, "AUC"),
        ("precision.png", "Precision plot (one pass)", "Location error threshold (px)", PRECISION_THRESHOLDS,
         lambda m: m.precision, lambda m: m.precision_20, "P@20"),
        ("norm_precision.png", "Normalised precision plot (one pass)", "Normalised location error threshold",
         NORM_PRECISION_THRESHOLDS, lambda m: m.norm_precision, lambda m: m.norm_precision_20, "P@0.2"),
    ]
    written = []
    for file_name, title, xlabel, thresholds, curve, score, score_name in plots:
        figure = Figure(figsize=(6, 4.5), dpi=100)
        FigureCanvasAgg(figure)  # Agg canvas, not pyplot: no global backend, safe beside the Qt GUI
        axes = figure.add_subplot()
        ranked = sorted(reports.values(), key=lambda r: np.nan_to_num(score(r.overall), nan=-1.0), reverse=True)
        for report in ranked:
            axes.plot(thresholds, curve(report.overall), linewidth=2,
                      label=f"{report.name} [{score_name} {score(report.overall):.3f}]")
        axes.set(title=title, xlabel=xlabel, ylabel="Fraction of frames",
                 xlim=(thresholds[0], thresholds[-1]), ylim=(0, 1.0))
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower left" if file_name == "success.png" else "lower right", fontsize=8)
        figure.tight_layout()
        figure.savefig(folder / file_name)
        written.append(folder / file_name)
    return written
