"""NanoTrack v3 in our code (model/network/nanotrack.py), its baseline tracker
(model/tracking/nanotrack3.py) and HNSE-Nano (model/network/hnse_nano.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.core.config import Config, TrainConfig, derive_sizes, load_config
from model.core.errors import InputError
from model.network import HNSENanoNet, build_network
from model.network.nanotrack import DEFAULT_WEIGHTS, BANHead, MobileNetV3Trunk, load_nanotrack_v3
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = DEFAULT_WEIGHTS.parent / "nanotrack_v3_reference.npz"
needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="NanoTrack v3 weights not available")
NANO_CONFIG = REPO / "resources" / "configs" / "nano_he.yaml"


@pytest.fixture(scope="module")
def nanotrack():
    trunk, head = MobileNetV3Trunk().eval(), BANHead().eval()
    load_nanotrack_v3(trunk, head, DEFAULT_WEIGHTS)
    return trunk, head


def _image(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)[None].float()


@needs_weights
def test_port_matches_the_original_network_outputs(nanotrack):
    """The reference file holds what the authors' network gives for two real crops."""
    trunk, head = nanotrack
    reference = np.load(REFERENCE)
    with torch.no_grad():
        z, x = trunk(_image(reference["template"])), trunk(_image(reference["search"]))
        torch.testing.assert_close(z, torch.from_numpy(reference["template_features"]), rtol=0, atol=1e-4)
        torch.testing.assert_close(x, torch.from_numpy(reference["search_features"]), rtol=0, atol=1e-4)
        out = head(head.template(torch.from_numpy(reference["template_features"])),
                   torch.from_numpy(reference["search_features"]))
    torch.testing.assert_close(out["score"], torch.from_numpy(reference["cls"]), rtol=0, atol=1e-4)
    # ltrb values reach ~77 px: 1e-4 relative is 1e-4 of the file's own float32 precision scale
    torch.testing.assert_close(out["ltrb"], torch.from_numpy(reference["loc"]), rtol=1e-4, atol=1e-4)


@needs_weights
def test_weights_file_loads_strictly_every_tensor(nanotrack):
    trunk, head = nanotrack
    state = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    own = {**{f"backbone.{k}": v for k, v in trunk.state_dict().items()},
           **{f"ban_head.{k}": v for k, v in head.state_dict().items()}}
    assert set(state) - set(own) == {k for k in state if k.startswith("neck.")}
    for key, value in own.items():
        assert torch.equal(value, state[key]), key


@needs_weights
def test_a_changed_or_foreign_file_is_refused(tmp_path):
    state = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    missing = dict(state)
    missing.pop("ban_head.cls_logits.0.weight")
    torch.save(missing, tmp_path / "missing.pt")
    extra = {**state, "ban_head.extra": torch.zeros(1)}
    torch.save(extra, tmp_path / "extra.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    for name in ("missing.pt", "extra.pt", "junk.pt"):
        with pytest.raises(InputError, match=name):
            load_nanotrack_v3(MobileNetV3Trunk(), BANHead(), tmp_path / name)


def test_sizes_follow_from_the_geometry():
    """15x15 score map, cell i at crop pixel 15 + 16 i (127 + 16 (i - 7))."""
    sizes = derive_sizes(load_config(NANO_CONFIG).network)
    assert (sizes.template_feature, sizes.search_feature, sizes.score_size) == (8, 16, 15)
    assert sizes.offset + sizes.stride * 7 == 127 and sizes.offset == 15


def _nano(he_head=True, pretrained=True):
    from dataclasses import replace

    config = load_config(NANO_CONFIG)
    network = replace(config.network, he_head=he_head, pretrained=pretrained and DEFAULT_WEIGHTS.is_file(),
                      backbone_weights=str(DEFAULT_WEIGHTS))
    return build_network(network), replace(config, network=network)


def test_embed_tap_chooses_the_trunk_block_the_he_branch_reads():
    from dataclasses import replace

    _, config = _nano(pretrained=False)
    assert config.network.embed_tap == 7
    tapped = build_network(replace(config.network, embed_tap=4)).eval()
    trunk = tapped.backbone
    assert tapped.embedding.conv1.in_channels == trunk.block_channels(4) + trunk.out_channels
    image = torch.rand(1, 3, 127, 127) * 255
    with torch.no_grad():
        out, embed = tapped.features(image)
        _, (block4,) = trunk(image, taps=(4,))
    torch.testing.assert_close(embed[:, : trunk.block_channels(4)], block4)
    torch.testing.assert_close(embed[:, trunk.block_channels(4):], out)


@needs_weights
def test_hnse_nano_starts_as_nanotrack_v3(nanotrack):
    """Loaded from NanoTrack v3, the score and ltrb maps are v3's; center-ness is constant."""
    trunk, head = nanotrack
    net, _ = _nano()
    assert isinstance(net, HNSENanoNet)
    reference = np.load(REFERENCE)
    z, x = _image(reference["template"]), _image(reference["search"])
    net.eval().template(z, torch.tensor([40.0, 40.0, 87.0, 87.0]))
    out = net.track(x)
    with torch.no_grad():
        expected = head(head.template(trunk(z)), trunk(x))
    torch.testing.assert_close(out["score"], torch.softmax(expected["score"], 1)[0, 1])
    torch.testing.assert_close(out["ltrb"], expected["ltrb"][0])
    assert out["centerness"].shape == (15, 15)
    assert torch.allclose(out["centerness"], torch.full((15, 15), 0.98))
    assert out["embedding_features"].shape == (1, 48 + 96, 16, 16)
    assert net.embedding_distance(out["embedding_features"], torch.tensor([[100.0, 100, 150, 150]])).shape == (1,)


def _batch(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[40.0, 40.0, 88.0, 88.0]]).repeat(batch, 1)
    return {"template": torch.rand(batch, 3, 127, 127, generator=g) * 255,
            "search": torch.rand(batch, 3, 255, 255, generator=g) * 255,
            "template_box": boxes, "search_box": boxes + 64}


