"""Weights files (model/core/checkpoint.py): round trip, the config travelling with the weights,
and every bad file refused with an InputError naming it, without running its code."""
from __future__ import annotations

import builtins
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.core.checkpoint import read_checkpoint, save_checkpoint, tensor_digest
from model.core.config import Config, NetworkConfig, TrackConfig, TrainConfig
from model.core.errors import InputError
from model.network import HNSENet, load_network
from model.tracking.tracker import Tracker
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

SMALL = dict(pretrained=False, neck_channels=16, head_channels=16, embed_channels=16)
CONFIG = Config(network=NetworkConfig(**SMALL), train=TrainConfig(epochs=3, lambda_contra=0.2),
                track=TrackConfig(penalty_k=0.11, window_influence=0.3, size_lr=0.5))


@pytest.fixture(scope="module")
def net() -> HNSENet:
    """A network whose every weight and BatchNorm statistic differs from a fresh one."""
    torch.manual_seed(0)
    net = HNSENet(CONFIG.network)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for value in net.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.rand(value.shape, generator=generator) * 0.01)
    return net.eval()


@pytest.fixture(scope="module")
def weights_file(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "model.pt"
    save_checkpoint(path, net, CONFIG, meta={"trained_on": "synthetic"}, step=7)
    return path


def _outputs(net: HNSENet) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    z = torch.rand(1, 3, 127, 127, generator=generator) * 255
    x = torch.rand(1, 3, 255, 255, generator=generator) * 255
    net.template(z, torch.tensor([30.0, 40.0, 90.0, 100.0]))
    out = net.track(x)
    return {"score": out["score"], "centerness": out["centerness"], "ltrb": out["ltrb"],
            "exemplar": net._exemplar_vector, **{f"level{i}": level for i, level in enumerate(out["levels"])}}


def test_round_trip_restores_identical_outputs(net, weights_file):
    loaded, _, _ = load_network(weights_file)
    assert not loaded.training
    expected, actual = _outputs(net), _outputs(loaded)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def test_the_config_and_meta_travel_with_the_weights(weights_file):
    _, config, payload = load_network(weights_file)
    assert config == CONFIG
    assert payload["meta"] == {"trained_on": "synthetic"} and payload["step"] == 7


def test_imagenet_initialisation_is_skipped_on_load(net, tmp_path):
    """A file saved from a model built with ImageNet weights loads without them."""
    path = tmp_path / "pretrained.pt"
    imagenet = replace(CONFIG, network=replace(CONFIG.network, pretrained=True, backbone_weights="/nowhere/r50.pth"))
    save_checkpoint(path, net, imagenet)
    loaded, config, _ = load_network(path)
    assert config.network == CONFIG.network
    torch.testing.assert_close(loaded.state_dict(), net.state_dict(), rtol=0, atol=0)


def test_no_temporary_files_are_left(weights_file):
    assert sorted(p.name for p in weights_file.parent.iterdir()) == ["model.pt"]


def _refused(path, match: str = "") -> str:
    with pytest.raises(InputError) as error:
        load_network(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert match in message
    return message


def test_missing_file(tmp_path):
    _refused(tmp_path / "absent.pt", "not found")


def test_truncated_file(weights_file, tmp_path):
    data = weights_file.read_bytes()
    for fraction in (0.5, 0.99):
        path = tmp_path / f"truncated_{fraction}.pt"
        path.write_bytes(data[: int(len(data) * fraction)])
        _refused(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    _refused(path)


def test_plain_state_dict_without_header(net, tmp_path):
    path = tmp_path / "state_dict.pt"
    torch.save(net.state_dict(), path)
    _refused(path, "not an HNSE weights file")


def test_weights_of_another_architecture(tmp_path):
    """ResNet-50 weights in a file whose config says EfficientNet-Lite0."""
    torch.manual_seed(0)
    resnet = HNSENet(NetworkConfig(backbone="resnet50", **SMALL))
    path = tmp_path / "resnet_as_lite.pt"
    save_checkpoint(path, resnet, CONFIG)
    _refused(path, "do not match")


def test_missing_key(net, tmp_path):
    path = tmp_path / "missing_key.pt"
    save_checkpoint(path, net, CONFIG)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["heads.1.score.bias"]
    payload["tensor_sha256"] = tensor_digest(payload["state_dict"])  # written so by another tool: hash consistent
    torch.save(payload, path)
    assert "heads.1.score.bias" in _refused(path, "missing")


def test_wrong_shape(net, tmp_path):
    path = tmp_path / "wide.pt"
    save_checkpoint(path, net, replace(CONFIG, network=replace(CONFIG.network, embed_channels=32)))
    _refused(path, "do not match")


def test_bad_config_in_the_file(net, tmp_path):
    path = tmp_path / "bad_config.pt"
    save_checkpoint(path, net, CONFIG)
    payload = torch.load(path, weights_only=True)
    payload["config"]["track"]["penalty"] = 0.1
    torch.save(payload, path)
    _refused(path, "penalty")


class _RunsCode:
    """Unpickling this calls ``function(*args)``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _exploits(marker) -> dict[str, _RunsCode]:
    return {"system": _RunsCode(os.system, f"touch {marker}"), "open": _RunsCode(builtins.open, str(marker), "w")}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch.load on a pickle.dump file
@pytest.mark.parametrize("how", ["torch.save", "pickle.dump", "inside a valid payload"])
@pytest.mark.parametrize("exploit", ["system", "open"])
def test_a_pickle_that_runs_code_is_refused_without_running_it(net, tmp_path, how, exploit):
    marker = tmp_path / "marker"
    payload = _exploits(marker)[exploit]
    # The payload is live: plain unpickling runs it.
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save(payload, path)
    elif how == "pickle.dump":
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    else:
        save_checkpoint(path, net, CONFIG)
        valid = torch.load(path, weights_only=True)
        torch.save({**valid, "meta": {"note": payload}}, path)
    _refused(path, "code")
    with pytest.raises(InputError):
        read_checkpoint(path)
    assert not marker.exists()


def test_a_flipped_bit_in_tensor_data_is_refused(tmp_path):
    """The file carries a hash of its tensors: one changed byte inside a tensor's data is
    refused with a message naming the file, where it used to load silently."""
    net_config = NetworkConfig(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, embed_channels=16)
    net = HNSENet(net_config)
    marker = torch.arange(16, dtype=torch.float32) * 1.2345 + 7.0  # a byte pattern easy to find in the file
    with torch.no_grad():
        net.embedding.conv1.bias.copy_(marker)
    path = tmp_path / "w.pt"
    save_checkpoint(path, net, Config(network=net_config))
    payload = read_checkpoint(path)  # intact: loads
    assert payload["tensor_sha256"] == tensor_digest(net.state_dict())
    data = bytearray(path.read_bytes())
    where = bytes(data).find(marker.numpy().tobytes())
    assert where > 0
    data[where + 4 * 10 + 1] ^= 0x10  # one bit of the 11th value
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"w\.pt: tensor data does not match the file's hash"):
        read_checkpoint(path)
    with pytest.raises(InputError, match="hash"):
        Tracker.from_checkpoint(path)


def test_a_file_without_its_hash_is_refused_and_version_1_files_still_load(tmp_path):
    net_config = NetworkConfig(pretrained=False, neck_channels=16, head_channels=16, tower_convs=1, he_head=False)
    path = tmp_path / "w.pt"
    save_checkpoint(path, HNSENet(net_config), Config(network=net_config))
    payload = torch.load(path, weights_only=True)
    del payload["tensor_sha256"]
    torch.save(payload, path)
    with pytest.raises(InputError, match="no tensor hash"):
        read_checkpoint(path)
    payload["version"] = 1  # files written before the hash existed
    torch.save(payload, path)
    assert read_checkpoint(path)["version"] == 1


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "resources" / "weights").glob("*.pt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_file_is_plain_data_with_its_hash_and_tracks(path):
    """weights_only loading, the tensor hash, and a real frame tracked from the file alone
    (NanoTrack v3's own file is not needed: HNSE-Nano files carry its weights)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["version"] == 2 and isinstance(payload["tensor_sha256"], str)
    tracker = Tracker.from_checkpoint(path, inspect=False)
    frame = (np.arange(240 * 320 * 3) % 251).astype(np.uint8).reshape(240, 320, 3)
    tracker.init(frame, (100, 80, 40, 50))
    result = tracker.track(frame)
    assert 0.0 <= result.score <= 1.0 and result.box[2] > 0


def test_shipped_nano_files_are_nanotrack_v3_plus_the_new_branches():
    nano = {p.stem: p for p in SHIPPED if p.stem.startswith("nano_")}
    assert set(nano) == {"nano_he", "nano_nohe"}
    he, nohe = (read_checkpoint(nano[name]) for name in ("nano_he", "nano_nohe"))
    assert {k.split(".")[0] for k in he["state_dict"]} == {"backbone", "ban_head", "centerness", "embedding"}
    assert {k.split(".")[0] for k in nohe["state_dict"]} == {"backbone", "ban_head", "centerness"}
    for key, value in nohe["state_dict"].items():  # same start, same data: only the HE branch differs
        assert torch.equal(value, he["state_dict"][key]), key
