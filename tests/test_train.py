"""Training (model/training/train.py, ``python main.py train``): the CLI run end to end, the
learning-rate schedule, backbone freezing, resuming, Ctrl-C and two-process DDP.

Runs are a few steps of batch 2-4 on synthetic scenes with one torch thread, so the
whole module costs some 30 s of CPU time; every run is deterministic (fixed seeds).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import main
import model.training.train
from model.core.checkpoint import read_checkpoint
from model.core.config import TrainConfig, load_config, save_config
from model.data.pairs import PairDataset
from model.data.synthetic import synthetic_sequence
from model.network import HNSENet
from model.network.backbones import build_backbone
from model.tracking.tracker import Tracker
from model.training.train import LOSS_TERMS, learning_rate, train, train_from_file

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "resources" / "configs" / "tiny.yaml"
SMALL_SYNTHETIC = ({"kind": "synthetic", "count": 2, "length": 8, "distractors": 1},)


def write_config(path: Path, **train_changes) -> Path:
    """tiny.yaml with ``train_changes`` applied, saved to ``path``."""
    config = load_config(TINY)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, **train_changes))
    save_config(config, path)
    return path


def read_log(out_dir: Path) -> list[dict]:
    with open(out_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def backbone_state(state_dict: dict) -> dict:
    return {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}


# --- learning-rate schedule -------------------------------------------------------------


SCHEDULE = TrainConfig(epochs=20, warmup_epochs=5, warmup_lr=1e-3, base_lr=5e-3, final_lr=5e-4)


def test_learning_rate_hits_warmup_base_and_final_values():
    assert learning_rate(SCHEDULE, 0.0) == pytest.approx(SCHEDULE.warmup_lr)
    assert learning_rate(SCHEDULE, SCHEDULE.warmup_epochs) == pytest.approx(SCHEDULE.base_lr)
    assert learning_rate(SCHEDULE, SCHEDULE.epochs - 1) == pytest.approx(SCHEDULE.final_lr)
    assert learning_rate(SCHEDULE, SCHEDULE.epochs - 0.01) == pytest.approx(SCHEDULE.final_lr)


def test_learning_rate_warms_up_linearly_then_decays_log_linearly_per_epoch():
    warmup = [learning_rate(SCHEDULE, e) for e in np.linspace(0, SCHEDULE.warmup_epochs, 11)[:-1]]
    assert np.allclose(np.diff(warmup), np.diff(warmup)[0])  # a straight line
    assert np.all(np.diff(warmup) > 0)
    epochs = range(SCHEDULE.warmup_epochs, SCHEDULE.epochs)
    log_lr = np.log([learning_rate(SCHEDULE, e) for e in epochs])
    assert np.allclose(np.diff(log_lr), np.diff(log_lr)[0])  # exponential: log-linear
    assert np.all(np.diff(log_lr) < 0)
    # The decay steps once per epoch: constant within an epoch.
    assert learning_rate(SCHEDULE, 7.0) == learning_rate(SCHEDULE, 7.9) > learning_rate(SCHEDULE, 8.0)


def test_learning_rate_without_warmup_starts_at_base():
    no_warmup = dataclasses.replace(SCHEDULE, warmup_epochs=0)
    assert learning_rate(no_warmup, 0.0) == pytest.approx(no_warmup.base_lr)
    assert learning_rate(no_warmup, no_warmup.epochs - 1) == pytest.approx(no_warmup.final_lr)


# --- the tiny config through the CLI ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """``python main.py train resources/configs/tiny.yaml --out DIR``, in-process."""
    out = tmp_path_factory.mktemp("tiny_run")
    assert main.main(["train", str(TINY), "--out", str(out), "--threads", "1"]) == 0
    return out


def test_tiny_run_writes_log_checkpoint_and_weights(tiny_run):
    config = load_config(TINY)
    total_steps = config.train.epochs * config.train.steps_per_epoch
    for name in ("log.csv", "checkpoint.pt", "weights.pt", "config.yaml"):
        assert (tiny_run / name).is_file(), name
    rows = read_log(tiny_run)
    assert {"step", "epoch", "lr", *LOSS_TERMS} <= set(rows[0])
    assert [int(r["step"]) for r in rows] == list(range(config.train.log_every, total_steps + 1,
                                                        config.train.log_every))
    for row in rows:
        assert all(math.isfinite(float(row[name])) for name in LOSS_TERMS)
        # The lr column is the schedule at the epoch the step started in.
        epoch = (int(row["step"]) - 1) / config.train.steps_per_epoch
        assert float(row["lr"]) == pytest.approx(learning_rate(config.train, epoch), rel=1e-5)
    assert any(float(r["contra"]) > 0 for r in rows)  # tiny.yaml trains the HE branch
    checkpoint = read_checkpoint(tiny_run / "checkpoint.pt")
    assert checkpoint["step"] == total_steps and checkpoint["meta"]["kind"] == "final"
    assert read_checkpoint(tiny_run / "weights.pt")["meta"]["steps"] == total_steps


def test_tiny_run_loss_goes_down(tiny_run):
    totals = [float(r["total"]) for r in read_log(tiny_run)]
    first, last = np.mean(totals[:2]), np.mean(totals[-2:])
    assert last < 0.7 * first, totals


def test_tiny_run_unfreezes_backbone_blocks_2_to_4_and_keeps_its_batchnorm_frozen(tiny_run):
    """tiny.yaml unfreezes at epoch 1 of 2: blocks 2-4 move, the stem and the blocks
    before stay at their ImageNet values, and no backbone BatchNorm statistic changes."""
    trained = backbone_state(read_checkpoint(tiny_run / "weights.pt")["state_dict"])
    initial = build_backbone("efficientnet_lite0", pretrained=True)
    trainable = {id(p) for block in initial.trainable_blocks() for p in block.parameters()}
    moved = {name for name, p in initial.named_parameters() if not torch.equal(p, trained[name])}
    trainable_names = {name for name, p in initial.named_parameters() if id(p) in trainable}
    assert moved and moved <= trainable_names
    for block in initial.trainable_blocks():  # every unfrozen block trained
        prefix = next(name for name, m in initial.named_modules() if m is block)
        assert any(name.startswith(prefix + ".") for name in moved), prefix
    parameters = dict(initial.named_parameters())
    for name, value in initial.state_dict().items():  # the BatchNorm running statistics
        if name not in parameters:
            assert torch.equal(value, trained[name]), name


def test_tiny_run_weights_load_into_a_tracker_that_tracks(tiny_run):
    payload = read_checkpoint(tiny_run / "weights.pt")
    tracker = Tracker.from_checkpoint(tiny_run / "weights.pt")
    for name, value in tracker.net.state_dict().items():
        assert torch.equal(value, payload["state_dict"][name]), name
    sequence = synthetic_sequence(21, length=5)
    tracker.init(sequence.frames[0], sequence.boxes[0])
    height, width = sequence.frames[0].shape[:2]
    for index in range(1, 5):
        result = tracker.track(sequence.frames[index])
        x, y, w, h = result.box
        assert all(math.isfinite(v) for v in result.box) and w > 0 and h > 0
        assert 0 <= x + w / 2 <= width and 0 <= y + h / 2 <= height
        assert 0.0 <= result.score <= 1.0
        assert "embed_dist" in result.maps  # the HE head travelled with the weights


# --- frozen backbone, resuming ------------------------------------------------------------


RESUME_CHANGES = dict(epochs=2, steps_per_epoch=4, batch_size=2, unfreeze_epoch=2, lambda_contra=0.0,
                      log_every=2, datasets=SMALL_SYNTHETIC)


def test_resumed_run_continues_where_it_stopped_and_matches_an_uninterrupted_one(tmp_path):
    """Stopped at step 4 by --max-steps and started again, a run logs steps 2, 4, 6, 8
    once each and ends with exactly the weights of a run never stopped (same data
    order, optimiser state and schedule). Without the HE term no random RoI sampling
    is involved, so the two must agree to the bit."""
    config_path = write_config(tmp_path / "resume.yaml", **RESUME_CHANGES)
    reference = train(load_config(config_path), tmp_path / "reference", progress=False)
    assert reference["step"] == 8

    out = tmp_path / "resumed"
    assert main.main(["train", str(config_path), "--out", str(out), "--max-steps", "4", "--threads", "1"]) == 0
    halfway = read_checkpoint(out / "checkpoint.pt")
    assert halfway["step"] == 4
    assert [int(r["step"]) for r in read_log(out)] == [2, 4]
    # Before unfreeze_epoch the backbone is frozen: still its ImageNet weights.
    initial = build_backbone("efficientnet_lite0", pretrained=True).state_dict()
    halfway_backbone = backbone_state(halfway["state_dict"])
    assert all(torch.equal(value, halfway_backbone[name]) for name, value in initial.items())

    assert main.main(["train", str(config_path), "--out", str(out), "--threads", "1"]) == 0
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 8
    rows, reference_rows = read_log(out), read_log(tmp_path / "reference")
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]
    for row, reference_row in zip(rows, reference_rows):
        assert {k: v for k, v in row.items() if k != "seconds"} == \
               {k: v for k, v in reference_row.items() if k != "seconds"}
    resumed = read_checkpoint(out / "weights.pt")["state_dict"]
    expected = read_checkpoint(tmp_path / "reference" / "weights.pt")["state_dict"]
    for name, value in expected.items():
        assert torch.equal(value, resumed[name]), name


# --- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    """SIGINT goes to the whole process group, as a terminal's Ctrl-C does, so the
    DataLoader worker gets it too and must not break the run's orderly stop."""
    config_path = write_config(tmp_path / "long.yaml", epochs=1, steps_per_epoch=500, batch_size=2,
                               unfreeze_epoch=1, log_every=1, num_workers=1, datasets=SMALL_SYNTHETIC)
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "main.py", "train", str(config_path), "--out", str(out), "--threads", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    watchdog = threading.Timer(300, os.killpg, (process.pid, signal.SIGKILL))  # a hung run fails the test
    watchdog.start()
    try:
        seen = []
        for line in process.stderr:  # progress goes to stderr: wait for the first step
            seen.append(line)
            if line.startswith("step "):
                break
        assert seen and seen[-1].startswith("step "), "".join(seen)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stdout
    checkpoint = read_checkpoint(out / "checkpoint.pt")
    assert checkpoint["meta"]["kind"] == "interrupted"
    assert 1 <= checkpoint["step"] < 500
    assert int(read_log(out)[-1]["step"]) <= checkpoint["step"]
    assert not (out / "weights.pt").exists()  # weights.pt is for finished runs only