def test_frozen_head_stays_as_loaded_while_new_branches_train():
    from model.training.train import freeze_modules, keep_frozen_bn_eval, make_optimizer

    net, config = _nano(pretrained=False)
    train = TrainConfig(frozen=("ban_head",), base_lr=0.05, warmup_lr=0.05)
    freeze_modules(net, train.frozen)
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = make_optimizer(net, train)
    net.train()
    keep_frozen_bn_eval(net, train.frozen)
    for step in range(3):
        terms = net(_batch(seed=step), train, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    after = net.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(("centerness.", "embedding.")) for k in changed), sorted(changed)[:5]
    assert any(k.startswith("centerness.") for k in changed) and any(k.startswith("embedding.") for k in changed)


def test_he_rerank_moves_the_choice_to_the_candidate_nearest_the_exemplar():
    """Two equal peaks: re-ranking picks the one whose embedding is closer to the exemplar."""
    from dataclasses import replace

    from model.tracking.tracker import Tracker

    net, config = _nano(pretrained=False)
    tracker = Tracker(net.eval(), config, inspect=False)
    score = np.zeros((15, 15), np.float32)
    score[3, 3] = score[11, 11] = 1.0
    boxes = torch.zeros(4, 15, 15)
    boxes[:, 3, 3] = torch.tensor([40.0, 40, 80, 80])
    boxes[:, 11, 11] = torch.tensor([170.0, 170, 210, 210])

    def distances(features, chosen):  # the box at (11, 11) is the exemplar's look-alike
        return torch.tensor([0.1 if float(b[0]) > 100 else 3.0 for b in chosen])

    net.embedding_distance = distances
    net._exemplar_vector = torch.zeros(64)
    out = {"embedding_features": torch.zeros(1)}
    tracker.config = replace(config, track=replace(config.track, he_rerank=1.0, he_candidates=4))
    search = np.zeros((255, 255, 3), np.uint8)
    factors = tracker._rerank(out, boxes.numpy(), score, score, search)["he"]
    final = score * factors
    assert np.unravel_index(int(np.argmax(final)), final.shape) == (11, 11)
    assert (factors[score == 0] <= 1).all() and factors[0, 0] == 0  # cells outside the candidates cannot win
    tracker.config = replace(config, track=replace(config.track, he_rerank=0.0))
    assert tracker._rerank(out, boxes.numpy(), score, score, search) is None


