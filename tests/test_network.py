"""The HNSE network (model/network): shapes, ImageNet weights, Eq. 9 fusion, the FCOS
initialisation, and that training steps do what Sec. 3.4 / 4.1 describe."""
from __future__ import annotations

import math

import pytest
import torch

from model.core.config import NetworkConfig, TrainConfig
from model.network import LEVELS, HNSENet
from model.network.backbones import _lite0_weights_path
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

# ResNet-50 runs with random weights and narrow neck/head/embedding to stay cheap on the CPU.
RESNET = NetworkConfig(backbone="resnet50", pretrained=False, neck_channels=16, head_channels=16, embed_channels=16)
LITE = NetworkConfig()  # the shipped model: EfficientNet-Lite0 with its ImageNet weights


@pytest.fixture(scope="module")
def nets() -> dict[str, HNSENet]:
    torch.manual_seed(0)
    return {"efficientnet_lite0": HNSENet(LITE).eval(), "resnet50": HNSENet(RESNET).eval()}


def _images(batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, 127, 127, generator=generator) * 255,
            torch.rand(batch, 3, 255, 255, generator=generator) * 255)


def test_lite0_imagenet_weights_are_loaded(nets):
    state = torch.load(_lite0_weights_path(), map_location="cpu", weights_only=True)
    own = nets["efficientnet_lite0"].backbone.state_dict()
    for key in ("_blocks.5._bn1.running_mean", "_blocks.10._bn2.running_var", "_conv_stem.weight"):
        assert state[key].abs().sum() > 0
        torch.testing.assert_close(own[key], state[key], rtol=0, atol=0)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50"])
def test_every_map_has_the_documented_shape(nets, backbone):
    net = nets[backbone]
    config = net.config
    neck, head, S = config.neck_channels, config.head_channels, net.sizes.score_size
    assert S == 26
    z, x = _images()
    with torch.no_grad():
        raw = net.backbone(z)
        assert [tuple(level.shape) for level in raw] == [(1, c, 16, 16) for c in net.backbone.out_channels]
        assert [tuple(level.shape) for level in net.features(x)] == [(1, neck, 32, 32)] * 3

    net.template(z, torch.tensor([40.0, 30.0, 90.0, 100.0]))
    assert len(net._kernels) == len(LEVELS)
    # 7 x 7 template cells; ResNet-50's 3 x 3 adjust convolution (SiamRPN++'s) is valid.
    kernel = 7 if backbone == "efficientnet_lite0" else 5
    for cls_kernel, reg_kernel in net._kernels:
        assert cls_kernel.shape == reg_kernel.shape == (1, head, kernel, kernel)
    assert net._exemplar_vector.shape == (config.embed_channels,)

    out = net.track(x)
    assert out["score"].shape == out["centerness"].shape == (S, S)
    assert out["ltrb"].shape == (4, S, S)
    assert [tuple(level.shape) for level in out["levels"]] == [(S, S)] * 3
    assert out["embedding_features"].shape == (1, 2 * neck, 32, 32)  # Cat(phi_3, phi_4)
    distances = net.embedding_distance(out["embedding_features"], torch.tensor([[10.0, 10, 60, 60], [100, 90, 150, 170]]))
    assert distances.shape == (2,) and (distances >= 0).all()

    batch_z, batch_x = _images(batch=2, seed=1)
    batch = {"template": batch_z, "search": batch_x, "template_box": torch.tensor([[40.0, 40, 87, 87]] * 2),
             "search_box": torch.tensor([[100.0, 110, 150, 140], [30, 40, 90, 120]])}
    with torch.no_grad():
        terms = net(batch, TrainConfig(), torch.Generator().manual_seed(0))
    assert set(terms) == {"score", "centerness", "reg", "contra", "distill", "total", "num_pos"}
    for name, value in terms.items():
        assert value.shape == () and math.isfinite(float(value)), name
    assert float(terms["contra"]) > 0


def _per_level_and_fused(net: HNSENet, seed: int = 0):
    z, x = _images(seed=seed)
    with torch.no_grad():
        return net._heads(net._kernels_from(net.features(z)), net.features(x))


def test_fusion_is_a_softmax_weighted_sum_of_the_levels(nets):
    """Eq. 9 with trainable weights, softmax-normalised over the three levels."""
    net = nets["efficientnet_lite0"]
    logits = net.fusion.logits
    assert {name for name, _ in net.named_parameters() if name.startswith("fusion.")} == {
        "fusion.logits.score", "fusion.logits.centerness", "fusion.logits.ltrb"}
    original = {name: value.detach().clone() for name, value in logits.items()}
    try:
        with torch.no_grad():
            for index, parameter in enumerate(logits.values()):
                parameter.copy_(torch.tensor([0.3, -1.2, 0.8]) * (index + 1))
        per_level, fused = _per_level_and_fused(net)
        assert len(per_level) == len(LEVELS)
        for name in ("score", "centerness", "ltrb"):
            weights = net.fusion.weights(name).detach()
            torch.testing.assert_close(weights, torch.softmax(logits[name].detach(), 0))
            assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-6) and (weights > 0).all()
            expected = sum(float(weights[i]) * per_level[i][name] for i in range(3))
            torch.testing.assert_close(fused[name], expected)
            assert not torch.allclose(fused[name], per_level[0][name])
    finally:
        with torch.no_grad():
            for name, value in original.items():
                logits[name].copy_(value)


