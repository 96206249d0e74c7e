"""The pipeline view: one frame's decision, step by step, for each model variant (teaching view).

One column per model variant ("with HE", "without HE"), one row per step, top to bottom:

* ``exemplar``: the 127x127 exemplar crop z the network holds, with the target box
  (``Pipeline.exemplar_box``), cropped once at init (Sec. 3.5);
* ``search``: the 255x255 search crop x of this frame with the decoded box
  (``Pipeline.box_in_search``) and the arg-max cell placed on the crop by Eq. 2;
* ``level2``/``level3``/``level4``: each level's score map (Eq. 1) with its softmax
  fusion weight (Eq. 9) in the title, for three-level networks; a one-level network
  (HNSE-Nano) shows a single ``score`` panel instead;
* ``centerness``: the center-ness map (Eq. 4-5);
* ``penalty``: the scale/aspect change penalty (Eq. 10-11);
* ``window``: the cosine window (Sec. 3.5);
* ``final``: the final map (Sec. 3.5), what the tracker arg-maxes, with the arg-max cell
  (``Pipeline.best_cell``) marked;
* ``embed_dist``: the HE embedding distance to the exemplar (Sec. 3.3), NaN (transparent)
  where it was not computed; only when some variant has it.

Everything drawn comes from :class:`model.tracking.result.TrackResult`; nothing is recomputed.
Each map row has one colour scale shared by the variants (a bar at the row's right),
maps are drawn as stored (row 0 at the top), one unit per cell; crops are converted from
BGR to RGB and drawn in crop coordinates (pixel k centred on k, as boxes in crops are).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from hnse_gui.heatmaps import COLUMN_COLORMAPS, LEVEL_COLUMNS, nice_ticks, shared_levels
from model.tracking.result import TrackResult

CROP_PANELS = ("exemplar", "search")
# every panel in display order; a view shows those its results carry
PANELS = CROP_PANELS + LEVEL_COLUMNS + ("score", "centerness", "penalty", "window", "final", "embed_dist")
PANEL_TITLES = {
    "exemplar": "exemplar z, target box (Sec. 3.5)",
    "search": "search x, decoded box, arg-max cell (Eq. 2)",
    "score": "score (single level), head softmax (Eq. 1)",
    "centerness": "center-ness (Eq. 4-5)",
    "penalty": "scale/aspect penalty (Eq. 10-11)",
    "window": "cosine window (Sec. 3.5)",
    "final": "final map, arg-max cell (Sec. 3.5)",
    "embed_dist": "HE embedding distance (Sec. 3.3)",
}
PANEL_COLORMAPS = {**COLUMN_COLORMAPS, "penalty": "magma", "window": "plasma", "embed_dist": "inferno"}
TARGET_PEN = (60, 220, 90)
BOX_PEN = (255, 200, 40)
CELL_PEN = (235, 70, 70)
PANEL_HEIGHT = 190


def shown_panels(results: dict[str, TrackResult | None]) -> tuple[str, ...]:
    """The panels any of ``results`` has something for, in :data:`PANELS` order."""
    shown = [result for result in results.values() if result is not None]
    present = set(CROP_PANELS) if any(result.pipeline is not None for result in shown) else set()
    for result in shown:
        present.update(result.maps)
    if not any("score" in result.maps and "level2" not in result.maps for result in shown):
        present.discard("score")  # three-level networks show their score level by level
    return tuple(name for name in PANELS if name in present)


def panel_title(name: str, result: TrackResult | None) -> str:
    """The panel's title: what it shows and its equation. A level's title adds its
    score-fusion weight w_k of Eq. 9; the search crop's says how far the motion
    prediction centred it ahead of the target's last position."""
    pipeline = None if result is None else result.pipeline
    if name in LEVEL_COLUMNS:
        weights = None if pipeline is None else pipeline.fusion_weights
        weight = "" if not weights else f", w = {weights['score'][LEVEL_COLUMNS.index(name)]:.3f}"
        return f"level {name[-1]} score (Eq. 1){weight} (Eq. 9)"
    if name == "search" and pipeline is not None and any(pipeline.search_shift):
        dx, dy = (round(v, 1) + 0.0 for v in pipeline.search_shift)  # + 0.0: no "-0.0"
        return f"{PANEL_TITLES[name]}, centred ({dx:+.1f}, {dy:+.1f}) px ahead (motion prediction)"
    return PANEL_TITLES[name]


