"""The frame view: one video frame with zoom and pan, and everything drawn over it.

A pyqtgraph :class:`~pyqtgraph.ImageItem` inside a :class:`~pyqtgraph.ViewBox` with
the aspect locked and the y axis pointing down, so view coordinates are frame pixels
(x right, y down, (0, 0) the top-left corner of the top-left pixel). Over the frame:

* the current track's box as a :class:`~pyqtgraph.RectROI` the user drags and resizes;
  when a drag ends, :attr:`FrameView.boxEdited` carries the new (x, y, w, h);
* the other tracks' boxes, drawn but not editable;
* each model variant's box in its own line style (solid for "with HE", dashed for
  "without HE");
* the NMS candidates of a :class:`~model.tracking.result.TrackResult`, coloured by label;
* optionally one score map, colour-mapped and half transparent, laid over the frame
  rectangle it covers (``TrackResult.map_box``).

In "new box" mode a left-button drag on the frame draws a rubber band and, on
release, :attr:`FrameView.boxDrawn` carries the box. Boxes in and out are
(x, y, w, h) floats in frame pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from model.tracking.result import Box, Candidate

CANDIDATE_COLOURS = {
    "positive": (40, 200, 60),
    "hard_negative": (230, 40, 40),
    "other": (160, 160, 160),
}
MIN_BOX_SIZE = 2.0  # pixels; a drawn box smaller than this is a mis-click, not a target


@dataclass(frozen=True)
class BoxShape:
    """A box to draw: where, in which colour (r, g, b), and in which line style."""

    box: Box
    colour: tuple[int, int, int]
    dashed: bool = False
    width: float = 1.5


def _rect_item(pen: QtGui.QPen) -> QtWidgets.QGraphicsRectItem:
    item = QtWidgets.QGraphicsRectItem()
    item.setPen(pen)
    item.setZValue(10)
    return item


def _pen(colour, width: float, dashed: bool = False) -> QtGui.QPen:
    pen = pg.mkPen(colour, width=width)
    pen.setCosmetic(True)  # constant on-screen width whatever the zoom
    if dashed:
        pen.setStyle(QtCore.Qt.DashLine)
    return pen


class _RectPool:
    """Reuses rectangle items between frames instead of re-creating them on every redraw."""

    def __init__(self, view: pg.ViewBox, z: float):
        self._view = view
        self._z = z
        self._items: list[QtWidgets.QGraphicsRectItem] = []

    def show(self, shapes: list[BoxShape]) -> None:
        while len(self._items) < len(shapes):
            item = _rect_item(QtGui.QPen())
            item.setZValue(self._z)
            self._view.addItem(item)
            self._items.append(item)
        for item, shape in zip(self._items, shapes):
            x, y, w, h = shape.box
            item.setRect(QtCore.QRectF(x, y, w, h))
            item.setPen(_pen(shape.colour, shape.width, shape.dashed))
            item.setVisible(True)
        for item in self._items[len(shapes):]:
            item.setVisible(False)

    def visible_colours(self) -> list[tuple[int, int, int]]:
        """The (r, g, b) pen colour of each rectangle shown, in the order given to :meth:`show`."""
        return [item.pen().color().getRgb()[:3] for item in self._items if item.isVisible()]


class _FrameViewBox(pg.ViewBox):
    """A ViewBox that, in drawing mode, turns a left-button drag into a rubber-band box."""

    def __init__(self, on_drawn):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.drawing = False
        self._on_drawn = on_drawn
        self._band = _rect_item(_pen((255, 255, 0), 1.5, dashed=True))
        self._band.setZValue(50)
        self._band.setVisible(False)
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, event, axis=None):
        if not self.drawing or event.button() != QtCore.Qt.LeftButton:
            super().mouseDragEvent(event, axis)
            return
        event.accept()
        start = self.mapSceneToView(event.buttonDownScenePos())
        end = self.mapSceneToView(event.scenePos())
        rect = QtCore.QRectF(start, end).normalized()
        self._band.setRect(rect)
        self._band.setVisible(True)
        if event.isFinish():
            self._band.setVisible(False)
            self._on_drawn((rect.x(), rect.y(), rect.width(), rect.height()))


class FrameView(pg.GraphicsView):
    """Shows one frame; the user zooms (wheel), pans (drag), draws and edits boxes."""

    boxDrawn = QtCore.pyqtSignal(tuple)  # (x, y, w, h) of a box drawn in "new box" mode
    boxEdited = QtCore.pyqtSignal(tuple)  # (x, y, w, h) after the user moved/resized the box
    drawingChanged = QtCore.pyqtSignal(bool)  # "new box" mode entered / left

    def __init__(self, parent=None):
        super().__init__(parent, background=(30, 30, 34))
        self.view = _FrameViewBox(self._finish_drawing)
        self.setCentralItem(self.view)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setOpacity(0.5)
        self.overlay.setZValue(5)
        self.overlay.setVisible(False)
        self.view.addItem(self.overlay, ignoreBounds=True)
        self._tracks = _RectPool(self.view, z=10)
        self._variants = _RectPool(self.view, z=12)
        self._candidates = _RectPool(self.view, z=8)
        self.roi = pg.RectROI((0, 0), (1, 1), pen=_pen((255, 255, 255), 2), movable=True,
                              rotatable=False, removable=False)
        for corner, anchor in (((0, 0), (1, 1)), ((1, 0), (0, 1)), ((0, 1), (1, 0))):
            self.roi.addScaleHandle(corner, anchor)
        self.roi.setZValue(20)
        self.roi.setVisible(False)
        self.roi.sigRegionChangeFinished.connect(self._roi_finished)
        self.view.addItem(self.roi, ignoreBounds=True)
        self._frame_shape: tuple[int, int] | None = None
        self._setting_roi = False

    # --- the frame ------------------------------------------------------------------

    def set_frame(self, rgb: np.ndarray) -> None:
        """Show an (H, W, 3) uint8 RGB frame; the view fits it when the frame size changes."""
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        shape = rgb.shape[:2]
        if shape != self._frame_shape:
            self._frame_shape = shape
            self.view.setLimits(xMin=-shape[1], xMax=2 * shape[1], yMin=-shape[0], yMax=2 * shape[0])
            self.fit()

    def fit(self) -> None:
        if self._frame_shape is not None:
            height, width = self._frame_shape
            self.view.setRange(QtCore.QRectF(0, 0, width, height), padding=0.02)

    def zoom(self, factor: float) -> None:
        """Zoom by ``factor`` (> 1 magnifies) about the view's centre."""
        self.view.scaleBy((1.0 / factor, 1.0 / factor))

    # --- boxes ----------------------------------------------------------------------

    def set_editable_box(self, box: Box | None, colour: tuple[int, int, int] = (255, 255, 255)) -> None:
        """Put the RectROI on ``box`` (the current track's box on this frame), or hide it."""
        if box is None or not np.all(np.isfinite(box)):
            self.roi.setVisible(False)
            return
        x, y, w, h = (float(v) for v in box)
        self._setting_roi = True
        try:
            self.roi.setPen(_pen(colour, 2))
            self.roi.setPos((x, y), finish=False)
            self.roi.setSize((w, h), finish=False)
        finally:
            self._setting_roi = False
        self.roi.setVisible(True)

    def editable_box(self) -> Box | None:
        if not self.roi.isVisible():
            return None
        pos, size = self.roi.pos(), self.roi.size()
        return (float(pos.x()), float(pos.y()), float(size.x()), float(size.y()))

    def set_track_boxes(self, shapes: list[BoxShape]) -> None:
        """The boxes of the tracks that are not being edited."""
        self._tracks.show(shapes)

    def set_variant_boxes(self, shapes: list[BoxShape]) -> None:
        """Each model variant's box on this frame (solid / dashed)."""
        self._variants.show(shapes)

    def set_candidates(self, candidates: list[Candidate]) -> None:
        """The NMS candidates, coloured by label (positive / hard_negative / other)."""
        self._candidates.show([
            BoxShape(c.box, CANDIDATE_COLOURS.get(c.label, CANDIDATE_COLOURS["other"]), dashed=False, width=1.0)
            for c in candidates
        ])

    def candidate_colours(self) -> list[tuple[int, int, int]]:
        """The colours of the candidates drawn, in the order of :meth:`set_candidates`."""
        return self._candidates.visible_colours()

    # --- map overlay ------------------------------------------------------------------

    def set_overlay(self, score_map: np.ndarray | None, map_box: Box | None,
                    colormap: pg.ColorMap | None = None) -> None:
        """Lay ``score_map`` (S, S) over the frame rectangle ``map_box``; ``None`` hides it."""
        if score_map is None or map_box is None or map_box[2] <= 0 or map_box[3] <= 0:
            self.overlay.setVisible(False)
            return
        values = np.asarray(score_map, dtype=np.float32)
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        self.overlay.setImage(values, autoLevels=False, levels=(low, high if high > low else low + 1.0))
        self.overlay.setColorMap(colormap or pg.colormap.get("inferno"))
        self.overlay.setRect(QtCore.QRectF(*map_box))
        self.overlay.setVisible(True)

    # --- drawing a new box -----------------------------------------------------------

    def begin_drawing(self) -> None:
        """Enter "new box" mode: the next left-button drag draws a box instead of panning."""
        self.view.drawing = True
        self.setCursor(QtCore.Qt.CrossCursor)
        self.drawingChanged.emit(True)

    def cancel_drawing(self) -> None:
        if self.view.drawing:
            self.view.drawing = False
            self.unsetCursor()
            self.drawingChanged.emit(False)

    @property
    def drawing(self) -> bool:
        return self.view.drawing

    def _finish_drawing(self, box: Box) -> None:
        self.cancel_drawing()
        if box[2] >= MIN_BOX_SIZE and box[3] >= MIN_BOX_SIZE:
            self.boxDrawn.emit(tuple(float(v) for v in box))

    def _roi_finished(self) -> None:
        if self._setting_roi or not self.roi.isVisible():
            return
        box = self.editable_box()
        if box[2] >= MIN_BOX_SIZE and box[3] >= MIN_BOX_SIZE:
            self.boxEdited.emit(box)

    # --- coordinates (used by tests and by the main window's context actions) ---------

    def frame_to_widget(self, x: float, y: float) -> QtCore.QPoint:
        """The widget (viewport) pixel that shows frame point (x, y)."""
        scene = self.view.mapViewToScene(QtCore.QPointF(x, y))
        return self.mapFromScene(scene)
