"""The annotation document: tracks of boxes over the frames of one video, Qt-free.

Shared by the desktop application (which wraps every edit in a QUndoCommand) and
the headless ``track`` command. Each :class:`Track` holds, for every frame of the
video, a box ``(x, y, w, h)`` in frame pixels (``(x, y)`` the top-left corner; a
row of NaN means no box), where that box came from (:class:`Origin`), flags
(:class:`Flag`) and the tracker's score.

Undo support: every mutating method changes a known slice of one track, so a
command snapshots that slice with :meth:`Document.get_range` (or
:meth:`Document.get_frame_state`) before the edit and puts it back with
:meth:`Document.set_range` on undo. Track removal returns the removed
:class:`Track`, which :meth:`Document.restore_track` re-inserts.

Listeners (:meth:`Document.subscribe`) are plain callables receiving a
:class:`Change`; the GUI forwards them to a Qt signal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Callable

import numpy as np

from model.core.errors import InputError

Box = tuple[float, float, float, float]
Color = tuple[int, int, int]

# Ten well separated colours (matplotlib's "tab10"), given to new tracks in order.
PALETTE: tuple[Color, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)


class Origin(IntEnum):
    """Where a frame's box came from."""

    NONE = 0
    MANUAL = 1  # a keyframe drawn or corrected by the user
    TRACKED = 2
    INTERPOLATED = 3


class Flag(IntFlag):
    """Per-frame annotations; several may be set at once."""

    OCCLUDED = 1
    ABSENT = 2
    NEEDS_REVIEW = 4  # the tracker's score fell below the review threshold
    DECODE_FAILED = 8  # the frame could not be decoded; it carries no box


@dataclass(eq=False)
class Track:
    """One annotated object over all N frames of the video.

    ``boxes`` (N, 4) float32 x, y, w, h, NaN rows = no box; ``origin`` (N,) uint8
    (:class:`Origin`); ``flags`` (N,) uint8 (:class:`Flag`); ``scores`` (N,)
    float32, NaN = no score. ``variant_scores[v]`` (N,) float32 and
    ``variant_boxes[v]`` (N, 4) float32 keep what each model variant ``v``
    (e.g. "with HE", "without HE") produced, so both can be plotted over time;
    ``boxes`` is the one the annotation keeps.
    """

    id: int
    label: str
    color: Color
    boxes: np.ndarray
    origin: np.ndarray
    flags: np.ndarray
    scores: np.ndarray
    variant_scores: dict[str, np.ndarray] = field(default_factory=dict)
    variant_boxes: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, track_id: int, label: str, color: Color, frame_count: int) -> Track:
        """A track with no box on any of its ``frame_count`` frames."""
        return cls(
            id=track_id,
            label=label,
            color=color,
            boxes=np.full((frame_count, 4), np.nan, dtype=np.float32),
            origin=np.zeros(frame_count, dtype=np.uint8),
            flags=np.zeros(frame_count, dtype=np.uint8),
            scores=np.full(frame_count, np.nan, dtype=np.float32),
        )

    @property
    def frame_count(self) -> int:
        return len(self.origin)

    def copy(self) -> Track:
        """A deep copy: no array is shared with this track."""
        return Track(
            id=self.id,
            label=self.label,
            color=tuple(self.color),
            boxes=self.boxes.copy(),
            origin=self.origin.copy(),
            flags=self.flags.copy(),
            scores=self.scores.copy(),
            variant_scores={k: v.copy() for k, v in self.variant_scores.items()},
            variant_boxes={k: v.copy() for k, v in self.variant_boxes.items()},
        )

    def ensure_variant(self, variant: str) -> None:
        """Create the (all-NaN) score and box arrays of ``variant`` if missing."""
        if variant not in self.variant_scores:
            self.variant_scores[variant] = np.full(self.frame_count, np.nan, dtype=np.float32)
        if variant not in self.variant_boxes:
            self.variant_boxes[variant] = np.full((self.frame_count, 4), np.nan, dtype=np.float32)


@dataclass(eq=False)
class TrackSlice:
    """A copy of frames ``start:stop`` of one track, enough to restore them exactly.

    Arrays have first dimension ``stop - start``; ``variant_*`` hold every variant
    the track had when the slice was taken.
    """

    start: int
    stop: int
    boxes: np.ndarray
    origin: np.ndarray
    flags: np.ndarray
    scores: np.ndarray
    variant_scores: dict[str, np.ndarray]
    variant_boxes: dict[str, np.ndarray]