def test_track_applies_softmax_and_sigmoid_to_the_fused_logits(nets):
    net = nets["efficientnet_lite0"]
    z, x = _images()
    net.template(z)
    out = net.track(x)
    per_level, fused = _per_level_and_fused(net)
    torch.testing.assert_close(out["score"], torch.softmax(fused["score"], 1)[0, 1])
    torch.testing.assert_close(out["centerness"], torch.sigmoid(fused["centerness"])[0, 0])
    torch.testing.assert_close(out["ltrb"], fused["ltrb"][0])
    for level_map, level in zip(out["levels"], per_level):
        torch.testing.assert_close(level_map, torch.softmax(level["score"], 1)[0, 1])


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50"])
def test_initial_foreground_probability_is_the_prior(nets, backbone):
    net = nets[backbone]
    for head in net.heads:
        bias = head.score.bias.detach()
        assert math.isclose(float(torch.sigmoid(bias[1] - bias[0])), 0.01, rel_tol=1e-5)
    per_level, fused = _per_level_and_fused(net)
    for outputs in [*per_level, fused]:
        probability = torch.softmax(outputs["score"], 1)[:, 1]
        assert 0.007 < float(probability.median()) < 0.013
        assert float(probability.max()) < 0.05


def test_ltrb_is_positive_and_finite(nets):
    net = nets["efficientnet_lite0"]
    per_level, fused = _per_level_and_fused(net)
    for outputs in [*per_level, fused]:
        assert (outputs["ltrb"] > 0).all()
    head = net.heads[0]
    original = head.ltrb.bias.detach().clone()
    try:
        with torch.no_grad():
            head.ltrb.bias.fill_(1e4)  # an exploding regression stays finite
        per_level, _ = _per_level_and_fused(net)
        assert torch.isfinite(per_level[0]["ltrb"]).all() and (per_level[0]["ltrb"] > 0).all()
    finally:
        with torch.no_grad():
            head.ltrb.bias.copy_(original)


# --- training -----------------------------------------------------------------------------

def _synthetic_pair() -> dict[str, torch.Tensor]:
    """A textured 48 x 48 square on low-contrast noise: centred in the exemplar, and at a
    known place in the search crop (boxes are xyxy, pixel edges at k +- 0.5)."""
    generator = torch.Generator().manual_seed(7)
    texture = torch.rand(3, 48, 48, generator=generator) * 255
    template = 110 + torch.rand(1, 3, 127, 127, generator=generator) * 30
    search = 110 + torch.rand(1, 3, 255, 255, generator=generator) * 30
    template[0, :, 40:88, 40:88] = texture
    search[0, :, 90:138, 120:168] = texture
    return {"template": template, "search": search,
            "template_box": torch.tensor([[39.5, 39.5, 87.5, 87.5]]),
            "search_box": torch.tensor([[119.5, 89.5, 167.5, 137.5]])}


@pytest.fixture
def frozen_net() -> HNSENet:
    """The shipped model as in the first half of training: backbone frozen."""
    torch.manual_seed(0)
    net = HNSENet(LITE).train()
    net.backbone.requires_grad_(False)
    return net


def _loss(net: HNSENet, batch, train: TrainConfig) -> dict[str, torch.Tensor]:
    return net(batch, train, torch.Generator().manual_seed(0))  # same RoIs every time


def test_sgd_steps_lower_the_total_loss(frozen_net):
    """Three steps of the paper's SGD (base lr 5e-3, momentum 0.9) with training's gradient
    clipping: the total loss of Eq. 8 and its score and regression terms go down."""
    batch, train = _synthetic_pair(), TrainConfig()
    trainable = [p for p in frozen_net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=train.base_lr, momentum=train.momentum)
    before = {k: float(v.detach()) for k, v in _loss(frozen_net, batch, train).items()}
    for _ in range(3):
        optimizer.zero_grad()
        _loss(frozen_net, batch, train)["total"].backward()
        torch.nn.utils.clip_grad_norm_(trainable, train.grad_clip)
        optimizer.step()
    after = {k: float(v.detach()) for k, v in _loss(frozen_net, batch, train).items()}
    assert after["num_pos"] == before["num_pos"] > 0
    assert after["total"] < 0.95 * before["total"]
    assert after["score"] < before["score"] and after["reg"] < before["reg"]


