"""Weights files: the network's weights *with* the config that built them.

A file is data, never code: it is read with ``torch.load(weights_only=True)``, which
refuses pickled objects (a file that tries to run code when unpickled is rejected). The
config travels as plain nested dicts, so the tracking hyper-parameters tuned on the
development sequences go wherever the weights go.

Layout: ``{"format": "hnse-weights", "version": 2, "config": {...}, "state_dict": {...},
"tensor_sha256": "...", "meta": {...}}``; training checkpoints add ``optimizer``,
``step`` and ``epoch``. ``tensor_sha256`` (version 2) is the SHA-256 of every tensor of
the state dict (:func:`tensor_digest`): reading checks it, so a file whose tensor bytes
changed (a flipped bit, a partial overwrite) is refused instead of loading silently.
Version 1 files (no hash) are still read.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch

from model.core.config import Config, config_from_dict, config_to_dict
from model.core.errors import InputError

FORMAT, VERSION = "hnse-weights", 2
READABLE_VERSIONS = (1, 2)


def tensor_digest(state_dict: dict) -> str:
    """SHA-256 over the state dict's tensors in name order: name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            raise InputError(f"state dict entry {name!r} is not a tensor")
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(path: str | Path, net: torch.nn.Module, config: Config, meta: dict | None = None,
                    **training_state) -> None:
    """Write atomically (temporary file, fsync, rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = net.state_dict()
    payload = {"format": FORMAT, "version": VERSION, "config": config_to_dict(config),
               "state_dict": state, "tensor_sha256": tensor_digest(state), "meta": meta or {}, **training_state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_torch_file(path: str | Path, what: str = "HNSE weights file"):
    """``torch.load(path, weights_only=True)`` on the CPU, every failure one
    :class:`InputError` naming the file and saying it is not a readable ``what``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        with warnings.catch_warnings():
            # torch warns when a file's pickle names a protocol other than 2 (a changed
            # byte does that) and reads on; what it reads is checked here and by
            # read_checkpoint's header and tensor hash, so the warning would only be noise.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, foreign, or a pickle that wants to run code
        reason = "it holds code or objects that are not plain data" if "weights_only" in str(error) else \
            f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else 'unreadable'}"
        raise InputError(f"{path}: not a readable {what} ({reason})") from None


def read_checkpoint(path: str | Path) -> dict:
    """The raw payload, validated: one-line :class:`InputError` naming the file otherwise."""
    path = Path(path)
    payload = load_torch_file(path, "HNSE weights file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an HNSE weights file (no '{FORMAT}' header)")
    if payload.get("version") not in READABLE_VERSIONS:
        raise InputError(f"{path}: weights format version {payload.get('version')!r}, this program reads "
                         f"{', '.join(map(str, READABLE_VERSIONS))}")
    for key in ("config", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise InputError(f"{path}: weights file has no {key}")
    if payload["version"] >= 2:
        recorded = payload.get("tensor_sha256")
        if not isinstance(recorded, str):
            raise InputError(f"{path}: weights file has no tensor hash (tensor_sha256)")
        if tensor_digest(payload["state_dict"]) != recorded:
            raise InputError(f"{path}: tensor data does not match the file's hash (the file was changed or damaged)")
    return payload


def load_state_checked(net: torch.nn.Module, state: dict, path) -> None:
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[0]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[0]}")
        raise InputError(f"{path}: weights do not match the network ({'; '.join(parts)})")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise InputError(f"{path}: weights do not match the network ({k}: file {tuple(state[k].shape)}, "
                         f"network {tuple(own[k].shape)})")
    net.load_state_dict(state)
