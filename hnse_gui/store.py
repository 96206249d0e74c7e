"""The project file: a :class:`~hnse_gui.document.Document` in HDF5, and plain-text exports.

The layout is described field by field in ``docs/hdf5.md``. Exports write a track's
boxes as text, all tracks as MOT17 ground truth or as CVAT's "CVAT for video 1.1" XML;
imports read MOT files and box text files back into new tracks. Every write goes to a
temporary file in the target's folder, which is flushed, fsync'ed, closed and then
renamed over the target (and the folder fsync'ed), so a crash at any moment leaves
either the old file or the new one, never a half-written one. A crash may leave the
temporary ``.<name>.*.tmp`` file behind; it is never read.

Loading checks the whole file (schema name and version, every dataset's presence,
shape and dtype, value ranges) and turns anything wrong into one
:class:`ProjectFileError` line naming the file. Datasets carry Fletcher-32
checksums and the file uses HDF5's checksummed metadata (``libver="latest"``), so
damaged bytes are detected rather than read as wrong boxes.
"""
from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from hnse_gui.document import AutosaveSettings, Document, Flag, Origin, Track, TrackSlice
from model.data.sequences import load_boxes_file, read_mot_file
from model.core.errors import InputError

SCHEMA = "hnse-studio-annotations"
SCHEMA_VERSION = 1

_MAX_FLAGS = int(Flag.OCCLUDED | Flag.ABSENT | Flag.NEEDS_REVIEW | Flag.DECODE_FAILED)
_MAX_ORIGIN = max(Origin)
# What h5py raises on damaged files depends on where the damage lies: the HDF5
# library's errors come out as OSError/RuntimeError, damaged names and attributes as
# KeyError/ValueError/TypeError/UnicodeDecodeError (a ValueError), bad sizes as
# IndexError/OverflowError/MemoryError.
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, OverflowError,
                MemoryError, AttributeError)


class ProjectFileError(InputError):
    """A project file that cannot be read; the message names the file and what is wrong."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# -- atomic writing ------------------------------------------------------------------------


def _fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)``, make it durable, then rename it onto ``path``.

    The temporary file lies in ``path``'s folder so that :func:`os.replace` is an
    atomic rename on the same file system. On any error it is removed and ``path``
    is untouched. The new file keeps the old one's permissions (0644 for a new file;
    ``mkstemp`` alone would leave 0600).
    """
    path = Path(path)
    folder = path.parent
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, mode)
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)


# -- saving ----------------------------------------------------------------------------------


def _check_name(kind: str, name: str) -> None:
    if not name or "/" in name or name == ".":
        raise ValueError(f"{kind} name {name!r} cannot be an HDF5 group name")


