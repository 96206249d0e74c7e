"""Tuning the online-tracking hyper-parameters (Sec. 3.5) on a validation split.

Window influence, the penalty's ``k`` (Eq. 10), the size learning rate, the center-ness
weight, the colour re-ranking weight and, for a network with an HE head, the HE
re-ranking weight move the success AUC
by several points on their own. They are tuned by coordinate descent over small grids,
one parameter at a time, on whole training sequences held out of training
(``TrainConfig.validation``), never on the test sequences, and the chosen values are
written into the weights file's config so they travel with the weights.

``settings`` restricts the tuning to some of them. Window influence, penalty k and the
size learning rate are motion priors: how far, and how much in scale, a target moves
from one frame to the next. The training sequences, and so the validation split, keep
every 2nd to 8th source frame (``../shared/data/README.md``: at most 46 frames a video),
while evaluation video runs at its native frame rate, so what those three settings learn
on the split does not carry over; the shipped files tune only the appearance settings
(center-ness weight, HE re-ranking) there and keep NanoTrack v3's published motion priors.
The colour re-ranking is an appearance setting too; the shipped files leave it off
(BENCHMARKS.md, fifth session: chosen by the split, not shown better there by the paired
interval, worse on the development set).
The motion prediction (``motion_prediction``: how far ahead along the target's smoothed
velocity the search crop is centred) is a motion prior too: its gain on the split grows
with the stride (BENCHMARKS.md, fourth session), so the shipped files keep it off.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from model.core.checkpoint import read_checkpoint, save_checkpoint
from model.core.config import config_from_dict
from model.core.errors import InputError
from model.data.sequences import Sequence
from model.evaluation.evaluate import evaluate, restart_segments
from model.tracking.tracker import Tracker

# Three to four values a parameter: a dozen evaluations of the validation split a model.
GRID = {
    "window_influence": (0.25, 0.35, 0.45),
    "penalty_k": (0.05, 0.15, 0.3),
    "size_lr": (0.2, 0.35, 0.5),
    "centerness_weight": (0.0, 0.5, 1.0),
    "colour_rerank": (0.0, 1.0, 2.0, 4.0),
    "motion_prediction": (0.0, 0.25, 0.5, 0.75),
}
HE_GRID = {"he_rerank": (0.0, 0.25, 0.5, 1.0)}  # only for networks with an HE head


def grid_for(tracker: Tracker) -> dict:
    """The grid in tuning order. With an HE head the re-ranking weight comes first, so that
    a tuning started from the settings of the same network without re-ranking (e.g. the
    no-HE model's, whose maps are the same) first finds the weight, then re-tunes the rest."""
    return {**HE_GRID, **GRID} if tracker.net.embedding is not None else dict(GRID)


def check_settings(settings: tuple[str, ...]) -> None:
    """Raise InputError naming the settings that cannot be tuned."""
    unknown = sorted(set(settings) - {*GRID, *HE_GRID})
    if unknown:
        raise InputError(f"cannot tune {', '.join(unknown)} (tunable: {', '.join({**HE_GRID, **GRID})})")


def success_auc(tracker: Tracker, sequences: list[Sequence], max_frames: int | None) -> float:
    reports = evaluate({"candidate": lambda: tracker}, sequences, max_frames=max_frames)
    return float(reports["candidate"].overall.success_auc)


def tune(tracker: Tracker, sequences: list[Sequence], rounds: int = 1, max_frames: int | None = None,
         log: Callable[[str], None] = print, min_gain: float = 0.0,
         settings: tuple[str, ...] | None = None) -> tuple[dict, float]:
    """Coordinate descent over :func:`grid_for`; returns (best track-config values, its AUC).

    Per parameter, the best of its values replaces the current one only when it raises the AUC by more than
    ``min_gain``: set it to the run-to-run noise of the split (on the 13-sequence
    validation split the same weights differ by up to 0.01 between runs with 1 and 2
    torch threads) so that the start values (the pretrained tracker's own) are kept
    unless the split shows more than noise."""
    fast = Tracker(tracker.net, tracker.config, inspect=False, backend=tracker.backend)  # maps are not scored
    grid = grid_for(tracker)
    if settings is not None:  # a setting the network lacks (he_rerank without HE head) is skipped
        check_settings(settings)
        grid = {name: values for name, values in grid.items() if name in settings}
    best = {name: getattr(tracker.config.track, name) for name in grid}
    best_auc = success_auc(fast.with_track_config(**best), sequences, max_frames)
    log(f"start {best} AUC {best_auc:.4f}")
    for _ in range(rounds):
        for name, values in grid.items():
            # every value of the parameter is tried; the best replaces the current one if it gains
            # more than min_gain (taking the first that does would make the result depend on the order)
            trials = []
            for value in values:
                if value == best[name]:
                    continue
                trial = {**best, name: value}
                auc = success_auc(fast.with_track_config(**trial), sequences, max_frames)
                log(f"{name}={value}: AUC {auc:.4f}")
                trials.append((auc, trial))
            top_auc, top = max(trials, key=lambda pair: pair[0], default=(best_auc, best))
            if top_auc > best_auc + min_gain:
                best, best_auc = top, top_auc
    log(f"best {best} AUC {best_auc:.4f}")
    return best, best_auc


def write_track_config(weights: str | Path, values: dict, note: dict) -> None:
    """Store tuned values in the weights file's config (atomically), with a note in meta."""
    payload = read_checkpoint(weights)
    config = config_from_dict(payload["config"], str(weights))
    config = replace(config, track=replace(config.track, **values))
    from model.network import build_network

    net = build_network(replace(config.network, pretrained=False))
    net.load_state_dict(payload["state_dict"])
    meta = {**payload.get("meta", {}), "tuning": {**note, "track": asdict(config.track)}}
    save_checkpoint(weights, net, config, meta)


def validation_sequences(weights: str | Path, train_dir: str | Path) -> list[Sequence]:
    """The sequences of ``train_dir`` that the weights file's config holds out for validation."""
    from model.data.sequences import read_sequence

    names = config_from_dict(read_checkpoint(weights)["config"], str(weights)).train.validation
    if not names:
        raise InputError(f"{weights}: its config names no validation sequences (train.validation)")
    return [read_sequence(Path(train_dir) / name) for name in names]


def tune_weights(weights: str | Path, sequences: list[Sequence], max_frames: int | None = None,
                 log: Callable[[str], None] = print, min_gain: float = 0.0, restarts: int = 1,
                 settings: tuple[str, ...] | None = None, start: dict | None = None) -> dict:
    """Tune on ``sequences``, each also tracked from ``restarts - 1`` later frames
    (:func:`~model.evaluation.evaluate.restart_segments`: a steadier AUC than one pass),
    from the file's settings with ``start``'s written over them first. The arguments are
    checked before anything is written."""
    segments = restart_segments(sequences, restarts, max_frames)
    if settings is not None:
        check_settings(settings)
    if start:
        write_track_config(weights, start, {"start": start})
    tracker = Tracker.from_checkpoint(weights, inspect=False, exclusive=True)  # the boxes are all it needs
    best, auc = tune(tracker, segments, max_frames=max_frames, log=log, min_gain=min_gain, settings=settings)
    write_track_config(weights, best, {"success_auc": auc, "sequences": [s.name for s in sequences],
                                       "max_frames": max_frames, "min_gain": min_gain, "restarts": restarts,
                                       "settings": list(best)})
    return best
