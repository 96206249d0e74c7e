"""Annotated tracking sequences and the benchmark layouts they come in.

A :class:`Sequence` is a name, a :class:`~model.data.sources.FrameSource` and one box
per frame: ``boxes`` has shape (N, 4), float64, rows ``(x, y, w, h)`` with (x, y) the
top-left corner, and a row of NaN where the target is absent (fully occluded or out
of view). Boxes are kept as published (OTB's are 1-based, VOT's 0-based).

Layouts understood by :func:`read_sequence` (``layout="auto"`` tells them apart):

* ``otb``: frames in ``img/``, boxes in ``groundtruth_rect.txt``;
* ``vot``: frames in ``color/`` (or the folder itself in older releases), boxes in
  ``groundtruth.txt`` as 4-value boxes or 8-value polygons, a polygon reduced to its
  axis-aligned min/max box;
* ``got10k``: frames ``00000001.jpg``... in the folder, boxes in ``groundtruth.txt``,
  ``absence.label`` (1 = absent) when present;
* ``lasot``: frames in ``img/``, boxes in ``groundtruth.txt``, ``full_occlusion.txt``
  and ``out_of_view.txt`` (1 = absent) when present.

The development set in ``shared/data/sequences`` (``img/`` + ``groundtruth.txt`` with
NaN lines) is the LaSOT layout without its label files. In every box file values
are separated by commas, tabs or spaces; a line with a missing value or a NaN is an
absent target. Frames a label file marks absent may carry any box (LaSOT writes
zeros there); every other box must have a positive width and height.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.data.sources import FrameSource, ImageFolderSource
from model.core.errors import InputError

LAYOUTS = ("otb", "vot", "got10k", "lasot")
_SEPARATOR = re.compile(r"\s*,\s*|\s+")


@dataclass
class Sequence:
    """One annotated sequence: ``boxes`` is (N, 4) float64 x, y, w, h; NaN rows = absent."""

    name: str
    frames: FrameSource
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def _read_lines(path: Path) -> list[str]:
    """The file's lines without line ends or trailing blank lines."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not a text file (byte {error.start} is not UTF-8)") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _parse_boxes(path: Path, polygons: bool) -> np.ndarray:
    """(N, 4) x, y, w, h from a box file, NaN rows for absent targets; sizes unchecked."""
    columns = (4, 8) if polygons else (4,)
    expected = "4 values (x,y,w,h) or 8 (polygon)" if polygons else "4 values (x,y,w,h)"
    lines = _read_lines(path)
    boxes = np.full((len(lines), 4), np.nan)
    for row, line in enumerate(lines):
        fields = _SEPARATOR.split(line.strip()) if line.strip() else []
        if not fields:
            continue  # a blank line inside the file: no box, the target is absent
        if len(fields) not in columns:
            raise InputError(f"{path} line {row + 1}: expected {expected}, found {len(fields)}")
        values = []
        for field in fields:
            try:
                value = float(field) if field else math.nan
            except ValueError:
                raise InputError(f"{path} line {row + 1}: cannot parse {field[:20]!r} as a number") from None
            if math.isinf(value):
                raise InputError(f"{path} line {row + 1}: infinite value {field[:20]!r}")
            values.append(value)
        if any(math.isnan(v) for v in values):
            continue
        if len(values) == 8:
            xs, ys = values[0::2], values[1::2]
            values = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        boxes[row] = values
    return boxes


