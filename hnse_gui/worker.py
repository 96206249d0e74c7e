"""The tracking worker: one long-lived thread that owns the trackers and a frame decoder.

The GUI never calls the network itself. :class:`TrackingThread` starts one QThread for
the whole session and moves a :class:`TrackingWorker` into it; the window talks to it
through queued signals (:meth:`TrackingThread.open_source`,
:meth:`TrackingThread.load_models`, :meth:`TrackingThread.run`) and hears back through
the worker's signals, which carry plain data only: :class:`FrameStep` (per track of the
run, the :class:`~model.tracking.result.TrackResult` of every tracker on one frame) and
:class:`RunEnd`. The worker never touches a widget.

A run tracks one or more tracks over the same frames: each frame is decoded once and
every track still going is stepped with its own tracker instances (a tracker holds the
state of one target), so a track that stops on a low score leaves the others going.

Stopping must work at once, while the worker's event loop is busy inside a run, so
it is a :class:`threading.Event` the GUI sets directly (:meth:`TrackingThread.stop`);
the run checks it between frames.

torch and the model are imported inside the worker thread, on the first
:meth:`TrackingWorker.load_models`, so the window shows its first frame before any
weights are read.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PyQt5 import QtCore

from model.core.errors import HNSEError
from model.tracking.result import Box, TrackResult


@dataclass(frozen=True)
class VariantSpec:
    """One model variant: a name shown in the GUI and where its weights come from.

    ``weights`` is a checkpoint file; when it is None or missing the variant is a
    :meth:`Tracker.random` network (``he_head``, ``seed``, and ``network``: pairs of
    :class:`~model.core.config.NetworkConfig` fields to override), for use before trained
    weights exist.
    """

    name: str
    weights: str | None
    he_head: bool
    seed: int = 0
    network: tuple[tuple[str, object], ...] = ()

    def describe(self) -> str:
        if self.weights and Path(self.weights).is_file():
            return f"{self.name}: {Path(self.weights).name}"
        return f"{self.name}: untrained (random weights)"


# Trackers a run may use besides the model variants, by the name the GUI shows, as
# model.evaluation.evaluate.make_tracker names them; they give boxes and scores but no maps.
OTHER_TRACKERS = {"NanoTrack v3": "nanotrack3", "OpenCV CSRT": "opencv:CSRT"}


@dataclass(frozen=True)
class TrackStart:
    """One track of a run: its id, its box on the run's first frame, and its MANUAL
    boxes in the run's frames, on which the run re-initialises the track's trackers
    instead of tracking them."""

    track_id: int
    box: Box
    keyframes: dict[int, Box] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    """Track ``tracks`` from ``start_frame`` in ``direction``, each with its own trackers.

    ``max_frames`` bounds the number of frames tracked (None: until stopped or the end
    of the video). A track stops by itself after a frame whose first-tracker score is
    below ``score_threshold``; the others go on. ``trackers`` names the trackers that
    run (model variants or :data:`OTHER_TRACKERS`), the first one's boxes becoming the
    track's; empty: every model variant. ``track_settings`` (``TrackConfig`` field, value)
    pairs change the model variants' tracking settings for this run only (e.g. the
    motion prediction for video with large motion between frames).
    """

    run_id: int
    tracks: tuple[TrackStart, ...]
    start_frame: int
    direction: int = 1
    max_frames: int | None = None
    score_threshold: float = 0.0
    trackers: tuple[str, ...] = ()
    track_settings: tuple[tuple[str, float], ...] = ()


@dataclass
class FrameStep:
    """What every tracker found on one frame of a run: ``results[track id][tracker name]``,
    for the tracks tracked on this frame (not those re-initialised on a keyframe there)."""

    run_id: int
    frame_index: int
    results: dict[int, dict[str, TrackResult]]
    frames_done: int
    fps: float


@dataclass
class RunEnd:
    """Why a run ended: ``"done"`` (frame budget spent), ``"end_of_video"``, ``"stopped"``,
    ``"low_score"`` (every track stopped on a low score, the last at ``last_frame``),
    ``"decode_failed"`` (``last_frame`` could not be decoded) or ``"error"`` (``message``
    says what). ``low_scores``: the tracks that stopped on a low score, by id, with the
    frame each stopped on."""

    run_id: int
    reason: str
    last_frame: int
    frames_done: int
    message: str = ""
    low_scores: dict[int, int] = field(default_factory=dict)


@dataclass
class RunningTrack:
    """A track in a run, with the trackers that follow it (by name)."""

    start: TrackStart
    trackers: dict[str, object]


class TrackingWorker(QtCore.QObject):
    """Lives in the tracking thread; every slot runs there."""

    modelsReady = QtCore.pyqtSignal(list)  # [VariantSpec.describe(), ...]
    othersAvailable = QtCore.pyqtSignal(list)  # the names of OTHER_TRACKERS that can run here
    failed = QtCore.pyqtSignal(str)  # a one-line error outside a run
    stepped = QtCore.pyqtSignal(object)  # FrameStep
    finished = QtCore.pyqtSignal(object)  # RunEnd

    def __init__(self, stop_event: threading.Event, torch_threads: int | None = None):
        super().__init__()
        self._stop = stop_event
        self._torch_threads = torch_threads
        self._specs: list[VariantSpec] = []  # the model variants loaded
        # trackers by name, model variants' and OTHER_TRACKERS', made as runs need them:
        # as many instances as the most tracks one run has followed, each with its own state
        self._pools: dict[str, list] = {}
        self._source = None

    @QtCore.pyqtSlot(str)
    def open_source(self, path: str) -> None:
        from model.data.sources import open_frames

        if self._source is not None:
            self._source.close()
        try:
            self._source = open_frames(path)
        except HNSEError as error:
            self._source = None
            self.failed.emit(str(error))

    @QtCore.pyqtSlot(list)
    def load_models(self, specs: list[VariantSpec]) -> None:
        try:
            self._load(specs)
        except HNSEError as error:
            self.failed.emit(str(error))
            return
        except Exception as error:  # noqa: BLE001 - a bug must not take the user's work down with it
            traceback.print_exc()
            self.failed.emit(f"loading the models failed: {type(error).__name__}: {error}")
            return
        from model.tracking.nanotrack3 import default_weights

        self.othersAvailable.emit([name for name in OTHER_TRACKERS
                                   if name != "NanoTrack v3" or default_weights().is_file()])
        self.modelsReady.emit([spec.describe() for spec in specs])

    def _load(self, specs: list[VariantSpec]) -> None:
        if specs and list(specs) == self._specs:
            return
        import torch

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        pools = {spec.name: [self._model_tracker(spec)] for spec in specs}
        self._specs, self._pools = list(specs), pools

    @staticmethod
    def _model_tracker(spec: VariantSpec):
        from model.tracking.tracker import Tracker

        if spec.weights and Path(spec.weights).is_file():
            return Tracker.from_checkpoint(spec.weights)
        return Tracker.random(he_head=spec.he_head, seed=spec.seed, **dict(spec.network))

    @QtCore.pyqtSlot(object)
    def run(self, request: RunRequest) -> None:
        try:
            end = self._run(request)
        except HNSEError as error:
            end = RunEnd(request.run_id, "error", request.start_frame, 0, str(error))
        except Exception as error:  # noqa: BLE001 - the window must stay usable; the trace goes to stderr
            traceback.print_exc()
            end = RunEnd(request.run_id, "error", request.start_frame, 0, f"{type(error).__name__}: {error}")
        self.finished.emit(end)

    def _run(self, request: RunRequest) -> RunEnd:
        from model.data.sources import FrameDecodeError

        low_scores: dict[int, int] = {}

        def end(reason: str, frame: int, message: str = "") -> RunEnd:
            return RunEnd(request.run_id, reason, frame, done, message, low_scores)

        done = 0
        if self._source is None:
            return end("error", request.start_frame, "no video is open")
        if not self._specs:
            return end("error", request.start_frame, "no model is loaded")
        names = request.trackers or tuple(spec.name for spec in self._specs)
        instances = {name: [self._with_settings(tracker, request.track_settings)
                            for tracker in self._instances(name, len(request.tracks))] for name in names}
        going = [RunningTrack(start, {name: instances[name][i] for name in names})
                 for i, start in enumerate(request.tracks)]
        frame_count = len(self._source)
        frame_index = request.start_frame
        try:
            frame = self._source[frame_index]
        except FrameDecodeError as error:
            return end("decode_failed", error.frame_index, str(error))
        for track in going:
            self._init_all(track.trackers, frame, track.start.box)
        started = time.perf_counter()
        while True:
            if self._stop.is_set():
                return end("stopped", frame_index)
            if request.max_frames is not None and done >= request.max_frames:
                return end("done", frame_index)
            frame_index += request.direction
            if not 0 <= frame_index < frame_count:
                return end("end_of_video", frame_index - request.direction)
            try:
                frame = self._source[frame_index]
            except FrameDecodeError as error:
                return end("decode_failed", frame_index, str(error))
            done += 1
            results = {}
            for track in going:
                keyframe = track.start.keyframes.get(frame_index)
                if keyframe is not None:
                    self._init_all(track.trackers, frame, keyframe)  # the user's box wins: restart from it
                    continue
                results[track.start.track_id] = {name: tracker.track(frame) for name, tracker in track.trackers.items()}
            if not results:
                continue
            fps = done / max(time.perf_counter() - started, 1e-6)
            self.stepped.emit(FrameStep(request.run_id, frame_index, results, done, fps))
            for track_id, found in results.items():
                if next(iter(found.values())).score < request.score_threshold:
                    low_scores[track_id] = frame_index
            going = [track for track in going if track.start.track_id not in low_scores]
            if not going:
                return end("low_score", frame_index)

    def _instances(self, name: str, count: int) -> list:
        """``count`` trackers called ``name`` (a model variant or one of
        :data:`OTHER_TRACKERS`), distinct objects, so that each track has its own state."""
        pool = self._pools.setdefault(name, [])
        while len(pool) < count:
            pool.append(self._new_tracker(name))
        return pool[:count]

    def _new_tracker(self, name: str):
        spec = next((spec for spec in self._specs if spec.name == name), None)
        if spec is not None:
            return self._model_tracker(spec)
        if name not in OTHER_TRACKERS:
            raise HNSEError(f"no tracker named {name!r}")
        from model.evaluation.evaluate import make_tracker

        return make_tracker(OTHER_TRACKERS[name])

    @staticmethod
    def _with_settings(tracker, settings: tuple[tuple[str, float], ...]):
        """``tracker`` with the run's tracking settings (sharing its network and state
        holder); OpenCV's trackers have none to change."""
        if not settings or not hasattr(tracker, "with_track_config"):
            return tracker
        return tracker.with_track_config(**dict(settings))

    @staticmethod
    def _init_all(trackers: dict[str, object], frame, box: Box) -> None:
        for tracker in trackers.values():
            tracker.init(frame, tuple(float(v) for v in box))


