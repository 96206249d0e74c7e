"""NanoTrack v3's network, written as our own modules with its parameter names.

NanoTrack v3 (Apache-2.0, github.com/HonglinChu/SiamTrackers) was trained by its
authors on six large tracking and detection datasets; its weights file
(``shared/data/baselines/nanotrack_v3/nanotrack_v3.pt``) loads into these modules
strictly (:func:`load_nanotrack_v3`). Two parts:

* :class:`MobileNetV3Trunk`: MobileNetV3-small with a ninth block of 96 channels at
  stride 1, so the output stride is 16. Input (B, 3, H, W) raw BGR 0..255 (no
  normalisation, as trained) -> (B, 96, ceil(H/16), ceil(W/16)); every stride-2 layer is
  "same"-padded, so cell j is centred on input pixel 16 j.
* :class:`BANHead`: two correlations per branch (classification, regression) between the
  exemplar features z (B, 96, 8, 8) and the search features x (B, 96, 16, 16): a
  depth-wise correlation of the central 4x4 of z, padded by 1 (-> 15x15), and a
  pixel-wise correlation with all 64 cells of z, channel attention and a 2x2 depth-wise
  convolution (-> 15x15). Concatenated, reduced by a 1x1 convolution, then a tower of six
  separable blocks; ``cls_logits`` gives 2-channel scores, ``bbox_pred`` ltrb distances
  as ``exp(.)`` (in instance pixels). The template side (:meth:`BANHead.template`) is
  computed once per exemplar.

The sizes (score map 15, cell i at crop pixel 15 + 16 i) follow from these by
:func:`model.core.config.derive_sizes` with stride 16, a 4-cell template crop and a
correlation padding of 1.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from model.core.checkpoint import load_torch_file
from model.core.errors import InputError

TRUNK_CHANNELS = 96
PIXELWISE_CHANNELS = 64  # = 8 x 8 exemplar cells: one channel per exemplar position
TOWER_BLOCKS = 6

# MobileNetV3-small as NanoTrack v3 builds it, one row per inverted-residual block:
# (kernel, hidden channels, output channels, squeeze-excite, hard-swish, stride).
# The ninth block (96 channels) runs at stride 1 instead of 2 (output stride 16).
_BLOCKS = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 1),
)
STEM_CHANNELS = 16


def _se_hidden(channels: int) -> int:
    """channels / 4 rounded to a multiple of 8 (at least 8), as MobileNetV3's SE."""
    value = channels // 4
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """Channel gating: global average -> Linear -> ReLU -> Linear -> hard sigmoid (``fc``)."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = _se_hidden(channels)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class InvertedResidual(nn.Module):
    """MobileNetV3 block (``conv`` indices as in the weights file).

    Without expansion (hidden == in): depth-wise, BN, act, SE, point-wise, BN.
    With expansion: point-wise, BN, act, depth-wise, BN, SE, act, point-wise, BN.
    The residual is added when the stride is 1 and the channel count is kept.
    """

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, use_se: bool, hard_swish: bool, stride: int):
        super().__init__()

        def act():
            return nn.Hardswish() if hard_swish else nn.ReLU(inplace=True)

        se = SqueezeExcite(hidden) if use_se else nn.Identity()
        depthwise = nn.Conv2d(hidden, hidden, kernel, stride, (kernel - 1) // 2, groups=hidden, bias=False)
        if cin == hidden:
            layers = [depthwise, nn.BatchNorm2d(hidden), act(), se,
                      nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        else:
            layers = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
                      depthwise, nn.BatchNorm2d(hidden), se, act(),
                      nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV3Trunk(nn.Module):
    """NanoTrack v3's trunk: ``features.0`` (stem) ... ``features.9``; output stride 16.

    ``forward(x)`` -> (B, 96, ceil(H/16), ceil(W/16)); ``forward(x, taps)`` also returns
    the outputs of the blocks whose indices are in ``taps`` (list, in index order).
    """

    out_channels = TRUNK_CHANNELS
    stride = 16

    def __init__(self):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False), nn.BatchNorm2d(STEM_CHANNELS),
                                nn.Hardswish())]
        cin = STEM_CHANNELS
        for kernel, hidden, cout, use_se, hard_swish, stride in _BLOCKS:
            layers.append(InvertedResidual(cin, hidden, cout, kernel, use_se, hard_swish, stride))
            cin = cout
        self.features = nn.Sequential(*layers)

    def block_channels(self, index: int) -> int:
        return STEM_CHANNELS if index == 0 else _BLOCKS[index - 1][2]

    def forward(self, x: torch.Tensor, taps: tuple[int, ...] = ()):
        tapped = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                tapped.append(x)
        return (x, tapped) if taps else x

    def trainable_blocks(self, first: int = 8) -> list[nn.Module]:
        """The last blocks (from ``features.first``), the ones a fine-tune may unfreeze."""
        return list(self.features[first:])


# --- head -------------------------------------------------------------------------------

def _pointwise_bn(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))


def xcorr_depthwise_padded(search: torch.Tensor, kernel: torch.Tensor, padding: int) -> torch.Tensor:
    """Depth-wise cross-correlation, zero-padded: (B, C, Hx, Wx) * (B, C, k, k) ->
    (B, C, Hx + 2p - k + 1, ...)."""
    batch, channels = kernel.shape[:2]
    out = nn.functional.conv2d(search.reshape(1, batch * channels, *search.shape[2:]),
                               kernel.reshape(batch * channels, 1, *kernel.shape[2:]), padding=padding,
                               groups=batch * channels)
    return out.reshape(batch, channels, *out.shape[2:])


def xcorr_pixelwise(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Pixel-wise correlation: every exemplar cell's feature vector dotted with every
    search cell's. search (B, C, H, W), kernel (B, C, h, w) -> (B, h*w, H, W)."""
    batch, channels, height, width = search.shape
    return torch.bmm(kernel.flatten(2).transpose(1, 2), search.flatten(2)).reshape(batch, -1, height, width)


