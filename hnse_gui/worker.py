"""The tracking worker: one long-lived thread that owns the trackers and a frame decoder.

The GUI never calls the network itself. :class:`TrackingThread` starts one QThread for
the whole session and moves a :class:`TrackingWorker` into it; the window talks to it
through queued signals (:meth:`TrackingThread.open_source`,
:meth:`TrackingThread.load_models`, :meth:`TrackingThread.run`) and hears back through
the worker's signals, which carry plain data only: :class:`FrameStep` (the
:class:`~model.tracking.result.TrackResult` of every model variant on one frame) and
:class:`RunEnd`. The worker never touches a widget.

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
class RunRequest:
    """Track one track from ``start_frame`` (whose box is ``start_box``) in ``direction``.

    ``max_frames`` bounds the number of frames tracked (None: until stopped or the end
    of the video). The run stops by itself after a frame whose first-variant score is
    below ``score_threshold``. ``keyframes`` are the track's MANUAL boxes: the run
    re-initialises the trackers on them instead of tracking them. ``trackers`` names the
    trackers that run (model variants or :data:`OTHER_TRACKERS`), the first one's boxes
    becoming the track's; empty: every model variant.
    """

    run_id: int
    track_id: int
    start_frame: int
    start_box: Box
    direction: int = 1
    max_frames: int | None = None
    score_threshold: float = 0.0
    keyframes: dict[int, Box] = field(default_factory=dict)
    trackers: tuple[str, ...] = ()


@dataclass
class FrameStep:
    """What every model variant found on one frame of a run."""

    run_id: int
    track_id: int
    frame_index: int
    results: dict[str, TrackResult]
    frames_done: int
    fps: float


@dataclass
class RunEnd:
    """Why a run ended: ``"done"`` (frame budget spent), ``"end_of_video"``, ``"stopped"``,
    ``"low_score"`` (at ``last_frame``), ``"decode_failed"`` (``last_frame`` could not be
    decoded) or ``"error"`` (``message`` says what)."""

    run_id: int
    track_id: int
    reason: str
    last_frame: int
    frames_done: int
    message: str = ""


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
        self._specs: list[VariantSpec] = []
        self._trackers: dict[str, object] = {}  # the model variants', by name
        self._others: dict[str, object] = {}  # OTHER_TRACKERS made so far
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
        if list(specs) == self._specs and self._trackers:
            return
        import torch

        from model.tracking.tracker import Tracker

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        trackers = {}
        for spec in specs:
            if spec.weights and Path(spec.weights).is_file():
                trackers[spec.name] = Tracker.from_checkpoint(spec.weights)
            else:
                trackers[spec.name] = Tracker.random(he_head=spec.he_head, seed=spec.seed, **dict(spec.network))
        self._specs, self._trackers = list(specs), trackers

    @QtCore.pyqtSlot(object)
    def run(self, request: RunRequest) -> None:
        try:
            end = self._run(request)
        except HNSEError as error:
            end = RunEnd(request.run_id, request.track_id, "error", request.start_frame, 0, str(error))
        except Exception as error:  # noqa: BLE001 - the window must stay usable; the trace goes to stderr
            traceback.print_exc()
            end = RunEnd(request.run_id, request.track_id, "error", request.start_frame, 0,
                         f"{type(error).__name__}: {error}")
        self.finished.emit(end)

    def _run(self, request: RunRequest) -> RunEnd:
        from model.data.sources import FrameDecodeError

        def end(reason: str, frame: int, message: str = "") -> RunEnd:
            return RunEnd(request.run_id, request.track_id, reason, frame, done, message)

        done = 0
        if self._source is None:
            return end("error", request.start_frame, "no video is open")
        if not self._trackers:
            return end("error", request.start_frame, "no model is loaded")
        trackers = {name: self._tracker(name) for name in request.trackers or self._trackers}
        frame_count = len(self._source)
        box = request.start_box
        frame_index = request.start_frame
        try:
            self._init_all(trackers, self._source[frame_index], box)
        except FrameDecodeError as error:
            return end("decode_failed", error.frame_index, str(error))
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
            keyframe = request.keyframes.get(frame_index)
            if keyframe is not None:
                self._init_all(trackers, frame, keyframe)  # the user's box wins: restart from it
                continue
            results = {name: tracker.track(frame) for name, tracker in trackers.items()}
            fps = done / max(time.perf_counter() - started, 1e-6)
            self.stepped.emit(FrameStep(request.run_id, request.track_id, frame_index, results, done, fps))
            first = next(iter(results.values()))
            if first.score < request.score_threshold:
                return end("low_score", frame_index)

    def _tracker(self, name: str):
        """A model variant's tracker, or one of :data:`OTHER_TRACKERS`, made on first use."""
        if name in self._trackers:
            return self._trackers[name]
        if name not in self._others:
            if name not in OTHER_TRACKERS:
                raise HNSEError(f"no tracker named {name!r}")
            from model.evaluation.evaluate import make_tracker

            self._others[name] = make_tracker(OTHER_TRACKERS[name])
        return self._others[name]

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
