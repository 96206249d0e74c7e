"""Training pairs: sources, the pair sampler, and a map-style dataset (Sec. 4.1).

Sources, each with a sampling weight (``TrainConfig.datasets`` entries):

* ``{"kind": "sequences", "path": DIR}``: a folder of sequence folders in any layout
  :func:`model.data.sequences.read_sequence` understands; template and search frames
  come from one sequence at most ``frame_range`` frames apart (100 by default);
* ``{"kind": "mot", "path": DIR}``: a folder of MOT Challenge clips (``img1/``,
  ``gt/gt.txt``); every identity is a track, the other people its distractors;
* ``{"kind": "images", "path": DIR}``: still images with COCO-style boxes
  (``boxes.tsv``: image, class_id, x, y, w, h); template and search are the same
  image (frame range 1), made different by the augmentation;
* ``{"kind": "synthetic", "count": N, "length": L, "distractors": D, "objects": DIR}``:
  :mod:`model.data.synthetic` sequences with look-alike distractors; ``"instances": true``
  makes them other objects of the target's class, ``"library": K`` cuts up to K objects
  from DIR (200 by default).

Item ``i`` of :class:`PairDataset` is drawn from a generator seeded with
``(seed, i)``, so the data order is a function of the seed alone: the models with and
without HE see exactly the same pairs, and ``DistributedSampler`` shards stay disjoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from model.core.config import Config
from model.data.augment import color_augment, crop_pair_member
from model.data.sequences import read_mot_clip, read_sequence
from model.data.synthetic import load_object_library, synthetic_sequence
from model.core.errors import InputError


@dataclass
class _Track:
    """Frames of one object: ``frames[i]`` -> BGR image, ``boxes`` (N, 4) xywh, NaN = absent."""

    frames: object
    boxes: np.ndarray
    frame_range: int

    def __post_init__(self):
        valid = np.isfinite(self.boxes).all(axis=1) & (np.nan_to_num(self.boxes[:, 2:]) > 1).all(axis=1)
        self.valid = np.flatnonzero(valid)


class _StillImage:
    """One image of a still-image source as a one-frame sequence, decoded on demand."""

    def __init__(self, path: Path):
        self.path = path

    def __getitem__(self, index: int) -> np.ndarray:
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{self.path}: cannot decode image")
        return image


def _sequence_tracks(path: Path, frame_range: int, held_out: tuple[str, ...] = ()) -> list[_Track]:
    """The sequences in ``path`` but those named in ``held_out`` (the validation split)."""
    if not path.is_dir():
        raise InputError(f"{path}: no such training folder")
    folders = [p for p in sorted(path.iterdir()) if p.is_dir() and p.name not in held_out and any(
        (p / name).is_file() for name in ("groundtruth.txt", "groundtruth_rect.txt"))]
    if not folders:
        raise InputError(f"{path}: no sequence folders for training")
    return [_Track(s.frames, s.boxes, frame_range) for s in map(read_sequence, folders)]


def _mot_tracks(path: Path, frame_range: int) -> list[_Track]:
    if not path.is_dir():
        raise InputError(f"{path}: no such MOT folder")
    clips = [p for p in sorted(path.iterdir()) if (p / "gt" / "gt.txt").is_file()]
    if not clips:
        raise InputError(f"{path}: no MOT clips (folders with gt/gt.txt)")
    return [_Track(s.frames, s.boxes, frame_range) for clip in clips for s in read_mot_clip(clip)]


def _image_tracks(path: Path) -> list[_Track]:
    table = path / "boxes.tsv"
    if not table.is_file():
        raise InputError(f"{table}: missing (still-image source needs boxes.tsv)")
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:] if line.strip()]
    tracks = []
    for line_no, row in enumerate(rows, start=2):
        if len(row) != 6:
            raise InputError(f"{table} line {line_no}: expected 6 columns, got {len(row)}")
        try:
            box = np.array([[float(v) for v in row[2:]]])
        except ValueError:
            raise InputError(f"{table} line {line_no}: box values are not numbers") from None
        # One object = a one-frame track: template and search come from the same image.
        tracks.append(_Track(_StillImage(path / "images" / row[0]), box, 1))
    return tracks


def _synthetic_tracks(spec: dict, seed: int) -> list[_Track]:
    objects, backgrounds = load_object_library(spec.get("objects"), limit=int(spec.get("library", 200)))
    tracks = []
    for i in range(int(spec.get("count", 20))):
        sequence = synthetic_sequence(seed * 1000 + i, int(spec.get("length", 100)),
                                      distractors=int(spec.get("distractors", 3)),
                                      objects=objects, backgrounds=backgrounds,
                                      instances=bool(spec.get("instances", False)))
        tracks.append(_Track(sequence.frames, sequence.boxes, int(spec.get("frame_range", 100))))
    return tracks


def build_sources(config: Config, base: Path | None = None) -> list[tuple[list[_Track], float]]:
    """(tracks, weight) per ``TrainConfig.datasets`` entry; relative paths from ``base``."""
    train = config.train
    sources = []
    for number, entry in enumerate(train.datasets, start=1):
        kind = entry.get("kind")
        where = f"train.datasets entry {number} ({kind})"
        try:
            weight = float(entry.get("weight", 1.0))
        except (TypeError, ValueError):
            raise InputError(f"{where}: weight {entry.get('weight')!r} is not a number") from None

        def resolve(key):
            if key not in entry:
                raise InputError(f"{where}: needs a '{key}'")
            value = Path(entry[key])
            return value if value.is_absolute() or base is None else base / value

        if kind == "sequences":
            tracks = _sequence_tracks(resolve("path"), int(entry.get("frame_range", train.video_frame_range)),
                                      train.validation)
        elif kind == "mot":
            tracks = _mot_tracks(resolve("path"), int(entry.get("frame_range", train.video_frame_range)))
        elif kind == "images":
            tracks = _image_tracks(resolve("path"))
        elif kind == "synthetic":
            spec = dict(entry)
            if "objects" in spec:
                spec["objects"] = resolve("objects")
            tracks = _synthetic_tracks(spec, train.seed)
        else:
            raise InputError(f"training dataset kind {kind!r} is not sequences, mot, images or synthetic")
        tracks = [t for t in tracks if len(t.valid)]
        if tracks:
            sources.append((tracks, weight))
    if not sources:
        raise InputError("the training config names no usable dataset")
    return sources


class PairDataset(torch.utils.data.Dataset):
    """``length`` reproducible training pairs as tensors (see module docstring).

    An item: ``template`` (3, 127, 127) and ``search`` (3, 255, 255) float BGR 0..255,
    ``template_box`` and ``search_box`` (4,) xyxy in crop pixels.
    """

    def __init__(self, sources, config: Config, length: int):
        self.sources, self.config, self.length = sources, config, length
        weights = np.array([w for _, w in sources], dtype=np.float64)
        self.source_p = weights / weights.sum()

    def __len__(self) -> int:
        return self.length

    def sample_frames(self, rng: np.random.Generator):
        """(track, template frame index, search frame index) within the track's frame range."""
        tracks, _ = self.sources[rng.choice(len(self.sources), p=self.source_p)]
        track = tracks[int(rng.integers(len(tracks)))]
        template_index = int(track.valid[rng.integers(len(track.valid))])
        near = track.valid[np.abs(track.valid - template_index) < track.frame_range]
        search_index = int(near[rng.integers(len(near))])
        return track, template_index, search_index

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        train, net = self.config.train, self.config.network
        rng = np.random.default_rng([train.seed, int(index)])
        track, template_index, search_index = self.sample_frames(rng)
        template, template_box = crop_pair_member(
            track.frames[template_index], track.boxes[template_index], net.exemplar_size, net.exemplar_size,
            train.context_amount, shift=4, scale_jitter=0.05, rng=rng)
        search, search_box = crop_pair_member(
            track.frames[search_index], track.boxes[search_index], net.instance_size, net.exemplar_size,
            train.context_amount, shift=train.translation, scale_jitter=train.scale_jitter, rng=rng)
        state = rng.bit_generator.state
        template = color_augment(template, rng, train.color_jitter, 0.0, train.gray_prob)
        if train.shared_colour_change:  # the search crop draws the template's colour change again
            rng.bit_generator.state = state
        search = color_augment(search, rng, train.color_jitter, train.blur_prob, train.gray_prob)
        return {
            "template": torch.from_numpy(template).permute(2, 0, 1).float(),
            "search": torch.from_numpy(search).permute(2, 0, 1).float(),
            "template_box": torch.from_numpy(template_box),
            "search_box": torch.from_numpy(search_box),
        }