class DepthwiseCorrelation(nn.Module):
    """1x1 conv + BN on each side, then a depth-wise correlation padded by 1."""

    padding = 1

    def __init__(self, channels: int):
        super().__init__()
        self.conv_kernel = _pointwise_bn(channels)
        self.conv_search = _pointwise_bn(channels)

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return xcorr_depthwise_padded(self.conv_search(search), kernel, self.padding)


class ChannelAttention(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean(x))))), the 1x1 convolutions ``fc1``, ``fc2``."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class PixelwiseCorrelation(nn.Module):
    """1x1 conv + BN on each side, pixel-wise correlation, channel attention (``CA_layer``),
    then a 2x2 depth-wise + 1x1 block (``conv``) that takes 16x16 to 15x15."""

    def __init__(self, channels: int, positions: int = PIXELWISE_CHANNELS):
        super().__init__()
        self.CA_layer = ChannelAttention(positions)
        self.conv_kernel = _pointwise_bn(channels)
        self.conv_search = _pointwise_bn(channels)
        self.conv = nn.Sequential(
            nn.Conv2d(positions, positions, 2, groups=positions, bias=False), nn.BatchNorm2d(positions),
            nn.ReLU6(inplace=True), nn.Conv2d(positions, positions, 1), nn.BatchNorm2d(positions))

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.conv(self.CA_layer(xcorr_pixelwise(self.conv_search(search), kernel)))


def _separable_tower(channels: int, blocks: int) -> nn.Sequential:
    layers = []
    for _ in range(blocks):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                   nn.BatchNorm2d(channels), nn.ReLU6(inplace=True),
                   nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels)]
    return nn.Sequential(*layers)


