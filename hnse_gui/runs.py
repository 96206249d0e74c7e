"""Tracking runs: starting and stopping them, loading the models, writing each step into
the document as it arrives, and making the finished run one undoable command.

The trackers live in :class:`~hnse_gui.worker.TrackingThread`'s worker thread;
:class:`TrackingRuns` only sends it requests and takes its signals. A run follows the
current track (:meth:`TrackingRuns.start`) or every track with a box on the current
frame (:meth:`TrackingRuns.start_all`), each with its own trackers. While a run is in
progress :attr:`Session.run <hnse_gui.session.Session.run>` holds it and the document
is not editable; when it ends, the frames it changed, of all its tracks, become one
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
from hnse_gui.worker import FrameStep, RunEnd, RunRequest, TrackingThread, TrackStart, VariantSpec
from model.core.errors import InputError
from model.tracking.result import TrackResult

RESULT_CACHE_FRAMES = 2000  # TrackResults kept for the heatmaps: ~40 kB per frame for two variants
TRACKER_CHOICE_CHARACTERS = 10  # the tracker choice's width in the toolbar, in characters
REASONS = {
    "done": "tracked {n} frames",
    "end_of_video": "reached the end of the video after {n} frames",
    "stopped": "stopped after {n} frames",
    "low_score": "stopped on frame {frame}: score below {threshold:.2f}, flagged for review",
    "decode_failed": "stopped: frame {frame} cannot be decoded",
    "error": "tracking failed",
}
EVERY_TRACK_LOW = "every track stopped on a low score, after {n} frames"  # "low_score" of a run of several tracks


@dataclass
class ActiveRun:
    request: RunRequest
    before: dict[int, TrackSlice]  # by track: the frames the run may write, as they were when it started


class TrackingRuns(QtCore.QObject):
    """Runs of ``variants`` on ``session``'s tracks; finished runs go on ``undo_stack``."""

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
        self.track_settings: dict[str, float] = {}  # the model variants' tracking settings for the next runs
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
        # narrow enough for the toolbar on a 1366-pixel screen: a long name is elided in
        # the box (Fusion's open list is as wide as its longest name)
        self.tracker_choice.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.tracker_choice.setMinimumContentsLength(TRACKER_CHOICE_CHARACTERS)
        names = tuple(spec.name for spec in self.variants)
        if len(names) > 1:
            self.tracker_choice.addItem("HNSE: both", names)
            self.tracker_choice.setItemData(0, f"{' + '.join(names)}: the first one's boxes become the track's",
                                            QtCore.Qt.ToolTipRole)
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
        track_id = session.current_track
        if not session.editable() or track_id is None or self.tracking.busy:
            return False
        if session.document.get_frame_state(track_id, session.frame_index).box is None:
            self.status.emit("the current track has no box on this frame to start from", 5000)
            return False
        self._start([track_id], direction, max_frames)
        return True

    def start_all(self, direction: int, max_frames: int | None) -> bool:
        """Track every track that has a box on the current frame (and is not flagged
        absent there), each with its own trackers, the current track first: the one
        whose maps the document keeps."""
        session = self.session
        if not session.editable() or self.tracking.busy:
            return False
        document, frame = session.document, session.frame_index
        states = {track_id: document.get_frame_state(track_id, frame) for track_id in document.tracks}
        track_ids = sorted((track_id for track_id, state in states.items()
                            if state.box is not None and not state.flags & Flag.ABSENT),
                           key=lambda track_id: track_id != session.current_track)
        if not track_ids:
            self.status.emit("no track has a box on this frame to start from", 5000)
            return False
        self._start(track_ids, direction, max_frames)
        way = "forward" if direction > 0 else "backward"
        self.status.emit(f"tracking {len(track_ids)} {'track' if len(track_ids) == 1 else 'tracks'} {way}: "
                         f"{', '.join(str(track_id) for track_id in track_ids)}", 8000)
        return True

    def _start(self, track_ids: list[int], direction: int, max_frames: int | None) -> None:
        """Send the worker a run of ``track_ids``, each from its box on the current frame."""
        session = self.session
        document, frame = session.document, session.frame_index
        count = document.frame_count
        if direction > 0:
            low, high = frame, count if max_frames is None else min(count, frame + max_frames + 1)
        else:
            low, high = 0 if max_frames is None else max(0, frame - max_frames), frame + 1
        starts = []
        for track_id in track_ids:
            boxes = document.track(track_id).boxes
            keyframes = {int(f): tuple(float(v) for v in boxes[f])
                         for f in document.keyframes(track_id)
                         if low <= f < high and f != frame and np.isfinite(boxes[f]).all()}
            starts.append(TrackStart(track_id, document.get_frame_state(track_id, frame).box, keyframes))
        self._run_counter += 1
        request = RunRequest(run_id=self._run_counter, tracks=tuple(starts), start_frame=frame,
                             direction=1 if direction > 0 else -1, max_frames=max_frames,
                             score_threshold=document.review_threshold,
                             trackers=tuple(self.tracker_choice.currentData() or ()),
                             track_settings=tuple(sorted(self.track_settings.items())))
        session.run = ActiveRun(request, {track_id: document.get_range(track_id, low, high) for track_id in track_ids})
        self.progress.setRange(0, max_frames or 0)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.fps_label.setText("starting…" if self.models_ready else "loading models…")
        self.load_models()  # queued before the run, so a run right after opening waits for them
        self.tracking.run(request)
        self.started.emit()

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
        lead = run.request.tracks[0].track_id  # the document keeps one set of maps a frame: the lead track's
        for track_id, results in step.results.items():
            self._apply(track_id, step.frame_index, results, keep_maps=track_id == lead and document.keep_maps)
            session.results[(track_id, step.frame_index)] = results
        while len(session.results) > RESULT_CACHE_FRAMES:
            session.results.popitem(last=False)
        self.fps_label.setText(f"{step.frames_done} frames, {step.fps:.2g} fps")
        self.progress.setValue(step.frames_done)
        self.tracked.emit(step.frame_index)

    def _apply(self, track_id: int, frame: int, results: dict[str, TrackResult], keep_maps: bool) -> None:
        """Write one track's results on ``frame`` into the document, the first tracker's
        boxes as the track's, and with ``keep_maps`` their maps."""
        document = self.session.document
        first = next(iter(results), None)
        for name, result in results.items():
            try:
                document.apply_tracking(track_id, frame, result.box, result.score, name)
                if name == first and name != document.primary_variant:  # the run's first tracker leads
                    document.apply_tracking(track_id, frame, result.box, result.score)
            except InputError as error:  # a degenerate box: keep the run going, say so
                self.status.emit(f"frame {frame + 1}: {error}", 4000)
            if result.maps and keep_maps:
                try:
                    document.store_maps(name, frame, result.maps)
                except ValueError as error:  # maps of another shape than those kept (other weights)
                    document.keep_maps = False
                    keep_maps = False
                    self.mapsDropped.emit(f"maps are no longer kept: {error}")

    def _finished(self, end: RunEnd) -> None:
        session = self.session
        run, document = session.run, session.document
        if run is None or end.run_id != run.request.run_id:
            return
        session.run = None
        self.progress.setVisible(False)
        if end.reason == "decode_failed":  # the tracks still going when the frame failed
            for track_id, before in run.before.items():
                if track_id not in end.low_scores and before.start <= end.last_frame < before.stop:
                    flags = Flag(int(document.track(track_id).flags[end.last_frame]))
                    document.set_flags(track_id, end.last_frame, flags | Flag.DECODE_FAILED)
        changed = {track_id: before for track_id, before in run.before.items()
                   if slices_differ(before, document.get_range(track_id, before.start, before.stop))}
        if changed:
            self.undo_stack.push(commands.TrackingRunCommand(document, changed,
                                                             run_text(run.request, sorted(changed), end.last_frame)))
        message = end_message(run.request, end)
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


