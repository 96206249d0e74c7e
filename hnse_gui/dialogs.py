"""The application's small dialogs: keyboard shortcuts (Help) and settings.

The shortcut list is built from the menus' own actions, so it cannot drift from what
the keys really do.
"""
from __future__ import annotations

from PyQt5 import QtGui, QtWidgets

HELP_TEXT = ('Drag on the frame to pan, wheel to zoom. In "new box" mode a drag draws the box; '
             "drag a box or its corners to correct it. Tracking overwrites tracked frames only, "
             "never your keyframes, and restarts from each keyframe it meets. Track all tracks (Ctrl+T) "
             "follows every track with a box on this frame at once; a track whose score drops stops "
             "there, flagged for review, while the others go on. Double-click a label "
             "in the Tracks list (or press F2) to rename the track. The single keys act on the "
             "frame, which gets the focus back after a dialog or Enter / Esc in a toolbar field.")


def shortcut_table(menus: dict[str, QtWidgets.QMenu]) -> dict[str, list[tuple[str, str]]]:
    """``{menu title: [(action text, shortcuts), ...]}`` for every action that has a shortcut."""
    table = {}
    for title, menu in menus.items():
        rows = [(action.text().replace("&", "").rstrip("…"),
                 ", ".join(s.toString(QtGui.QKeySequence.NativeText) for s in action.shortcuts()))
                for action in menu.actions() if not action.isSeparator() and action.shortcuts()]
        if rows:
            table[title] = rows
    return table


class ShortcutsDialog(QtWidgets.QDialog):
    def __init__(self, menus: dict[str, QtWidgets.QMenu], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QtWidgets.QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        for menu_title, rows in shortcut_table(menus).items():
            for text, keys in rows:
                row = self.table.rowCount()
                self.table.insertRow(row)
                self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(f"{menu_title}: {text}"))
                self.table.setItem(row, 1, QtWidgets.QTableWidgetItem(keys))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        intro = QtWidgets.QLabel(HELP_TEXT)
        intro.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table)
        self.resize(560, 680)


def ask_autosave_interval(parent, seconds: int) -> int | None:
    """Let the user change the autosave interval (0: off); None when cancelled."""
    dialog = QtWidgets.QDialog(parent)
    dialog.setWindowTitle("Settings")
    form = QtWidgets.QFormLayout(dialog)
    interval = QtWidgets.QSpinBox()
    interval.setRange(0, 3600)
    interval.setSuffix(" s")
    interval.setSpecialValueText("off")
    interval.setValue(seconds)
    form.addRow("Autosave every", interval)
    buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    return interval.value() if dialog.exec_() == QtWidgets.QDialog.Accepted else None
