"""Training (Sec. 3.4, 4.1): ``python main.py train CONFIG.yaml [--out DIR]``.

* SGD with momentum 0.9 and weight decay 1e-4; the learning rate warms up linearly
  from ``warmup_lr`` to ``base_lr`` over ``warmup_epochs``, then decays exponentially,
  once per epoch, to ``final_lr`` at the last epoch;
* the backbone is frozen (BatchNorm in eval mode) until ``unfreeze_epoch``; then its
  blocks 2-4 train at ``backbone_lr_scale`` times the rate. Backbone BatchNorm stays in
  eval mode throughout: batches of a few pairs on a CPU give useless batch statistics;
* the gradient norm is clipped to ``grad_clip``;
* ``lambda_contra`` = 0.1 trains "with HE", 0 "without HE"; the seed fixes the
  initialisation and the data order, so the two runs differ in that term alone.

Multi-GPU / multi-machine: run under ``torchrun``; each process trains a
``DistributedDataParallel`` replica on its ``DistributedSampler`` shard (gloo on CPU,
nccl on CUDA). Progress goes to stderr, every loss term to ``log.csv`` in the output
folder; ``checkpoint.pt`` (model, optimiser, epoch, step, config) is written every
``checkpoint_minutes`` and on Ctrl-C, and a run started again on the same folder resumes
from it. ``weights.pt`` at the end holds the weights with the config, for the tracker.
"""
from __future__ import annotations

import csv
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from model.core.checkpoint import read_checkpoint, save_checkpoint
from model.core.config import Config, TrainConfig, load_config, save_config
from model.data.pairs import PairDataset, build_sources
from model.core.errors import InputError
from model.network import SiameseNetwork, build_network

LOSS_TERMS = ("total", "score", "centerness", "reg", "contra", "distill")


def learning_rate(train: TrainConfig, epoch: float) -> float:
    """Head learning rate at a (fractional) epoch: linear warm-up, then exponential decay."""
    if epoch < train.warmup_epochs:
        return train.warmup_lr + (train.base_lr - train.warmup_lr) * epoch / max(train.warmup_epochs, 1e-9)
    decay_epochs = max(train.epochs - 1 - train.warmup_epochs, 1)
    progress = min(int(epoch) - train.warmup_epochs, decay_epochs) / decay_epochs
    return train.base_lr * (train.final_lr / train.base_lr) ** progress


def set_backbone_trainable(net: SiameseNetwork, trainable: bool) -> None:
    """Freeze everything in the backbone, or unfreeze its last blocks (2-4 of ResNet-50, Sec. 4.1)."""
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    if trainable:
        for block in net.backbone.trainable_blocks():
            for p in block.parameters():
                p.requires_grad_(True)


def freeze_modules(net: SiameseNetwork, names: tuple[str, ...]) -> None:
    """Keep the named top-level modules (``TrainConfig.frozen``, e.g. HNSE-Nano's trained
    ``ban_head``) out of training: no gradients, BatchNorm in eval mode (see
    :func:`keep_frozen_bn_eval`)."""
    for name in names:
        module = getattr(net, name, None)
        if not isinstance(module, torch.nn.Module):
            raise InputError(f"train.frozen names {name!r}, which this network does not have")
        for p in module.parameters():
            p.requires_grad_(False)


def keep_frozen_bn_eval(net: SiameseNetwork, frozen: tuple[str, ...] = ()) -> None:
    """BatchNorm of the backbone (always: a few pairs per batch give useless statistics)
    and of the frozen modules stays in eval mode."""
    for part in (net.backbone, *(getattr(net, name) for name in frozen)):
        for module in part.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def make_optimizer(net: SiameseNetwork, train: TrainConfig) -> torch.optim.SGD:
    frozen_ids = {id(p) for name in train.frozen for p in getattr(net, name).parameters()}
    backbone_ids = {id(p) for p in net.backbone.parameters()}
    head_params = [p for p in net.parameters() if id(p) not in backbone_ids | frozen_ids]
    backbone_params = [p for block in net.backbone.trainable_blocks() for p in block.parameters()]
    return torch.optim.SGD(
        [{"params": head_params, "lr_scale": 1.0},
         {"params": backbone_params, "lr_scale": train.backbone_lr_scale}],
        lr=train.warmup_lr, momentum=train.momentum, weight_decay=train.weight_decay)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank)