def _check_sizes(path: Path, boxes: np.ndarray) -> None:
    """Every present box must have a positive width and height."""
    bad = np.flatnonzero((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
    if bad.size:
        row = int(bad[0])
        raise InputError(
            f"{path} line {row + 1}: box has zero or negative size (w={boxes[row, 2]:g}, h={boxes[row, 3]:g})"
        )


def load_boxes_file(path: str | Path, *, polygons: bool = False) -> np.ndarray:
    """Boxes of a plain box file: (N, 4) float64 x, y, w, h, NaN rows for absent targets.

    With ``polygons=True`` 8-value lines (VOT corners) are accepted and reduced to their
    axis-aligned min/max box.
    """
    path = Path(path)
    boxes = _parse_boxes(path, polygons)
    _check_sizes(path, boxes)
    return boxes


def _read_absent_flags(path: Path, count: int) -> np.ndarray:
    """(count,) bool from a 0/1 label file, one value per frame (any separators)."""
    flags = []
    for row, line in enumerate(_read_lines(path)):
        for token in line.replace(",", " ").split():
            if token not in ("0", "1"):
                raise InputError(f"{path} line {row + 1}: expected 0 or 1, found {token[:20]!r}")
            flags.append(token == "1")
    if len(flags) != count:
        raise InputError(f"{path}: {len(flags)} labels for {count} frames")
    return np.array(flags, dtype=bool)


def _has_groundtruth(path: Path) -> bool:
    return (path / "groundtruth_rect.txt").is_file() or (path / "groundtruth.txt").is_file()


def detect_layout(path: str | Path) -> str:
    """Which of :data:`LAYOUTS` the sequence folder ``path`` is in."""
    path = Path(path)
    if (path / "groundtruth_rect.txt").is_file():
        return "otb"
    if not (path / "groundtruth.txt").is_file():
        raise InputError(f"{path}: not a sequence folder (no groundtruth_rect.txt or groundtruth.txt)")
    if (path / "absence.label").is_file():
        return "got10k"
    if (path / "img").is_dir():
        return "lasot"
    return "vot"


def read_sequence(path: str | Path, layout: str = "auto") -> Sequence:
    """Read the sequence folder ``path`` in ``layout`` (one of :data:`LAYOUTS`, or "auto")."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such sequence folder")
    if layout == "auto":
        layout = detect_layout(path)
    if layout not in LAYOUTS:
        raise InputError(f"unknown sequence layout {layout!r}; expected auto or one of {', '.join(LAYOUTS)}")
    box_file = path / ("groundtruth_rect.txt" if layout == "otb" else "groundtruth.txt")
    if not box_file.is_file():
        raise InputError(f"{box_file}: no such file")
    frame_folder = {"otb": path / "img", "lasot": path / "img", "got10k": path}.get(layout)
    if frame_folder is None:  # VOT: color/ in the newer releases, the folder itself in older ones
        frame_folder = path / "color" if (path / "color").is_dir() else path
    frames = ImageFolderSource(frame_folder)
    boxes = _parse_boxes(box_file, polygons=layout == "vot")
    if len(boxes) != len(frames):
        raise InputError(f"{box_file}: {len(boxes)} boxes for {len(frames)} frames in {frames.path}")
    label_files = {"got10k": ("absence.label",), "lasot": ("full_occlusion.txt", "out_of_view.txt")}
    for name in label_files.get(layout, ()):
        if (path / name).is_file():
            boxes[_read_absent_flags(path / name, len(frames))] = np.nan
    _check_sizes(box_file, boxes)
    return Sequence(name=path.name, frames=frames, boxes=boxes)


def _listed_names(root: Path) -> list[tuple[str, Path, int]] | None:
    """(name, list file, line) of the sequences ``root`` lists, or None if it has no list.

    ``MANIFEST.tsv`` has a header line; its ``name`` column (else the first) names the
    sequences, and where it has a ``kind`` column only rows of kind ``sequence`` count
    (the training set lists still-image folders there too). ``list.txt`` (GOT-10k) has
    one name per line.
    """
    manifest, plain_list = root / "MANIFEST.tsv", root / "list.txt"
    if manifest.is_file():
        lines = _read_lines(manifest)
        header = lines[0].split("\t") if lines else []
        name_column = header.index("name") if "name" in header else 0
        kind_column = header.index("kind") if "kind" in header else None
        entries = []
        for row, line in enumerate(lines[1:], start=2):
            cells = line.split("\t")
            if kind_column is not None and kind_column < len(cells) and cells[kind_column].strip() != "sequence":
                continue
            if cells[name_column:] and cells[name_column].strip():
                entries.append((cells[name_column].strip(), manifest, row))
        return entries
    if plain_list.is_file():
        return [(line.strip(), plain_list, row + 1) for row, line in enumerate(_read_lines(plain_list)) if line.strip()]
    return None


def read_dataset(root: str | Path) -> list[Sequence]:
    """The sequences of the folder ``root``, each a subfolder in any of :data:`LAYOUTS`.

    The order (and the set) follows ``MANIFEST.tsv`` or ``list.txt`` when ``root`` has
    one, else the sorted names of the subfolders holding a ground-truth file. A
    ``root`` that is itself a sequence folder gives a dataset of that one sequence.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    if _has_groundtruth(root):
        return [read_sequence(root)]
    listed = _listed_names(root)
    if listed is None:
        folders = [p for p in sorted(root.iterdir()) if p.is_dir() and _has_groundtruth(p)]
    else:
        folders = []
        for name, list_file, line in listed:
            if not (root / name).is_dir():
                raise InputError(f"{list_file} line {line}: no sequence folder {name!r} in {root}")
            folders.append(root / name)
    if not folders:
        raise InputError(f"{root}: no sequence folders (with groundtruth_rect.txt or groundtruth.txt)")
    return [read_sequence(folder) for folder in folders]


# --- MOT Challenge layout ----------------------------------------------------------

@dataclass
class MotRow:
    """One box of a MOT ground-truth or result file (frame 1-based, x/y as written)."""

    frame: int
    identity: int
    box: tuple[float, float, float, float]
    considered: bool
    visibility: float


def read_mot_file(path: str | Path) -> list[MotRow]:
    """Rows ``frame,id,x,y,w,h[,considered[,class[,visibility]]]`` of a MOT file.

    MOT17 ground truth writes nine columns, results files ten (conf, x, y, z): a 7th
    column is read as "considered"/confidence (0 = not considered), the 9th as
    visibility. Rows whose class (8th column) is given and is not 1 (pedestrian) are left
    out only when they are not considered. Any malformed line is one :class:`InputError`
    naming the file and the line.
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = _SEPARATOR.split(line.strip())
        if len(fields) < 6:
            raise InputError(f"{path} line {number}: expected at least 6 values (frame,id,x,y,w,h), found {len(fields)}")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise InputError(f"{path} line {number}: values are not numbers") from None
        if not all(math.isfinite(v) for v in values[:6]):
            raise InputError(f"{path} line {number}: frame, id and box must be finite numbers")
        frame, identity = values[0], values[1]
        if frame < 1 or frame != int(frame) or identity != int(identity):
            raise InputError(f"{path} line {number}: frame must be a whole number >= 1 and id a whole number")
        if values[4] <= 0 or values[5] <= 0:
            raise InputError(f"{path} line {number}: box has zero or negative size")
        considered = len(values) < 7 or values[6] != 0
        visibility = values[8] if len(values) >= 9 and 0 <= values[8] <= 1 else 1.0
        rows.append(MotRow(int(frame), int(identity), tuple(values[2:6]), considered, visibility))
    return rows


def read_mot_clip(path: str | Path) -> list[Sequence]:
    """A MOT clip folder (``img1/`` frames, ``gt/gt.txt``) as one sequence per identity.

    Each identity is a single-object track, NaN on the frames it is not in; the other
    identities are its look-alike distractors. Only considered rows are used.
    """
    path = Path(path)
    gt = path / "gt" / "gt.txt"
    if not gt.is_file():
        raise InputError(f"{path}: not a MOT clip (no gt/gt.txt)")
    frames = ImageFolderSource(path / "img1" if (path / "img1").is_dir() else path)
    rows = [r for r in read_mot_file(gt) if r.considered]
    late = [r for r in rows if r.frame > len(frames)]
    if late:
        raise InputError(f"{gt}: frame {late[0].frame} beyond the clip's {len(frames)} frames")
    sequences = []
    for identity in sorted({r.identity for r in rows}):
        boxes = np.full((len(frames), 4), np.nan)
        for r in rows:
            if r.identity == identity:
                boxes[r.frame - 1] = r.box
        sequences.append(Sequence(name=f"{path.name}/{identity}", frames=frames, boxes=boxes))
    return sequences
