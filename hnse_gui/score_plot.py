"""A small plot of each model variant's score over the frames of the selected track.

One curve per variant (solid for the first, dashed for the others, matching the boxes
on the frame), a dotted horizontal line at the review threshold and a vertical line on
the current frame. Frames without a score are gaps in the curve.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore

VARIANT_COLOURS = ((255, 200, 40), (90, 190, 255), (220, 120, 255))
SCORE_PADDING = 0.08  # of the 0-1 score range, above and below


class ScorePlot(pg.PlotWidget):
    frameRequested = QtCore.pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__(parent, background=(30, 30, 34))
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        # room above 1: a confident tracker's curve runs at the top, and must not read as clipped
        self.setYRange(0.0, 1.0, padding=SCORE_PADDING)
        self.setLabel("left", "score")
        self.showGrid(x=False, y=True, alpha=0.2)
        self.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((235, 70, 70), style=QtCore.Qt.DotLine))
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 230, 0), width=1))
        self.addItem(self.threshold_line)
        self.addItem(self.cursor)
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_frame_count(self, frame_count: int) -> None:
        # the limits first: the previous video's would clamp a longer one's range
        self.setLimits(xMin=-1, xMax=frame_count)
        self.setXRange(0, max(frame_count - 1, 1), padding=0.01)

    def set_threshold(self, threshold: float) -> None:
        self.threshold_line.setValue(threshold)

    def set_current_frame(self, frame: int) -> None:
        self.cursor.setValue(frame)

    def set_scores(self, scores: dict[str, np.ndarray]) -> None:
        """``scores[variant]`` is an (N,) array with NaN where the variant has no score."""
        for name in list(self._curves):
            if name not in scores:
                self.removeItem(self._curves.pop(name))
        for index, (name, values) in enumerate(scores.items()):
            curve = self._curves.get(name)
            if curve is None:
                pen = pg.mkPen(VARIANT_COLOURS[index % len(VARIANT_COLOURS)], width=1.5,
                               style=QtCore.Qt.SolidLine if index == 0 else QtCore.Qt.DashLine)
                curve = self.plot([], [], pen=pen, name=name, connect="finite")
                self._curves[name] = curve
            values = np.asarray(values, dtype=np.float64)
            curve.setData(np.arange(len(values)), values, connect="finite")

    def curve_data(self, name: str) -> np.ndarray:
        """The y values drawn for ``name`` (for tests and tooltips)."""
        return self._curves[name].getData()[1]

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.LeftButton:
            return
        point = self.getPlotItem().vb.mapSceneToView(event.scenePos())
        self.frameRequested.emit(int(round(point.x())))