class _StopRequest:
    """Turns Ctrl-C / SIGTERM into a flag checked between steps, so a checkpoint is saved."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def validation_auc(net: SiameseNetwork, config: Config, sequences) -> dict[str, float]:
    """Success AUC of the current weights on the held-out sequences (eager: live weights),
    overall and per sequence."""
    from model.evaluation.evaluate import evaluate
    from model.tracking.tracker import Tracker

    was_training = net.training
    tracker = Tracker(net, config, inspect=False, backend="eager")
    report = evaluate({"current": lambda: tracker}, sequences)["current"]
    net.train(was_training)
    return {"overall": float(report.overall.success_auc),
            **{run.name: float(run.metrics.success_auc) for run in report.runs}}


def _validation_sequences(config: Config, base_dir: Path | None):
    """The ``train.validation`` sequences, from the first ``sequences`` dataset's folder."""
    from model.data.sequences import read_sequence

    train_cfg = config.train
    if not train_cfg.validate_every or not train_cfg.validation:
        return []
    folders = [Path(e["path"]) for e in train_cfg.datasets if e.get("kind") == "sequences" and "path" in e]
    if not folders:
        raise InputError("train.validate_every needs a 'sequences' dataset to read train.validation from")
    root = folders[0] if folders[0].is_absolute() or base_dir is None else base_dir / folders[0]
    return [read_sequence(root / name) for name in train_cfg.validation]


