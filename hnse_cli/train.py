"""``python main.py train CONFIG.yaml [--out DIR] [--max-steps N]``: train a model (Sec. 4.1).

For several GPUs or machines run the same module under torchrun:
``torchrun --nproc_per_node 4 -m model.training.train CONFIG.yaml OUT_DIR``.
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="YAML training config (see resources/configs/)")
    parser.add_argument("--out", help="output folder (default: runs/<config name>); resumes if it has a checkpoint")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def run(args) -> int:
    import torch

    from model.training.train import train_from_file

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or str(Path("runs") / Path(args.config).stem)
    result = train_from_file(args.config, out, max_steps=args.max_steps, device=args.device)
    losses = " ".join(f"{k}={v:.4f}" for k, v in result["losses"].items())
    print(f"{'interrupted' if result['interrupted'] else 'finished'} at step {result['step']}: {losses}")
    print(f"weights: {Path(out) / 'weights.pt'}" if not result["interrupted"] else
          f"checkpoint: {Path(out) / 'checkpoint.pt'} (run again to resume)")
    return 130 if result["interrupted"] else 0
