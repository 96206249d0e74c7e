"""Inference backends for the tracker's per-frame network pass (Sec. 3.5).

Every frame the tracker runs the *search branch*: backbone, neck, the three FCOS heads
against the template kernels cached by :meth:`HNSENet.template`, and the fusion of
Eq. 9. A backend is anything with ``track(x) -> dict`` returning what
:meth:`HNSENet.track` returns, from a search crop ``x`` (1, 3, 255, 255) float BGR:

* ``"eager"``: :meth:`HNSENet.track` itself, as written. Always sees the network's
  current weights (use it while training).
* ``"torch"``: a copy of the network with every BatchNorm folded into the convolution
  it follows (:func:`fold_batchnorm`) and the three heads run as one stack of grouped
  convolutions (:class:`~model.tracking.fused_heads.FusedHeads`), in channels-last memory layout
  under ``torch.inference_mode``. The same arithmetic in fewer operators; the weights are
  frozen at construction.
* ``"onnx"``: the same search branch (fused heads) exported once with ``torch.onnx.export``, the six
  template kernels being *inputs* (so one export serves every ``init``), and run by
  ONNX Runtime, whose CPU kernels fuse convolution + activation and are markedly faster
  on the depth-wise convolutions of EfficientNet-Lite0. Exports are cached on disk
  (:func:`onnx_cache_dir`) by a hash of the weights and the network config, so only the
  first load of a weights file pays for the export.

Every backend also gives ``embedding_distance(features, boxes)`` (the HE embedding of
some boxes against the exemplar vector, :meth:`SiameseNetwork.embedding_distance`),
which the tracker's HE re-ranking calls every frame: the onnx backend exports that too
(:func:`export_embedding_onnx`), where torch's per-operator overhead on a few RoIs costs
more than the computation (2.3 against 0.8 ms here).

:func:`make_backend` builds one by name.
"""
from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.core.checkpoint import tensor_digest
from model.core.config import Config, config_to_dict
from model.core.errors import InputError
from model.network.hard_negative import ExemplarDistance
from model.tracking.fused_heads import FusedHeads, folded_conv

BACKENDS = ("eager", "torch", "onnx")
ONNX_CACHE_ENV = "HNSE_CACHE_DIR"
ONNX_OPSET = 17
_EXPORT_FORMAT = "search branch 2"  # part of the cache key: bump when the exported graph changes


def _kernel_names(count: int) -> list[str]:
    return [f"kernel{i}" for i in range(count)]


def _output_names(levels: int, embedding: bool) -> list[str]:
    return ["score", "centerness", "ltrb", *(f"level{i}" for i in range(levels))] + (
        ["embedding_features"] if embedding else [])


# --- BatchNorm folding ------------------------------------------------------------------

def _conv_bn_pairs(module: nn.Module, run) -> dict[nn.BatchNorm2d, nn.Conv2d]:
    """Which BatchNorm consumes which convolution's output, seen on one call of ``run()``.

    A BatchNorm is paired only when every input it received came straight out of one
    and the same ``Conv2d`` (read from the dataflow, not from module names or order).
    """
    produced: dict[int, nn.Conv2d] = {}
    keep_alive = []  # ids stay unique only while the tensors live
    sources: dict[nn.BatchNorm2d, set] = {}

    def after_conv(conv, _inputs, output):
        produced[id(output)] = conv
        keep_alive.append(output)

    def before_bn(bn, inputs):
        sources.setdefault(bn, set()).add(produced.get(id(inputs[0])))

    handles = [m.register_forward_hook(after_conv) for m in module.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_pre_hook(before_bn) for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    pairs = {bn: next(iter(convs)) for bn, convs in sources.items() if len(convs) == 1 and None not in convs}
    used = [id(conv) for conv in pairs.values()]
    # A convolution feeding two BatchNorms cannot absorb both.
    return {bn: conv for bn, conv in pairs.items() if used.count(id(conv)) == 1}


def fold_batchnorm(module: nn.Module, run) -> int:
    """Fold eval-mode BatchNorms into the convolutions that feed them, in place.

    ``run()`` calls ``module`` once on example inputs, to find the conv -> BatchNorm
    pairs (:func:`_conv_bn_pairs`). Each pair becomes one convolution with
    ``W' = W * g / sqrt(v + eps)`` and ``b' = (b - m) * g / sqrt(v + eps) + beta`` and the
    BatchNorm an ``Identity``. Assumes, as everywhere in :class:`HNSENet`, that a
    convolution followed by a BatchNorm has no other consumer. Returns the number folded.
    """
    module.eval()
    pairs = _conv_bn_pairs(module, run)
    parents = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()]
    for parent, name, child in parents:
        conv = pairs.get(child)
        if conv is None:
            continue
        weight, bias = folded_conv(conv, child)
        conv.weight = nn.Parameter(weight)
        conv.bias = nn.Parameter(bias)
        setattr(parent, name, nn.Identity())
    return len(pairs)


