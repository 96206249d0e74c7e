"""Where do the heatmaps of the two shipped variants differ?  Numbers and figures for
BENCHMARKS.md ("Where the HE heatmaps differ").

    python scripts/he_maps.py DATASET [--figures DIR] [--sequences A,B]

DATASET is what ``main.py eval --dataset`` takes (a folder of sequences, or
``synthetic[:COUNT]``). Each sequence is tracked from its first box by ``nano_he.pt`` and by
``nano_nohe.pt``, each on its own track as the app's "HNSE: both" runs them. The two share
their score and center-ness maps (NanoTrack v3's frozen head, one center-ness branch), so
on the same crop they differ by the center-ness weight and the HE re-ranking alone. Per
frame of nano_he:

* *look-alike*: the re-ranking met two objects or more (cells within half of the best raw
  score whose boxes overlap less than T_l), the frames on which its ``rerank`` map and its
  ``embed_dist`` map single out another object than the target;
* *HE favours*: on the look-alike frames where nano_he is on the target (IoU >= 0.5 with
  the ground truth), whether the chosen object's HE factor is above every other object's
  (the embedding takes the target for the target) or not (it takes a look-alike for it);
* *HE moved the box*: the final map without the re-ranking would have chosen a cell of
  another object.

And per frame of both: *tracks apart*, the two boxes overlapping by IoU < 0.5. With
``--figures DIR``, each sequence's heatmap figure (``hnse_gui.figures``) of the look-alike
frame on which the HE embedding pushed a look-alike away most while nano_he was on the
target (or else of the first look-alike frame) goes to ``DIR/NAME_frameNNNNN.png``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hnse_cli.evaluate import load_dataset
from hnse_gui.figures import export_heatmap_figure
from model.evaluation.metrics import rect_iou
from model.tracking.tracker import Tracker, final_map

WEIGHTS = {"with HE": "resources/weights/nano_he.pt", "without HE": "resources/weights/nano_nohe.pt"}
APART_IOU = 0.5


def frame_record(result, track) -> dict:
    """Look-alike, the strongest other object's HE factor over the chosen one's, and
    whether HE moved the box, for one nano_he frame."""
    maps = result.maps
    rerank = maps.get("rerank")
    if rerank is None:
        return {"lookalike": False, "ratio": 1.0, "moved": False}
    chosen = np.unravel_index(int(np.argmax(maps["final"])), rerank.shape)
    without_rerank = final_map(maps["score"], maps["centerness"], maps["penalty"], maps["window"], track)
    before = np.unravel_index(int(np.argmax(without_rerank)), rerank.shape)
    objects = np.unique(rerank[rerank > 0])  # one factor per object: its cells share it
    others = objects[objects != rerank[chosen]]
    return {"lookalike": len(objects) > 1,
            # the strongest other object's HE factor over the chosen one's: < 1, HE pushes it away
            "ratio": float(others.max() / rerank[chosen]) if len(others) and rerank[chosen] > 0 else 1.0,
            "moved": bool(rerank[before] != rerank[chosen])}


def ranges(frames: list[int]) -> str:
    """1-based frame numbers as ranges, e.g. "3-7, 12"."""
    parts, start = [], None
    for index, frame in enumerate(frames):
        if start is None:
            start = frame
        if index + 1 == len(frames) or frames[index + 1] != frame + 1:
            parts.append(f"{start + 1}" if start == frame else f"{start + 1}-{frame + 1}")
            start = None
    return ", ".join(parts) or "-"


def sequence_report(sequence, trackers: dict[str, Tracker], figures: Path | None) -> str:
    results, boxes = {}, {}
    for name, tracker in trackers.items():
        tracker.init(sequence.frames[0], sequence.boxes[0])
        results[name] = [None] + [tracker.track(sequence.frames[i]) for i in range(1, len(sequence))]
        boxes[name] = np.array([sequence.boxes[0]] + [r.box for r in results[name][1:]])
    track = trackers["with HE"].config.track
    records = [None] + [frame_record(r, track) for r in results["with HE"][1:]]
    frames = range(1, len(sequence))
    lookalike = [i for i in frames if records[i]["lookalike"]]
    moved = [i for i in frames if records[i]["moved"]]
    overlap = rect_iou(boxes["with HE"], boxes["without HE"])
    apart = [i for i in frames if overlap[i] < APART_IOU]
    on_target = np.nan_to_num(rect_iou(boxes["with HE"], sequence.boxes)) >= APART_IOU
    judged = [i for i in lookalike if on_target[i]]
    right = sum(records[i]["ratio"] < 1 for i in judged)
    if figures is not None and lookalike:
        shown = min(judged, key=lambda i: records[i]["ratio"]) if judged else lookalike[0]
        export_heatmap_figure({name: results[name][shown] for name in trackers}, sequence.frames[shown],
                              figures / f"{sequence.name}_frame{shown + 1:05d}.png", dpi=150)
    return (f"| {sequence.name} | {len(sequence)} | {len(lookalike)}: {ranges(lookalike)} "
            f"| {right} / {len(judged) - right} | {ranges(moved)} | {len(apart)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--figures", type=Path, metavar="DIR")
    parser.add_argument("--sequences", metavar="A,B")
    args = parser.parse_args()
    sequences = load_dataset(args.dataset)
    if args.sequences:
        wanted = set(args.sequences.split(","))
        sequences = [s for s in sequences if s.name in wanted]
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
    trackers = {name: Tracker.from_checkpoint(path) for name, path in WEIGHTS.items()}
    print("| sequence | frames | look-alike frames (nano_he) | on target, HE favours the target / a look-alike "
          "| HE moved the box | tracks apart |")
    print("|---|---|---|---|---|---|")
    for sequence in sequences:
        print(sequence_report(sequence, trackers, args.figures), flush=True)


if __name__ == "__main__":
    main()