@needs_weights
def test_nanotrack3_baseline_tracks_a_moving_patch():
    from model.tracking.nanotrack3 import NanoTrack3Tracker

    rng = np.random.default_rng(0)
    background = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
    patch = rng.integers(120, 255, (40, 30, 3), dtype=np.uint8)
    tracker = NanoTrack3Tracker()

    def frame(x, y):
        image = background.copy()
        image[y:y + 40, x:x + 30] = patch
        return image

    tracker.init(frame(100, 100), (100, 100, 30, 40))
    for step in range(1, 8):
        result = tracker.track(frame(100 + 4 * step, 100 + 2 * step))
    x, y, w, h = result.box
    assert abs(x + w / 2 - (128 + 15)) < 6 and abs(y + h / 2 - (114 + 20)) < 6
    assert result.maps["score"].shape == (15, 15) and 0 <= result.score <= 1


def test_paired_bootstrap_interval():
    from model.evaluation.metrics import paired_bootstrap

    a = np.array([0.5, 0.6, 0.7, 0.4, 0.55])
    better = paired_bootstrap(a, a + 0.05)
    assert better["mean"] == pytest.approx(0.05) and better["low"] == pytest.approx(0.05)
    assert better["wins"] == 5 and better["losses"] == 0
    mixed = paired_bootstrap(a, a + np.array([0.2, -0.2, 0.1, -0.1, 0.0]))
    assert mixed["low"] < 0 < mixed["high"] and mixed["wins"] == 2 and mixed["losses"] == 2
    with pytest.raises(ValueError):
        paired_bootstrap(a, a[:3])


@pytest.mark.parametrize("he_head", [True, False])
def test_torch_and_onnx_backends_match_eager_for_hnse_nano(he_head, tmp_path, monkeypatch):
    from model.tracking.inference import make_backend

    monkeypatch.setenv("HNSE_CACHE_DIR", str(tmp_path))
    net, _ = _nano(he_head=he_head)
    net.eval()
    g = torch.Generator().manual_seed(1)
    net.template(torch.rand(1, 3, 127, 127, generator=g) * 255, torch.tensor([40.0, 40.0, 87.0, 87.0]))
    x = torch.rand(1, 3, 255, 255, generator=g) * 255
    eager = make_backend(net, "eager").track(x)
    folded = make_backend(net, "torch")
    assert folded.folded_count > 50  # the trunk's and the head's BatchNorms
    keys = ("score", "centerness", "ltrb") + (("embedding_features",) if he_head else ())
    for backend in (folded, make_backend(net, "onnx")):
        out = backend.track(x)
        for key in keys:
            torch.testing.assert_close(out[key], eager[key], rtol=1e-4, atol=2e-4)
        assert len(out["levels"]) == 1 and (out["embedding_features"] is None) == (not he_head)
    if he_head:  # the HE re-ranking's distances, exported for the onnx backend
        boxes = torch.tensor([[60.0, 60.0, 120.0, 150.0], [100.0, 90.0, 180.0, 160.0], [10.0, 20.0, 60.0, 90.0]])
        expected = net.embedding_distance(eager["embedding_features"], boxes)
        for backend in (folded, make_backend(net, "onnx")):
            torch.testing.assert_close(backend.embedding_distance(eager["embedding_features"], boxes), expected,
                                       rtol=1e-4, atol=1e-4)
            assert backend.embedding_distance(eager["embedding_features"], boxes[:1]).shape == (1,)


@needs_weights
def test_shipped_hnse_nano_keeps_nanotrack_v3_trunk_and_head_unchanged():
    from model.core.checkpoint import read_checkpoint

    original = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    for name in ("nano_he", "nano_nohe"):
        state = read_checkpoint(REPO / "resources" / "weights" / f"{name}.pt")["state_dict"]
        shared = [k for k in state if k.startswith(("backbone.", "ban_head."))]
        assert len(shared) == len([k for k in original if not k.startswith("neck.")])
        for key in shared:
            assert torch.equal(state[key], original[key]), (name, key)


