"""The heatmap grid: what each model variant's network saw on the current frame.

Rows are model variants ("with HE", "without HE"), columns are maps of
:attr:`model.tracking.result.TrackResult.maps`. Two column sets:

* fused (the default): ``score`` (or ``final``, toggled), ``centerness``, ``hardneg``;
* per-level (teaching view): ``level2``, ``level3``, ``level4``, the per-level scores
  before the softmax-weighted fusion (Eq. 9).

Each column's title and maps carry a tooltip saying what the map shows
(:data:`COLUMN_TIPS`), and the grid's tooltip is the legend of the columns shown.
Each column has one colour scale shared by all rows, drawn as a
:class:`~pyqtgraph.ColorBarItem` under the column, so the two variants' maps are
compared on the same scale. Maps are shown as stored: row 0 at the top.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore

from model.core.config import TrackConfig
from model.tracking.result import TrackResult

FUSED_COLUMNS = ("score", "centerness", "hardneg")
LEVEL_COLUMNS = ("level2", "level3", "level4")
COLUMN_TITLES = {
    "score": "score (raw)",
    "final": "score (final)",
    "centerness": "center-ness",
    "hardneg": "hard-negative",
    "level2": "level 2",
    "level3": "level 3",
    "level4": "level 4",
}
COLUMN_TIPS = {
    "score": "The raw fused classification score of every cell of the search region: how much "
             "the network thinks the target is there, before any post-processing.",
    "final": "The final score the tracker picks its box from: the raw score times center-ness, "
             "the cosine window and the scale / aspect change penalty. Its brightest cell is the box.",
    "centerness": "Center-ness: how close each cell lies to the centre of the box it predicts "
                  "(1 at a box centre, falling to 0 at its edges); it damps cells near box edges.",
    "hardneg": "Hard negatives: the raw score of the cells whose predicted box does not overlap "
               f"the chosen box (IoU below {TrackConfig().hardneg_iou:g}, the tracking setting hardneg_iou). "
               "The black centre is the chosen box's own cells, set to zero on purpose: what stays "
               "bright elsewhere is a distractor the model also scored highly.",
    "level2": "Level 2's score before the softmax-weighted fusion of the levels (Eq. 9); finest features.",
    "level3": "Level 3's score before the softmax-weighted fusion of the levels (Eq. 9).",
    "level4": "Level 4's score before the softmax-weighted fusion of the levels (Eq. 9); coarsest features.",
}
COLUMN_COLORMAPS = {
    "score": "viridis", "final": "viridis", "centerness": "cividis", "hardneg": "inferno",
    "level2": "viridis", "level3": "viridis", "level4": "viridis",
}


def shared_levels(maps: list[np.ndarray | None]) -> tuple[float, float]:
    """One (low, high) colour range covering every finite value of ``maps``.

    A column whose maps are constant (or missing) still gets a non-empty range, so
    the colour bar stays drawable.
    """
    values = [m[np.isfinite(m)] for m in maps if m is not None and m.size]
    values = [v for v in values if v.size]
    if not values:
        return 0.0, 1.0
    low = float(min(v.min() for v in values))
    high = float(max(v.max() for v in values))
    return (low, high) if high > low else (low, low + 1.0)


def nice_ticks(low: float, high: float, most: int = 3) -> list[tuple[float, str]]:
    """The finest multiples of 1, 2 or 5 x 10^k inside [low, high] that number at most ``most``,
    labelled with as many decimals as the step needs. Requires ``high > low``."""
    exponent = math.floor(math.log10(high - low)) - 1
    for power in range(exponent, exponent + 3):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0 ** power
            first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
            if last - first + 1 <= most:
                decimals = max(0, -math.floor(math.log10(step) + 1e-9))
                label = (lambda v: f"{v:.{decimals}f}") if decimals <= 4 else (lambda v: f"{v:.2g}")
                return [(k * step, label(k * step)) for k in range(first, last + 1)]
    return [(low, f"{low:.3g}"), (high, f"{high:.3g}")]


class HeatmapGrid(pg.GraphicsLayoutWidget):
    """A (variants x 3) grid of colour-mapped maps with one colour bar per column."""

    def __init__(self, variants: list[str], parent=None):
        super().__init__(parent)
        self.setBackground((30, 30, 34))
        self.variants = list(variants)
        self.show_final = False
        self.per_level = False
        self._results: dict[str, TrackResult | None] = {}
        self._titles: list[pg.LabelItem] = []
        self.images: list[list[pg.ImageItem]] = []
        self.bars: list[pg.ColorBarItem] = []
        self._build()

    def columns(self) -> tuple[str, ...]:
        if self.per_level:
            return LEVEL_COLUMNS
        return ("final" if self.show_final else "score",) + FUSED_COLUMNS[1:]

    def _build(self) -> None:
        self.ci.layout.setSpacing(2)
        self.addLabel("", row=0, col=0)
        for col in range(3):
            title = self.addLabel("", row=0, col=col + 1, size="9pt", color="#dddddd")
            self._titles.append(title)
        for row, variant in enumerate(self.variants):
            self.addLabel(variant, row=row + 1, col=0, angle=-90, size="9pt", color="#dddddd")
            images = []
            for col in range(3):
                view = self.addViewBox(row=row + 1, col=col + 1, lockAspect=True, invertY=True,
                                       enableMouse=False, enableMenu=False)
                view.setDefaultPadding(0.0)
                image = pg.ImageItem(axisOrder="row-major")
                view.addItem(image)
                images.append(image)
            self.images.append(images)
        for col in range(3):
            bar = pg.ColorBarItem(values=(0.0, 1.0), width=10, interactive=False,
                                  orientation="horizontal", rounding=0.01, colorMapMenu=False)
            bar.setImageItem([images[col] for images in self.images])
            self.addItem(bar, row=len(self.variants) + 1, col=col + 1)
            self.bars.append(bar)
        self._apply_columns()

    def _apply_columns(self) -> None:
        """Titles, colour maps and tooltips of the columns shown; the grid's own tooltip is
        the legend of all of them."""
        for col, name in enumerate(self.columns()):
            self._titles[col].setText(COLUMN_TITLES[name])
            self._titles[col].setToolTip(COLUMN_TIPS[name])
            for images in self.images:
                images[col].setToolTip(COLUMN_TIPS[name])
            self.bars[col].setColorMap(pg.colormap.get(COLUMN_COLORMAPS[name]))
        self.setToolTip("<br>".join(f"<b>{COLUMN_TITLES[name]}</b>: {COLUMN_TIPS[name]}" for name in self.columns()))

    # --- state ----------------------------------------------------------------------

    def set_show_final(self, show_final: bool) -> None:
        """Toggle the first column between the raw ``score`` and the ``final`` map."""
        self.show_final = bool(show_final)
        self._apply_columns()
        self._redraw()

    def set_per_level(self, per_level: bool) -> None:
        """Switch between the fused maps and the per-level (before fusion) view."""
        self.per_level = bool(per_level)
        self._apply_columns()
        self._redraw()

    def set_results(self, results: dict[str, TrackResult | None]) -> None:
        """Show each variant's result for the current frame (``None``: nothing to show)."""
        self._results = dict(results)
        self._redraw()

    def shown_map(self, variant: str, column: int) -> np.ndarray | None:
        """The array currently drawn in (variant, column), ``None`` when the cell is empty."""
        row = self.variants.index(variant)
        image = self.images[row][column].image
        return None if image is None or image.size == 0 else image

    def _redraw(self) -> None:
        for col, name in enumerate(self.columns()):
            maps = []
            for variant in self.variants:
                result = self._results.get(variant)
                maps.append(None if result is None else result.maps.get(name))
            low, high = shared_levels(maps)
            for row, values in enumerate(maps):
                image = self.images[row][col]
                if values is None:
                    image.clear()
                else:
                    image.setImage(np.asarray(values, dtype=np.float32), autoLevels=False, levels=(low, high))
                    image.setRect(QtCore.QRectF(0, 0, values.shape[1], values.shape[0]))
            self.bars[col].setLevels((low, high))
            # few labels: automatic ticks crowd a 150-pixel bar with overlapping numbers
            self.bars[col].axis.setTicks([nice_ticks(low, high)])