def cell_in_search(result: TrackResult, cell: tuple[int, int]) -> tuple[float, float]:
    """Search-crop coordinates (x, y) of score-map cell (row, col) (Eq. 2): where
    ``map_box`` puts the cell in the frame, taken into the crop that ``search_box`` covers.

    Crop coordinates are those of :mod:`model.core.geometry` and of ``Pipeline.box_in_search``:
    crop pixel k is centred on k (``search_box`` gives pixel edges, hence the half pixel).
    """
    sx, sy, sw, _ = result.search_box
    mx, my, mw, _ = result.map_box
    scale = result.pipeline.search.shape[1] / sw
    step = mw * scale / result.maps["final"].shape[0]
    row, col = cell
    return (mx - sx) * scale - 0.5 + (col + 0.5) * step, (my - sy) * scale - 0.5 + (row + 0.5) * step


def _rect_item(rect: tuple[float, float, float, float], colour, width: float = 2.0) -> QtWidgets.QGraphicsRectItem:
    item = QtWidgets.QGraphicsRectItem(QtCore.QRectF(*rect))
    pen = pg.mkPen(colour, width=width)
    pen.setCosmetic(True)
    item.setPen(pen)
    item.setBrush(QtGui.QBrush(QtCore.Qt.NoBrush))
    return item


