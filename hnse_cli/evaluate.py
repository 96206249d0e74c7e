"""``python main.py eval``: evaluation of trackers on a dataset of sequences (one pass, or with restarts).

    python main.py eval --dataset ../shared/data/sequences \\
        --tracker hnse:resources/weights/lite_he.pt --tracker opencv:CSRT \\
        --json results.json --plots plots/

Progress goes to stderr, the summary table to stdout, every score (per tracker,
per sequence and overall) to the JSON file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_restarts_argument(parser: argparse.ArgumentParser, use: str) -> None:
    """``--restarts K``, as ``eval`` and ``tune`` take it; ``use`` ends its help."""
    parser.add_argument("--restarts", type=int, default=1, metavar="K",
                        help=f"also track each sequence from K-1 later frames (OTB's TRE; runs named NAME@FRAME): {use}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The help names what model.evaluation.evaluate accepts; importing it here would load OpenCV on every start.
    parser.add_argument("--dataset", required=True, metavar="DIR",
                        help="folder of sequence folders (OTB, VOT, GOT-10k or LaSOT layout), or one sequence; "
                             "synthetic[:COUNT] evaluates on the synthetic distractor set (8 sequences by default)")
    parser.add_argument("--tracker", required=True, action="append", metavar="NAME",
                        help="tracker to evaluate, repeatable: hnse:WEIGHTS_FILE[?SETTING=VALUE&...] (tracking "
                             "settings overriding the file's, e.g. ?he_rerank=0), nanotrack3[:WEIGHTS_FILE] "
                             "(NanoTrack v3, its own post-processing) or opencv:CSRT|KCF|MIL|NANO")
    parser.add_argument("--json", metavar="FILE", help="write all scores to this JSON file")
    parser.add_argument("--plots", metavar="DIR", help="write success and precision plots (PNG) here")
    parser.add_argument("--sequences", metavar="A,B", help="evaluate only these sequences (comma-separated)")
    parser.add_argument("--holdout", metavar="FILE",
                        help="evaluate only the sequences a training config or weights file holds out for "
                             "validation (its train.validation), read from --dataset")
    parser.add_argument("--max-frames", type=int, metavar="N", help="use only the first N frames of each sequence")
    add_restarts_argument(parser, "the overall scores pool every run, the bootstrap averages each sequence's runs")
    parser.add_argument("--nanotrack-dir", metavar="DIR",
                        help="folder with NanoTrack's ONNX files for opencv:NANO (default: $HNSE_NANOTRACK_DIR, "
                             "else ../shared/data/baselines/nanotrack)")


class ProgressLine:
    """Progress on stderr: one line redrawn in place on a terminal, a line per sequence otherwise."""

    def __init__(self, stream=None, interval_s: float = 0.2):
        self.stream = stream or sys.stderr  # looked up now: sys.stderr may be replaced after import
        self.interactive = self.stream.isatty()
        self.interval_s = interval_s
        self._last_draw = 0.0

    def __call__(self, tracker: str, sequence: str, done: int, total: int) -> None:
        finished = done == total
        if self.interactive:
            now = time.monotonic()
            if finished or now - self._last_draw >= self.interval_s:
                self._last_draw = now
                self.stream.write(f"\r\x1b[K{tracker}  {sequence}  {done}/{total}" + ("\n" if finished else ""))
                self.stream.flush()
        elif finished:
            print(f"{tracker}  {sequence}  {total} frames", file=self.stream, flush=True)


def _format(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_table(result: dict) -> str:
    """The overall scores, one row per tracker (with restarts also the first passes'
    success AUC), then the success AUC per sequence."""
    from model.evaluation.evaluate import base_sequence_name

    trackers = result["trackers"]
    columns = [("success_auc", "AUC", 3), ("precision_20", "P@20", 3), ("norm_precision_20", "NP@0.2", 3),
               ("ao", "AO", 3), ("sr50", "SR0.5", 3), ("sr75", "SR0.75", 3), ("fps", "fps", 1)]
    name_width = max(len("tracker"), *(len(name) for name in trackers))
    lines = [f"{'tracker':<{name_width}}" + "".join(f"{title:>8}" for _, title, _ in columns)
             + f"{'frames':>8}{'failed':>8}"]
    for name, scores in trackers.items():
        overall = scores["overall"]
        lines.append(f"{name:<{name_width}}" + "".join(f"{_format(overall[key], digits):>8}" for key, _, digits in columns)
                     + f"{overall['frames']:>8}{overall['failed_frames']:>8}")
    sequence_names = list(next(iter(trackers.values()))["sequences"])
    first_passes = [name for name in sequence_names if base_sequence_name(name) == name]
    if len(first_passes) < len(sequence_names):  # with restarts: also the one-pass protocol's number
        lines += ["", f"first pass only (the {len(first_passes)} runs from each sequence's first frame), "
                      "success AUC averaged as above:"]
        for name, scores in trackers.items():
            values = [scores["sequences"][run]["success_auc"] for run in first_passes]
            lines.append(f"{name:<{name_width}}{_format(sum(values) / len(values)):>8}")
    sequence_width = max(len("success AUC"), *(len(s) for s in sequence_names))
    tracker_width = max(12, *(len(name) + 2 for name in trackers))
    lines += ["", f"{'success AUC':<{sequence_width}}" + "".join(f"{name:>{tracker_width}}" for name in trackers)]
    for sequence in sequence_names:
        lines.append(f"{sequence:<{sequence_width}}" + "".join(
            f"{_format(scores['sequences'][sequence]['success_auc']):>{tracker_width}}" for scores in trackers.values()))
    return "\n".join(lines)


SYNTHETIC = "synthetic"


def load_dataset(spec: str):
    """A folder of sequences, or ``synthetic[:COUNT]``: the synthetic distractor set, its
    objects cut from ../shared/data/train/coco128 when that folder exists."""
    from model.data.sequences import read_dataset
    from model.core.errors import InputError

    if spec != SYNTHETIC and not spec.startswith(SYNTHETIC + ":"):
        return read_dataset(spec)
    from model.data.synthetic import distractor_dataset

    count_text = spec.partition(":")[2] or "8"
    if not count_text.isdigit() or int(count_text) < 1:
        raise InputError(f"--dataset {spec}: COUNT must be a positive integer")
    coco = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "coco128"
    return distractor_dataset(int(count_text), objects_dir=coco if coco.is_dir() else None)


def _holdout_names(path: str) -> tuple[str, ...]:
    """``train.validation`` of a YAML config or of the config inside a weights file."""
    from model.core.checkpoint import read_checkpoint
    from model.core.config import config_from_dict, load_config
    from model.core.errors import InputError

    config = (load_config(path) if Path(path).suffix in (".yaml", ".yml") else
              config_from_dict(read_checkpoint(path)["config"], path))
    if not config.train.validation:
        raise InputError(f"{path}: names no validation sequences (train.validation)")
    return config.train.validation


def comparison_table(result: dict, most: int = 4) -> str:
    """Paired bootstrap (over sequences) of success AUC differences: every pair among the
    first ``most`` trackers (B - A for B listed after A), then each later one against the first."""
    import numpy as np

    from model.evaluation.evaluate import base_sequence_name
    from model.evaluation.metrics import paired_bootstrap

    names = list(result["trackers"])
    if len(names) < 2:
        return ""

    def aucs(name):
        """One score per sequence: with restarts, the mean of its runs (they are not
        independent samples, so the bootstrap resamples whole sequences)."""
        by_sequence: dict[str, list[float]] = {}
        for run_name, scores in result["trackers"][name]["sequences"].items():
            by_sequence.setdefault(base_sequence_name(run_name), []).append(scores["success_auc"])
        return [float(np.mean(values)) for values in by_sequence.values()]

    pairs = [(a, b) for i, a in enumerate(names[:most]) for b in names[i + 1:most]]
    pairs += [(names[0], b) for b in names[most:]]
    lines = ["success AUC differences B - A (paired bootstrap over sequences, 95% interval)"]
    for a, b in pairs:
        c = paired_bootstrap(aucs(a), aucs(b))
        lines.append(f"  {b} - {a}: {c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]  "
                     f"B better on {c['wins']}/{c['n']}, worse on {c['losses']}/{c['n']}")
    return "\n".join(lines)


def print_tables(result: dict) -> None:
    """The summary table, then the paired bootstrap when there are two trackers or more."""
    print(summary_table(result))
    comparison = comparison_table(result)
    if comparison:
        print("\n" + comparison)


def run(args: argparse.Namespace) -> int:
    import cv2

    from model.core.errors import InputError
    from model.evaluation.evaluate import evaluate, plot_curves, reports_to_json, restart_segments, tracker_factory

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, not {args.max_frames}")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # NanoTrack's DNN warnings are noise here
    factories = {name: tracker_factory(name, nanotrack_dir=args.nanotrack_dir) for name in args.tracker}
    sequences = load_dataset(args.dataset)
    wanted = [name.strip() for name in args.sequences.split(",") if name.strip()] if args.sequences else []
    if args.holdout:
        wanted += [name for name in _holdout_names(args.holdout) if name not in wanted]
    if wanted:
        by_name = {sequence.name: sequence for sequence in sequences}
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            raise InputError(f"{args.dataset}: no sequence {', '.join(map(repr, unknown))}; "
                             f"it has {', '.join(by_name)}")
        sequences = [by_name[name] for name in wanted]
    # the output folders are made before the run: a path that cannot be written fails now, not after it
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    if args.plots:
        Path(args.plots).mkdir(parents=True, exist_ok=True)

    reports = evaluate(factories, restart_segments(sequences, args.restarts, args.max_frames), max_frames=args.max_frames,
                       progress=ProgressLine())
    dataset_name = args.dataset if args.dataset.startswith(SYNTHETIC) else str(Path(args.dataset).resolve())
    result = {"dataset": dataset_name, "max_frames": args.max_frames, "restarts": args.restarts,
              **reports_to_json(reports)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    if args.plots:
        for plot in plot_curves(reports, args.plots):
            print(f"wrote {plot}", file=sys.stderr)
    print_tables(result)
    return 0
