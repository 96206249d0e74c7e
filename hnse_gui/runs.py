"""Tracking runs: starting and stopping them, loading the models, writing each step into
the document as it arrives, and making the finished run one undoable command.

The trackers live in :class:`~hnse_gui.worker.TrackingThread`'s worker thread;
:class:`TrackingRuns` only sends it requests and takes its signals. While a run is in
progress :attr:`Session.run <hnse_gui.session.Session.run>` holds it and the document
is not editable; when it ends, the frames it changed become one
:class:`~hnse_gui.commands.TrackingRunCommand` on the undo stack. The progress bar and
the speed and model labels (for the status bar) and the choice of tracker (for the
toolbar: both model variants, one of them, or one of the worker's
:data:`~hnse_gui.worker.OTHER_TRACKERS`) are this room's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt5 import QtCore, QtWidgets

from hnse_gui import commands
from hnse_gui.document import Flag, TrackSlice
from hnse_gui.session import Session
from hnse_gui.worker import FrameStep, RunEnd, RunRequest, TrackingThread, VariantSpec
from model.core.errors import InputError

RESULT_CACHE_FRAMES = 2000  # TrackResults kept for the heatmaps: ~40 kB per frame for two variants
REASONS = {
    "done": "tracked {n} frames",
    "end_of_video": "reached the end of the video after {n} frames",
    "stopped": "stopped after {n} frames",
    "low_score": "stopped on frame {frame}: score below {threshold:.2f}, flagged for review",
    "decode_failed": "stopped: frame {frame} cannot be decoded",
    "error": "tracking failed",
}


@dataclass
class ActiveRun:
    request: RunRequest
    before: TrackSlice  # the frames the run may write, as they were when it started


class TrackingRuns(QtCore.QObject):
    """Runs of ``variants`` on ``session``'s current track; finished runs go on ``undo_stack``."""

    started = QtCore.pyqtSignal()  # a run was sent to the worker
    tracked = QtCore.pyqtSignal(int)  # a step landed on this frame: show it
    ended = QtCore.pyqtSignal(object)  # RunEnd, after the run's command was pushed
    status = QtCore.pyqtSignal(str, int)  # a message for the status bar, and for how many ms
    failed = QtCore.pyqtSignal(str)  # an error to show
    mapsDropped = QtCore.pyqtSignal(str)  # why the document stopped keeping maps

    def __init__(self, session: Session, undo_stack: QtWidgets.QUndoStack, variants: list[VariantSpec],
                 torch_threads: int | None = None, parent=None):
        super().__init__(parent)
        self.session = session
        self.undo_stack = undo_stack
        self.variants = list(variants)
        self.models_ready = False
        self._run_counter = 0
        self.tracking = TrackingThread(torch_threads, parent=self)
        self.tracking.worker.stepped.connect(self._step)
        self.tracking.worker.finished.connect(self._finished)
        self.tracking.worker.failed.connect(self.failed)
        self.tracking.worker.modelsReady.connect(self._models_loaded)
        self.tracking.worker.othersAvailable.connect(self._others_available)
        self.tracker_choice = QtWidgets.QComboBox()  # which trackers a run uses (item data: their names)
        self.tracker_choice.setFocusPolicy(QtCore.Qt.NoFocus)  # the frame's keys stay the frame's
        self.tracker_choice.setToolTip("Which tracker a run uses; the first one's boxes become the track's. "
                                       "Heatmaps come from the HNSE models only")
        names = tuple(spec.name for spec in self.variants)
        if len(names) > 1:
            self.tracker_choice.addItem(f"HNSE: {' + '.join(names)}", names)
        for name in names:
            self.tracker_choice.addItem(f"HNSE {name}", (name,))
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setVisible(False)
        self.fps_label = QtWidgets.QLabel("")
        self.model_label = QtWidgets.QLabel("models: loading…")

    @property
    def busy(self) -> bool:
        return self.tracking.busy

    def open_source(self, path: str) -> None:
        """The worker decodes this video (or image folder) from now on."""
        self.tracking.open_source(path)

    def load_models(self) -> None:
        if not self.models_ready:
            self.tracking.load_models(self.variants)

    def start(self, direction: int, max_frames: int | None) -> bool:
        """Track the current track from the current frame, at most ``max_frames`` (None: until stopped)."""
        session = self.session
        document, track_id, frame = session.document, session.current_track, session.frame_index
        if not session.editable() or track_id is None or self.tracking.busy:
            return False
        box = document.get_frame_state(track_id, frame).box
        if box is None:
            self.status.emit("the current track has no box on this frame to start from", 5000)
            return False
        count = document.frame_count
        if direction > 0:
            low, high = frame, count if max_frames is None else min(count, frame + max_frames + 1)
        else:
            low, high = 0 if max_frames is None else max(0, frame - max_frames), frame + 1
        track = document.track(track_id)
        keyframes = {int(f): tuple(float(v) for v in track.boxes[f])
                     for f in document.keyframes(track_id)
                     if low <= f < high and f != frame and np.isfinite(track.boxes[f]).all()}
        self._run_counter += 1
        request = RunRequest(run_id=self._run_counter, track_id=track_id, start_frame=frame,
                             start_box=box, direction=1 if direction > 0 else -1, max_frames=max_frames,
                             score_threshold=document.review_threshold, keyframes=keyframes,
                             trackers=tuple(self.tracker_choice.currentData() or ()))
        session.run = ActiveRun(request, document.get_range(track_id, low, high))
        self.progress.setRange(0, max_frames or 0)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.fps_label.setText("starting…" if self.models_ready else "loading models…")
        self.load_models()  # queued before the run, so a run right after opening waits for them
        self.tracking.run(request)
        self.started.emit()
        return True

    def stop(self) -> None:
        if self.session.run is not None:
            self.tracking.stop()

    def drop(self) -> None:
        """Forget the run in progress: its document is going."""
        if self.session.run is not None:
            self.tracking.stop()
            self.session.run = None
            self.progress.setVisible(False)

    def shutdown(self) -> None:
        self.tracking.shutdown()

    def _step(self, step: FrameStep) -> None:
        session = self.session
        run, document = session.run, session.document
        if run is None or step.run_id != run.request.run_id or document is None:
            return
        first = next(iter(step.results), None)
        for name, result in step.results.items():
            try:
                document.apply_tracking(step.track_id, step.frame_index, result.box, result.score, name)
                if name == first and name != document.primary_variant:  # the run's first tracker leads
                    document.apply_tracking(step.track_id, step.frame_index, result.box, result.score)
            except InputError as error:  # a degenerate box: keep the run going, say so
                self.status.emit(f"frame {step.frame_index + 1}: {error}", 4000)
            if result.maps and document.keep_maps:
                try:
                    document.store_maps(name, step.frame_index, result.maps)
                except ValueError as error:  # maps of another shape than those kept (other weights)
                    document.keep_maps = False
                    self.mapsDropped.emit(f"maps are no longer kept: {error}")
        session.results[(step.track_id, step.frame_index)] = step.results
        while len(session.results) > RESULT_CACHE_FRAMES:
            session.results.popitem(last=False)
        self.fps_label.setText(f"{step.frames_done} frames, {step.fps:.2g} fps")
        self.progress.setValue(step.frames_done)
        self.tracked.emit(step.frame_index)

    def _finished(self, end: RunEnd) -> None:
        session = self.session
        run, document = session.run, session.document
        if run is None or end.run_id != run.request.run_id:
            return
        session.run = None
        self.progress.setVisible(False)
        before = run.before
        if end.reason == "decode_failed" and before.start <= end.last_frame < before.stop:
            flags = Flag(int(document.track(end.track_id).flags[end.last_frame]))
            document.set_flags(end.track_id, end.last_frame, flags | Flag.DECODE_FAILED)
        after = document.get_range(end.track_id, before.start, before.stop)
        changed = slices_differ(before, after)
        if changed:
            self.undo_stack.push(commands.TrackingRunCommand(document, end.track_id, before,
                                                             run_text(run.request, end.last_frame)))
        message = REASONS[end.reason].format(n=end.frames_done, frame=end.last_frame + 1,
                                             threshold=run.request.score_threshold)
        if end.message:
            message = f"{message}: {end.message}"
        if not changed:  # no undo step: say so, and what Ctrl+Z would undo instead
            earlier = self.undo_stack.undoText()
            message += f"; nothing changed, so nothing to undo ({'undo: ' + earlier if earlier else 'no undo step'})"
        if end.reason in ("error", "decode_failed"):
            self.failed.emit(message)
        else:
            self.status.emit(message, 8000)
        self.ended.emit(end)

    def _others_available(self, names: list[str]) -> None:
        for name in names:
            if self.tracker_choice.findText(name) < 0:
                self.tracker_choice.addItem(name, (name,))

    def _models_loaded(self, descriptions: list[str]) -> None:
        self.models_ready = True
        self.model_label.setText(" · ".join(descriptions))


def run_text(request: RunRequest, last_frame: int) -> str:
    """A run's undo text: its direction, its tracker when it chose one, its track and
    frames (1-based, in the order tracked)."""
    direction = "forward" if request.direction > 0 else "backward"
    tracker = f" with {request.trackers[0]}" if len(request.trackers) == 1 else ""
    first, last = request.start_frame + 1, last_frame + 1
    return f"Track {direction}{tracker}: track {request.track_id}, frames {first}–{last}"


def slices_differ(a: TrackSlice, b: TrackSlice) -> bool:
    def same(x, y):
        return np.array_equal(x, y, equal_nan=True)

    return not (same(a.boxes, b.boxes) and same(a.origin, b.origin) and same(a.flags, b.flags)
                and same(a.scores, b.scores)
                and set(a.variant_scores) == set(b.variant_scores)
                and all(same(a.variant_scores[k], b.variant_scores[k]) for k in a.variant_scores)
                and all(same(a.variant_boxes[k], b.variant_boxes[k]) for k in a.variant_boxes))
