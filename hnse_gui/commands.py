"""Undoable edits of a :class:`~hnse_gui.document.Document`, as QUndoCommand subclasses.

Every change the user makes goes through one of these and a ``QUndoStack``, so undo and
redo come for free. Frame edits are undone by snapshots: the command copies the frames
it will touch (:meth:`Document.get_range`) before the edit and after it, and undo / redo
write those copies back (:meth:`Document.set_range`). Track removal keeps the removed
:class:`~hnse_gui.document.Track` and re-inserts it.
"""
from __future__ import annotations

from PyQt5 import QtWidgets

from hnse_gui.document import Box, Color, Document, Flag, Origin, TrackSlice


class FramesCommand(QtWidgets.QUndoCommand):
    """An edit of frames ``start:stop`` of one track, undone and redone by snapshots.

    Subclasses implement :meth:`edit`, run once on the first :meth:`redo`. With a
    ``parent`` the edit is a part of that command, undone and redone with it.
    """

    def __init__(self, document: Document, track_id: int, start: int, stop: int, text: str,
                 parent: QtWidgets.QUndoCommand | None = None):
        super().__init__(text, parent)
        self.document = document
        self.track_id = track_id
        self.start, self.stop = start, stop
        self._before = document.get_range(track_id, start, stop)
        self._after: TrackSlice | None = None

    def edit(self) -> None:
        raise NotImplementedError

    def redo(self) -> None:
        if self._after is None:
            self.edit()
            self._after = self.document.get_range(self.track_id, self.start, self.stop)
        else:
            self.document.set_range(self.track_id, self.start, self.stop, self._after)

    def undo(self) -> None:
        self.document.set_range(self.track_id, self.start, self.stop, self._before)


class SetBoxCommand(FramesCommand):
    """Move / resize / draw one frame's box: the frame becomes a MANUAL keyframe.

    A correction is a review, so it clears the frame's NEEDS_REVIEW flag.
    """

    def __init__(self, document: Document, track_id: int, frame: int, box: Box, text: str = ""):
        super().__init__(document, track_id, frame, frame + 1, text or f"Set box on frame {frame + 1}")
        self.frame = frame
        self.box = tuple(float(v) for v in box)

    def edit(self) -> None:
        self.document.set_box(self.track_id, self.frame, self.box, Origin.MANUAL)
        flags = Flag(int(self.document.track(self.track_id).flags[self.frame]))
        if flags & Flag.NEEDS_REVIEW:
            self.document.set_flags(self.track_id, self.frame, flags & ~Flag.NEEDS_REVIEW)


class ToggleFlagCommand(FramesCommand):
    """Set or clear one flag (occluded / absent / needs review) on one frame."""

    def __init__(self, document: Document, track_id: int, frame: int, flag: Flag):
        on = not document.track(track_id).flags[frame] & flag
        name = flag.name.lower().replace("_", " ")
        super().__init__(document, track_id, frame, frame + 1,
                         f"{'Flag' if on else 'Unflag'} frame {frame + 1} {name}")
        self.frame, self.flag, self.on = frame, flag, on

    def edit(self) -> None:
        flags = Flag(int(self.document.track(self.track_id).flags[self.frame]))
        self.document.set_flags(self.track_id, self.frame, flags | self.flag if self.on else flags & ~self.flag)


class DeleteBoxCommand(FramesCommand):
    """Empty one frame of a track (:meth:`Document.delete_box`); its flags other than
    NEEDS_REVIEW stay."""

    def __init__(self, document: Document, track_id: int, frame: int):
        super().__init__(document, track_id, frame, frame + 1,
                         f"Delete box: {document.track(track_id).label}, frame {frame + 1}")
        self.frame = frame

    def edit(self) -> None:
        self.document.delete_box(self.track_id, self.frame)


class InterpolateCommand(FramesCommand):
    """Linear interpolation between keyframes, over one or more ``(start, stop)`` frame ranges.

    ``written`` counts the frames that received a box; a command that wrote none makes
    itself obsolete, so the undo stack drops it instead of keeping an empty step.
    """

    def __init__(self, document: Document, track_id: int, ranges: list[tuple[int, int]]):
        super().__init__(document, track_id, min(a for a, _ in ranges), max(b for _, b in ranges),
                         "Interpolate between keyframes")
        self.ranges = list(ranges)
        self.written = 0

    def edit(self) -> None:
        self.written = sum(self.document.interpolate(self.track_id, a, b) for a, b in self.ranges)
        self.setObsolete(self.written == 0)


