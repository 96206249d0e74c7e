"""Configuration as frozen dataclasses, YAML load/save, and the derived sizes.

Three parts, passed explicitly wherever they are needed (no global singleton):

* :class:`NetworkConfig` builds a network (:func:`model.network.build_network`);
* :class:`TrainConfig` drives :mod:`model.training.train` (Sec. 4.1 of the paper);
* :class:`TrackConfig` drives :class:`model.tracking.tracker.Tracker` (Sec. 3.5).

Sizes that follow from others (score-map size, the crop <-> score-map offset)
are computed once, by :func:`derive_sizes`, and never typed in anywhere else.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from model.core.errors import InputError


@dataclass(frozen=True)
class NetworkConfig:
    """The network of Sec. 3.1-3.3.

    ``backbone`` is ``"resnet50"`` (the paper's), ``"efficientnet_lite0"`` (the first CPU
    model) or ``"nanotrack_v3"`` (HNSE-Nano: NanoTrack v3's trunk and head with the
    paper's center-ness and HE branches, :class:`model.network.HNSENanoNet`; its
    ``backbone_weights`` is NanoTrack v3's weights file, loaded when ``pretrained``). ``separable_towers`` replaces each 3x3 tower convolution of
    the FCOS heads (Fig. 3) by a depth-wise 3x3 followed by a point-wise 1x1: the
    same receptive field at a fraction of the cost, which is what lets the CPU
    model run in real time. ``he_head`` adds the hard-negative-emphasis branch.
    ``adapter_channels`` > 0 puts a zero-initialised residual adapter of that width on
    HNSE-Nano's trunk output (:class:`model.network.adapter.FeatureAdapter`), the only
    trained path from the losses to the features its frozen head correlates.
    ``embed_tap``: HNSE-Nano's trunk block whose output joins the trunk output as the HE
    branch's input (7 in the shipped files; any block from 4 on is at stride 16).
    """

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    backbone_weights: str | None = None
    neck_channels: int = 64
    head_channels: int = 64
    tower_convs: int = 4
    separable_towers: bool = True
    exemplar_size: int = 127
    instance_size: int = 255
    stride: int = 8
    template_feature_crop: int = 7
    xcorr_padding: int = 0
    score_prior: float = 0.01
    he_head: bool = True
    embed_channels: int = 128
    roi_size: int = 5
    embed_tap: int = 7
    adapter_channels: int = 0


LABEL_ASSIGNMENTS = ("box", "ellipse")
CENTERNESS_CELLS = ("positive", "all", "hard_negative")


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule and loss weights (Sec. 3.4, 4.1; Eq. 8).

    The paper's values are the defaults; ``lambda_contra = 0`` gives the model
    "without HE". ``lambda_distill`` > 0 (beyond the paper; HNSE-Nano with an adapter)
    adds the KL divergence of the score map from the frozen NanoTrack v3's and the IoU
    loss (Eq. 7) of the boxes against v3's at the positive cells, so that what
    the adapter learns from our data does not unlearn what six datasets taught.
    ``num_rois`` is k positives + k hard negatives + the ground truth.
    ``frozen`` names top-level modules never trained (HNSE-Nano keeps NanoTrack v3's
    trained ``ban_head``); the backbone follows ``unfreeze_epoch``. ``validation`` names
    whole training sequences held out of training, on which steps and tracking settings
    are chosen (``main.py tune --validation``); every ``validate_every`` steps (0: never)
    training tracks them with the current weights, logs the success AUC
    (``validation.csv``), from step 0 on, and keeps those weights (``weights_step<N>.pt``).
    ``label_assignment`` is ``"box"`` (the paper's Eq. 2: every cell inside the ground
    truth is positive) or ``"ellipse"`` (the labels NanoTrack v3's head was trained with,
    :func:`model.network.targets.assign_targets`), for fine-tuning that head's features.
    ``centerness_cells`` is ``"positive"`` (the BCE of Sec. 3.4 over the positive cells, as
    FCOS trains it) or ``"all"`` (Eq. 4 read literally: every other cell's target is 0, so
    the branch also learns to damp the cells off the target, look-alikes' included) or
    ``"hard_negative"`` (the positive cells and the hard negatives: cells off the target,
    their box under ``iou_low`` with it, scoring at least half the pair's best score).
    ``shared_colour_change``: the exemplar and search crops of a pair get the same colour
    gains and brightness (and greyscale) change, not one each, so the colour of the target
    against its look-alikes, which the HE branch (Eq. 6) could learn from, is kept.
    """

    epochs: int = 20
    steps_per_epoch: int = 600
    batch_size: int = 28
    base_lr: float = 5e-3
    final_lr: float = 5e-4
    warmup_lr: float = 1e-3
    warmup_epochs: int = 5
    unfreeze_epoch: int = 10
    backbone_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    lambda_score: float = 1.0
    lambda_centerness: float = 1.0
    lambda_reg: float = 1.0
    lambda_contra: float = 0.1
    lambda_distill: float = 0.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    contrastive_margin: float = 2.0
    num_rois: int = 11
    nms_threshold: float = 0.7
    iou_high: float = 0.8
    iou_low: float = 0.3
    candidate_pre_nms: int = 64
    seed: int = 1
    num_workers: int = 1
    video_frame_range: int = 100
    translation: float = 64.0
    scale_jitter: float = 0.18
    color_jitter: float = 0.2
    blur_prob: float = 0.1
    gray_prob: float = 0.05
    shared_colour_change: bool = False
    context_amount: float = 0.5
    log_every: int = 20
    checkpoint_minutes: float = 5.0
    frozen: tuple[str, ...] = ()
    validation: tuple[str, ...] = ()
    validate_every: int = 0
    datasets: tuple[dict, ...] = ()
    label_assignment: str = "box"
    centerness_cells: str = "positive"


@dataclass(frozen=True)
class TrackConfig:
    """Online tracking hyper-parameters (Sec. 3.5, Eq. 10-11).

    Tuned on a validation split of the training sequences (never on the test
    sequences); the chosen values travel inside the weights file. ``hardneg_iou`` is
    T_l, ``positive_iou`` is T_h. The fused score is multiplied by center-ness to the
    power ``centerness_weight`` (1: the paper; 0: center-ness off). ``he_rerank`` > 0
    re-ranks the ``he_candidates`` best cells (those within ``he_min_ratio`` of the best)
    by their HE embedding distance to the exemplar (beyond the paper; see
    :meth:`model.tracking.tracker.Tracker._rerank`);
    ``he_margin`` is the contrastive margin m the HE branch was trained with (Eq. 6).
    ``colour_rerank`` > 0 re-ranks the same candidates by the colour histogram of their
    box against the exemplar box's as well (beyond the paper; off in the shipped files).
    ``motion_prediction`` > 0 centres each frame's search crop, and so its cosine window,
    that fraction of the target's smoothed per-frame velocity ahead of its last position
    (beyond the paper, which centres on the last position: 0); it helps on video with
    large motion between frames (a low frame rate, skipped frames), not at common rates.
    """

    penalty_k: float = 0.04
    window_influence: float = 0.42
    size_lr: float = 0.33
    context_amount: float = 0.5
    top_k: int = 8
    nms_threshold: float = 0.7
    hardneg_iou: float = 0.3
    positive_iou: float = 0.8
    min_size: float = 4.0
    centerness_weight: float = 1.0
    he_rerank: float = 0.0
    he_candidates: int = 16
    he_min_ratio: float = 0.5
    he_margin: float = 2.0
    motion_prediction: float = 0.0
    colour_rerank: float = 0.0


@dataclass(frozen=True)
class Config:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    track: TrackConfig = field(default_factory=TrackConfig)


@dataclass(frozen=True)
class Sizes:
    """Sizes derived from a :class:`NetworkConfig` (see :func:`derive_sizes`)."""

    template_feature: int
    search_feature: int
    crop_start: int
    score_size: int
    offset: float
    stride: int


def derive_sizes(net: NetworkConfig) -> Sizes:
    """Score-map size and the crop <-> score-map mapping, from the network's geometry.

    The backbone's stride-2 layers are "same"-padded, so an input of ``n`` pixels gives
    ``ceil(n / stride)`` cells, cell ``j`` centred on pixel ``stride * j``. The template
    features are centre-cropped to ``template_feature_crop`` cells starting at
    ``crop_start``; the depth-wise cross-correlation pads the search features by
    ``xcorr_padding`` cells (0: a valid convolution; NanoTrack v3 pads by 1) and the
    head's 3x3 towers are padded, so the score map has
    ``search_feature + 2 * xcorr_padding - template_feature_crop + 1`` cells.

    Eq. 2 of the paper maps score cell x to ``floor(s/2) + s*x`` in the instance; with
    the valid correlation the map starts further in, and a target centred in the
    exemplar matches score cell x when it sits at ``offset + s*x`` with
    ``offset = (exemplar_size - 1)/2 - stride * (crop_start + xcorr_padding)``.
    """
    if net.exemplar_size <= 0 or net.instance_size <= net.exemplar_size or net.stride <= 0:
        raise InputError(
            f"network sizes must satisfy 0 < exemplar_size < instance_size and stride > 0, got "
            f"{net.exemplar_size}, {net.instance_size}, {net.stride}"
        )
    template_feature = math.ceil(net.exemplar_size / net.stride)
    search_feature = math.ceil(net.instance_size / net.stride)
    crop = net.template_feature_crop
    if not 0 < crop <= template_feature:
        raise InputError(f"template_feature_crop {crop} must lie in 1..{template_feature}")
    if net.xcorr_padding < 0:
        raise InputError(f"xcorr_padding must be >= 0, got {net.xcorr_padding}")
    crop_start = (template_feature - crop) // 2
    score_size = search_feature + 2 * net.xcorr_padding - crop + 1
    offset = (net.exemplar_size - 1) / 2 - net.stride * (crop_start + net.xcorr_padding)
    return Sizes(template_feature, search_feature, crop_start, score_size, offset, net.stride)


# --- YAML ---------------------------------------------------------------------------


def _check_value(value, annotation, where: str):
    """Return ``value`` converted to ``annotation`` or raise InputError naming ``where``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except InputError:
                pass
        raise InputError(f"{where}: expected {annotation}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        return tuple(_check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected a string, got {value!r}")
        return value
    raise InputError(f"{where}: unsupported type {annotation}")


def _from_dict(cls, data, where: str):
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - names))  # YAML keys may be numbers: sort them as text
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _from_dict(annotation, value, f"{where}.{name}")
        else:
            kwargs[name] = _check_value(value, annotation, f"{where}.{name}")
    return cls(**kwargs)


def config_from_dict(data: dict, source: str = "config") -> Config:
    """Build a :class:`Config` from nested plain data, rejecting unknown keys and wrong types."""
    # only an empty document means the defaults: a YAML `0` or `[]` is refused, not read as {}
    config = _from_dict(Config, {} if data is None else data, source)
    if config.train.label_assignment not in LABEL_ASSIGNMENTS:
        raise InputError(f"{source}: train.label_assignment must be one of {', '.join(LABEL_ASSIGNMENTS)}, "
                         f"got {config.train.label_assignment!r}")
    if config.train.centerness_cells not in CENTERNESS_CELLS:
        raise InputError(f"{source}: train.centerness_cells must be one of {', '.join(CENTERNESS_CELLS)}, "
                         f"got {config.train.centerness_cells!r}")
    try:
        derive_sizes(config.network)
    except InputError as error:
        raise InputError(f"{source}: {error}") from None
    return config


def config_to_dict(config: Config) -> dict:
    """Nested plain data (lists for tuples) that :func:`config_from_dict` reads back."""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def load_config(path: str | Path) -> Config:
    """Read a YAML config; every error names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read config ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (not UTF-8)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}:{line} not valid YAML") from None
    except RecursionError:  # thousands of nested brackets exhaust PyYAML's recursive parser
        raise InputError(f"{path}: not valid YAML (nested too deeply)") from None
    return config_from_dict(data if data is not None else {}, str(path))


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