class BANHead(nn.Module):
    """NanoTrack v3's ``DepthwiseBAN`` head (parameter names as ``ban_head.*`` of the file).

    ``template(z)`` -> kernels (z (B, 96, 8, 8); the depth-wise branches use its central
    ``crop`` x ``crop`` cells starting at ``crop_start``); ``forward(kernels, x)`` with x
    (B, 96, 16, 16) -> ``cls_features`` (B, 96, 15, 15) the classification tower's output,
    ``score`` (B, 2, 15, 15) logits, ``ltrb`` (B, 4, 15, 15) distances, exp(bbox_pred).
    """

    def __init__(self, channels: int = TRUNK_CHANNELS, crop_start: int = 2, crop: int = 4):
        super().__init__()
        self.crop_start, self.crop = crop_start, crop
        self.corr_dw_reg = DepthwiseCorrelation(channels)
        self.corr_pw_reg = PixelwiseCorrelation(channels)
        self.corr_dw_cls = DepthwiseCorrelation(channels)
        self.corr_pw_cls = PixelwiseCorrelation(channels)
        self.cls_tower = _separable_tower(channels, TOWER_BLOCKS)
        self.bbox_tower = _separable_tower(channels, TOWER_BLOCKS)
        self.cls_logits = nn.Sequential(nn.Conv2d(channels, 2, 1))
        self.bbox_pred = nn.Sequential(nn.Conv2d(channels, 4, 1))
        self.down_reg = nn.Sequential(nn.Conv2d(channels + PIXELWISE_CHANNELS, channels, 1))
        self.down_cls = nn.Sequential(nn.Conv2d(channels + PIXELWISE_CHANNELS, channels, 1))

    def template(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Exemplar-side kernels: (dw cls, dw reg) (B, 96, 4, 4) and (pw cls, pw reg) (B, 96, 8, 8)."""
        end = self.crop_start + self.crop
        central = z[:, :, self.crop_start:end, self.crop_start:end]
        return (self.corr_dw_cls.conv_kernel(central), self.corr_dw_reg.conv_kernel(central),
                self.corr_pw_cls.conv_kernel(z), self.corr_pw_reg.conv_kernel(z))

    def forward(self, kernels: tuple[torch.Tensor, ...], x: torch.Tensor) -> dict[str, torch.Tensor]:
        dw_cls, dw_reg, pw_cls, pw_reg = kernels
        cls = self.down_cls(torch.cat([self.corr_pw_cls(pw_cls, x), self.corr_dw_cls(dw_cls, x)], dim=1))
        reg = self.down_reg(torch.cat([self.corr_pw_reg(pw_reg, x), self.corr_dw_reg(dw_reg, x)], dim=1))
        cls_features = self.cls_tower(cls)
        return {"cls_features": cls_features, "score": self.cls_logits(cls_features),
                "ltrb": torch.exp(self.bbox_pred(self.bbox_tower(reg)))}


# --- the weights file -------------------------------------------------------------------

# Tensors of the file that v3's model never calls (its template()/track() go from the
# trunk straight to the head): accepted and ignored, nothing else is.
UNUSED_PREFIXES = ("neck.",)


def read_nanotrack_v3(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of ``nanotrack_v3.pt``, with a one-line error on a bad file."""
    state = load_torch_file(path, "NanoTrack v3 weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a NanoTrack v3 state dict")
    return state


def load_nanotrack_v3(trunk: MobileNetV3Trunk, head: BANHead, path: str | Path) -> None:
    """Load ``backbone.*`` into ``trunk`` and ``ban_head.*`` into ``head``, strictly: every
    parameter and buffer must be in the file with its shape, and the file may hold nothing
    else but the unused ``neck.*``."""
    state = read_nanotrack_v3(path)
    parts = {"backbone.": trunk, "ban_head.": head}
    unknown = sorted(k for k in state if not k.startswith(tuple(parts) + UNUSED_PREFIXES))
    if unknown:
        raise InputError(f"{path}: unexpected tensors for NanoTrack v3, e.g. {unknown[0]} ({len(unknown)} in all)")
    for prefix, module in parts.items():
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own, strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
            raise InputError(f"{path}: does not fit NanoTrack v3's {prefix.rstrip('.')} ({first})") from None


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "baselines" / "nanotrack_v3" / \
    "nanotrack_v3.pt"
