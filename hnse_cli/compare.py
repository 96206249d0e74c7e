"""``python main.py compare``: ``eval``'s tables over the trackers of several saved results.

    python main.py compare baseline.json candidate.json

Each file is the output of ``eval --json``. Runs measured at different times, say a
baseline kept from last week and a candidate measured today, are compared as one run
would have been: the summary table, the success AUC per sequence and the paired
bootstrap over sequences. The files must hold the same runs (the same sequences,
restarts and frame limit), since the bootstrap pairs them sequence by sequence; a
tracker name that two files share is told apart by its file's name.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT.json",
                        help="results written by eval --json, on the same sequences")


def _read(path: str) -> dict:
    from model.core.errors import InputError

    try:
        result = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not JSON ({error})") from None
    trackers = result.get("trackers") if isinstance(result, dict) else None
    if not isinstance(trackers, dict) or not trackers:
        raise InputError(f"{path}: not a result of eval --json (it has no trackers)")
    return result


def merge_results(results: list[tuple[str, dict]]) -> dict:
    """One result holding the trackers of every (file path, result) of ``results``, in
    order; raises InputError unless all hold the same runs."""
    from model.core.errors import InputError

    merged: dict = {"trackers": {}}
    runs, order = None, []
    for path, result in results:
        for key in ("restarts", "max_frames"):
            if key in merged and result.get(key) != merged[key]:
                raise InputError(f"{path}: {key} {result.get(key)} differs from the first file's {merged[key]}")
            merged.setdefault(key, result.get(key))
        for name, scores in result["trackers"].items():
            names = set(scores["sequences"])
            if runs is None:
                runs, order, first = names, list(scores["sequences"]), f"{path} ({name})"
            elif names != runs:
                missing, extra = sorted(runs - names), sorted(names - runs)
                raise InputError(f"{path} ({name}): not the runs of {first}"
                                 + (f"; lacks {', '.join(missing[:5])}" if missing else "")
                                 + (f"; has {', '.join(extra[:5])} besides" if extra else ""))
            shown = name if name not in merged["trackers"] else f"{name} ({Path(path).stem})"
            if shown in merged["trackers"]:
                raise InputError(f"{path}: tracker {name!r} is in another file of the same name")
            # every tracker's runs in the first one's order: the bootstrap pairs them by position
            merged["trackers"][shown] = {**scores, "sequences": {run: scores["sequences"][run] for run in order}}
    return merged


def run(args: argparse.Namespace) -> int:
    from hnse_cli.evaluate import print_tables

    print_tables(merge_results([(path, _read(path)) for path in args.results]))
    return 0