def _constant_images(net) -> tuple[torch.Tensor, torch.Tensor]:
    """An exemplar and a search crop of constant grey, on ``net``'s device: example inputs."""
    size = net.config.exemplar_size, net.config.instance_size
    return tuple(torch.full((1, 3, side, side), 100.0, device=net.grid.device) for side in size)


def _example_run(net):
    """A closure running ``net``'s template and search passes on constant images."""
    z, x = _constant_images(net)

    def run():
        net.template(z)
        net.search(x, net._kernels)

    return run


# --- backends ---------------------------------------------------------------------------

class EagerBackend:
    """:meth:`HNSENet.track`, unchanged: the reference every other backend matches."""

    name = "eager"

    def __init__(self, net):
        self.net = net

    def embedding_distance(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.net.embedding_distance(features, boxes)

    def track(self, x: torch.Tensor) -> dict:
        return self.net.track(x)


class TorchBackend(EagerBackend):
    """A BatchNorm-folded, channels-last copy of the network, run under
    ``torch.inference_mode``; the three FCOS heads of an :class:`HNSENet` also fused.

    ``channels_last`` is off for HNSE-Nano: its pixel-wise correlation reshapes the
    features, which a channels-last layout turns into copies."""

    name = "torch"

    def __init__(self, net, channels_last: bool | None = None):
        super().__init__(net)
        self.folded = copy.deepcopy(net).eval()
        self.folded_count = fold_batchnorm(self.folded, _example_run(self.folded))
        multi_level = hasattr(self.folded, "heads")
        self.search_options = {"heads": FusedHeads(self.folded).eval()} if multi_level else {}
        self.channels_last = multi_level if channels_last is None else channels_last
        if self.channels_last:
            # oneDNN's depth-wise convolutions are faster on NHWC (lite: 34 -> 31 ms a frame).
            self.folded.to(memory_format=torch.channels_last)
            for module in self.search_options.values():
                module.to(memory_format=torch.channels_last)

    def track(self, x: torch.Tensor) -> dict:
        if self.net._kernels is None:
            raise RuntimeError("template() must be called before track()")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.folded.search(x, self.net._kernels, **self.search_options)


class SearchBranch(nn.Module):
    """The network's ``search`` (an :class:`HNSENet`'s with ``heads`` in place of its own,
    if given) as a module of tensors only, for export.

    forward(x (1, 3, I, I), *flat kernels (the network's ``flat_kernels``)) ->
    (score, centerness, ltrb, *levels[, embedding_features]).
    """

    def __init__(self, net, heads: nn.Module | None = None):
        super().__init__()
        self.net = net
        self.heads = heads  # a submodule, so that export sees its weights as parameters

    def forward(self, x: torch.Tensor, *kernels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        options = {} if self.heads is None else {"heads": self.heads}
        out = self.net.search(x, self.net.kernels_from_flat(list(kernels)), **options)
        outputs = (out["score"], out["centerness"], out["ltrb"], *out["levels"])
        if out["embedding_features"] is not None:
            outputs += (out["embedding_features"],)
        return outputs


def onnx_cache_dir() -> Path:
    """``$HNSE_CACHE_DIR`` or ``~/.cache/hnse-studio``, plus ``/onnx``."""
    root = os.environ.get(ONNX_CACHE_ENV) or Path.home() / ".cache" / "hnse-studio"
    return Path(root) / "onnx"


def _network_digest(net) -> str:
    """Hash of everything the exported graph depends on: weights, config, exporter."""
    digest = hashlib.sha256()
    digest.update(repr(config_to_dict(Config(network=net.config))["network"]).encode())
    digest.update(f"{torch.__version__} opset {ONNX_OPSET} {_EXPORT_FORMAT}".encode())
    digest.update(tensor_digest(net.state_dict()).encode())  # the weights file's own tensor hash
    return digest.hexdigest()[:24]


def export_onnx(net) -> bytes:
    """The search branch of ``net`` (an :class:`HNSENet`'s heads fused) as an ONNX model,
    the template kernels as inputs."""
def _onnx_bytes(module: nn.Module, args: tuple, **options) -> bytes:
    """``torch.onnx.export`` of ``module`` on ``args`` into memory, at :data:`ONNX_OPSET`."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The torch.export-based exporter needs onnxscript, which we do not depend on;
        # the TorchScript one handles these graphs exactly.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Tracing warns about shape checks turned constant; the shapes that vary are declared.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module.eval(), args, buffer, dynamo=False, opset_version=ONNX_OPSET, **options)
    return buffer.getvalue()


def _templated_copy(net):
    """A copy of ``net`` with a constant exemplar, and a constant search crop: the exporter
    switches the module it is given between modes and runs it, and the caller's exemplar
    must stay as it is."""
    net = copy.deepcopy(net).eval()
    z, x = _constant_images(net)
    net.template(z)
    return net, x


def export_onnx(net) -> bytes:
    """The search branch of ``net`` (an :class:`HNSENet`'s heads fused) as an ONNX model,
    the template kernels as inputs."""
    net, x = _templated_copy(net)
    flat = net.flat_kernels(net._kernels)
    heads = FusedHeads(net) if hasattr(net, "heads") else None
    with torch.no_grad():
        levels = len(net.search(x, net._kernels)["levels"])
    return _onnx_bytes(SearchBranch(net, heads), (x, *flat), input_names=["x", *_kernel_names(len(flat))],
                       output_names=_output_names(levels, net.embedding is not None), do_constant_folding=True)


def export_embedding_onnx(net) -> bytes:
    """``net``'s :class:`ExemplarDistance` as an ONNX model: inputs ``features`` (the
    search pass's ``embedding_features``), ``boxes`` (K, 4, any K) and ``exemplar``."""
    net, x = _templated_copy(net)
    with torch.no_grad():
        features = net.search(x, net._kernels)["embedding_features"]
    boxes = torch.tensor([[60.0, 60.0, 120.0, 150.0], [100.0, 90.0, 180.0, 160.0]], device=features.device)
    exemplar = torch.zeros(net.config.embed_channels, device=features.device)
    return _onnx_bytes(ExemplarDistance(net.embedding), (features, boxes, exemplar),
                       input_names=["features", "boxes", "exemplar"], output_names=["distance"],
                       dynamic_axes={"boxes": {0: "k"}, "distance": {0: "k"}})


ONNX_PARTS = {"search": export_onnx, "embedding": export_embedding_onnx}


def cached_onnx(net, cache_dir: Path | None = None, part: str = "search") -> bytes:
    """The export of ``part`` (:data:`ONNX_PARTS`) of ``net``, read from / written to the
    cache when possible.

    A cache that cannot be written (read-only home) only costs the export next time.
    """
    path = (cache_dir or onnx_cache_dir()) / f"{part}-{_network_digest(net)}.onnx"
    if path.is_file():
        return path.read_bytes()
    model = ONNX_PARTS[part](net)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(model)
        os.replace(tmp, path)
    except OSError:
        pass
    return model


class OnnxBackend:
    """The exported search branch on ONNX Runtime's CPU provider.

    ``threads`` (default: torch's thread count) sets ONNX Runtime's intra-op threads, so
    the backend uses the same cores torch would. ``exclusive``: this network is the only
    one the process runs at a time (the command line's track, eval, tune), so idle
    workers may spin for the next operator instead of sleeping.
    """

    name = "onnx"

    def __init__(self, net, threads: int | None = None, cache_dir: Path | None = None, exclusive: bool = False):
        import onnxruntime

        if net.grid.device.type != "cpu":
            raise InputError(f"the onnx backend runs on the CPU; the network is on {net.grid.device}")
        self.net = net
        threads = threads or torch.get_num_threads()

        def session(part: str, spinning: bool):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            return onnxruntime.InferenceSession(cached_onnx(net, cache_dir, part), options,
                                                providers=["CPUExecutionProvider"])

        # Each session has its own pool, and a spinning pool starves the next session's:
        # the application runs two models per frame (a pair of HNSE-Nano passes, 2 threads:
        # 13.4 ms spinning, 7.9 ms not), so workers sleep unless the network runs alone,
        # where spinning saves a wake-up per operator (one pass: 4.8 -> 3.7 ms).
        self.session = session("search", spinning=exclusive)
        # The HE embedding runs between search passes (on every inspected frame), so its
        # pool never spins: it would take the cores from the search session's (nano_he
        # inspecting, 2 threads: 19-26 ms a frame with it spinning, 10-12 without).
        self.embedding_session = None if net.embedding is None else session("embedding", spinning=False)
        self.output_names = [output.name for output in self.session.get_outputs()]
        self._kernels = None
        self._kernel_feeds: dict[str, np.ndarray] = {}

    def _feeds(self, kernels) -> dict[str, np.ndarray]:
        if kernels is not self._kernels:  # converted once per init, not once per frame
            flat = self.net.flat_kernels(kernels)
            self._kernel_feeds = {name: k.detach().cpu().numpy() for name, k in zip(_kernel_names(len(flat)), flat)}
            self._kernels = kernels
        return self._kernel_feeds

    def track(self, x: torch.Tensor) -> dict:
        kernels = self.net._kernels
        if kernels is None:
            raise RuntimeError("template() must be called before track()")
        feeds = {"x": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32), **self._feeds(kernels)}
        out = dict(zip(self.output_names, (torch.from_numpy(a) for a in self.session.run(None, feeds))))
        return {
            "score": out["score"],
            "centerness": out["centerness"],
            "ltrb": out["ltrb"],
            "levels": [out[name] for name in self.output_names if name.startswith("level")],
            "embedding_features": out.get("embedding_features"),
        }

    def embedding_distance(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        if self.embedding_session is None or self.net._exemplar_vector is None:
            raise RuntimeError("this network has no HE head or no exemplar box")
        feeds = {"features": np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32),
                 "boxes": np.ascontiguousarray(boxes.detach().cpu().numpy(), dtype=np.float32),
                 "exemplar": self.net._exemplar_vector.detach().cpu().numpy().astype(np.float32)}
        return torch.from_numpy(self.embedding_session.run(None, feeds)[0])


def make_backend(net, name: str = "eager", threads: int | None = None, exclusive: bool = False):
    """The backend called ``name`` (one of :data:`BACKENDS`, and of ``net.backends``) for ``net``;
    ``exclusive``: the process runs no other network meanwhile (see :class:`OnnxBackend`)."""
    if name in BACKENDS and name not in net.backends:
        raise InputError(f"the {name} backend cannot run {type(net).__name__} (it runs: {', '.join(net.backends)})")
    if name == "eager":
        return EagerBackend(net)
    if name == "torch":
        return TorchBackend(net)
    if name == "onnx":
        return OnnxBackend(net, threads, exclusive=exclusive)
    raise InputError(f"unknown inference backend {name!r} (expected one of {', '.join(BACKENDS)})")
