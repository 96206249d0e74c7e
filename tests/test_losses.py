"""Loss terms (model/network/losses.py, Eq. 6-8) on tiny tensors against numbers worked by hand,
and the N_p normalisation guard of HNSENet.forward."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.core.config import NetworkConfig, TrainConfig
from model.network.losses import centerness_loss, contrastive_loss, focal_loss, iou_loss, total_loss
from model.network import HNSENet
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)


def _cells(*values) -> torch.Tensor:
    """(1, C, 1, N) map from N per-cell vectors of length C."""
    return torch.tensor(values, dtype=torch.float32).T[None, :, None, :]


def test_focal_loss_by_hand():
    # (background, foreground) logits; p = sigmoid(fg - bg).
    logits = _cells([1.0, 1.0], [0.0, LN3], [2.0, 2.0 - LN3])  # p = 0.5, 0.75, 0.25
    labels = torch.tensor([[[1.0, 0.0, 1.0]]])
    # alpha_t (1 - p_t)^2 (-ln p_t):
    expected = (0.25 * 0.5 ** 2 * LN2          # positive, p = 0.5
                + 0.75 * 0.75 ** 2 * LN4       # negative, p = 0.75 -> p_t = 0.25
                + 0.25 * 0.75 ** 2 * LN4)      # positive, p = 0.25
    assert math.isclose(float(focal_loss(logits, labels, 0.25, 2.0)), expected, rel_tol=1e-5)


def test_focal_loss_without_focusing_is_weighted_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 3, 3, generator=generator)
    labels = (torch.rand(2, 3, 3, generator=generator) > 0.5).float()
    cross_entropy = F.cross_entropy(logits, labels.long(), reduction="sum")  # two-way softmax
    assert math.isclose(float(focal_loss(logits, labels, 0.5, 0.0)), 0.5 * float(cross_entropy), rel_tol=1e-5)


def test_focal_loss_down_weights_easy_cells():
    easy = focal_loss(_cells([5.0, -5.0]), torch.zeros(1, 1, 1))
    hard = focal_loss(_cells([-5.0, 5.0]), torch.zeros(1, 1, 1))
    assert float(easy) < 1e-5 < 1 < float(hard)


def test_centerness_bce_counts_positive_cells_only():
    logits = _cells([0.0], [LN3], [50.0])  # (1, 1, 1, 3): p = 0.5, 0.75, ~1
    targets = torch.tensor([[[0.4, 1.0, 0.0]]])
    positive = torch.tensor([[[True, True, False]]])
    # BCE at p = 0.5 is ln 2 whatever the target; at p = 0.75 with target 1 it is -ln 0.75.
    expected = LN2 - math.log(0.75)
    assert math.isclose(float(centerness_loss(logits, targets, positive)), expected, rel_tol=1e-5)


def test_iou_loss_eq7_by_hand():
    # Cell 0: predicted (2, 2, 2, 2) vs target (1, 1, 3, 3) around the same point:
    # boxes [-2, 2]^2 and [-1, 3]^2, intersection 3 x 3 = 9, union 16 + 16 - 9 = 23.
    # Cell 1: identical boxes -> 0. Cell 2: (1, 1, 1, 1) inside (2, 2, 2, 2): 4 / 16.
    # Cell 3 is negative: its (absurd) prediction must not count.
    pred = _cells([2.0, 2, 2, 2], [1.0, 2, 3, 4], [1.0, 1, 1, 1], [1e-3, 1e-3, 1e-3, 1e-3])
    target = _cells([1.0, 1, 3, 3], [1.0, 2, 3, 4], [2.0, 2, 2, 2], [-5.0, 1, 1, 1])
    positive = torch.tensor([[[True, True, True, False]]])
    expected = -math.log(9 / 23) + 0.0 + LN4
    assert math.isclose(float(iou_loss(pred, target, positive)), expected, rel_tol=1e-5)


def test_contrastive_loss_eq6_by_hand():
    distances = torch.tensor([0.5, 1.5, 3.0, 2.0])
    labels = torch.tensor([1, 0, 0, 0])
    # positive: d^2 = 0.25; negative inside the margin: (2 - 1.5)^2 = 0.25; beyond or at the
    # margin: 0. Mean over the N = 4 RoIs.
    assert math.isclose(float(contrastive_loss(distances, labels, margin=2.0)), 0.5 / 4, rel_tol=1e-6)


def test_contrastive_negative_beyond_the_margin_gives_zero_and_no_gradient():
    distances = torch.tensor([2.5, 4.0], requires_grad=True)
    loss = contrastive_loss(distances, torch.tensor([0, 0]), margin=2.0)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert distances.grad.abs().sum() == 0
    # A positive at the same distance is pulled in: loss d^2 / N, gradient 2 d / N.
    pulled = torch.tensor([2.5], requires_grad=True)
    contrastive_loss(pulled, torch.tensor([1]), margin=2.0).backward()
    assert math.isclose(float(pulled.grad), 5.0, rel_tol=1e-6)


def test_contrastive_loss_of_no_rois_is_zero():
    assert float(contrastive_loss(torch.zeros(0), torch.zeros(0))) == 0.0


def test_total_loss_eq8():
    terms = {"score": torch.tensor(1.5), "centerness": torch.tensor(0.5), "reg": torch.tensor(2.0),
             "contra": torch.tensor(3.0)}
    assert math.isclose(float(total_loss(terms, (1.0, 1.0, 1.0, 0.1))), 4.3, rel_tol=1e-6)
    assert math.isclose(float(total_loss(terms, (0.5, 2.0, 1.0, 0.0))), 3.75, rel_tol=1e-6)


# --- HNSENet.forward ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_net() -> HNSENet:
    """Small crops and channels; the backbone is frozen (as in the first half of training)
    so the backward passes stay cheap."""
    torch.manual_seed(0)
    net = HNSENet(NetworkConfig(pretrained=False, exemplar_size=63, instance_size=127, template_feature_crop=3,
                                neck_channels=16, head_channels=16, embed_channels=16))
    net.backbone.requires_grad_(False)
    return net


def _batch(search_boxes: list[list[float]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    count = len(search_boxes)
    return {"template": torch.rand(count, 3, 63, 63, generator=generator) * 255,
            "search": torch.rand(count, 3, 127, 127, generator=generator) * 255,
            "template_box": torch.tensor([[16.0, 16.0, 47.0, 47.0]] * count),
            "search_box": torch.tensor(search_boxes)}


def test_batch_without_positive_cells_gives_finite_losses(small_net):
    small_net.train()
    # Both boxes lie outside the 127-pixel search crop: no cell is positive (N_p = 0).
    terms = small_net(_batch([[-90.0, -80.0, -40.0, -30.0], [140.0, 150.0, 190.0, 200.0]]),
                      TrainConfig(), torch.Generator().manual_seed(0))
    values = {name: float(value.detach()) for name, value in terms.items()}
    assert values["num_pos"] == 0
    for name in ("score", "centerness", "reg", "contra", "total"):
        assert math.isfinite(values[name]), name
    assert values["reg"] == 0 and values["centerness"] == 0
    assert values["score"] > 0  # the negatives still count, divided by max(N_p, 1) = 1
    terms["total"].backward()
    for name, parameter in small_net.named_parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), name
    small_net.zero_grad()


def test_losses_are_normalised_by_the_number_of_positive_cells(small_net):
    """The same pair twice has twice the positives and twice the summed losses: the
    per-positive terms must not change."""
    small_net.eval()  # batch statistics would differ between batch sizes
    config = TrainConfig(lambda_contra=0.0)
    batch = _batch([[40.0, 50.0, 90.0, 85.0]])
    with torch.no_grad():
        one = small_net(batch, config)
        two = small_net({key: torch.cat([value, value]) for key, value in batch.items()}, config)
    assert float(two["num_pos"]) == 2 * float(one["num_pos"]) > 0
    for name in ("score", "centerness", "reg"):
        assert math.isclose(float(two[name]), float(one[name]), rel_tol=1e-4), name


def test_focal_loss_leaves_ignored_cells_out():
    logits = _cells([1.0, 1.0], [0.0, LN3], [2.0, 2.0 - LN3])
    counted = focal_loss(logits, torch.tensor([[[1.0, -1.0, 1.0]]]), 0.25, 2.0)
    without = focal_loss(logits[..., [0, 2]], torch.tensor([[[1.0, 1.0]]]), 0.25, 2.0)
    assert math.isclose(float(counted), float(without), rel_tol=1e-6)