class TrackingThread(QtCore.QObject):
    """The GUI-side handle of the worker thread: starts it once, queues work, stops runs."""

    _open = QtCore.pyqtSignal(str)
    _load = QtCore.pyqtSignal(list)
    _run = QtCore.pyqtSignal(object)

    def __init__(self, torch_threads: int | None = None, parent=None):
        super().__init__(parent)
        self._stop = threading.Event()
        self._thread = QtCore.QThread()
        self._thread.setObjectName("hnse-tracking")
        self.worker = TrackingWorker(self._stop, torch_threads)
        self.worker.moveToThread(self._thread)
        self._open.connect(self.worker.open_source)
        self._load.connect(self.worker.load_models)
        self._run.connect(self.worker.run)
        self.worker.finished.connect(self._run_finished)
        self._busy = False
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True from :meth:`run` until its :class:`RunEnd` reaches the GUI thread."""
        return self._busy

    def open_source(self, path: str) -> None:
        self._open.emit(str(path))

    def load_models(self, specs: list[VariantSpec]) -> None:
        self._load.emit(list(specs))

    def run(self, request: RunRequest) -> None:
        self._stop.clear()
        self._busy = True
        self._run.emit(request)

    def stop(self) -> None:
        """Ask the running run to end after the frame it is on."""
        self._stop.set()

    def _run_finished(self, _end: RunEnd) -> None:
        self._busy = False

    def shutdown(self) -> None:
        """Stop any run and end the thread; call once, when the window closes.

        Waits without a time limit: a run ends after its current frame, but loading the
        models cannot be interrupted, and a QThread destroyed while running aborts.
        """
        self._stop.set()
        self._thread.quit()
        self._thread.wait()
