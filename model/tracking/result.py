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
    """A box kept by NMS on the final score map, among the chosen cell and the cells whose
    raw score is at least ``CANDIDATE_MIN_FRACTION`` of the best
    (:mod:`model.tracking.tracker`).

    ``label`` is ``"positive"`` (IoU with the chosen box > T_h), ``"hard_negative"``
    (IoU < T_l) or ``"other"``. ``factors`` breaks its final score into what made it
    ("why this box"): ``score`` (raw foreground probability), ``centerness`` (to the
    power ``centerness_weight``), ``penalty`` (Eq. 10-11), ``window`` (the cosine
    window's share, window influence x window), ``he`` and ``colour`` (the re-ranking's
    HE and colour factors, 1 when off) and ``final``, with final = (score x centerness x
    penalty x (1 - influence) + window) x he x colour.
    """

    box: Box
    score: float
    iou: float
    label: str
    factors: dict[str, float] = field(default_factory=dict)
    cell: tuple[int, int] = (0, 0)


@dataclass
class Pipeline:
    """The pieces of one frame's decision, for the teaching view (filled when inspecting).

    ``exemplar`` (E, E, 3) and ``search`` (I, I, 3) BGR uint8 crops the network saw, with
    ``exemplar_box`` (x, y, w, h) the target in exemplar pixels; ``fusion_weights`` maps
    ``score``/``centerness``/``ltrb`` to the softmax level weights of Eq. 9 (None for a
    one-level network); ``best_cell`` (row, col) is the arg-max of the final map and
    ``box_in_search`` the decoded box (x, y, w, h) in search-crop pixels;
    ``search_shift`` (dx, dy) how far, in frame pixels, the search crop's centre lies
    ahead of the target's last position (the motion prediction; (0, 0) when off).
    """

    exemplar: np.ndarray
    exemplar_box: Box
    search: np.ndarray
    fusion_weights: dict[str, list[float]] | None
    best_cell: tuple[int, int]
    box_in_search: Box
    search_shift: tuple[float, float] = (0.0, 0.0)


@dataclass
class TrackResult:
    """One frame's tracking output.

    ``maps`` holds 2-D float32 arrays on the score grid (``score``, ``final``,
    ``centerness``, ``hardneg``, ``penalty`` (Eq. 10-11), ``window`` (cosine window),
    optionally ``embed_dist`` and ``rerank`` (HE re-ranking factors), and
    ``level2``/``level3``/``level4`` for three-level networks). ``pipeline`` holds the
    crops and fusion weights when the tracker inspects. ``search_box`` is where the search crop lies in the frame (x, y, w, h):
    a map of shape (S, S) covers the part of that crop given by ``map_box``.
    """

    box: Box
    score: float
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    search_box: Box = (0.0, 0.0, 0.0, 0.0)
    map_box: Box = (0.0, 0.0, 0.0, 0.0)
    pipeline: Pipeline | None = None
