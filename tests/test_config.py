"""Configuration (model/core/config.py): derived sizes, YAML round trip, rejected input.

The derived sizes are checked against the network itself: the score map that the real
network produces must have the size :func:`derive_sizes` predicts, and the backbone's
cell ``j`` must be centred on input pixel ``stride * j`` (the convention the offset of
Eq. 2 is built on), shown by a mirror-symmetry experiment.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from model.core.config import (Config, NetworkConfig, TrackConfig, TrainConfig, config_from_dict, derive_sizes,
                          load_config, save_config)
from model.core.errors import InputError
from model.network import HNSENet
from model.network.backbones import build_backbone
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

# Small neck/head/embedding channels keep the ResNet-50 network cheap on the CPU.
SMALL = dict(neck_channels=16, head_channels=16, embed_channels=16, pretrained=False)


@pytest.fixture(scope="module")
def resnet_net() -> HNSENet:
    torch.manual_seed(0)
    return HNSENet(NetworkConfig(backbone="resnet50", exemplar_size=95, instance_size=151,
                                 template_feature_crop=5, **SMALL))


def test_default_sizes_match_the_paper_geometry():
    sizes = derive_sizes(NetworkConfig())
    assert sizes.template_feature == 16  # ceil(127 / 8)
    assert sizes.search_feature == 32  # ceil(255 / 8)
    assert sizes.crop_start == 4  # (16 - 7) // 2
    assert sizes.score_size == 26  # 32 - 7 + 1
    assert sizes.offset == 31  # 63 - 8 * 4
    assert sizes.stride == 8


# (exemplar, instance, template crop) -> (score size, crop start, offset), worked out by hand:
# template cells ceil(e/8), search cells ceil(i/8), start (t - crop) // 2, S = s - crop + 1,
# offset = (e - 1)/2 - 8 * start.
OTHER_SIZES = [
    ((127, 287, 7), (30, 4, 31.0)),
    ((95, 223, 5), (24, 3, 23.0)),
    ((111, 271, 6), (29, 4, 23.0)),
    ((63, 127, 3), (14, 2, 15.0)),
]


@pytest.mark.parametrize("sizes_in, expected", OTHER_SIZES)
def test_other_sizes_worked_by_hand(sizes_in, expected):
    exemplar, instance, crop = sizes_in
    sizes = derive_sizes(NetworkConfig(exemplar_size=exemplar, instance_size=instance,
                                       template_feature_crop=crop, pretrained=False))
    assert (sizes.score_size, sizes.crop_start, sizes.offset) == expected


def _score_map_shape(net: HNSENet) -> tuple[int, ...]:
    config = net.config
    z = torch.rand(1, 3, config.exemplar_size, config.exemplar_size) * 255
    x = torch.rand(1, 3, config.instance_size, config.instance_size) * 255
    net.eval()
    net.template(z)
    out = net.track(x)
    assert out["centerness"].shape == out["score"].shape
    assert out["ltrb"].shape[1:] == out["score"].shape
    return tuple(out["score"].shape)


@pytest.mark.parametrize("sizes_in", [(127, 255, 7), (127, 287, 7), (95, 223, 5), (111, 271, 6), (63, 127, 3)])
def test_derived_score_size_is_what_lite0_produces(sizes_in):
    exemplar, instance, crop = sizes_in
    torch.manual_seed(0)
    config = NetworkConfig(exemplar_size=exemplar, instance_size=instance, template_feature_crop=crop, **SMALL)
    score_size = derive_sizes(config).score_size
    net = HNSENet(config)
    assert _score_map_shape(net) == (score_size, score_size)
    assert tuple(net.grid.shape) == (2, score_size, score_size)


def test_derived_score_size_is_what_resnet50_produces(resnet_net):
    score_size = derive_sizes(resnet_net.config).score_size
    assert score_size == 15  # ceil(151/8) - 5 + 1
    assert _score_map_shape(resnet_net) == (score_size, score_size)


def _mirror_symmetric(module: nn.Module) -> nn.Module:
    """A copy whose every convolution kernel is symmetric under horizontal and vertical flips."""
    module = copy.deepcopy(module).eval()
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                w = layer.weight
                w.copy_((w + w.flip(-1) + w.flip(-2) + w.flip(-1, -2)) / 4)
    return module


def _radial_image(side: int, centre: float) -> torch.Tensor:
    """(1, 3, side, side) image in 0..255 that depends only on the distance to (centre, centre)."""
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    radius2 = (xs - centre) ** 2 + (ys - centre) ** 2
    pattern = torch.cos(radius2.sqrt() / 2) * torch.exp(-radius2 / 150)
    return (128 + 60 * pattern * torch.tensor([1.0, -0.5, 0.8]).view(3, 1, 1))[None]


def _asymmetry(level: torch.Tensor) -> float:
    """Largest difference between a level and its mirror image (both axes), relative to
    the level's largest value."""
    difference = torch.maximum((level - level.flip(-1)).abs().max(), (level - level.flip(-2)).abs().max())
    return float(difference / level.abs().max())


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50"])
def test_backbone_cell_j_is_centred_on_pixel_stride_times_j(backbone, resnet_net):
    """With flip-symmetric kernels, an input of 16 * j0 + 1 pixels mirror-symmetric about
    its middle pixel 8 * j0 gives, at every level, 2 * j0 + 1 cells mirror-symmetric about
    the middle cell j0 exactly when cell j is centred on pixel 8 * j (the premise of
    derive_sizes' offset): a half-cell shift, or padding that is not centred, breaks it.
    The same pattern centred half a cell away is not symmetric, so the check can fail."""
    torch.manual_seed(0)
    source = resnet_net.backbone if backbone == "resnet50" else build_backbone(backbone, pretrained=True)
    symmetric = _mirror_symmetric(source)
    j0 = 6
    side = 16 * j0 + 1
    with torch.no_grad():
        centred = symmetric(_radial_image(side, 8 * j0))
        shifted = symmetric(_radial_image(side, 8 * j0 + 4))
    assert len(centred) == 3
    for level, level_shifted in zip(centred, shifted):
        assert level.shape[-2:] == (2 * j0 + 1, 2 * j0 + 1)
        assert level.abs().max() > 0
        assert _asymmetry(level) < 1e-4
        assert _asymmetry(level_shifted) > 1e-2


