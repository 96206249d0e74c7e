"""The track list: every track with its id, label and colour; selecting one makes it current.

One row per track: the id (with a swatch of the track's colour) and the label. The list
only asks; the main window turns requests into undoable commands:
:attr:`TrackList.renameRequested` after an in-place label edit (double-click the label, or
:meth:`TrackList.edit_label` for F2),
:attr:`TrackList.recolorRequested` from the colour button, :attr:`TrackList.newRequested`
and :attr:`TrackList.deleteRequested` from the other buttons.
"""
from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

from hnse_gui.document import Document

TRACK_ID_ROLE = QtCore.Qt.UserRole
ID_COLUMN, LABEL_COLUMN = 0, 1


def colour_icon(colour: tuple[int, int, int], size: int = 14) -> QtGui.QIcon:
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(QtGui.QColor(*colour))
    return QtGui.QIcon(pixmap)


class TrackList(QtWidgets.QWidget):
    trackSelected = QtCore.pyqtSignal(int)
    renameRequested = QtCore.pyqtSignal(int, str)
    recolorRequested = QtCore.pyqtSignal(int, tuple)
    newRequested = QtCore.pyqtSignal()
    deleteRequested = QtCore.pyqtSignal(int)
    editingFinished = QtCore.pyqtSignal()  # a label editor or the colour dialog closed (the edit is done)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.list = QtWidgets.QTreeWidget()
        self.list.setColumnCount(2)
        self.list.setHeaderLabels(["id", "label"])
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.header().setSectionResizeMode(ID_COLUMN, QtWidgets.QHeaderView.ResizeToContents)
        self.list.header().setStretchLastSection(True)
        self.list.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)  # only the label: see below
        self.list.itemDoubleClicked.connect(self._edit_label)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_edited)
        self.list.itemDelegate().closeEditor.connect(self._editor_closed)
        self.new_button = QtWidgets.QPushButton("New")
        self.new_button.setToolTip("Draw a box on the frame to start a new track")
        self.delete_button = QtWidgets.QPushButton("Delete")
        self.colour_button = QtWidgets.QPushButton("Colour…")
        for button in (self.new_button, self.delete_button, self.colour_button):
            button.setFocusPolicy(QtCore.Qt.NoFocus)
        self.new_button.clicked.connect(self.newRequested)
        self.delete_button.clicked.connect(self._delete_clicked)
        self.colour_button.clicked.connect(self._colour_clicked)
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.new_button, self.delete_button, self.colour_button):
            buttons.addWidget(button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QtWidgets.QLabel("Tracks")
        title.setStyleSheet("font-weight: bold")
        layout.addWidget(title)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self._document: Document | None = None
        self._filling = False
        self._editing: QtWidgets.QTreeWidgetItem | None = None  # the row whose label is being edited

    def set_document(self, document: Document | None) -> None:
        self._document = document
        self.refresh()

    def refresh(self, current: int | None = None) -> None:
        """Show the document's tracks with ``current`` selected. The rows are rebuilt only
        when the tracks themselves changed; otherwise they are updated in place, so a label
        being edited keeps its editor (and what was typed in it)."""
        self._filling = True
        try:
            tracks = list(self._document.tracks.values()) if self._document else []
            items = [self.list.topLevelItem(row) for row in range(self.list.topLevelItemCount())]
            if [self._item_id(item) for item in items] != [track.id for track in tracks]:
                self._editing = None
                self.list.clear()
                items = []
                for track in tracks:
                    item = QtWidgets.QTreeWidgetItem([str(track.id), track.label])
                    item.setData(ID_COLUMN, TRACK_ID_ROLE, track.id)
                    item.setToolTip(LABEL_COLUMN, "double-click (or F2) to rename")
                    item.setFlags(item.flags() | QtCore.Qt.ItemIsEditable)
                    self.list.addTopLevelItem(item)
                    items.append(item)
            for item, track in zip(items, tracks):
                item.setIcon(ID_COLUMN, colour_icon(track.color))
                if item is not self._editing:
                    item.setText(LABEL_COLUMN, track.label)
            wanted = next((item for item, track in zip(items, tracks) if track.id == current), None)
            if self.list.currentItem() is not wanted:
                self.list.setCurrentItem(wanted)
            if wanted is None:
                self.list.clearSelection()
        finally:
            self._filling = False
        self.delete_button.setEnabled(self.current_id() is not None)
        self.colour_button.setEnabled(self.current_id() is not None)

    @staticmethod
    def _item_id(item: QtWidgets.QTreeWidgetItem) -> int:
        return int(item.data(ID_COLUMN, TRACK_ID_ROLE))

    def edit_label(self, track_id: int | None) -> None:
        """Open the label editor of ``track_id``'s row."""
        item = next((self.list.topLevelItem(row) for row in range(self.list.topLevelItemCount())
                     if self._item_id(self.list.topLevelItem(row)) == track_id), None)
        if item is not None:
            self._edit_label(item, LABEL_COLUMN)

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else self._item_id(item)

    def _current_changed(self, item, _previous) -> None:
        if self._filling or item is None:
            return
        self.delete_button.setEnabled(True)
        self.colour_button.setEnabled(True)
        self.trackSelected.emit(self._item_id(item))

    def _edit_label(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        self._editing = item
        self.list.setFocus()
        self.list.editItem(item, LABEL_COLUMN)

    def _editor_closed(self) -> None:
        self._editing = None
        self.editingFinished.emit()

    def _item_edited(self, item: QtWidgets.QTreeWidgetItem, column: int) -> None:
        if self._filling or self._document is None or column != LABEL_COLUMN:
            return
        track_id = self._item_id(item)
        label = item.text(LABEL_COLUMN).strip()
        if label and label != self._document.track(track_id).label:
            self.renameRequested.emit(track_id, label)

    def _delete_clicked(self) -> None:
        track_id = self.current_id()
        if track_id is not None:
            self.deleteRequested.emit(track_id)

    def _colour_clicked(self) -> None:
        track_id = self.current_id()
        if track_id is None or self._document is None:
            return
        colour = QtWidgets.QColorDialog.getColor(QtGui.QColor(*self._document.track(track_id).color), self,
                                                 "Track colour")
        if colour.isValid():
            self.recolorRequested.emit(track_id, (colour.red(), colour.green(), colour.blue()))
        self.editingFinished.emit()