@needs_weights
def test_adapter_starts_as_identity_and_carries_the_losses_to_the_frozen_heads_input():
    """A zero-initialised adapter leaves v3's maps unchanged; training moves only the
    adapter and the new branches, and the HE loss alone reaches the adapter."""
    from dataclasses import replace

    from model.training.train import freeze_modules, make_optimizer

    net, config = _nano()
    adapted = build_network(replace(config.network, adapter_channels=16))
    assert adapted.load_state_dict(net.state_dict(), strict=False).unexpected_keys == []
    reference = np.load(REFERENCE)
    z, x = _image(reference["template"]), _image(reference["search"])
    for model in (net, adapted):
        model.eval().template(z, torch.tensor([40.0, 40.0, 87.0, 87.0]))
    torch.testing.assert_close(adapted.track(x)["score"], net.track(x)["score"])

    train = TrainConfig(frozen=("ban_head",), lambda_score=0, lambda_centerness=0, lambda_reg=0,
                        lambda_contra=1.0)
    freeze_modules(adapted, train.frozen)
    adapted.train()
    terms = adapted(_batch(), train, torch.Generator().manual_seed(0))
    terms["total"].backward()
    assert adapted.adapter.expand.weight.grad.abs().sum() > 0  # Eq. 6 reaches the correlated features
    assert all(p.grad is None for p in adapted.ban_head.parameters())
    adapter_ids = {id(p) for p in adapted.adapter.parameters()}
    assert adapter_ids <= {id(p) for p in make_optimizer(adapted, train).param_groups[0]["params"]}


@needs_weights
def test_distillation_anchors_the_adapted_score_to_nanotrack_v3():
    """lambda_distill: zero while the adapter is the identity, positive once it changes the
    score, its gradient reaching the adapter; refused for a network with no teacher."""
    from dataclasses import replace

    from model.network.losses import distill_loss
    from model.training.train import freeze_modules

    net, config = _nano()
    adapted = build_network(replace(config.network, adapter_channels=16))
    adapted.load_state_dict(net.state_dict(), strict=False)
    train = TrainConfig(frozen=("ban_head",), lambda_score=0, lambda_centerness=0, lambda_reg=0, lambda_contra=0,
                        lambda_distill=1.0)
    freeze_modules(adapted, train.frozen)
    adapted.train()
    batch = _batch()
    assert float(adapted(batch, train, torch.Generator().manual_seed(0))["distill"].detach()) == pytest.approx(0, abs=1e-6)
    with torch.no_grad():
        adapted.adapter.expand.weight.normal_(0, 0.5)
    terms = adapted(batch, train, torch.Generator().manual_seed(0))
    distill, total = float(terms["distill"].detach()), float(terms["total"].detach())
    assert distill > 1e-3 and total == pytest.approx(distill)
    terms["total"].backward()
    assert adapted.adapter.expand.weight.grad.abs().sum() > 0
    # the teacher is the network without the adapter, from the student's own trunk passes
    trunk_calls = []
    hook = adapted.backbone.register_forward_hook(lambda *_: trunk_calls.append(1))
    with torch.no_grad():
        _, _, _, teacher = adapted.pair_outputs(batch, with_teacher=True)
        plain, _, _, none = net.pair_outputs(batch, with_teacher=True)
    hook.remove()
    assert len(trunk_calls) == 2 and none is None
    assert torch.allclose(teacher["score"], plain["score"], atol=1e-5)
    assert torch.allclose(teacher["ltrb"], plain["ltrb"], atol=1e-4)
    logits = torch.randn(2, 2, 15, 15)
    assert float(distill_loss(logits, logits)) == pytest.approx(0, abs=1e-5)
    with pytest.raises(InputError, match="lambda_distill"):
        net(batch, train, torch.Generator().manual_seed(0))


def test_he_rerank_groups_boxes_overlapping_more_than_t_l_into_one_object():
    """Boxes around one target (IoU above T_l) are one object: nothing to re-rank, no embedding run."""
    from dataclasses import replace

    from model.tracking.tracker import Tracker

    net, config = _nano(pretrained=False)
    tracker = Tracker(net.eval(), replace(config, track=replace(config.track, he_rerank=1.0, he_candidates=4)),
                      inspect=False)
    score = np.zeros((15, 15), np.float32)
    score[7, 7], score[7, 8] = 1.0, 0.9
    boxes = torch.zeros(4, 15, 15)
    boxes[:, 7, 7] = torch.tensor([100.0, 100, 160, 160])
    boxes[:, 7, 8] = torch.tensor([115.0, 100, 175, 160])  # IoU 0.6 with the first: the same object

    def no_embedding(*_):
        raise AssertionError("one object needs no embedding")

    net.embedding_distance = no_embedding
    net._exemplar_vector = torch.zeros(64)
    factors = tracker._rerank({"embedding_features": torch.zeros(1)}, boxes.numpy(), score, score,
                              np.zeros((255, 255, 3), np.uint8))["he"]
    assert factors[7, 7] == factors[7, 8] == 1.0 and factors[0, 0] == 0
