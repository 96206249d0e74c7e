"""``python main.py tune WEIGHTS --dataset DIR``: tune window influence, penalty k and size
learning rate on development sequences and store them in the weights file."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("weights", help="weights file to tune (rewritten in place)")
    parser.add_argument("--dataset", required=True, help="folder of development sequences")
    parser.add_argument("--max-frames", type=int, help="use only the first N frames of each sequence")


def run(args) -> int:
    from model.data.sequences import read_dataset
    from model.tune import tune_weights

    best = tune_weights(args.weights, read_dataset(args.dataset), args.max_frames,
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    print(" ".join(f"{k}={v}" for k, v in best.items()))
    return 0
