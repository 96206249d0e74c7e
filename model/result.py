"""What one tracked frame produces: the contract between tracker and GUI.

The GUI draws only what :class:`TrackResult` carries; it never recomputes
network internals.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]  # (x, y, w, h) in frame pixels, (x, y) top-left


@dataclass(frozen=True)
class Candidate:
    """A box kept by NMS on the final score map.

    ``label`` is ``"positive"`` (IoU with the chosen box > T_h), ``"hard_negative"``
    (IoU < T_l) or ``"other"``.
    """

    box: Box
    score: float
    iou: float
    label: str


@dataclass
class TrackResult:
    """One frame's tracking output.

    ``maps`` holds 2-D float32 arrays on the score grid (``score``, ``final``,
    ``centerness``, ``hardneg``, optionally ``embed_dist``, and ``level2``/``level3``/
    ``level4``). ``search_box`` is where the search crop lies in the frame (x, y, w, h):
    a map of shape (S, S) covers the part of that crop given by ``map_box``.
    """

    box: Box
    score: float
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    search_box: Box = (0.0, 0.0, 0.0, 0.0)
    map_box: Box = (0.0, 0.0, 0.0, 0.0)
