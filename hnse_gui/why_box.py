""""Why this box": each variant's top NMS candidates and the factors of their final score.

One row per candidate of :attr:`model.tracking.result.TrackResult.candidates` (already in final-score
order), at most ``top`` per variant: its cell, its label, and the factors of
:attr:`model.tracking.result.Candidate.factors` with final = (score x center-ness x penalty x
(1 - influence) + window share) x HE factor x colour factor. The winner, the candidate on
``Pipeline.best_cell`` (the arg-max of the final map), is bold and ticked. Each factor cell
shows the value rounded and holds it exactly under ``QtCore.Qt.UserRole``.
"""
from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

from model.tracking.result import TrackResult

FACTOR_COLUMNS = (
    ("score", "raw score"),
    ("centerness", "center-ness (Eq. 4-5)"),
    ("penalty", "penalty (Eq. 10-11)"),
    ("window", "window share"),
    ("he", "HE factor"),
    ("colour", "colour factor"),
    ("final", "final"),
)
HEADERS = ("variant", "rank", "cell", "label") + tuple(title for _, title in FACTOR_COLUMNS) + ("won",)
WON_COLUMN = len(HEADERS) - 1


class WhyBoxTable(QtWidgets.QTableWidget):
    """Read-only table of the top candidates of each variant, the winner marked."""

    def __init__(self, variant_names: list[str], top: int = 5, parent=None):
        super().__init__(0, len(HEADERS), parent)
        self.variants = list(variant_names)
        self.top = top
        self.setHorizontalHeaderLabels(HEADERS)
        self.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        self.setToolTip("final = (score x center-ness x penalty x (1 - window influence) + window share) "
                        "x HE factor x colour factor")

    def set_results(self, results: dict[str, TrackResult | None]) -> None:
        """List each variant's top candidates for the current frame (none for ``None``)."""
        rows = []
        for variant in self.variants:
            result = results.get(variant)
            if result is None:
                continue
            best = None if result.pipeline is None else tuple(result.pipeline.best_cell)
            for rank, candidate in enumerate(result.candidates[: self.top], start=1):
                rows.append((variant, rank, candidate, tuple(candidate.cell) == best))
        self.setRowCount(len(rows))
        for row, (variant, rank, candidate, won) in enumerate(rows):
            texts = [variant, str(rank), f"{candidate.cell[0]}, {candidate.cell[1]}", candidate.label]
            cells = [QtWidgets.QTableWidgetItem(text) for text in texts]
            for key, _ in FACTOR_COLUMNS:
                value = candidate.factors.get(key, float("nan"))
                item = QtWidgets.QTableWidgetItem(f"{value:.4g}")
                item.setData(QtCore.Qt.UserRole, value)
                item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                cells.append(item)
            cells.append(QtWidgets.QTableWidgetItem("\u2713" if won else ""))
            for col, item in enumerate(cells):
                if won:
                    font = QtGui.QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(row, col, item)

    def winner_row(self, variant: str) -> int | None:
        """The table row of ``variant``'s winning candidate, ``None`` when it is not listed."""
        for row in range(self.rowCount()):
            if self.item(row, 0).text() == variant and self.item(row, WON_COLUMN).text():
                return row
        return None

    def row_factors(self, row: int) -> dict[str, float]:
        """The factors shown in ``row``, exactly as held by its cells."""
        return {key: self.item(row, 4 + col).data(QtCore.Qt.UserRole) for col, (key, _) in enumerate(FACTOR_COLUMNS)}

    def row_cell(self, row: int) -> tuple[int, int]:
        """The score-map cell (row, col) of the candidate listed in ``row``."""
        r, c = self.item(row, 2).text().split(",")
        return int(r), int(c)
