"""Synthetic sequences with same-class distractors.

A target object moves over a background together with look-alike copies of itself
(the same object, colour-shifted and rescaled), or with ``instances`` other objects of
its class (other people, cars: the same-class crowds of tracking video), which cross and
pass close to it: the hard negatives of Sec. 3.3 on demand. Objects are cut from still images with boxes
(COCO-style) when given, else drawn as random textured ellipses; backgrounds are still
images or smooth noise. Frames are rendered on demand from the seed, so a sequence of
any length costs no memory and is identical every time.

A :class:`SyntheticSequence` is a :class:`~model.data.sources.FrameSource`, and
:func:`synthetic_sequence` wraps it as a :class:`~model.data.sequences.Sequence`, so it
serves training, evaluation, tests and the app's demo scene alike.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model.data.sequences import Sequence
from model.data.sources import FrameSource


def _textured_object(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A random textured ellipse (BGR patch, alpha mask)."""
    patch = np.zeros((size, size, 3), np.uint8)
    base = rng.integers(30, 226, size=3)
    noise = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    patch[:] = np.clip(base + (noise.astype(int) - 128) // 2, 0, 255).astype(np.uint8)
    stripes = (np.arange(size) // max(2, int(rng.integers(4, 12)))) % 2 == 0
    patch[stripes] = np.clip(patch[stripes].astype(int) + 60, 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    axes = (int(size * rng.uniform(0.3, 0.48)), int(size * rng.uniform(0.3, 0.48)))
    cv2.ellipse(mask, (size // 2, size // 2), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return patch, mask


def _noise_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    small = rng.integers(0, 255, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def load_object_library(coco_dir: str | Path | None, limit: int = 200, min_side: int = 24):
    """Object patches (BGR, full-alpha mask, class id) cut from ``coco_dir/images`` by
    ``boxes.tsv``, and the images as backgrounds. Empty lists when the folder is absent."""
    objects, backgrounds = [], []
    if coco_dir is None or not (Path(coco_dir) / "boxes.tsv").is_file():
        return objects, backgrounds
    coco_dir = Path(coco_dir)
    lines = (coco_dir / "boxes.tsv").read_text().splitlines()[1:]
    cache: dict[str, np.ndarray] = {}
    for line in lines:
        name, class_id, x, y, w, h = line.split("\t")
        x, y, w, h = (float(v) for v in (x, y, w, h))
        if min(w, h) < min_side:
            continue
        if name not in cache:
            image = cv2.imread(str(coco_dir / "images" / name), cv2.IMREAD_COLOR)
            if image is None:
                continue
            cache[name] = image
        patch = cache[name][int(y):int(y + h), int(x):int(x + w)]
        if patch.size:
            objects.append((patch.copy(), np.full(patch.shape[:2], 255, np.uint8), class_id))
        if len(objects) >= limit:
            break
    backgrounds = list(cache.values())
    return objects, backgrounds


class SyntheticSequence(FrameSource):
    """``length`` frames of ``size`` (w, h): one target and ``distractors`` look-alikes:
    copies of the target, or with ``instances`` other objects of its class where the
    library has them (a copy where it has none).

    ``boxes`` (length, 4) xywh is the target's ground truth (always present).
    """

    def __init__(self, seed: int, length: int = 100, size: tuple[int, int] = (480, 360), distractors: int = 3,
                 objects=None, backgrounds=None, instances: bool = False):
        super().__init__()
        self.path = Path(f"synthetic://{seed}")
        self.seed, self.length, self.size = seed, length, size
        rng = np.random.default_rng(seed)
        width, height = size
        if backgrounds:
            background = backgrounds[int(rng.integers(len(backgrounds)))]
            self.background = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
        else:
            self.background = _noise_background(rng, width, height)
        chosen = int(rng.integers(len(objects))) if objects else None
        patch, mask = objects[chosen][:2] if objects else _textured_object(rng)
        side = rng.uniform(0.12, 0.25) * min(width, height)
        aspect = patch.shape[1] / patch.shape[0]
        base = np.array([side * np.sqrt(aspect), side / np.sqrt(aspect)])
        # Each object: start centre, velocity, size track, colour shift. Object 0 is the target.
        count = distractors + 1
        self.starts = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height], size=(count, 2))
        self.velocity = rng.uniform(-1, 1, size=(count, 2)) * min(width, height) / max(length, 1) * 0.8
        self.sizes = base * rng.uniform(0.85, 1.15, size=(count, 1))
        self.sizes[0] = base
        # Even a very elongated object, grown to its largest, must fit in the frame for the bounce.
        self.sizes = np.minimum(self.sizes, np.array([width, height]) * 0.45)
        self.growth = rng.uniform(-0.4, 0.4, size=count) / max(length, 1)
        self.tints = rng.uniform(-25, 25, size=(count, 3))
        self.tints[0] = 0
        self.wobble = rng.uniform(0, 2 * np.pi, size=(count, 2))
        self.boxes = np.array([self._box(0, t) for t in range(length)], dtype=np.float64)
        self.looks = [(patch, mask)] * count  # (patch, mask) of each object, the target's first
        if instances and objects:
            # drawn after everything above, so that a scene of copies is the same with or without this option
            same_class = [i for i, other in enumerate(objects) if other[2] == objects[chosen][2] and i != chosen]
            if same_class:
                self.looks[1:] = [objects[i][:2] for i in rng.choice(same_class, size=distractors)]

    @property
    def patch(self) -> np.ndarray:
        """The target's patch (BGR)."""
        return self.looks[0][0]

    @property
    def mask(self) -> np.ndarray:
        """The target's alpha mask."""
        return self.looks[0][1]

    def __len__(self) -> int:
        return self.length

    def _box(self, obj: int, t: int) -> np.ndarray:
        width, height = self.size
        w, h = self.sizes[obj] * np.exp(self.growth[obj] * t)
        centre = self.starts[obj] + self.velocity[obj] * t + 12 * np.sin(t / 9 + self.wobble[obj])
        # Bounce off the borders so every object stays in view.
        span = np.array([width - w, height - h])
        corner = span - np.abs((centre - [w / 2, h / 2]) % (2 * span) - span)
        return np.array([corner[0], corner[1], w, h])

    def _decode(self, index: int) -> np.ndarray:
        frame = self.background.copy()
        # Distractors first, the target last so it is drawn on top when they cross.
        for obj in list(range(1, len(self.starts))) + [0]:
            x, y, w, h = self._box(obj, index)
            look, look_mask = self.looks[obj]
            patch = cv2.resize(look, (max(2, int(round(w))), max(2, int(round(h)))))
            mask = cv2.resize(look_mask, (patch.shape[1], patch.shape[0])) > 127
            patch = np.clip(patch.astype(np.float32) + self.tints[obj], 0, 255).astype(np.uint8)
            x0, y0 = int(round(x)), int(round(y))
            region = frame[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]]
            ph, pw = region.shape[:2]
            region[mask[:ph, :pw]] = patch[:ph, :pw][mask[:ph, :pw]]
        return frame

    @property
    def fps(self) -> float | None:
        return 25.0


def synthetic_sequence(seed: int, length: int = 100, size=(480, 360), distractors: int = 3,
                       objects=None, backgrounds=None, instances: bool = False) -> Sequence:
    source = SyntheticSequence(seed, length, size, distractors, objects, backgrounds, instances)
    return Sequence(name=f"synthetic_{seed:04d}", frames=source, boxes=source.boxes.copy())


def distractor_dataset(count: int = 8, length: int = 150, seed: int = 500, distractors: int = 3,
                       objects_dir: str | Path | None = None) -> list[Sequence]:
    """The synthetic distractor evaluation set: ``count`` sequences from seeds ``seed + i``.

    Training draws its synthetic scenes from seeds ``train.seed * 1000 + i``, so the
    default 500..507 never meet them for any ``train.seed >= 1``.
    """
    objects, backgrounds = load_object_library(objects_dir)
    return [synthetic_sequence(seed + i, length, distractors=distractors, objects=objects, backgrounds=backgrounds)
            for i in range(count)]


def write_sequence(sequence: Sequence, folder: str | Path) -> Path:
    """Write ``img/00001.jpg ...`` and ``groundtruth.txt`` (the development-set layout)."""
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for index in range(len(sequence)):
        cv2.imwrite(str(folder / "img" / f"{index + 1:05d}.jpg"), sequence.frames[index],
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
    lines = [",".join(f"{v:.2f}" for v in box) for box in sequence.boxes]
    (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return folder