# --- DDP ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ddp_replica(rank: int, world_size: int, port: int, config_path: str, out_dir: str, dump_dir: str):
    """One DDP process, as torchrun would start it; dumps its weights and the dataset
    items it was served to ``dump_dir/rank<N>.pt``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    served = []

    class RecordingPairDataset(PairDataset):
        """The real dataset, noting which items this replica loads."""

        def __getitem__(self, index):
            served.append(int(index))
            return super().__getitem__(index)

    model.training.train.PairDataset = RecordingPairDataset
    result = train_from_file(config_path, out_dir, max_steps=3, progress=False)
    params = {name: p.detach().clone() for name, p in result["net"].named_parameters()}
    torch.save({"params": params, "served": served, "step": result["step"]}, Path(dump_dir) / f"rank{rank}.pt")


def test_ddp_two_cpu_replicas_end_identical_after_training_on_disjoint_shards(tmp_path):
    """Two gloo processes, batch 2 each, 3 steps across the unfreeze at step 3 (so DDP
    is re-wrapped around the unfrozen backbone blocks once)."""
    config_path = write_config(tmp_path / "ddp.yaml", epochs=2, steps_per_epoch=2, batch_size=4,
                               unfreeze_epoch=1, log_every=1, datasets=SMALL_SYNTHETIC)
    out, dumps = tmp_path / "run", tmp_path / "dumps"
    dumps.mkdir()
    context = torch.multiprocessing.start_processes(
        _ddp_replica, args=(2, _free_port(), str(config_path), str(out), str(dumps)), nprocs=2, join=False,
        start_method="spawn")
    deadline = time.monotonic() + 400
    while not context.join(timeout=2):  # raises if a replica failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("DDP replicas did not finish")
    rank0, rank1 = (torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["step"] == rank1["step"] == 3
    assert rank0["params"].keys() == rank1["params"].keys()
    for name, value in rank0["params"].items():
        assert torch.equal(value, rank1["params"][name]), name
    # The replicas trained: heads and unfrozen backbone blocks left their initial values.
    config = load_config(config_path)
    torch.manual_seed(config.train.seed)
    initial = dict(HNSENet(config.network).named_parameters())
    moved = {name for name, value in rank0["params"].items() if not torch.equal(value, initial[name])}
    assert any(name.startswith("heads.") for name in moved)
    assert any(name.startswith("backbone.") for name in moved)
    # Each replica drew its own DistributedSampler shard: 3 steps x 2 pairs, no overlap.
    assert len(rank0["served"]) >= 6 and len(rank1["served"]) >= 6
    assert not set(rank0["served"]) & set(rank1["served"])
    # Rank 0 alone writes: one log row per step, and weights.pt holds its replica.
    assert [int(r["step"]) for r in read_log(out)] == [1, 2, 3]
    weights = read_checkpoint(out / "weights.pt")["state_dict"]
    assert all(torch.equal(value, weights[name]) for name, value in rank0["params"].items())


def test_validation_sequences_are_held_out_and_tracked_from_step_0(tmp_path):
    """train.validation names whole sequences kept out of the pairs; every
    validate_every steps (and at step 0 and the end) they are tracked with the current
    weights and their success AUC logged to validation.csv."""
    from model.data.synthetic import synthetic_sequence

    root = tmp_path / "sequences"
    for name, seed in (("kept", 1), ("held", 2)):
        sequence = synthetic_sequence(seed, length=6, size=(200, 160))
        (root / name / "img").mkdir(parents=True)
        for i in range(len(sequence)):
            import cv2

            cv2.imwrite(str(root / name / "img" / f"{i + 1:05d}.jpg"), sequence.frames[i])
        np.savetxt(root / name / "groundtruth.txt", sequence.boxes, delimiter=",", fmt="%.2f")
    config = write_config(tmp_path / "c.yaml", epochs=1, steps_per_epoch=4, batch_size=2, validate_every=2,
                          validation=("held",), datasets=({"kind": "sequences", "path": str(root)},))
    out = tmp_path / "run"
    train_from_file(config, out, progress=False)
    with open(out / "validation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [0, 2, 4]
    assert set(rows[0]) == {"step", "overall", "held"}
    assert all(0.0 <= float(r["overall"]) <= 1.0 for r in rows)
    kept = read_checkpoint(out / "weights_step2.pt")
    assert kept["meta"]["steps"] == 2
    assert kept["meta"]["validation_auc"]["overall"] == pytest.approx(float(rows[1]["overall"]), abs=1e-4)
    from model.data.pairs import build_sources

    sources = build_sources(load_config(config))
    assert len(sources[0][0]) == 1  # only "kept" gives training pairs
