"""The demo scenes: the synthetic same-class-distractor sequences of
:mod:`model.data.synthetic`, the set ``main.py eval --dataset synthetic:N`` scores.

Each scene is one target among look-alike copies of itself that cross and pass close to
it, the hard negatives that HE (Sec. 3.3) emphasises. Objects are cut from COCO images
(``../shared/data/train/coco128`` beside the repository) when that folder is there, else
drawn as textured ellipses. The window opens a scene as a sequence folder (``img/`` and
``groundtruth.txt``), written once into the user's cache: the worker thread opens the
same path with its own decoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hnse_gui.autosave import RESOURCES
from model.data.sequences import Sequence
from model.data.synthetic import distractor_dataset, write_sequence

COCO = RESOURCES.parents[1] / "shared" / "data" / "train" / "coco128"
SCENES = 8
LENGTH = 150
DISTRACTORS = 3


@dataclass(frozen=True)
class DemoScene:
    sequence: Sequence
    objects: str  # "COCO objects" or "drawn ellipses"

    @property
    def name(self) -> str:
        return self.sequence.name

    def describe(self) -> str:
        return (f"{self.name}: target + {DISTRACTORS} look-alikes, {len(self.sequence)} frames, "
                f"{self.objects}")

    def folder(self, cache_dir: Path) -> Path:
        """The scene as a sequence folder under ``cache_dir``, written on first use."""
        folder = cache_dir / f"{self.name}_{self.objects.split()[0].lower()}"
        if not (folder / "groundtruth.txt").is_file():  # written last: a complete folder
            write_sequence(self.sequence, folder)
        return folder


def demo_scenes(count: int = SCENES, coco_dir: Path = COCO) -> list[DemoScene]:
    """The first ``count`` scenes of the synthetic distractor set (seeds 500, 501, ...),
    objects from ``coco_dir`` when it holds them."""
    objects = "COCO objects" if (coco_dir / "boxes.tsv").is_file() else "drawn ellipses"
    sequences = distractor_dataset(count, LENGTH, distractors=DISTRACTORS, objects_dir=coco_dir)
    return [DemoScene(sequence, objects) for sequence in sequences]
