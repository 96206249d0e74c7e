"""What the main window's rooms share about the open work; no Qt in here.

One :class:`Session` per window holds the document and the frame source it was opened
on, where it is saved, the frame and the track the user is on, the tracking run in
progress and the results this session's runs produced. The rooms
(:mod:`~hnse_gui.project`, :mod:`~hnse_gui.playback`, :mod:`~hnse_gui.edits`,
:mod:`~hnse_gui.runs`, :mod:`~hnse_gui.views`) read and write it;
:class:`~hnse_gui.main_window.MainWindow` creates it and wires the rooms together.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hnse_gui.document import Document
from model.tracking.result import TrackResult

if TYPE_CHECKING:
    from hnse_gui.runs import ActiveRun
    from model.data.sources import FrameSource


@dataclass
class Session:
    document: Document | None = None
    source: FrameSource | None = None  # the GUI thread's own decoder (the worker has its own)
    project_path: Path | None = None  # None while the work was never saved
    reference_boxes: np.ndarray | None = None  # a benchmark sequence's ground truth
    frame_index: int = 0
    current_track: int | None = None
    run: ActiveRun | None = None  # the tracking run in progress
    # the results of this session's runs, by (track id, frame), for the heatmaps
    results: OrderedDict[tuple[int, int], dict[str, TrackResult]] = field(default_factory=OrderedDict)

    def frame_count(self) -> int:
        return self.document.frame_count if self.document else 0

    def editable(self) -> bool:
        """Edits wait while a run writes into the document."""
        return self.document is not None and self.run is None