class TrackedFramesCommand(FramesCommand):
    """One track's frames of a tracking run, already applied frame by frame while it ran:
    a part of a :class:`TrackingRunCommand`.

    ``before`` is the snapshot taken when the run started; the first :meth:`redo`
    (QUndoStack.push) only records the result, later redos write it back.
    """

    def __init__(self, document: Document, track_id: int, before: TrackSlice, parent: QtWidgets.QUndoCommand):
        super().__init__(document, track_id, before.start, before.stop, "", parent)
        self._before = before

    def edit(self) -> None:
        pass  # the worker's results were applied as they arrived


class TrackingRunCommand(QtWidgets.QUndoCommand):
    """A whole tracking run of one or more tracks, one step: a :class:`TrackedFramesCommand`
    per track, from its snapshot in ``before`` (track id -> the frames as they were when
    the run started). QUndoCommand's own redo and undo run the parts (held in ``parts``,
    so that their Python side lives as long as the command)."""

    def __init__(self, document: Document, before: dict[int, TrackSlice], text: str):
        super().__init__(text)
        self.parts = [TrackedFramesCommand(document, track_id, snapshot, self) for track_id, snapshot in before.items()]


class NewTrackCommand(QtWidgets.QUndoCommand):
    """A new track whose first box is a MANUAL keyframe on ``frame``."""

    def __init__(self, document: Document, frame: int, box: Box, label: str = "", color: Color | None = None):
        super().__init__("New track")
        self.document = document
        self.frame, self.box = frame, tuple(float(v) for v in box)
        self.label, self.color = label, color
        self.track_id: int | None = None
        self._removed = None

    def redo(self) -> None:
        if self._removed is None:
            track = self.document.add_track(self.label or f"track {max(self.document.tracks, default=0) + 1}",
                                            self.color)
            self.track_id = track.id
            self.document.set_box(track.id, self.frame, self.box, Origin.MANUAL)
        else:
            self.document.restore_track(self._removed)
            self._removed = None

    def undo(self) -> None:
        self._removed = self.document.remove_track(self.track_id)


class DeleteTrackCommand(QtWidgets.QUndoCommand):
    """Remove a track; undo puts it back with the same id and every frame."""

    def __init__(self, document: Document, track_id: int):
        super().__init__(f"Delete {document.track(track_id).label}")
        self.document = document
        self.track_id = track_id
        self._removed = None

    def redo(self) -> None:
        self._removed = self.document.remove_track(self.track_id)

    def undo(self) -> None:
        self.document.restore_track(self._removed)


class ImportTracksCommand(QtWidgets.QUndoCommand):
    """Tracks an import already added (:func:`~hnse_gui.store.import_mot`,
    :func:`~hnse_gui.store.import_boxes_txt`); undo removes them, redo puts them back."""

    def __init__(self, document: Document, tracks: list, text: str):
        super().__init__(text)
        self.document = document
        self.track_ids = [track.id for track in tracks]
        self._removed = []

    def redo(self) -> None:
        for track in self._removed:
            self.document.restore_track(track)
        self._removed = []

    def undo(self) -> None:
        self._removed = [self.document.remove_track(track_id) for track_id in self.track_ids]


class RenameTrackCommand(QtWidgets.QUndoCommand):
    def __init__(self, document: Document, track_id: int, label: str):
        super().__init__(f"Rename track to {label}")
        self.document, self.track_id = document, track_id
        self.label, self._old = label, document.track(track_id).label

    def redo(self) -> None:
        self.document.set_track_label(self.track_id, self.label)

    def undo(self) -> None:
        self.document.set_track_label(self.track_id, self._old)


class RecolorTrackCommand(QtWidgets.QUndoCommand):
    def __init__(self, document: Document, track_id: int, color: Color):
        super().__init__("Change track colour")
        self.document, self.track_id = document, track_id
        self.color, self._old = tuple(color), document.track(track_id).color

    def redo(self) -> None:
        self.document.set_track_color(self.track_id, self.color)

    def undo(self) -> None:
        self.document.set_track_color(self.track_id, self._old)