def run_text(request: RunRequest, track_ids: list[int], last_frame: int) -> str:
    """A run's undo text: its direction, its tracker when it chose one, the tracks it
    changed and its frames (1-based, in the order tracked)."""
    direction = "forward" if request.direction > 0 else "backward"
    tracker = f" with {request.trackers[0]}" if len(request.trackers) == 1 else ""
    first, last = request.start_frame + 1, last_frame + 1
    return f"Track {direction}{tracker}: {track_list(track_ids)}, frames {first}–{last}"


def track_list(track_ids: list[int]) -> str:
    """``track 3`` or ``tracks 1, 3``."""
    return f"track{'s' if len(track_ids) > 1 else ''} {', '.join(str(t) for t in track_ids)}"


def end_message(request: RunRequest, end: RunEnd) -> str:
    """What the status bar says when a run ends; a run of several tracks also says which
    stopped on a low score, and where."""
    several = len(request.tracks) > 1
    reason = EVERY_TRACK_LOW if several and end.reason == "low_score" else REASONS[end.reason]
    message = reason.format(n=end.frames_done, frame=end.last_frame + 1, threshold=request.score_threshold)
    if end.message:
        message = f"{message}: {end.message}"
    if several and end.low_scores:
        where = ", ".join(f"track {track_id} on frame {frame + 1}" for track_id, frame in end.low_scores.items())
        message += f"; below score {request.score_threshold:.2f}, flagged for review: {where}"
    return message


def slices_differ(a: TrackSlice, b: TrackSlice) -> bool:
    def same(x, y):
        return np.array_equal(x, y, equal_nan=True)

    return not (same(a.boxes, b.boxes) and same(a.origin, b.origin) and same(a.flags, b.flags)
                and same(a.scores, b.scores)
                and set(a.variant_scores) == set(b.variant_scores)
                and all(same(a.variant_scores[k], b.variant_scores[k]) for k in a.variant_scores)
                and all(same(a.variant_boxes[k], b.variant_boxes[k]) for k in a.variant_boxes))