def _grad_norm(parameters) -> float:
    return sum(float(p.grad.abs().sum()) for p in parameters if p.grad is not None)


def test_frozen_backbone_still_trains_the_heads(frozen_net):
    backbone_before = {k: v.clone() for k, v in frozen_net.backbone.state_dict().items() if v.is_floating_point()}
    terms = _loss(frozen_net, _synthetic_pair(), TrainConfig())
    terms["total"].backward()
    assert all(p.grad is None for p in frozen_net.backbone.parameters())
    for part in (frozen_net.neck, frozen_net.heads, frozen_net.fusion, frozen_net.embedding):
        assert _grad_norm(part.parameters()) > 0, type(part).__name__
    torch.optim.SGD([p for p in frozen_net.parameters() if p.requires_grad], lr=0.01).step()
    for key, value in frozen_net.backbone.state_dict().items():
        if key in backbone_before and "running" not in key:
            torch.testing.assert_close(value, backbone_before[key], rtol=0, atol=0)


def test_without_contrastive_term_the_he_head_gets_no_gradient(frozen_net):
    batch = _synthetic_pair()
    terms = _loss(frozen_net, batch, TrainConfig(lambda_contra=0.0))
    assert float(terms["contra"]) == 0.0
    terms["total"].backward()
    assert _grad_norm(frozen_net.embedding.parameters()) == 0
    assert _grad_norm(frozen_net.heads.parameters()) > 0
    # ... while with lambda_contra = 0.1 (the paper's) it does.
    frozen_net.zero_grad(set_to_none=True)
    terms = _loss(frozen_net, batch, TrainConfig())
    assert float(terms["contra"].detach()) > 0
    terms["total"].backward()
    assert _grad_norm(frozen_net.embedding.parameters()) > 0


def test_centerness_over_all_cells_adds_the_cells_off_the_target(frozen_net):
    """centerness_cells "all": Eq. 4's zero target off the box enters the BCE, so the term is
    the positive cells' term plus the other cells' -log(1 - sigmoid(logit))."""
    from model.network.targets import assign_targets

    batch = _synthetic_pair()
    with torch.no_grad():
        positive_only = _loss(frozen_net, batch, TrainConfig(centerness_cells="positive"))
        every_cell = _loss(frozen_net, batch, TrainConfig(centerness_cells="all"))
        _, fused = frozen_net._heads(frozen_net._kernels_from(frozen_net.features(batch["template"])),
                                     frozen_net.features(batch["search"]))
    targets = assign_targets(frozen_net.grid, batch["search_box"])
    off = targets.labels[0] == 0
    num_pos = (targets.labels > 0).sum().clamp(min=1).float()
    extra = torch.nn.functional.softplus(fused["centerness"][0, 0][off]).sum() / num_pos  # BCE with target 0
    assert float(every_cell["centerness"]) == pytest.approx(float(positive_only["centerness"] + extra), rel=1e-5)
    assert float(extra) > 0


def test_centerness_over_hard_negatives_adds_only_the_likely_look_alikes(frozen_net):
    """centerness_cells "hard_negative": the positive cells, plus the cells off the target
    (box IoU under iou_low) that score at least half the best; not the weak ones."""
    from model.network.targets import assign_targets

    grid = frozen_net.grid  # (2, S, S) crop coordinates
    s = grid.shape[-1]
    centre, far, weak = (s // 2, s // 2), (1, 1), (s - 2, s - 2)
    logits = torch.full((1, 2, s, s), 0.0)
    logits[0, 1] = -12.0
    for cell, value in ((centre, 12.0), (far, 12.0), (weak, -0.5)):  # foreground probability 1, 1, 0.38
        logits[0, 1][cell] = value
    fused = {"score": logits, "ltrb": torch.full((1, 4, s, s), 12.0)}  # a 24x24 box on every cell
    cx, cy = (float(v) for v in grid[:, centre[0], centre[1]])
    batch = {"search_box": torch.tensor([[cx - 12, cy - 12, cx + 12, cy + 12]])}
    positive = assign_targets(grid, batch["search_box"]).labels > 0
    cells = frozen_net._centerness_cells(fused, batch, positive, TrainConfig(centerness_cells="hard_negative"))
    assert positive[0][centre] and not positive[0][far]
    look_alike = torch.zeros_like(positive)
    look_alike[0][far] = True
    assert torch.equal(cells & ~positive, look_alike)
    assert torch.equal(cells & positive, positive)
    assert torch.equal(frozen_net._centerness_cells(fused, batch, positive, TrainConfig()), positive)


def test_an_unknown_centerness_cells_value_is_refused():
    from model.core.config import config_from_dict
    from model.core.errors import InputError

    with pytest.raises(InputError, match="centerness_cells must be one of positive, all, hard_negative"):
        config_from_dict({"train": {"centerness_cells": "negative"}})