def _put(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """A chunked, checksummed, compressed dataset (chunks of whole rows/maps)."""
    data = np.ascontiguousarray(data)
    chunks = (min(len(data), 4096), *data.shape[1:]) if data.ndim < 3 else (1, *data.shape[1:])
    group.create_dataset(name, data=data, chunks=chunks, compression="gzip", compression_opts=4,
                         shuffle=True, fletcher32=True)


def _put_text(obj: h5py.HLObject, name: str, text: str) -> None:
    """A fixed-length UTF-8 string attribute: it lives in the (checksummed) object header,
    where a variable-length string would live in the unchecksummed global heap."""
    encoded = text.encode("utf-8")
    obj.attrs.create(name, np.bytes_(encoded or b"\0"), dtype=h5py.string_dtype("utf-8", max(1, len(encoded))))


def _write_document(document: Document, h5: h5py.File) -> None:
    # At most 8 attributes per object, so HDF5 keeps them in the checksummed object
    # header instead of moving them to unchecksummed "dense" storage.
    _put_text(h5, "schema", SCHEMA)
    h5.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    _put_text(h5, "video_path", document.video_path)
    h5.attrs["frame_count"] = np.int64(document.frame_count)
    h5.attrs["frame_size"] = np.asarray(document.frame_size, dtype=np.int64)
    _put_text(h5, "weights", json.dumps(document.weights, sort_keys=True))
    settings = h5.create_group("settings")
    _put_text(settings, "primary_variant", document.primary_variant or "")
    settings.attrs["review_threshold"] = np.float64(document.review_threshold)
    settings.attrs["keep_maps"] = bool(document.keep_maps)
    settings.attrs["autosave_enabled"] = bool(document.autosave.enabled)
    settings.attrs["autosave_interval_s"] = np.int64(document.autosave.interval_s)
    tracks = h5.create_group("tracks")
    for track_id, track in sorted(document.tracks.items()):
        group = tracks.create_group(str(track_id))
        _put_text(group, "label", track.label)
        group.attrs["color"] = np.asarray(track.color, dtype=np.uint8)
        _put(group, "boxes", track.boxes.astype(np.float32))
        _put(group, "origin", track.origin.astype(np.uint8))
        _put(group, "flags", track.flags.astype(np.uint8))
        _put(group, "scores", track.scores.astype(np.float32))
        variants = group.create_group("variants")
        for variant in sorted(set(track.variant_scores) | set(track.variant_boxes)):
            _check_name("variant", variant)
            no_boxes = np.full((document.frame_count, 4), np.nan, np.float32)
            no_scores = np.full(document.frame_count, np.nan, np.float32)
            variant_group = variants.create_group(variant)
            _put(variant_group, "boxes", track.variant_boxes.get(variant, no_boxes).astype(np.float32))
            _put(variant_group, "scores", track.variant_scores.get(variant, no_scores).astype(np.float32))
    maps = h5.create_group("maps")
    for variant, by_frame in sorted(document.maps.items()):
        if not by_frame:
            continue
        _check_name("variant", variant)
        group = maps.create_group(variant)
        frames = np.array(sorted(by_frame), dtype=np.int64)
        _put(group, "frames", frames)
        for map_name in sorted(by_frame[int(frames[0])]):
            _check_name("map", map_name)
            _put(group, map_name, np.stack([by_frame[int(f)][map_name] for f in frames]).astype(np.float32))


def save_project(document: Document, path: str | os.PathLike) -> None:
    """Write ``document`` to ``path`` atomically and mark it saved."""
    revision = document.revision

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w", libver="latest") as h5:
            _write_document(document, h5)
            h5.flush()

    atomic_write(path, write)
    document.saved_revision = revision


# -- loading ---------------------------------------------------------------------------------


class _Reader:
    """Reads and checks one open file; every problem raises ProjectFileError naming it."""

    def __init__(self, h5: h5py.File, path: Path):
        self.h5 = h5
        self.path = path

    def fail(self, what: str) -> ProjectFileError:
        return ProjectFileError(f"{self.path}: {what}")

    def attr(self, obj: h5py.HLObject, name: str, kind: type):
        if name not in obj.attrs:
            raise self.missing(obj, f"attribute {name!r}")
        value = obj.attrs[name]
        where = f"attribute {name!r} of {obj.name}"
        if kind is str:
            if isinstance(value, bytes):  # fixed-length strings read back as bytes
                value = value.decode("utf-8")
            if not isinstance(value, str):
                raise self.fail(f"{where} must be a string, not {type(value).__name__}")
            return value
        if isinstance(value, np.ndarray) or not isinstance(value, (np.generic, int, float, bool)):
            raise self.fail(f"{where} must be a scalar")
        if kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise self.fail(f"{where} must be a boolean")
            return bool(value)
        if kind is int:
            if not np.issubdtype(np.asarray(value).dtype, np.integer):
                raise self.fail(f"{where} must be an integer")
            return int(value)
        if not np.issubdtype(np.asarray(value).dtype, np.floating):
            raise self.fail(f"{where} must be a float")
        return float(value)

    def array_attr(self, obj: h5py.HLObject, name: str, shape: tuple, dtype) -> np.ndarray:
        if name not in obj.attrs:
            raise self.missing(obj, f"attribute {name!r}")
        value = obj.attrs[name]
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != np.dtype(dtype):
            raise self.fail(f"attribute {name!r} of {obj.name} must be {dtype} with shape {shape}")
        return value

    def missing(self, obj: h5py.HLObject, what: str) -> ProjectFileError:
        return self.fail(f"{what} missing from {obj.name}")

    def group(self, parent: h5py.Group, name: str) -> h5py.Group:
        if name not in parent:
            raise self.missing(parent, f"group {name!r}")
        child = parent[name]
        if not isinstance(child, h5py.Group):
            raise self.fail(f"{child.name} must be a group")
        return child

    def dataset(self, parent: h5py.Group, name: str, shape: tuple, dtype) -> np.ndarray:
        """Read ``parent/name``; ``None`` in ``shape`` matches any length."""
        if name not in parent:
            raise self.missing(parent, f"dataset {name!r}")
        data = parent[name]
        if not isinstance(data, h5py.Dataset):
            raise self.fail(f"{data.name} must be a dataset")
        expected = tuple(n if n is not None else got for n, got in zip(shape, data.shape))
        if data.shape != expected or len(data.shape) != len(shape):
            wanted = "x".join("K" if n is None else str(n) for n in shape)
            raise self.fail(f"{data.name} has shape {data.shape}, expected ({wanted})")
        if data.dtype != np.dtype(dtype):
            raise self.fail(f"{data.name} has dtype {data.dtype}, expected {np.dtype(dtype)}")
        return data[()]

    def document(self) -> Document:
        h5 = self.h5
        schema = h5.attrs.get("schema")
        if isinstance(schema, bytes):
            schema = schema.decode("utf-8", "replace")
        if schema != SCHEMA:
            raise self.fail(f"not an HNSE Studio project (schema {schema!r}, expected {SCHEMA!r})")
        version = self.attr(h5, "schema_version", int)
        if version != SCHEMA_VERSION:
            raise self.fail(f"schema version {version} is not supported (this program reads version {SCHEMA_VERSION})")
        frame_count = self.attr(h5, "frame_count", int)
        if frame_count < 1:
            raise self.fail(f"frame_count must be at least 1, got {frame_count}")
        frame_size = self.array_attr(h5, "frame_size", (2,), np.int64)
        if (frame_size < 1).any():
            raise self.fail(f"frame_size must be positive, got {frame_size.tolist()}")
        document = Document(self.attr(h5, "video_path", str), frame_count, tuple(int(v) for v in frame_size))
        document.weights = self.weights()
        settings = self.group(h5, "settings")
        document.primary_variant = self.attr(settings, "primary_variant", str) or None
        document.review_threshold = self.attr(settings, "review_threshold", float)
        document.keep_maps = self.attr(settings, "keep_maps", bool)
        document.autosave = AutosaveSettings(self.attr(settings, "autosave_enabled", bool),
                                             self.attr(settings, "autosave_interval_s", int))
        tracks = self.group(h5, "tracks")
        for name in tracks:
            if not name.isdigit() or int(name) < 1:
                raise self.fail(f"track group name {name!r} is not a positive integer id")
            document.tracks[int(name)] = self.track(self.group(tracks, name), int(name), frame_count)
        maps = self.group(h5, "maps")
        for variant in maps:
            document.maps[variant] = self.variant_maps(self.group(maps, variant), frame_count)
        return document

    def weights(self) -> dict[str, str]:
        text = self.attr(self.h5, "weights", str)
        try:
            weights = json.loads(text)
        except json.JSONDecodeError as error:
            raise self.fail(f"attribute 'weights' is not JSON ({_one_line(error)})") from None
        if not isinstance(weights, dict) or not all(isinstance(v, str) for v in weights.values()):
            raise self.fail("attribute 'weights' must map variant names to file paths")
        return weights

    def boxes(self, group: h5py.Group, frame_count: int) -> np.ndarray:
        boxes = self.dataset(group, "boxes", (frame_count, 4), np.float32)
        missing = np.isnan(boxes)
        if (missing.any(axis=1) != missing.all(axis=1)).any():
            raise self.fail(f"{group.name}/boxes has rows that are partly NaN")
        present = boxes[~missing.any(axis=1)]
        if not np.isfinite(present).all() or (present[:, 2:] <= 0).any():
            raise self.fail(f"{group.name}/boxes has a box with infinite values or non-positive size")
        return boxes

    def track(self, group: h5py.Group, track_id: int, frame_count: int) -> Track:
        origin = self.dataset(group, "origin", (frame_count,), np.uint8)
        if (origin > _MAX_ORIGIN).any():
            raise self.fail(f"{group.name}/origin holds values above {_MAX_ORIGIN}")
        flags = self.dataset(group, "flags", (frame_count,), np.uint8)
        if (flags > _MAX_FLAGS).any():
            raise self.fail(f"{group.name}/flags holds unknown flag bits")
        track = Track(
            id=track_id,
            label=self.attr(group, "label", str),
            color=tuple(int(c) for c in self.array_attr(group, "color", (3,), np.uint8)),
            boxes=self.boxes(group, frame_count),
            origin=origin,
            flags=flags,
            scores=self.dataset(group, "scores", (frame_count,), np.float32),
        )
        variants = self.group(group, "variants")
        for variant in variants:
            variant_group = self.group(variants, variant)
            track.variant_boxes[variant] = self.boxes(variant_group, frame_count)
            track.variant_scores[variant] = self.dataset(variant_group, "scores", (frame_count,), np.float32)
        return track

    def variant_maps(self, group: h5py.Group, frame_count: int) -> dict[int, dict[str, np.ndarray]]:
        frames = self.dataset(group, "frames", (None,), np.int64)
        if len(frames) and ((frames < 0).any() or (frames >= frame_count).any() or (np.diff(frames) <= 0).any()):
            raise self.fail(f"{group.name}/frames must be increasing frame indices below {frame_count}")
        by_frame: dict[int, dict[str, np.ndarray]] = {int(f): {} for f in frames}
        for map_name in group:
            if map_name == "frames":
                continue
            data = group[map_name]
            if not isinstance(data, h5py.Dataset) or data.ndim != 3:
                raise self.fail(f"{group.name}/{map_name} must be a (K, S, S) dataset")
            stack = self.dataset(group, map_name, (len(frames), None, None), np.float32)
            for f, array in zip(frames, stack):
                by_frame[int(f)][map_name] = array
        return by_frame


def load_project(path: str | os.PathLike) -> Document:
    """Read a project written by :func:`save_project`; raises ProjectFileError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ProjectFileError(f"{path}: no such file")
    try:
        h5 = h5py.File(path, "r", locking=False)
    except _READ_ERRORS as error:
        raise ProjectFileError(f"{path}: not a readable HDF5 file ({_one_line(error)})") from None
    try:
        with h5:
            document = _Reader(h5, path).document()
    except ProjectFileError:
        raise
    except _READ_ERRORS as error:
        raise ProjectFileError(f"{path}: damaged project file ({_one_line(error)})") from None
    document.revision = document.saved_revision = 0
    return document


# -- exports ---------------------------------------------------------------------------------


def _number(value: float) -> str:
    return "NaN" if math.isnan(value) else np.format_float_positional(value, precision=3, trim="-")


def _box_text(row: np.ndarray) -> str:
    return ",".join(_number(float(v)) for v in row)


def _shown(track: Track) -> np.ndarray:
    """(N,) bool: the frames whose box an export writes, those with a box not flagged ABSENT."""
    return ~np.isnan(track.boxes).any(axis=1) & ((track.flags & Flag.ABSENT) == 0)


def export_boxes_txt(document: Document, track_id: int, path: str | os.PathLike) -> None:
    """One ``x,y,w,h`` line per video frame (line i + 1 = frame i), ``NaN,NaN,NaN,NaN``
    where the frame has no box or is flagged ABSENT (a box stored there is not written).

    :func:`import_boxes_txt` reads it back.
    """
    track = document.track(track_id)
    boxes = np.where(_shown(track)[:, None], track.boxes, np.nan)
    atomic_write(path, lambda tmp: tmp.write_text("".join(_box_text(row) + "\n" for row in boxes)))


def export_mot_csv(document: Document, path: str | os.PathLike) -> None:
    """MOT17 ground-truth rows ``frame,id,x,y,w,h,1,1,visibility``, by frame then id.

    ``frame`` is 1-based and ``id`` the track id; the 7th column ("considered") is
    always 1 and the 8th (class) 1; ``visibility`` is 0 on frames flagged OCCLUDED and
    1 on the others. Frames without a box or flagged ABSENT have no row. The tracker's
    score is not written: this layout has no column for it (the 7th is ground truth's
    0/1 "consider this box" flag, not a confidence). :func:`import_mot` reads the file
    back.
    """
    rows = []
    for track_id, track in document.tracks.items():
        occluded = (track.flags & Flag.OCCLUDED) != 0
        for frame in np.flatnonzero(_shown(track)):
            row = f"{frame + 1},{track_id},{_box_text(track.boxes[frame])},1,1,{0 if occluded[frame] else 1}"
            rows.append((int(frame), track_id, row))
    rows.sort()
    atomic_write(path, lambda tmp: tmp.write_text("".join(row + "\n" for _, _, row in rows)))


def _cvat_track(annotations: ET.Element, track: Track) -> None:
    """Append ``track``'s ``<track>`` element (see :func:`export_cvat_video`); none without a box."""
    shown = _shown(track)
    leaves = np.flatnonzero(shown[:-1] & ~shown[1:]) + 1  # no box right after a shown one
    frames = np.union1d(np.flatnonzero(shown), leaves)
    if not len(frames):
        return
    element = ET.SubElement(annotations, "track", id=str(track.id), label=track.label)
    keyframe = (track.origin == Origin.MANUAL) | (track.origin == Origin.TRACKED)
    occluded = (track.flags & Flag.OCCLUDED) != 0
    for frame in frames:
        outside = not shown[frame]
        x, y, w, h = (float(v) for v in track.boxes[frame - 1 if outside else frame])
        ET.SubElement(element, "box", {
            "frame": str(frame),
            "outside": "1" if outside else "0",
            "occluded": "1" if occluded[frame] and not outside else "0",
            "keyframe": "1" if outside or keyframe[frame] else "0",
            "xtl": _number(x), "ytl": _number(y), "xbr": _number(x + w), "ybr": _number(y + h),
            "z_order": "0",
        })


def export_cvat_video(document: Document, path: str | os.PathLike) -> None:
    """All tracks as CVAT's "CVAT for video 1.1" XML, the file CVAT uploads into a video task.

    The layout follows CVAT's "XML annotation format" page (version 1.1, section
    "Interpolation", https://docs.cvat.ai/docs/other/xml_format/)::

        <annotations>
          <version>1.1</version>
          <meta><task>
            <name>video file name</name> <size>frame count</size> <mode>interpolation</mode>
            <overlap>0</overlap>
            <labels><label><name>track label</name><attributes/></label>...</labels>
            <original_size><width>W</width><height>H</height></original_size>
          </task></meta>
          <track id="track id" label="track label">
            <box frame="0-based" outside="0|1" occluded="0|1" keyframe="0|1"
                 xtl="x" ytl="y" xbr="x + w" ybr="y + h" z_order="0"/> ...
          </track> ...
        </annotations>

    One ``<label>`` per distinct track label; a track without any box is left out.
    Every frame with a box not flagged ABSENT has a box with ``outside="0"``,
    ``occluded="1"`` when flagged OCCLUDED, and ``keyframe="1"`` for MANUAL and
    TRACKED boxes (CVAT keeps keyframes as given and interpolates only between them,
    and its own trackers write their boxes as keyframes), ``keyframe="0"`` for
    INTERPOLATED ones, which CVAT interpolates again between the keyframes. Where the object leaves (the
    first frame without a box, or flagged ABSENT, after one with a box) a keyframe box
    with ``outside="1"`` repeats the last box, as CVAT writes; so a track ends with one
    after its last box unless that box is on the video's last frame.
    """
    annotations = ET.Element("annotations")
    ET.SubElement(annotations, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(annotations, "meta"), "task")
    for tag, text in (("name", Path(document.video_path).name), ("size", str(document.frame_count)),
                      ("mode", "interpolation"), ("overlap", "0")):
        ET.SubElement(task, tag).text = text
    labels = ET.SubElement(task, "labels")
    for label in dict.fromkeys(track.label for _, track in sorted(document.tracks.items())):
        label_element = ET.SubElement(labels, "label")
        ET.SubElement(label_element, "name").text = label
        ET.SubElement(label_element, "attributes")
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(document.frame_size[0])
    ET.SubElement(size, "height").text = str(document.frame_size[1])
    for _, track in sorted(document.tracks.items()):
        _cvat_track(annotations, track)
    ET.indent(annotations)
    atomic_write(path, lambda tmp: ET.ElementTree(annotations).write(tmp, encoding="utf-8", xml_declaration=True))


# -- imports ---------------------------------------------------------------------------------


def _add_imported_track(document: Document, label: str, boxes: np.ndarray, flags: np.ndarray,
                        track_id: int | None = None) -> Track:
    """A new track with ``boxes`` (N, 4) as MANUAL keyframes (NaN rows stay empty) and ``flags`` (N,)."""
    present = ~np.isnan(boxes).any(axis=1)
    track = document.add_track(label, track_id=track_id)
    document.set_range(track.id, 0, document.frame_count, TrackSlice(
        start=0,
        stop=document.frame_count,
        boxes=boxes.astype(np.float32),
        origin=np.where(present, Origin.MANUAL, Origin.NONE).astype(np.uint8),
        flags=flags.astype(np.uint8),
        scores=np.full(document.frame_count, np.nan, np.float32),
        variant_scores={},
        variant_boxes={},
    ))
    return track


def _row_line(path: Path, index: int) -> int:
    """The line number of row ``index`` of :func:`read_mot_file` (which skips blank lines)."""
    lines = path.read_bytes().decode("utf-8-sig").split("\n")
    return [number for number, line in enumerate(lines, start=1) if line.strip()][index]


def import_mot(document: Document, path: str | os.PathLike) -> list[Track]:
    """Add one track per identity of a MOT file; returns the new tracks, by identity.

    Rows are ``frame,id,x,y,w,h[,considered[,class[,visibility]]]`` with 1-based frames,
    as :func:`model.data.sequences.read_mot_file` reads them (MOT17 ground truth, MOT
    results, or :func:`export_mot_csv`'s files). Each identity's track is labelled
    ``"id <identity>"``, its boxes are MANUAL keyframes, a box with visibility 0 gets
    OCCLUDED, frames without a row stay empty. Every row is imported, considered or
    not; scores are not read. The tracks keep the identities as their ids when every
    identity is at least :attr:`Document.next_track_id` (an id never given out, e.g. in
    a new document), else they get new ids in identity order.

    The whole file is checked first: a malformed line, a frame beyond the document's
    frames or a second row for one identity on one frame raises one InputError naming
    the file and the line, and the document is left unchanged. Undo by removing the
    returned tracks.
    """
    path = Path(path)
    rows = read_mot_file(path)
    count = document.frame_count
    boxes: dict[int, np.ndarray] = {}
    flags: dict[int, np.ndarray] = {}
    for index, row in enumerate(rows):
        frame = row.frame - 1
        track_boxes = boxes.setdefault(row.identity, np.full((count, 4), np.nan))
        track_flags = flags.setdefault(row.identity, np.zeros(count, np.uint8))
        if frame >= count:
            raise InputError(f"{path} line {_row_line(path, index)}: frame {row.frame} is beyond the video's "
                             f"{count} frames")
        if not np.isnan(track_boxes[frame]).all():
            raise InputError(f"{path} line {_row_line(path, index)}: a second box for id {row.identity} "
                             f"on frame {row.frame}")
        track_boxes[frame] = row.box
        if row.visibility == 0:
            track_flags[frame] = Flag.OCCLUDED
    identities = sorted(boxes)
    keep_ids = bool(identities) and identities[0] >= document.next_track_id
    return [_add_imported_track(document, f"id {identity}", boxes[identity], flags[identity],
                                identity if keep_ids else None) for identity in identities]


def import_boxes_txt(document: Document, path: str | os.PathLike, label: str) -> Track:
    """Add a track labelled ``label`` from a box text file; returns it.

    One ``x,y,w,h`` line per frame (line i + 1 = frame i, as :func:`export_boxes_txt`
    writes; commas, tabs or spaces), a ``NaN`` or blank line for a frame without a box;
    boxes become MANUAL keyframes and frames after the last line stay empty. Read by
    :func:`model.data.sequences.load_boxes_file`; a malformed line, or more lines than
    the document has frames, raises one InputError naming the file and the line, and
    the document is left unchanged.
    """
    boxes = load_boxes_file(path)
    count = document.frame_count
    if len(boxes) > count:
        raise InputError(f"{path} line {count + 1}: the video has only {count} frames")
    padded = np.full((count, 4), np.nan)
    padded[: len(boxes)] = boxes
    return _add_imported_track(document, label, padded, np.zeros(count, np.uint8))


def track_result_document(boxes: np.ndarray, scores: np.ndarray, video_path: str, weights: str,
                          frame_size: tuple[int, int], *, start: int = 0, frame_count: int | None = None,
                          flags: np.ndarray | None = None, review_threshold: float = 0.3,
                          label: str = "target") -> Document:
    """A one-track document from a headless tracking run over frames ``start:start + M``.

    ``boxes`` (M, 4) x, y, w, h: row 0 is the initial box (a MANUAL keyframe), the rest
    the tracker's (TRACKED, NEEDS_REVIEW when the score is below ``review_threshold``);
    NaN rows stay empty. ``scores`` (M,); ``flags`` (M,) extra flags (e.g. DECODE_FAILED).
    ``frame_count`` is the video's length (default ``start + M``).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    document = Document(video_path, frame_count or start + len(boxes), frame_size)
    document.weights = {Path(weights).stem: str(weights)}
    document.review_threshold = review_threshold
    track = document.add_track(label)
    document.set_box(track.id, start, boxes[0], Origin.MANUAL)
    for offset in range(1, len(boxes)):
        if not np.isnan(boxes[offset]).any():
            document.apply_tracking(track.id, start + offset, boxes[offset], float(scores[offset]))
    if flags is not None:
        frames = slice(start, start + len(boxes))
        track.flags[frames] |= np.asarray(flags, dtype=np.uint8)
    return document


def write_track_result(path: str | os.PathLike, boxes: np.ndarray, scores: np.ndarray, video_path: str,
                       weights: str, frame_size: tuple[int, int], **options) -> Document:
    """Save a headless run as a project file the application opens; returns the document.

    Arguments as :func:`track_result_document`.
    """
    document = track_result_document(boxes, scores, video_path, weights, frame_size, **options)
    save_project(document, path)
    return document
