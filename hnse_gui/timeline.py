"""The timeline: one row per track over all frames, and a cursor on the current frame.

Each row shows, per frame, where the box came from (tracked: the track's colour;
interpolated: the same colour, lighter; manual keyframes: a white diamond) and the
flags (needs review / decode failed: red tick above the row; occluded / absent: grey tick
below). The selected track's row is outlined. A click or drag anywhere asks for that
frame through :attr:`Timeline.frameRequested`; a click on a row also selects its track
(:attr:`Timeline.trackRequested`).
"""
from __future__ import annotations

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from hnse_gui.document import Document, Flag, Origin

ROW_HEIGHT = 16
MARGIN = 6


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a (N,) bool array as (start, stop) pairs."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


class Timeline(QtWidgets.QWidget):
    frameRequested = QtCore.pyqtSignal(int)
    trackRequested = QtCore.pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.document: Document | None = None
        self.current_frame = 0
        self.selected_track: int | None = None
        self.setMouseTracking(False)
        self.setMinimumHeight(ROW_HEIGHT + 2 * MARGIN)
        self.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Fixed)
        self.setToolTip("Click or drag to jump to a frame")

    def set_document(self, document: Document | None) -> None:
        self.document = document
        self.updateGeometry()
        self.update()

    def set_current(self, frame: int, track_id: int | None) -> None:
        self.current_frame, self.selected_track = frame, track_id
        self.update()

    def sizeHint(self) -> QtCore.QSize:
        rows = max(1, len(self.document.tracks)) if self.document else 1
        return QtCore.QSize(600, rows * ROW_HEIGHT + 2 * MARGIN)

    def minimumSizeHint(self) -> QtCore.QSize:
        return self.sizeHint()

    # --- geometry --------------------------------------------------------------------

    def _frame_count(self) -> int:
        return self.document.frame_count if self.document else 1

    def frame_x(self, frame: float) -> float:
        """Left edge of ``frame`` in widget pixels."""
        width = self.width() - 2 * MARGIN
        return MARGIN + width * frame / self._frame_count()

    def frame_at(self, x: float) -> int:
        width = max(self.width() - 2 * MARGIN, 1)
        frame = int((x - MARGIN) / width * self._frame_count())
        return min(max(frame, 0), self._frame_count() - 1)

    def _row_of(self, y: float) -> int:
        return int((y - MARGIN) // ROW_HEIGHT)

    # --- painting -----------------------------------------------------------------------

    def paintEvent(self, _event) -> None:
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(40, 40, 46))
        if self.document is None:
            return
        for row, track in enumerate(self.document.tracks.values()):
            self._paint_track(painter, row, track)
        x = self.frame_x(self.current_frame + 0.5)
        painter.setPen(QtGui.QPen(QtGui.QColor(255, 230, 0), 2))
        painter.drawLine(QtCore.QPointF(x, 0), QtCore.QPointF(x, self.height()))

    def _span(self, painter, start: int, stop: int, top: float, height: float, colour: QtGui.QColor) -> None:
        left = self.frame_x(start)
        painter.fillRect(QtCore.QRectF(left, top, max(self.frame_x(stop) - left, 1.0), height), colour)

    def _paint_track(self, painter: QtGui.QPainter, row: int, track) -> None:
        top = MARGIN + row * ROW_HEIGHT
        inner_top, inner_height = top + 3, ROW_HEIGHT - 6
        self._span(painter, 0, track.frame_count, inner_top, inner_height, QtGui.QColor(60, 60, 68))
        colour = QtGui.QColor(*track.color)
        for start, stop in runs_of(track.origin == Origin.TRACKED):
            self._span(painter, start, stop, inner_top, inner_height, colour)
        light = colour.lighter(160)
        light.setAlpha(160)
        for start, stop in runs_of(track.origin == Origin.INTERPOLATED):
            self._span(painter, start, stop, inner_top, inner_height, light)
        review = (track.flags & (Flag.NEEDS_REVIEW | Flag.DECODE_FAILED)) != 0
        for start, stop in runs_of(review):
            self._span(painter, start, stop, top, 3, QtGui.QColor(235, 50, 50))
        hidden = (track.flags & (Flag.OCCLUDED | Flag.ABSENT)) != 0
        for start, stop in runs_of(hidden):
            self._span(painter, start, stop, top + ROW_HEIGHT - 3, 3, QtGui.QColor(170, 170, 170))
        painter.setRenderHint(QtGui.QPainter.Antialiasing)
        painter.setPen(QtGui.QPen(QtGui.QColor(20, 20, 20), 1))
        painter.setBrush(QtGui.QColor(255, 255, 255))
        middle = top + ROW_HEIGHT / 2
        half = ROW_HEIGHT / 2 - 3
        for frame in np.flatnonzero(track.origin == Origin.MANUAL):
            x = self.frame_x(frame + 0.5)
            painter.drawPolygon(QtGui.QPolygonF([
                QtCore.QPointF(x, middle - half), QtCore.QPointF(x + half, middle),
                QtCore.QPointF(x, middle + half), QtCore.QPointF(x - half, middle),
            ]))
        painter.setRenderHint(QtGui.QPainter.Antialiasing, False)
        if track.id == self.selected_track:
            painter.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255, 180), 1))
            painter.setBrush(QtCore.Qt.NoBrush)
            painter.drawRect(QtCore.QRectF(MARGIN - 2, top, self.width() - 2 * MARGIN + 3, ROW_HEIGHT - 1))

    # --- mouse ------------------------------------------------------------------------------

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() != QtCore.Qt.LeftButton:
            return
        if self.document is not None:
            row = self._row_of(event.y())
            ids = list(self.document.tracks)
            if 0 <= row < len(ids) and ids[row] != self.selected_track:
                self.trackRequested.emit(ids[row])
        self.frameRequested.emit(self.frame_at(event.x()))

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.buttons() & QtCore.Qt.LeftButton:
            self.frameRequested.emit(self.frame_at(event.x()))
