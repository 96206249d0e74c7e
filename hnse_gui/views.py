"""The views of the open work and their redraws: the frame with its boxes and overlays,
the heatmaps, the pipeline view and its "why this box" table (the step mode's), the
timeline, the score plot, the track list, the slider and the frame label, and which
track is current.

:class:`Views` builds these widgets (the window lays them out) and only draws the
session: the document, the frame index, the current track and the results of this
session's runs. Document changes are drawn once per event-loop turn however many
arrive in it.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from PyQt5 import QtCore, QtWidgets

from hnse_gui.document import Change, Document, Flag, Origin
from hnse_gui.frame_view import BoxShape, FrameView
from hnse_gui.inspect_panel import InspectPanel
from hnse_gui.pipeline_view import PipelineView
from hnse_gui.score_plot import VARIANT_COLOURS, ScorePlot
from hnse_gui.session import Session
from hnse_gui.timeline import Timeline
from hnse_gui.track_list import TrackList
from hnse_gui.why_box import WhyBoxTable
from model.core.errors import HNSEError
from model.tracking.result import TrackResult


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class Views(QtCore.QObject):
    """The widgets showing ``session``; ``variant_names`` are the compared model variants."""

    status = QtCore.pyqtSignal(str, int)  # a message for the status bar, and for how many ms
    selectionChanged = QtCore.pyqtSignal()  # another track (or none) is current
    documentRedrawn = QtCore.pyqtSignal()  # everything was redrawn after document changes

    def __init__(self, session: Session, variant_names: list[str], parent=None):
        super().__init__(parent)
        self.session = session
        self.variant_names = list(variant_names)
        self.show_reference = True  # draw a sequence's ground truth on the frames
        self._redraw_pending = False
        self._tracks_changed = False

        self.frame_view = FrameView()
        self.inspect = InspectPanel(self.variant_names)
        self.inspect.changed.connect(self.redraw_frame_overlays)
        self.timeline = Timeline()
        self.timeline.trackRequested.connect(self.select_track)
        self.score_plot = ScorePlot()
        # the step mode's views, drawn only while shown (see set_pipeline_shown)
        self.pipeline = PipelineView(self.variant_names)
        self.why_box = WhyBoxTable(self.variant_names)
        self.pipeline_shown = False
        self.track_list = TrackList()
        self.track_list.trackSelected.connect(self.select_track)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slider.setFocusPolicy(QtCore.Qt.NoFocus)
        self.slider.setMinimum(0)
        self.frame_label = QtWidgets.QLabel("no video")
        self.frame_label.setMinimumWidth(150)
        self.frame_label.setAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)

    def set_document(self, document: Document) -> None:
        """Size the views to a newly opened document; the session holds it already."""
        self.slider.blockSignals(True)
        self.slider.setMaximum(document.frame_count - 1)
        self.slider.blockSignals(False)
        self.timeline.set_document(document)
        self.score_plot.set_frame_count(document.frame_count)
        self.score_plot.set_threshold(document.review_threshold)
        self.track_list.set_document(document)

    def set_show_reference(self, shown: bool) -> None:
        self.show_reference = bool(shown)
        self.redraw_frame_overlays()

    def set_pipeline_shown(self, shown: bool) -> None:
        """The pipeline view and its table are on screen (``shown``) or hidden, and left
        as they are while hidden: drawing them costs time on every frame."""
        self.pipeline_shown = bool(shown)
        self.redraw_frame_overlays()

    def select_track(self, track_id: int | None) -> None:
        session = self.session
        if track_id is not None and (session.document is None or track_id not in session.document.tracks):
            track_id = None
        session.current_track = track_id
        self.track_list.refresh(track_id)
        self.timeline.set_current(session.frame_index, track_id)
        self.redraw_scores()
        self.redraw_frame_overlays()
        self.selectionChanged.emit()

    def show_frame(self, index: int) -> None:
        """Draw frame ``index``, decoded on demand; an undecodable frame shows black."""
        session = self.session
        try:
            self.frame_view.set_frame(bgr_to_rgb(session.source[index]))
        except HNSEError as error:
            self.status.emit(str(error), 8000)
            self.frame_view.set_frame(np.zeros((*session.document.frame_size[::-1], 3), np.uint8))
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.score_plot.set_current_frame(index)
        self.timeline.set_current(index, session.current_track)
        self.redraw_frame_overlays()

    def document_changed(self, change: Change) -> None:
        """The document's listener: schedule one redraw for this event-loop turn."""
        if change.kind in ("track_added", "track_removed", "track_style"):
            self._tracks_changed = True
        if not self._redraw_pending:
            self._redraw_pending = True
            QtCore.QTimer.singleShot(0, self.redraw_document)

    def redraw_document(self) -> None:
        self._redraw_pending = False
        session = self.session
        if session.document is None:
            return
        if self._tracks_changed:
            self._tracks_changed = False
            if session.current_track not in session.document.tracks:
                session.current_track = next(iter(session.document.tracks), None)
            self.track_list.refresh(session.current_track)
            self.timeline.updateGeometry()
        self.timeline.set_current(session.frame_index, session.current_track)
        self.redraw_scores()
        self.redraw_frame_overlays()
        self.documentRedrawn.emit()

    def redraw_scores(self) -> None:
        self.score_plot.set_scores(self.current_scores())

    def current_scores(self) -> dict[str, np.ndarray]:
        """The current track's per-frame score (NaN: none) of every tracker that ran on
        it, the model variants first; empty without a current track."""
        session = self.session
        if session.document is None or session.current_track is None:
            return {}
        track = session.document.track(session.current_track)
        names = [name for name in self.variant_names if name in track.variant_scores]
        names += [name for name in track.variant_scores if name not in names]  # other trackers' runs
        return {name: track.variant_scores[name] for name in names}

    def current_results(self) -> dict[str, TrackResult | None]:
        """Each variant's result on the current frame for the current track, when this
        session tracked it (or the project kept its maps) and the frame still holds it."""
        session = self.session
        shown: dict[str, TrackResult | None] = {name: None for name in self.variant_names}
        document, frame = session.document, session.frame_index
        if document is None or session.current_track is None:
            return shown
        track = document.track(session.current_track)
        cached = session.results.get((session.current_track, frame), {})
        for name in self.variant_names:
            boxes = track.variant_boxes.get(name)
            if boxes is None or not np.isfinite(boxes[frame]).all():
                continue  # undone or re-tracked since: the kept maps no longer belong here
            if name in cached:
                shown[name] = cached[name]
            elif frame in document.maps.get(name, {}):
                shown[name] = TrackResult(box=tuple(boxes[frame]), score=float(track.variant_scores[name][frame]),
                                          maps=document.maps[name][frame])
        return shown

    def redraw_frame_overlays(self) -> None:
        session = self.session
        document, frame = session.document, session.frame_index
        if document is None or frame < 0:
            return
        track_shapes, variant_shapes = [], []
        if self.show_reference and session.reference_boxes is not None:
            reference = session.reference_boxes[frame]
            if np.isfinite(reference).all():
                track_shapes.append(BoxShape(tuple(reference), (255, 255, 255), dashed=True, width=1.0))
        editable = None
        for track in document.tracks.values():
            box = track.boxes[frame]
            if not np.isfinite(box).all() or track.flags[frame] & Flag.ABSENT:
                continue  # an ABSENT frame's box (say, one tracked before the flag) is not the object
            if track.id == session.current_track and session.run is None:
                editable = (tuple(box), track.color)
            else:
                width = 2.5 if track.id == session.current_track else 1.5
                track_shapes.append(BoxShape(tuple(box), track.color, width=width))
        if session.current_track is not None:
            track = document.track(session.current_track)
            for index, name in enumerate(self.variant_names):
                boxes = track.variant_boxes.get(name)
                if boxes is not None and np.isfinite(boxes[frame]).all():
                    variant_shapes.append(BoxShape(tuple(boxes[frame]), VARIANT_COLOURS[index % len(VARIANT_COLOURS)],
                                                   dashed=index > 0, width=1.5))
        self.frame_view.set_track_boxes(track_shapes)
        self.frame_view.set_variant_boxes(variant_shapes)
        if editable is None:
            self.frame_view.set_editable_box(None)
        else:
            self.frame_view.set_editable_box(*editable)
        results = self.current_results()
        self.inspect.grid.set_results(results)
        if self.pipeline_shown:
            self.pipeline.set_results(results)
            self.why_box.set_results(results)
        chosen = results.get(self.inspect.variant)
        self.frame_view.set_candidates(chosen.candidates if chosen is not None and self.inspect.show_candidates
                                       else [])
        overlay = self.inspect.overlay
        if chosen is not None and overlay is not None and overlay in chosen.maps:
            self.frame_view.set_overlay(chosen.maps[overlay], chosen.map_box)
        else:
            self.frame_view.set_overlay(None, None)
        self.frame_label.setText(self.frame_label_text())

    def frame_label_text(self) -> str:
        """"frame i / n", then the current track's origin, score and flags on it."""
        session = self.session
        if session.document is None:
            return "no video"
        text = f"frame {session.frame_index + 1} / {session.document.frame_count}"
        if session.current_track is not None:
            state = session.document.get_frame_state(session.current_track, session.frame_index)
            if state.origin != Origin.NONE:
                text += f"  {state.origin.name.lower()}"
            if math.isfinite(state.score):
                text += f"  {state.score:.2f}"
            for flag in Flag:
                if state.flags & flag:
                    text += f"  [{flag.name.lower().replace('_', ' ')}]"
        return text
