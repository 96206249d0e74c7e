"""Inference backends (model/tracking/inference.py): BatchNorm folding and the ONNX Runtime export
must reproduce the eager network's outputs, for both backbones."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model.core.checkpoint import save_checkpoint
from model.core.config import Config, NetworkConfig
from model.core.errors import InputError
from model.tracking.fused_heads import FusedHeads
from model.tracking.inference import (
    BACKENDS,
    EagerBackend,
    OnnxBackend,
    TorchBackend,
    _network_digest,
    cached_onnx,
    fold_batchnorm,
    make_backend,
)
from model.network import HNSENet
from model.tracking.tracker import Tracker
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

# Small heads keep the export quick; the backbones are the real ones.
SMALL_HEADS = {"neck_channels": 32, "head_channels": 32, "tower_convs": 1, "embed_channels": 16}
NETWORKS = {
    "lite": NetworkConfig(backbone="efficientnet_lite0", pretrained=True, **SMALL_HEADS),
    "resnet50": NetworkConfig(backbone="resnet50", pretrained=False, separable_towers=False, **SMALL_HEADS),
}


def _randomise_batchnorm(net: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial statistics: fresh BatchNorms (mean 0, var 1) would fold to almost nothing."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def net(request) -> HNSENet:
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    network = HNSENet(NETWORKS[request.param]).eval()
    _randomise_batchnorm(network, generator)
    z = torch.rand(1, 3, 127, 127, generator=generator) * 255
    network.template(z, torch.tensor([30.0, 40.0, 90.0, 100.0]))
    return network


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One export per network for the whole module."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def search_crop() -> torch.Tensor:
    return torch.rand(1, 3, 255, 255, generator=torch.Generator().manual_seed(5)) * 255


def _assert_same_outputs(out: dict, reference: dict, tolerance: float) -> None:
    """Every output within ``tolerance`` of the reference, relative to the output's scale
    (max |reference|, at least 1): probabilities to ``tolerance`` absolute, features and
    pixel distances of magnitude 50 to 50 x ``tolerance`` (float32 carries ~7 digits)."""
    pairs = [(out[key], reference[key], key) for key in ("score", "centerness", "ltrb")]
    pairs += [(got, want, f"level{i + 2}") for i, (got, want) in enumerate(zip(out["levels"], reference["levels"]))]
    if reference["embedding_features"] is None:
        assert out["embedding_features"] is None
    else:
        pairs.append((out["embedding_features"], reference["embedding_features"], "embedding_features"))
    for got, want, key in pairs:
        got = torch.as_tensor(got)
        assert got.shape == want.shape, key
        scale = max(1.0, float(want.abs().max()))
        error = float((got - want).abs().max())
        assert error <= tolerance * scale, f"{key}: max difference {error:.3g} at scale {scale:.3g}"


def test_folding_batchnorm_keeps_the_outputs(net, search_crop):
    reference = EagerBackend(net).track(search_crop)
    backend = TorchBackend(net)
    assert backend.folded_count > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backend.folded.backbone.modules())
    _assert_same_outputs(backend.track(search_crop), reference, 1e-5)


def test_folding_leaves_the_network_itself_alone(net, search_crop):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    TorchBackend(net)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_fold_batchnorm_pairs_by_dataflow_not_by_order():
    # The BatchNorm is registered right after conv_b but normalises conv_a's output: only
    # that pair may fold, and the result must still equal the unfolded module.
    class Crossed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_a = nn.Conv2d(3, 4, 3)
            self.conv_b = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.after_add = nn.BatchNorm2d(4)

        def forward(self, x):
            return self.after_add(self.bn(self.conv_a(x)) + self.conv_b(x))

    generator = torch.Generator().manual_seed(0)
    module = Crossed().eval()
    _randomise_batchnorm(module, generator)
    x = torch.rand(2, 3, 9, 9, generator=generator)
    expected = module(x)
    assert fold_batchnorm(module, lambda: module(x)) == 1
    assert isinstance(module.bn, nn.Identity) and isinstance(module.after_add, nn.BatchNorm2d)
    torch.testing.assert_close(module(x), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("config", [NetworkConfig(), NetworkConfig(separable_towers=False, tower_convs=2,
                                                                  neck_channels=32, head_channels=32)],
                         ids=["lite-default-heads", "dense-towers"])
def test_fused_heads_compute_what_the_three_heads_compute(config):
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    network = HNSENet(config).eval()
    _randomise_batchnorm(network, generator)
    for parameter in [*network.heads.parameters(), *network.fusion.parameters()]:
        parameter.data.add_(torch.randn(parameter.shape, generator=generator) * 0.05)  # no symmetric zeros
    with torch.no_grad():
        network.template(torch.rand(1, 3, 127, 127, generator=generator) * 255)
        levels = network.features(torch.rand(1, 3, 255, 255, generator=generator) * 255)
        per_level, fused = network._heads(network._kernels, levels)
        got_levels, got_fused = FusedHeads(network).eval()(network._kernels, levels)
    for got, want in [*zip(got_levels, per_level), (got_fused, fused)]:
        for key in ("score", "centerness", "ltrb"):
            assert got[key].shape == want[key].shape
            torch.testing.assert_close(got[key], want[key], atol=1e-5 * max(1.0, float(want[key].abs().max())),
                                       rtol=0, msg=key)


def test_onnx_backend_matches_torch(net, search_crop, onnx_cache):
    reference = EagerBackend(net).track(search_crop)
    backend = OnnxBackend(net, threads=1, cache_dir=onnx_cache)
    _assert_same_outputs(backend.track(search_crop), reference, 1e-4)


def test_onnx_kernels_are_inputs_so_a_new_template_needs_no_new_export(net, search_crop, onnx_cache):
    backend = OnnxBackend(net, threads=1, cache_dir=onnx_cache)
    first = backend.track(search_crop)["score"].clone()
    saved = net._kernels, net._exemplar_vector
    try:
        net.template(torch.full((1, 3, 127, 127), 30.0), torch.tensor([10.0, 10.0, 60.0, 60.0]))
        reference = EagerBackend(net).track(search_crop)
        again = backend.track(search_crop)
    finally:
        net._kernels, net._exemplar_vector = saved
    assert not torch.allclose(first, reference["score"])  # the template matters ...
    _assert_same_outputs(again, reference, 1e-4)  # ... and the backend follows it


def test_onnx_workers_spin_only_for_a_network_that_runs_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("HNSE_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    network = HNSENet(NETWORKS["lite"]).eval()

    def spinning(backend) -> str:
        return backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(make_backend(network, "onnx")) == "0"  # the default: the application's two models a frame
    assert spinning(make_backend(network, "onnx", exclusive=True)) == "1"
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, network, Config(network=NETWORKS["lite"]))
    assert spinning(Tracker.from_checkpoint(weights, backend="onnx").backend) == "0"
    assert spinning(Tracker.from_checkpoint(weights, backend="onnx", exclusive=True).backend) == "1"
    # what the command line runs spins, what the application's worker runs does not
    from hnse_gui.worker import TrackingWorker, VariantSpec
    from model.evaluation.evaluate import make_tracker

    assert spinning(make_tracker(f"hnse:{weights}").backend) == "1"
    assert spinning(TrackingWorker._model_tracker(VariantSpec("with HE", str(weights), he_head=True)).backend) == "0"
    # the HE embedding runs between the search passes: its workers never spin
    embedding = make_backend(network, "onnx", exclusive=True).embedding_session
    assert embedding.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_export_is_cached_by_weights(tmp_path):
    torch.manual_seed(0)
    network = HNSENet(NETWORKS["lite"]).eval()
    model = cached_onnx(network, tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.read_bytes() for f in files] == [model]
    assert cached_onnx(network, tmp_path) == model and len(list(tmp_path.iterdir())) == 1
    digest = _network_digest(network)
    with torch.no_grad():
        network.heads[0].score.bias.add_(1.0)
    assert _network_digest(network) != digest


def test_tracker_backends_track_alike(tmp_path, monkeypatch):
    monkeypatch.setenv("HNSE_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    eager = Tracker.random(inspect=True, **SMALL_HEADS)
    rng = np.random.default_rng(0)
    frames = [np.kron(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
              for _ in range(4)]
    results = {}
    for name in BACKENDS:
        tracker = eager if name == "eager" else Tracker(eager.net, eager.config, inspect=True, backend=name)
        tracker.init(frames[0], (100, 80, 60, 50))
        results[name] = [tracker.track(frame) for frame in frames[1:]]
    for name in BACKENDS[1:]:
        for got, want in zip(results[name], results["eager"]):
            np.testing.assert_allclose(got.box, want.box, rtol=1e-4, atol=1e-3)
            for key, values in want.maps.items():
                np.testing.assert_allclose(got.maps[key], values, rtol=1e-3, atol=1e-4, err_msg=key)


def test_unknown_backend_is_an_input_error():
    torch.manual_seed(0)
    with pytest.raises(InputError, match="unknown inference backend 'tensorrt'"):
        make_backend(HNSENet(NETWORKS["lite"]), "tensorrt")


def test_embed_dist_is_computed_on_the_best_cells_only(net, search_crop):
    from model.tracking import tracker as tracker_module

    if net.embedding is None:
        pytest.skip("no HE head")
    tracker = Tracker(net, _config_of(net), inspect=True)
    frame = np.clip(search_crop[0].permute(1, 2, 0).numpy(), 0, 255).astype(np.uint8)
    tracker.init(frame, (100, 100, 50, 60))
    result = tracker.track(frame)
    score, distance = result.maps["score"], result.maps["embed_dist"]
    computed = np.isfinite(distance)
    assert 1 <= computed.sum() <= tracker_module.EMBED_MAX_CELLS
    # every computed cell outscores every skipped one, and clears the fraction of the best
    assert score[computed].min() >= score[~computed].max()
    assert score[computed].min() >= tracker_module.CANDIDATE_MIN_FRACTION * score.max()
    assert (distance[computed] >= 0).all()


def _config_of(net):
    from model.core.config import Config

    return Config(network=net.config)
