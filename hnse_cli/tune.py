"""``python main.py tune WEIGHTS --dataset DIR [--validation]``: tune the tracking settings
(window influence, penalty k, size learning rate, center-ness weight, HE re-ranking) on
whole held-out sequences and store them in the weights file."""
from __future__ import annotations

import sys

from hnse_cli.evaluate import add_restarts_argument


def add_arguments(parser) -> None:
    parser.add_argument("weights", help="weights file to tune (rewritten in place)")
    parser.add_argument("--dataset", required=True,
                        help="folder of sequences; with --validation, the training folder the config's "
                             "train.validation names are read from")
    parser.add_argument("--validation", action="store_true",
                        help="tune on the sequences the weights' config holds out (train.validation) only")
    parser.add_argument("--max-frames", type=int, help="use only the first N frames of each sequence")
    parser.add_argument("--start", metavar="SETTING=VALUE&...",
                        help="tracking settings written into the file before tuning starts from them "
                             "(e.g. he_rerank=0: start from the paper's tracker)")
    add_restarts_argument(parser, "a steadier AUC to choose by")
    parser.add_argument("--settings", metavar="NAME,NAME",
                        help="tune only these (e.g. centerness_weight,he_rerank,colour_rerank: the appearance settings; "
                             "the motion priors do not carry over from a temporally strided split)")
    parser.add_argument("--min-gain", type=float, default=0.0,
                        help="change a setting only when the AUC rises by more than this (the split's noise)")


def run(args) -> int:
    from model.data.sequences import read_dataset
    from model.evaluation.evaluate import track_overrides
    from model.training.tune import tune_weights, validation_sequences

    settings = tuple(n.strip() for n in args.settings.split(",") if n.strip()) if args.settings else None
    start = track_overrides(args.start, args.weights) if args.start else None
    sequences = validation_sequences(args.weights, args.dataset) if args.validation else read_dataset(args.dataset)
    best = tune_weights(args.weights, sequences, args.max_frames,
                        log=lambda line: print(line, file=sys.stderr, flush=True), min_gain=args.min_gain,
                        restarts=args.restarts, settings=settings, start=start)
    print(" ".join(f"{k}={v}" for k, v in best.items()))
    return 0
