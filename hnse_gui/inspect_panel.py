"""The inspect panel: the heatmap grid and the switches that choose what it and the frame show.

* "final map": the grid's first column shows ``final`` (after center-ness, cosine window
  and scale penalty, what the tracker argmaxes) instead of the raw fused ``score``;
* "per level": the grid shows ``level2``/``level3``/``level4`` before fusion;
* "overlay": one map of one variant laid over the frame where it lies (``map_box``);
* "candidates": the NMS candidates drawn on the frame, coloured by label.

The panel holds this state; the main window reads it (and listens to
:attr:`InspectPanel.changed`) when it draws the frame.
"""
from __future__ import annotations

from PyQt5 import QtCore, QtWidgets

from hnse_gui.heatmaps import HeatmapGrid

OVERLAY_MAPS = ("score", "final", "centerness", "hardneg", "embed_dist", "rerank")  # rerank: with a re-ranking cue on


class InspectPanel(QtWidgets.QWidget):
    changed = QtCore.pyqtSignal()

    def __init__(self, variants: list[str], parent=None):
        super().__init__(parent)
        self.grid = HeatmapGrid(variants)
        self.final_box = QtWidgets.QCheckBox("final map")
        self.final_box.setToolTip("First column: the final map (after center-ness, window and penalty) "
                                  "instead of the raw score")
        self.levels_box = QtWidgets.QCheckBox("per level")
        self.levels_box.setToolTip("Show the per-level scores (levels 2, 3, 4) before fusion")
        self.candidates_box = QtWidgets.QCheckBox("candidates")
        self.candidates_box.setToolTip("Draw the NMS candidates on the frame: positive green, "
                                       "hard negative red, other grey")
        self.candidates_box.setChecked(True)
        self.overlay_map = QtWidgets.QComboBox()
        self.overlay_map.addItem("no overlay", None)
        for name in OVERLAY_MAPS:
            self.overlay_map.addItem(f"overlay {name}", name)
        self.overlay_variant = QtWidgets.QComboBox()
        self.overlay_variant.addItems(variants)
        self.overlay_variant.setToolTip("Which model variant's map and candidates the frame shows")
        for widget in (self.final_box, self.levels_box, self.candidates_box, self.overlay_map,
                       self.overlay_variant):
            widget.setFocusPolicy(QtCore.Qt.NoFocus)
        self.final_box.toggled.connect(self.grid.set_show_final)
        self.levels_box.toggled.connect(self.grid.set_per_level)
        self.final_box.toggled.connect(self.changed)
        self.levels_box.toggled.connect(self.changed)
        self.candidates_box.toggled.connect(self.changed)
        self.overlay_map.currentIndexChanged.connect(self.changed)
        self.overlay_variant.currentIndexChanged.connect(self.changed)

        controls = QtWidgets.QHBoxLayout()
        controls.setContentsMargins(4, 2, 4, 2)
        for widget in (self.final_box, self.levels_box, self.candidates_box):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.overlay_map)
        controls.addWidget(self.overlay_variant)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(controls)
        layout.addWidget(self.grid, 1)

    @property
    def overlay(self) -> str | None:
        """The map name laid over the frame, or None."""
        return self.overlay_map.currentData()

    def set_overlay(self, name: str | None) -> None:
        self.overlay_map.setCurrentIndex(max(self.overlay_map.findData(name), 0))

    def cycle_overlay(self) -> None:
        self.overlay_map.setCurrentIndex((self.overlay_map.currentIndex() + 1) % self.overlay_map.count())

    @property
    def variant(self) -> str:
        """The variant whose map / candidates the frame shows."""
        return self.overlay_variant.currentText()

    @property
    def show_candidates(self) -> bool:
        return self.candidates_box.isChecked()