def train(config: Config, out_dir: str | Path, base_dir: Path | None = None, max_steps: int | None = None,
          device: str | None = None, progress: bool = True, sources=None) -> dict:
    """Train per ``config``, resuming from ``out_dir``'s checkpoint if there is one.

    Returns ``step`` (steps done), ``losses`` (the last logged loss terms),
    ``interrupted`` and ``net``: this process's replica, which under DDP lets each
    rank's weights be inspected (rank 0 alone writes the files).
    """
    out_dir = Path(out_dir)
    ctx = init_distributed()
    tcfg = config.train
    device = torch.device(device or (f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(tcfg.seed)
    net = build_network(config.network).to(device)
    freeze_modules(net, tcfg.frozen)
    optimizer = make_optimizer(net, tcfg)
    start_step = 0
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.is_file():
        payload = read_checkpoint(checkpoint_path)
        net.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        start_step = int(payload["step"])
    if ctx.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")

    total_steps = tcfg.epochs * tcfg.steps_per_epoch
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    per_replica_batch = max(1, tcfg.batch_size // ctx.world_size)
    dataset = PairDataset(sources if sources is not None else build_sources(config, base_dir), config,
                          length=tcfg.epochs * tcfg.steps_per_epoch * per_replica_batch * ctx.world_size)
    sampler = (torch.utils.data.distributed.DistributedSampler(dataset, ctx.world_size, ctx.rank, shuffle=False)
               if ctx.world_size > 1 else torch.utils.data.SequentialSampler(dataset))
    # Skip what a resumed run has already seen: the data order stays that of one run.
    indices = list(sampler)[start_step * per_replica_batch:]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=per_replica_batch, num_workers=tcfg.num_workers,
        persistent_workers=tcfg.num_workers > 0, prefetch_factor=4 if tcfg.num_workers > 0 else None)

    generator = torch.Generator(device="cpu").manual_seed(tcfg.seed + ctx.rank)
    validation = _validation_sequences(config, base_dir) if ctx.main else []
    validation_log = out_dir / "validation.csv"

    def validate():
        """Log the held-out AUC and keep the weights it was measured on
        (``weights_step<N>.pt``), so the step can be chosen by the curve."""
        scores = validation_auc(net, config, validation)
        save_checkpoint(out_dir / f"weights_step{step}.pt", net, config,
                        {"steps": step, "validation_auc": scores, "seed": tcfg.seed})
        new_file = not validation_log.is_file()
        with open(validation_log, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(["step", *scores])
            writer.writerow([step, *(f"{v:.4f}" for v in scores.values())])
        if progress:
            print(f"step {step}: validation AUC {scores['overall']:.4f}", file=sys.stderr, flush=True)
    model, wrapped_trainable = net, None
    log_file = open(out_dir / "log.csv", "a", newline="") if ctx.main else None
    log = csv.writer(log_file) if log_file else None
    if log_file is not None and log_file.tell() == 0:
        log.writerow(["step", "epoch", "lr", *LOSS_TERMS, "num_pos", "seconds"])
    last_save, started, last = time.monotonic(), time.monotonic(), {}
    sums = {name: 0.0 for name in LOSS_TERMS}
    count = 0
    step = start_step

    def save(kind: str):
        if ctx.main:
            save_checkpoint(checkpoint_path, net, config, {"kind": kind}, optimizer=optimizer.state_dict(),
                            step=step, epoch=step / tcfg.steps_per_epoch)

    with _StopRequest() as stop:
        if validation and start_step == 0:
            validate()
        for batch in loader:
            if step >= total_steps or stop.requested:
                break
            epoch = step / tcfg.steps_per_epoch
            trainable = int(epoch) >= tcfg.unfreeze_epoch
            if trainable != wrapped_trainable:
                # Re-wrap on (un)freezing: DDP registers the parameters that need gradients.
                set_backbone_trainable(net, trainable)
                model = (torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)
                         if ctx.world_size > 1 else net)
                wrapped_trainable = trainable
            net.train()
            keep_frozen_bn_eval(net, tcfg.frozen)
            lr = learning_rate(tcfg, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            terms = model(batch, tcfg, generator)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], tcfg.grad_clip)
            optimizer.step()
            step += 1
            for name in LOSS_TERMS:
                sums[name] += float(terms[name].detach())
            count += 1
            if step % tcfg.log_every == 0 or step == total_steps:
                last = {name: sums[name] / count for name in LOSS_TERMS}
                elapsed = time.monotonic() - started
                if ctx.main:
                    log.writerow([step, f"{epoch:.3f}", f"{lr:.6g}", *(f"{last[n]:.5f}" for n in LOSS_TERMS),
                                  int(terms["num_pos"]), f"{elapsed:.1f}"])
                    log_file.flush()
                    if progress:
                        terms_text = " ".join(f"{n}={last[n]:.4f}" for n in LOSS_TERMS)
                        rate = (step - start_step) / max(elapsed, 1e-9)
                        eta = (total_steps - step) / max(rate, 1e-9)
                        print(f"step {step}/{total_steps} epoch {epoch:.2f} lr {lr:.2e} {terms_text} "
                              f"{rate:.2f} step/s eta {eta / 60:.1f} min", file=sys.stderr, flush=True)
                sums = {name: 0.0 for name in LOSS_TERMS}
                count = 0
            if validation and (step % tcfg.validate_every == 0 or step == total_steps):
                validate()
            if time.monotonic() - last_save > tcfg.checkpoint_minutes * 60:
                save("periodic")
                last_save = time.monotonic()
        save("interrupted" if stop.requested else "final")
        if ctx.main and not stop.requested:
            save_checkpoint(out_dir / "weights.pt", net, config,
                            {"steps": step, "final_losses": last, "seed": tcfg.seed})
    if log_file is not None:
        log_file.close()
    if ctx.world_size > 1:
        dist.destroy_process_group()
    return {"step": step, "losses": last, "interrupted": stop.requested, "net": net}


def train_from_file(config_path: str | Path, out_dir: str | Path, **options) -> dict:
    """Load the YAML config; dataset paths inside it are relative to the config's folder
    unless absolute, or to the current directory when they exist from there."""
    config = load_config(config_path)
    try:
        sources = build_sources(config, _dataset_base(config, Path(config_path)))
    except InputError as error:  # name the config that holds the bad dataset entry
        raise InputError(f"{config_path}: {error}") from None
    return train(config, out_dir, base_dir=_dataset_base(config, Path(config_path)), sources=sources, **options)


def _dataset_base(config: Config, config_path: Path) -> Path:
    for entry in config.train.datasets:
        path = entry.get("path") or entry.get("objects")
        if path and not Path(path).is_absolute() and Path(path).exists():
            return Path.cwd()
    return config_path.resolve().parent


if __name__ == "__main__":  # torchrun entry: torchrun --nproc_per_node N -m model.training.train CONFIG OUT
    result = train_from_file(sys.argv[1], sys.argv[2])
    sys.exit(0 if not result["interrupted"] else 130)
