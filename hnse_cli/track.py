"""``python main.py track SOURCE --init x,y,w,h --out result.h5|result.txt``: headless tracking.

Tracks one target through a video file or an image folder, starting from the box given
on frame ``--start`` (0-based), and writes either the project file the application
opens (``.h5``, see docs/hdf5.md) or one ``x,y,w,h`` line per frame of the source
(``.txt``; line i is frame i, ``NaN,NaN,NaN,NaN`` where there is no box, as in a
``groundtruth.txt``). A frame that fails to decode is flagged DECODE_FAILED and
skipped; a frame whose score is below ``--review-threshold`` is flagged NEEDS_REVIEW.
Progress (frames, fps) goes to stderr.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from model.core.errors import InputError

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights" / "nano_he.pt"
OUTPUT_SUFFIXES = (".h5", ".hdf5", ".txt")


def add_arguments(parser) -> None:
    parser.add_argument("source", help="video file or folder of images (or a sequence folder with img/)")
    parser.add_argument("--init", required=True, metavar="X,Y,W,H",
                        help="the target's box on the start frame, in frame pixels, (x, y) its top-left corner "
                             "(write --init=-5,10,40,40 when x is negative)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="weights file (default: resources/weights/nano_he.pt)")
    parser.add_argument("--out", type=Path, required=True,
                        help="result file: .h5 (project file the application opens) or .txt (x,y,w,h per frame)")
    parser.add_argument("--frames", type=int, default=None, metavar="N",
                        help="track N frames, the start frame included (default: to the end)")
    parser.add_argument("--start", type=int, default=0, metavar="K", help="0-based index of the --init frame")
    parser.add_argument("--review-threshold", type=float, default=0.3, metavar="S",
                        help="flag frames scoring below S as needing review (default 0.3)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--backend", default=None,
                        help="inference backend: eager, torch or onnx (default: onnx on the CPU, torch elsewhere)")
    parser.add_argument("--set", metavar="SETTING=VALUE&...", dest="settings",
                        help="tracking settings other than those the weights carry, e.g. motion_prediction=0.5 "
                             "for video with large motion between frames (a low frame rate, skipped frames)")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` as four finite floats with ``w, h > 0``; one-line InputError otherwise."""
    parts = text.replace(" ", "").split(",")
    try:
        box = tuple(float(part) for part in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise InputError(f"--init {text!r}: expected 4 numbers x,y,w,h")
    if not all(math.isfinite(v) for v in box):
        raise InputError(f"--init {text!r}: values must be finite numbers")
    if box[2] <= 0 or box[3] <= 0:
        raise InputError(f"--init {text!r}: width and height must be positive")
    return box


def check_inside(box, frame_size: tuple[int, int], source: Path, frame: int) -> None:
    """Refuse a box that does not overlap the frame, or is wider or taller than it (a box
    partly outside is fine: a target entering the view; one larger than the whole frame
    is a typing mistake, and the application never draws one)."""
    x, y, w, h = box
    width, height = frame_size
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"{source}: --init box {x:g},{y:g},{w:g},{h:g} lies outside the "
                         f"{width}x{height} frame {frame}")
    if w > width or h > height:
        raise InputError(f"{source}: --init box {x:g},{y:g},{w:g},{h:g} is larger than the "
                         f"{width}x{height} frame {frame}")


class FrameProgress:
    """A progress bar on stderr: ``[#####.....] 45/300 frames  12.3 fps``.

    On a terminal it is redrawn in place every ``interval_s``; into a log it is written as
    a new line every ``log_interval_s``, so logs stay short. The last frame always shows.
    """

    def __init__(self, total: int, stream=None, interval_s: float = 0.2, log_interval_s: float = 10.0,
                 width: int = 30):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.interval_s = interval_s if self.live else log_interval_s
        self.width = width
        self.started = self.last_drawn = time.perf_counter()

    def line(self, done: int) -> str:
        elapsed = time.perf_counter() - self.started
        fps = done / elapsed if elapsed > 0 else 0.0
        filled = self.width * done // max(self.total, 1)
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} frames  {fps:.1f} fps"

    def update(self, done: int) -> None:
        now = time.perf_counter()
        finished = done >= self.total
        if not finished and now - self.last_drawn < self.interval_s:
            return
        self.last_drawn = now
        if self.live:
            self.stream.write("\r\x1b[K" + self.line(done) + ("\n" if finished else ""))
        else:
            self.stream.write(self.line(done) + "\n")
        self.stream.flush()


def run(args) -> int:
    import numpy as np

    from hnse_gui.document import Flag
    from hnse_gui.store import export_boxes_txt, save_project, track_result_document
    from model.data.sources import FrameDecodeError, open_frames
    from model.evaluation.evaluate import track_overrides

    init_box = parse_box(args.init)
    if args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"{args.out}: output must end in {', '.join(OUTPUT_SUFFIXES)}")
    if not args.out.parent.is_dir():
        raise InputError(f"{args.out}: folder {args.out.parent} does not exist")
    if not 0 <= args.review_threshold <= 1:
        raise InputError(f"--review-threshold {args.review_threshold}: must lie in 0..1")
    settings = track_overrides(args.settings, "--set") if args.settings else {}
    weights = args.weights or DEFAULT_WEIGHTS
    if not weights.is_file():
        raise InputError(f"{weights}: no such weights file (pass --weights PATH)")

    with open_frames(args.source) as source:
        frame_count = len(source)
        if not 0 <= args.start < frame_count:
            raise InputError(f"{source.path}: --start {args.start} outside its {frame_count} frames (0-based)")
        if args.frames is not None and args.frames < 1:
            raise InputError(f"--frames {args.frames}: must be at least 1")
        stop = frame_count if args.frames is None else min(frame_count, args.start + args.frames)
        first = source[args.start]  # a start frame that does not decode ends the run: nothing to init on
        frame_size = (first.shape[1], first.shape[0])
        check_inside(init_box, frame_size, source.path, args.start)

        from model.tracking.tracker import Tracker  # torch loads after the cheap checks: a bad input fails fast

        tracker = Tracker.from_checkpoint(weights, device=args.device, inspect=False, backend=args.backend,
                                          exclusive=True).with_track_config(**settings)
        tracker.init(first, init_box)
        count = stop - args.start
        boxes = np.full((count, 4), np.nan, dtype=np.float32)
        scores = np.full(count, np.nan, dtype=np.float32)
        flags = np.zeros(count, dtype=np.uint8)
        boxes[0] = init_box
        progress = FrameProgress(count)
        progress.update(1)
        for offset in range(1, count):
            try:
                frame = source[args.start + offset]
            except FrameDecodeError:
                flags[offset] = Flag.DECODE_FAILED
            else:
                result = tracker.track(frame)
                boxes[offset], scores[offset] = result.box, result.score
            progress.update(offset + 1)

    document = track_result_document(boxes, scores, str(source.path), str(weights), frame_size,
                                     start=args.start, frame_count=frame_count, flags=flags,
                                     review_threshold=args.review_threshold)
    if args.out.suffix.lower() == ".txt":
        export_boxes_txt(document, 1, args.out)
    else:
        save_project(document, args.out)
    track = document.tracks[1]
    review = int(np.count_nonzero(track.flags & Flag.NEEDS_REVIEW))
    failed = int(np.count_nonzero(flags & Flag.DECODE_FAILED))
    print(f"tracked {count} frames ({review} need review, {failed} failed to decode) -> {args.out}",
          file=sys.stderr)
    return 0
