"""The user's edits of the open document: undo / redo, drawing a new track or a keyframe
box, moving a box, copying it to the next frame, keyframes, deleting a frame's box or a
track (once confirmed), imported tracks, renaming and recolouring tracks, flags and
interpolation.

Every edit is a :mod:`hnse_gui.commands` QUndoCommand pushed on the window's undo
stack, and none is made while a tracking run writes into the document.
"""
from __future__ import annotations

import numpy as np
from PyQt5 import QtCore, QtWidgets

from hnse_gui import commands
from hnse_gui.document import Flag, Origin
from hnse_gui.frame_view import FrameView
from hnse_gui.session import Session
from hnse_gui.timeline import runs_of

DELETE_TRACK, DELETE_BOX = "track", "box"  # the answers of Edits.ask_delete


class Edits(QtCore.QObject):
    """Edits of ``session``'s document through ``undo_stack``; boxes are drawn and
    dragged on ``frame_view``."""

    status = QtCore.pyqtSignal(str, int)  # a message for the status bar, and for how many ms
    trackRequested = QtCore.pyqtSignal(object)  # an edit made this track (or none) the one to select

    def __init__(self, session: Session, undo_stack: QtWidgets.QUndoStack, frame_view: FrameView, parent=None):
        super().__init__(parent)
        self.session = session
        self.undo_stack = undo_stack
        self.frame_view = frame_view
        self._draw_target: int | None = None  # None: the next drawn box starts a new track
        frame_view.boxDrawn.connect(self._box_drawn)
        frame_view.boxEdited.connect(self._box_edited)

    def _current(self) -> int | None:
        """The current track when it may be edited now, else None."""
        return self.session.current_track if self.session.editable() else None

    def undo(self) -> None:
        """Undo the last change, and say which it was (a run that changed nothing left no step)."""
        if self.session.editable() and self.undo_stack.canUndo():
            text = self.undo_stack.undoText()
            self.undo_stack.undo()
            self.status.emit(f"undone: {text}", 5000)

    def redo(self) -> None:
        if self.session.editable() and self.undo_stack.canRedo():
            text = self.undo_stack.redoText()
            self.undo_stack.redo()
            self.status.emit(f"redone: {text}", 5000)

    def begin_new_box(self) -> None:
        """Next drag on the frame draws the first box of a new track."""
        if self.session.editable():
            self._draw_target = None
            self.frame_view.begin_drawing()
            self.status.emit("drag on the frame to draw the new track's box (Esc cancels)", 5000)

    def begin_box_for_track(self) -> None:
        """Next drag on the frame draws the current track's box on this frame (a keyframe)."""
        track_id = self._current()
        if track_id is not None:
            self._draw_target = track_id
            self.frame_view.begin_drawing()
            self.status.emit("drag on the frame to draw this track's box here (Esc cancels)", 5000)

    def _box_drawn(self, box: tuple) -> None:
        session = self.session
        if not session.editable():
            return
        if self._draw_target is not None and self._draw_target in session.document.tracks:
            self._set_box(self._draw_target, self._clip(box))
            return
        command = commands.NewTrackCommand(session.document, session.frame_index, self._clip(box))
        self.undo_stack.push(command)
        self.trackRequested.emit(command.track_id)

    def make_keyframe(self) -> None:
        """Mark this frame's box MANUAL; a frame without a box gets the nearest earlier one."""
        track_id = self._current()
        if track_id is None:
            return
        boxes = self.session.document.track(track_id).boxes[: self.session.frame_index + 1]
        present = np.flatnonzero(np.isfinite(boxes).all(axis=1))
        if not len(present):
            self.status.emit("no box on or before this frame to keep", 5000)
            return
        self._set_box(track_id, tuple(boxes[present[-1]]))

    def copy_box_forward(self) -> bool:
        """Copy the current track's box on this frame to the next frame, as a keyframe
        there; False when there is no box to copy or no next frame."""
        track_id, frame = self._current(), self.session.frame_index
        if track_id is None or frame + 1 >= self.session.frame_count():
            return False
        box = self.session.document.get_frame_state(track_id, frame).box
        if box is None:
            self.status.emit("the current track has no box on this frame to copy", 4000)
            return False
        self.undo_stack.push(commands.SetBoxCommand(self.session.document, track_id, frame + 1, box,
                                                    f"Copy box to frame {frame + 2}"))
        return True

    def _box_edited(self, box: tuple) -> None:
        track_id = self._current()
        if track_id is not None:
            self._set_box(track_id, self._clip(box))

    def _set_box(self, track_id: int, box: tuple) -> None:
        self.undo_stack.push(commands.SetBoxCommand(self.session.document, track_id, self.session.frame_index, box))

    def _clip(self, box: tuple) -> tuple:
        """Keep a box's top-left corner on the frame; a box may extend past the edge."""
        width, height = self.session.document.frame_size
        x, y, w, h = box
        return (min(max(x, -w + 1), width - 1), min(max(y, -h + 1), height - 1), w, h)

    def delete_track(self, track_id: int | None) -> None:
        """Delete a whole track once the user confirms; they may choose to delete only its
        box on the current frame instead."""
        session, document = self.session, self.session.document
        if not session.editable() or track_id is None or track_id not in document.tracks:
            return
        has_box = document.get_frame_state(track_id, session.frame_index).box is not None
        answer = self.ask_delete(document.track(track_id).label, session.frame_index, has_box)
        if answer == DELETE_TRACK:
            self.undo_stack.push(commands.DeleteTrackCommand(document, track_id))
            self.trackRequested.emit(next(iter(document.tracks), None))
        elif answer == DELETE_BOX and has_box:
            self.undo_stack.push(commands.DeleteBoxCommand(document, track_id, session.frame_index))

    def delete_current_track(self) -> None:
        self.delete_track(self.session.current_track)

    def delete_box(self) -> None:
        """Empty the current track's current frame (no question: it is one undo away)."""
        track_id = self._current()
        if track_id is None:
            return
        if self.session.document.get_frame_state(track_id, self.session.frame_index).box is None:
            self.status.emit("the current track has no box on this frame", 4000)
            return
        self.undo_stack.push(commands.DeleteBoxCommand(self.session.document, track_id, self.session.frame_index))

    def ask_delete(self, label: str, frame: int, has_box: bool) -> str:
        """Ask before a whole track goes: :data:`DELETE_TRACK`, :data:`DELETE_BOX` (only
        offered when the track has a box on ``frame``) or "" to keep everything."""
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Question, "Delete track",
                                    f"Delete the whole track {label!r}, every frame of it?",
                                    QtWidgets.QMessageBox.Cancel, self.frame_view.window())
        whole = box.addButton("Delete track", QtWidgets.QMessageBox.DestructiveRole)
        only_box = box.addButton(f"Delete only frame {frame + 1}'s box", QtWidgets.QMessageBox.AcceptRole) \
            if has_box else None
        box.setDefaultButton(QtWidgets.QMessageBox.Cancel)
        box.exec_()
        return {whole: DELETE_TRACK, only_box: DELETE_BOX}.get(box.clickedButton(), "")

    def tracks_imported(self, tracks: list, text: str) -> None:
        """Make tracks an import has just added one undo step, and select the first."""
        if tracks:
            self.undo_stack.push(commands.ImportTracksCommand(self.session.document, tracks, text))
            self.trackRequested.emit(tracks[0].id)
        self.status.emit(f"imported {len(tracks)} track{'s' * (len(tracks) != 1)}", 5000)

    def rename_track(self, track_id: int, label: str) -> None:
        if self.session.editable():
            self.undo_stack.push(commands.RenameTrackCommand(self.session.document, track_id, label))

    def recolor_track(self, track_id: int, colour: tuple) -> None:
        if self.session.editable():
            self.undo_stack.push(commands.RecolorTrackCommand(self.session.document, track_id, colour))

    def toggle_flag(self, flag: Flag) -> None:
        track_id = self._current()
        if track_id is not None:
            self.undo_stack.push(commands.ToggleFlagCommand(self.session.document, track_id,
                                                            self.session.frame_index, flag))

    def interpolate_gap(self) -> None:
        """Interpolate between the two keyframes around the current frame; on a keyframe,
        the gap after it (before it, when it is the last one)."""
        track_id, frame = self._current(), self.session.frame_index
        if track_id is None:
            return
        keys = self.session.document.keyframes(track_id)
        position = int(np.searchsorted(keys, frame, side="right"))  # keys[:position] <= frame
        if position == len(keys) and position and keys[-1] == frame:
            position -= 1
        if not 0 < position < len(keys):
            self.status.emit("interpolation needs a keyframe before and after this frame", 5000)
            return
        self._interpolate(track_id, [(int(keys[position - 1]) + 1, int(keys[position]))])

    def interpolate_empty(self) -> None:
        """Interpolate every run of frames that has no box at all."""
        track_id = self._current()
        if track_id is not None:
            self._interpolate(track_id, runs_of(self.session.document.track(track_id).origin == Origin.NONE))

    def _interpolate(self, track_id: int, ranges: list[tuple[int, int]]) -> None:
        ranges = [(a, b) for a, b in ranges if b > a]
        if not ranges:
            return
        command = commands.InterpolateCommand(self.session.document, track_id, ranges)
        self.undo_stack.push(command)
        self.status.emit(f"interpolated {command.written} frames", 4000)