@dataclass(frozen=True)
class FrameState:
    """One frame of one track as plain Python values (``box`` is None when there is none)."""

    box: Box | None
    origin: Origin
    flags: Flag
    score: float
    variant_scores: dict[str, float] = field(default_factory=dict)
    variant_boxes: dict[str, Box | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """What changed: ``kind`` is one of :data:`CHANGE_KINDS`; frames ``start:stop``.

    ``track_id`` is None for document-wide changes ("maps", "settings").
    """

    kind: str
    track_id: int | None
    start: int
    stop: int


CHANGE_KINDS = (
    "frames",  # boxes, origins, flags or scores in start:stop
    "track_added",
    "track_removed",
    "track_style",  # label or colour
    "maps",
    "settings",
)


@dataclass
class AutosaveSettings:
    """Autosave every ``interval_s`` seconds while the document is dirty."""

    enabled: bool = True
    interval_s: int = 120


def _box_tuple(row: np.ndarray) -> Box | None:
    return None if np.isnan(row).any() else tuple(float(v) for v in row)


def _validated_box(box) -> np.ndarray:
    """``box`` as a float32 (4,) array; raises InputError unless it is finite with w, h > 0."""
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.shape != (4,) or not np.isfinite(values).all() or values[2] <= 0 or values[3] <= 0:
        raise InputError(f"box must be 4 finite numbers x,y,w,h with w,h > 0, got {box!r}")
    return values.astype(np.float32)


class Document:
    """Tracks over the frames of one video, with revision counting and change listeners.

    ``frame_size`` is ``(width, height)``. ``weights`` maps a model variant's name
    to its weights file; ``primary_variant`` names the variant whose boxes
    :meth:`apply_tracking` writes into the track (None: only calls without a
    variant do). ``maps[variant][frame][map_name]`` holds 2-D float32 maps, filled by
    :meth:`store_maps` only while ``keep_maps`` is true. ``review_threshold``: a
    tracked frame scoring below it gets :attr:`Flag.NEEDS_REVIEW`.
    """

    def __init__(self, video_path: str, frame_count: int, frame_size: tuple[int, int]):
        if frame_count < 1:
            raise InputError(f"{video_path}: a document needs at least one frame, got {frame_count}")
        self.video_path = str(video_path)
        self.frame_count = int(frame_count)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.tracks: dict[int, Track] = {}
        self.weights: dict[str, str] = {}
        self.primary_variant: str | None = None
        self.keep_maps = False
        self.maps: dict[str, dict[int, dict[str, np.ndarray]]] = {}
        self.review_threshold = 0.3
        self.autosave = AutosaveSettings()
        self.revision = 0
        self.saved_revision = 0
        self._next_track_id = 1  # ids are never reused, even after a track is removed
        self._listeners: list[Callable[[Change], None]] = []

    # -- revision and listeners --------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """True when the document changed since it was last saved or loaded."""
        return self.revision != self.saved_revision

    def mark_saved(self) -> None:
        self.saved_revision = self.revision

    def subscribe(self, callback: Callable[[Change], None]) -> None:
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[Change], None]) -> None:
        self._listeners.remove(callback)

    def _changed(self, kind: str, track_id: int | None, start: int = 0, stop: int | None = None) -> None:
        self.revision += 1
        change = Change(kind, track_id, start, self.frame_count if stop is None else stop)
        for callback in list(self._listeners):
            callback(change)

    # -- tracks ---------------------------------------------------------------------------

    def track(self, track_id: int) -> Track:
        try:
            return self.tracks[track_id]
        except KeyError:
            raise KeyError(f"no track with id {track_id}") from None

    @property
    def next_track_id(self) -> int:
        """The id :meth:`add_track` gives next; every id below it was given out before."""
        return max(self._next_track_id, max(self.tracks, default=0) + 1)

    def add_track(self, label: str, color: Color | None = None, track_id: int | None = None) -> Track:
        """A new empty track; ``color`` defaults to an unused palette colour.

        ``track_id`` (default :attr:`next_track_id`) must be at least
        :attr:`next_track_id`, so that no id is ever given out twice; else ValueError.
        """
        if track_id is None:
            track_id = self.next_track_id
        elif track_id < self.next_track_id:
            raise ValueError(f"track id {track_id} was given out before; the next free id is {self.next_track_id}")
        self._next_track_id = track_id + 1
        if color is None:
            used = {tuple(t.color) for t in self.tracks.values()}
            free = [c for c in PALETTE if c not in used]
            color = free[0] if free else PALETTE[len(self.tracks) % len(PALETTE)]
        track = Track.empty(track_id, label, tuple(int(c) for c in color), self.frame_count)
        self.tracks[track_id] = track
        self._changed("track_added", track_id)
        return track

    def remove_track(self, track_id: int) -> Track:
        """Remove a track and return it, for :meth:`restore_track` to undo."""
        track = self.tracks.pop(self.track(track_id).id)
        self._changed("track_removed", track_id)
        return track

    def restore_track(self, track: Track) -> None:
        """Put back a track returned by :meth:`remove_track` (or loaded), under its own id."""
        if track.id in self.tracks:
            raise ValueError(f"a track with id {track.id} already exists")
        if track.frame_count != self.frame_count:
            raise ValueError(f"track {track.id} has {track.frame_count} frames, the document {self.frame_count}")
        self.tracks[track.id] = track
        self._changed("track_added", track.id)

    def set_track_label(self, track_id: int, label: str) -> str:
        """Rename a track; returns the old label."""
        track = self.track(track_id)
        old, track.label = track.label, label
        self._changed("track_style", track_id)
        return old

    def set_track_color(self, track_id: int, color: Color) -> Color:
        """Recolour a track; returns the old colour."""
        track = self.track(track_id)
        old, track.color = track.color, tuple(int(c) for c in color)
        self._changed("track_style", track_id)
        return old

    # -- snapshots for undo ---------------------------------------------------------------

    def _check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.frame_count:
            raise IndexError(f"frame range {start}:{stop} outside 0:{self.frame_count}")

    def get_range(self, track_id: int, start: int, stop: int) -> TrackSlice:
        """Copy frames ``start:stop`` of a track."""
        self._check_range(start, stop)
        track = self.track(track_id)
        return TrackSlice(
            start=start,
            stop=stop,
            boxes=track.boxes[start:stop].copy(),
            origin=track.origin[start:stop].copy(),
            flags=track.flags[start:stop].copy(),
            scores=track.scores[start:stop].copy(),
            variant_scores={k: v[start:stop].copy() for k, v in track.variant_scores.items()},
            variant_boxes={k: v[start:stop].copy() for k, v in track.variant_boxes.items()},
        )

    def set_range(self, track_id: int, start: int, stop: int, state: TrackSlice) -> None:
        """Write back a slice taken by :meth:`get_range` over the same frames.

        Variants the track gained after the snapshot are blanked on those frames, so
        the restore is exact.
        """
        self._check_range(start, stop)
        if (state.start, state.stop) != (start, stop):
            raise ValueError(f"slice covers {state.start}:{state.stop}, not {start}:{stop}")
        track = self.track(track_id)
        track.boxes[start:stop] = state.boxes
        track.origin[start:stop] = state.origin
        track.flags[start:stop] = state.flags
        track.scores[start:stop] = state.scores
        for variant in set(track.variant_scores) | set(state.variant_scores):
            track.ensure_variant(variant)
            track.variant_scores[variant][start:stop] = state.variant_scores.get(variant, np.nan)
            track.variant_boxes[variant][start:stop] = state.variant_boxes.get(variant, np.nan)
        self._changed("frames", track_id, start, stop)

    def get_frame_state(self, track_id: int, frame: int) -> FrameState:
        """One frame of a track as plain values."""
        part = self.get_range(track_id, frame, frame + 1)
        return FrameState(
            box=_box_tuple(part.boxes[0]),
            origin=Origin(int(part.origin[0])),
            flags=Flag(int(part.flags[0])),
            score=float(part.scores[0]),
            variant_scores={k: float(v[0]) for k, v in part.variant_scores.items()},
            variant_boxes={k: _box_tuple(v[0]) for k, v in part.variant_boxes.items()},
        )

    def set_frame_state(self, track_id: int, frame: int, state: FrameState) -> None:
        """Write back a state taken by :meth:`get_frame_state`."""
        def row(box):
            return np.full((1, 4), np.nan, np.float32) if box is None else np.asarray([box], np.float32)

        part = TrackSlice(
            start=frame,
            stop=frame + 1,
            boxes=row(state.box),
            origin=np.array([state.origin], np.uint8),
            flags=np.array([state.flags], np.uint8),
            scores=np.array([state.score], np.float32),
            variant_scores={k: np.array([v], np.float32) for k, v in state.variant_scores.items()},
            variant_boxes={k: row(v) for k, v in state.variant_boxes.items()},
        )
        self.set_range(track_id, frame, frame + 1, part)

    # -- edits ------------------------------------------------------------------------------

    def set_box(self, track_id: int, frame: int, box: Box | None, origin: Origin = Origin.MANUAL,
                score: float = math.nan) -> None:
        """Set one frame's box (None removes it) with its origin and score."""
        self._check_range(frame, frame + 1)
        track = self.track(track_id)
        track.boxes[frame] = np.nan if box is None else _validated_box(box)
        track.origin[frame] = Origin(origin)
        track.scores[frame] = score
        self._changed("frames", track_id, frame, frame + 1)

    def delete_box(self, track_id: int, frame: int) -> None:
        """Remove one frame's box: box NaN, origin NONE, score NaN, NEEDS_REVIEW cleared.

        The other flags and the variants' boxes and scores stay. The frame is then an
        empty one that :meth:`interpolate` may fill again; flag it ABSENT to say the
        object is not there (CVAT's "outside"). Undo with :meth:`get_frame_state` and
        :meth:`set_frame_state`.
        """
        self._check_range(frame, frame + 1)
        self.track(track_id).flags[frame] &= ~np.uint8(Flag.NEEDS_REVIEW)
        self.set_box(track_id, frame, None, Origin.NONE)

    def set_flags(self, track_id: int, frame: int, flags: Flag | int) -> None:
        """Replace one frame's flags."""
        self._check_range(frame, frame + 1)
        self.track(track_id).flags[frame] = Flag(flags)
        self._changed("frames", track_id, frame, frame + 1)

    def apply_tracking(self, track_id: int, frame: int, box: Box, score: float,
                       variant: str | None = None) -> bool:
        """Record what a tracker found on ``frame``; refuses (returns False) on a MANUAL frame.

        With a ``variant``, its box and score go to ``variant_boxes``/``variant_scores``;
        the track's own box is written (origin TRACKED, NEEDS_REVIEW set when
        ``score < review_threshold``, cleared otherwise) when ``variant`` is None or is
        the ``primary_variant``.
        """
        self._check_range(frame, frame + 1)
        track = self.track(track_id)
        if track.origin[frame] == Origin.MANUAL:
            return False
        values = _validated_box(box)
        if variant is not None:
            track.ensure_variant(variant)
            track.variant_boxes[variant][frame] = values
            track.variant_scores[variant][frame] = score
        if variant is None or variant == self.primary_variant:
            track.boxes[frame] = values
            track.origin[frame] = Origin.TRACKED
            track.scores[frame] = score
            if score < self.review_threshold:
                track.flags[frame] |= Flag.NEEDS_REVIEW
            else:
                track.flags[frame] &= ~np.uint8(Flag.NEEDS_REVIEW)
        self._changed("frames", track_id, frame, frame + 1)
        return True

    def clear_tracked(self, track_id: int, start: int, stop: int) -> int:
        """Remove tracker output from frames ``start:stop``; returns how many TRACKED boxes went.

        TRACKED frames lose box, score and NEEDS_REVIEW and get origin NONE; every
        variant's boxes and scores are cleared on the whole range. MANUAL and
        INTERPOLATED frames keep their boxes.
        """
        self._check_range(start, stop)
        track = self.track(track_id)
        tracked = np.flatnonzero(track.origin[start:stop] == Origin.TRACKED) + start
        track.boxes[tracked] = np.nan
        track.scores[tracked] = np.nan
        track.origin[tracked] = Origin.NONE
        track.flags[tracked] &= ~np.uint8(Flag.NEEDS_REVIEW)
        for variant in track.variant_scores:
            track.variant_scores[variant][start:stop] = np.nan
            track.variant_boxes[variant][start:stop] = np.nan
        self._changed("frames", track_id, start, stop)
        return len(tracked)

    def keyframes(self, track_id: int) -> np.ndarray:
        """Indices of the MANUAL frames, ascending, (K,) int64."""
        return np.flatnonzero(self.track(track_id).origin == Origin.MANUAL)

    def tracked_ranges(self, track_id: int) -> list[tuple[int, int]]:
        """Maximal runs of TRACKED frames as ``(start, stop)`` pairs, ``stop`` exclusive."""
        tracked = (self.track(track_id).origin == Origin.TRACKED).astype(np.int8)
        edges = np.diff(np.concatenate(([0], tracked, [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(int(a), int(b)) for a, b in zip(starts, stops)]

    def interpolate(self, track_id: int, start: int, stop: int) -> int:
        """Fill frames ``start:stop`` linearly between the nearest anchor frames around them.

        Anchors are the MANUAL frames and the TRACKED frames with a box that are flagged
        neither ABSENT nor NEEDS_REVIEW; they are never written. Of the other frames, one
        is written (origin INTERPOLATED, score NaN, NEEDS_REVIEW cleared) when it is not
        flagged ABSENT and the nearest anchors before and after it (which may lie outside
        ``start:stop``) both have a box and are not ABSENT. So empty frames are filled,
        earlier interpolations are redone, and a doubtful tracker box is replaced, while a
        MANUAL frame without a box (or an ABSENT anchor) stops interpolation across it.
        Returns the number of frames written.
        """
        self._check_range(start, stop)
        track = self.track(track_id)
        present = ~np.isnan(track.boxes).any(axis=1) & ((track.flags & Flag.ABSENT) == 0)
        trusted = (track.origin == Origin.TRACKED) & present & ((track.flags & Flag.NEEDS_REVIEW) == 0)
        anchors = np.flatnonzero((track.origin == Origin.MANUAL) | trusted)
        frames = np.arange(start, stop)
        after = np.searchsorted(anchors, frames, side="right")  # first anchor > frame
        bracketed = (after > 0) & (after < len(anchors))
        frames, after = frames[bracketed], after[bracketed]
        before_key, after_key = anchors[after - 1], anchors[after]
        writable = (
            (before_key != frames)  # the frame is not an anchor itself
            & ((track.flags[frames] & Flag.ABSENT) == 0)
            & present[before_key]
            & present[after_key]
        )
        frames, before_key, after_key = frames[writable], before_key[writable], after_key[writable]
        t = ((frames - before_key) / (after_key - before_key))[:, None]
        track.boxes[frames] = (1 - t) * track.boxes[before_key] + t * track.boxes[after_key]
        track.origin[frames] = Origin.INTERPOLATED
        track.scores[frames] = np.nan
        track.flags[frames] &= ~np.uint8(Flag.NEEDS_REVIEW)  # the tracker's doubt no longer applies
        self._changed("frames", track_id, start, stop)
        return len(frames)

    # -- maps ---------------------------------------------------------------------------------

    def store_maps(self, variant: str, frame: int, maps: dict[str, np.ndarray]) -> bool:
        """Keep a frame's maps of one variant if ``keep_maps`` is on; returns whether kept.

        All frames of one variant must carry the same map names and shapes (they are
        saved as one (K, S, S) array per name).
        """
        if not self.keep_maps:
            return False
        self._check_range(frame, frame + 1)
        arrays = {name: np.asarray(m, dtype=np.float32).copy() for name, m in maps.items()}
        for name, array in arrays.items():
            if array.ndim != 2:
                raise ValueError(f"map {name!r} must be 2-D, got shape {array.shape}")
        kept = self.maps.setdefault(variant, {})
        if kept:
            reference = next(iter(kept.values()))
            layout = {n: a.shape for n, a in reference.items()}
            if layout != {n: a.shape for n, a in arrays.items()}:
                raise ValueError(f"maps of variant {variant!r} must keep the names and shapes {layout}")
        kept[frame] = arrays
        self._changed("maps", None, frame, frame + 1)
        return True

    def clear_maps(self) -> None:
        self.maps.clear()
        self._changed("maps", None)