class PipelineView(QtWidgets.QWidget):
    """Variants as columns, pipeline steps as rows (see the module docstring), scrollable."""

    def __init__(self, variant_names: list[str], parent=None):
        super().__init__(parent)
        self.variants = list(variant_names)
        self._results: dict[str, TrackResult | None] = {}
        self._panels: tuple[str, ...] = ()
        self._plots: dict[tuple[str, str], pg.PlotItem] = {}
        self._images: dict[tuple[str, str], pg.ImageItem] = {}
        self._marks: dict[tuple[str, str], list[QtWidgets.QGraphicsItem]] = {}
        self._bars: dict[str, pg.ColorBarItem] = {}
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground((30, 30, 34))
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.graphics)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self._build(CROP_PANELS)

    @property
    def panels(self) -> tuple[str, ...]:
        """The panels shown now, top to bottom."""
        return self._panels

    # --- layout ---------------------------------------------------------------------

    def _build(self, panels: tuple[str, ...]) -> None:
        self.graphics.clear()
        self._marks.clear()
        self._plots.clear()
        self._images.clear()
        self._bars.clear()
        self._panels = panels
        self.graphics.ci.layout.setSpacing(2)
        for col, variant in enumerate(self.variants):
            self.graphics.addLabel(variant, row=0, col=col, size="10pt", color="#ffffff")
        for row, name in enumerate(panels, start=1):
            for col, variant in enumerate(self.variants):
                plot = self.graphics.addPlot(row=row, col=col)
                plot.hideAxis("left")
                plot.hideAxis("bottom")
                plot.setMenuEnabled(False)
                plot.setMouseEnabled(x=False, y=False)
                plot.hideButtons()
                plot.invertY(True)
                plot.setAspectLocked(True)
                image = pg.ImageItem(axisOrder="row-major")
                plot.addItem(image)
                self._plots[variant, name] = plot
                self._images[variant, name] = image
            if name not in CROP_PANELS:
                bar = pg.ColorBarItem(values=(0.0, 1.0), width=10, interactive=False, rounding=0.001,
                                      colorMap=pg.colormap.get(PANEL_COLORMAPS[name]), colorMapMenu=False)
                bar.setImageItem([self._images[variant, name] for variant in self.variants])
                bar.axis.setStyle(tickFont=QtGui.QFont("", 7))
                bar.axis.setWidth(48)
                self.graphics.addItem(bar, row=row, col=len(self.variants))
                self._bars[name] = bar
        self.graphics.setMinimumHeight(PANEL_HEIGHT * len(panels) + 30)

    # --- state ----------------------------------------------------------------------

    def set_results(self, results: dict[str, TrackResult | None]) -> None:
        """Show each variant's result for the current frame (``None``: an empty column)."""
        self._results = {variant: results.get(variant) for variant in self.variants}
        panels = shown_panels(self._results)
        if panels != self._panels:
            self._build(panels)
        for key, items in self._marks.items():
            for item in items:
                self._plots[key].removeItem(item)
        self._marks.clear()
        for name in self._panels:
            if name in CROP_PANELS:
                self._draw_crops(name)
            else:
                self._draw_maps(name)

    def _draw_crops(self, name: str) -> None:
        for variant in self.variants:
            result = self._results[variant]
            pipeline = None if result is None else result.pipeline
            if pipeline is None:
                self._show(variant, name, None)
                continue
            crop = np.ascontiguousarray(getattr(pipeline, name)[..., ::-1])  # BGR -> RGB
            self._show(variant, name, crop, (0, 255), origin=-0.5)  # pixel k centred on k
            if name == "exemplar":
                self._mark(variant, name, _rect_item(pipeline.exemplar_box, TARGET_PEN))
            else:
                self._mark(variant, name, _rect_item(pipeline.box_in_search, BOX_PEN))
                x, y = cell_in_search(result, pipeline.best_cell)
                self._mark(variant, name, pg.ScatterPlotItem([x], [y], symbol="+", size=14,
                                                             pen=pg.mkPen(CELL_PEN, width=2), brush=None))

    def _draw_maps(self, name: str) -> None:
        maps = {v: None if r is None else r.maps.get(name) for v, r in self._results.items()}
        low, high = shared_levels(list(maps.values()))
        for variant, values in maps.items():
            self._show(variant, name, None if values is None else np.asarray(values, np.float32), (low, high))
            pipeline = None if values is None else self._results[variant].pipeline
            if name == "final" and pipeline is not None:
                row, col = pipeline.best_cell
                self._mark(variant, name, _rect_item((col, row, 1, 1), CELL_PEN))
        self._bars[name].setLevels((low, high))
        self._bars[name].axis.setTicks([nice_ticks(low, high)])

    def _show(self, variant: str, name: str, values: np.ndarray | None, levels=(0.0, 1.0),
              origin: float = 0.0) -> None:
        """Title the panel and draw ``values`` (``None``: clear it) with its top-left pixel
        edge at (origin, origin); the panel's range is the image, so a mark far outside does
        not shrink it."""
        plot = self._plots[variant, name]
        plot.setTitle(panel_title(name, self._results[variant]), size="8pt")
        image = self._images[variant, name]
        if values is None:
            image.clear()
            return
        image.setImage(values, autoLevels=False, levels=levels)
        rect = QtCore.QRectF(origin, origin, values.shape[1], values.shape[0])
        image.setRect(rect)
        plot.vb.setRange(rect, padding=0)

    def _mark(self, variant: str, name: str, item: QtWidgets.QGraphicsItem) -> None:
        self._plots[variant, name].addItem(item)
        self._marks.setdefault((variant, name), []).append(item)

    # --- what is drawn (for tests and tooltips) -------------------------------------

    def panel_image(self, variant: str, name: str) -> np.ndarray | None:
        """The array drawn in the panel: RGB for crops, the map as stored otherwise;
        ``None`` when the panel is empty."""
        image = self._images[variant, name].image
        return None if image is None or image.size == 0 else image

    def panel_title(self, variant: str, name: str) -> str:
        return self._plots[variant, name].titleLabel.text

    def marked_cell(self, variant: str) -> tuple[int, int] | None:
        """The (row, col) cell marked on the final map, ``None`` when nothing is marked."""
        marks = self._marks.get((variant, "final"))
        if not marks:
            return None
        rect = marks[0].rect()
        return int(rect.y()), int(rect.x())

    def marked_search_point(self, variant: str) -> tuple[float, float] | None:
        """The search-crop pixel (x, y) where the arg-max cell is marked."""
        marks = self._marks.get((variant, "search"))
        if not marks:
            return None
        x, y = marks[1].getData()
        return float(x[0]), float(y[0])

    def marked_box(self, variant: str, name: str) -> tuple[float, float, float, float] | None:
        """The (x, y, w, h) box drawn on a crop panel (target box or decoded box)."""
        marks = self._marks.get((variant, name))
        if not marks:
            return None
        rect = marks[0].rect()
        return rect.x(), rect.y(), rect.width(), rect.height()