def test_impossible_sizes_are_input_errors():
    with pytest.raises(InputError):
        derive_sizes(NetworkConfig(exemplar_size=255, instance_size=127))
    with pytest.raises(InputError, match="template_feature_crop"):
        derive_sizes(NetworkConfig(template_feature_crop=17))


# --- YAML -----------------------------------------------------------------------------

def test_yaml_round_trip(tmp_path):
    config = Config(
        network=NetworkConfig(backbone="resnet50", neck_channels=32, backbone_weights="weights/r50.pth",
                              separable_towers=False, score_prior=0.02),
        train=TrainConfig(epochs=3, base_lr=0.01, lambda_contra=0.0, num_rois=21,
                          datasets=({"kind": "got10k", "root": "data/got10k", "weight": 2},)),
        track=TrackConfig(penalty_k=0.1, window_influence=0.3, top_k=5),
    )
    path = tmp_path / "config.yaml"
    save_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert isinstance(loaded.train.datasets, tuple)


def test_empty_yaml_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == Config()


def test_integer_is_accepted_for_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  base_lr: 1\n")
    loaded = load_config(path)
    assert loaded.train.base_lr == 1.0 and isinstance(loaded.train.base_lr, float)


@pytest.mark.parametrize("text, key", [
    # unknown keys
    ("network:\n  backbon: resnet50\n", "backbon"),
    ("networks:\n  backbone: resnet50\n", "networks"),
    ("track:\n  penalty: 0.1\n", "penalty"),
    # wrong types
    ("train:\n  epochs: ten\n", "train.epochs"),
    ("train:\n  epochs: 2.5\n", "train.epochs"),
    ("network:\n  pretrained: 1\n", "network.pretrained"),
    ("network:\n  neck_channels: true\n", "network.neck_channels"),
    ("track:\n  penalty_k: [0.1]\n", "track.penalty_k"),
    ("network: 3\n", "network"),
    ("train:\n  datasets: {kind: got10k}\n", "train.datasets"),
])
def test_bad_keys_and_types_are_rejected_naming_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and key in message
    assert "\n" not in message


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  epochs: 3\n  base_lr: [1, 2\n")
    with pytest.raises(InputError, match=r"broken\.yaml.*line \d"):
        load_config(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml")


def test_inconsistent_sizes_in_yaml_are_rejected(tmp_path):
    with pytest.raises(InputError):
        config_from_dict({"network": {"exemplar_size": 300}}, "cfg.yaml")
