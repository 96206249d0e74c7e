"""The FCOS head of one level (Eq. 1, Fig. 3).

For each branch (classification, regression) the template and search features get
their own adjust convolution, then a depth-wise cross-correlation (DW-XCorr) matches
them; four convolutions (psi) follow. The classification tower ends in a 2-channel
score (background, foreground) and a 1x1 center-ness output; the regression tower in a
4-channel ltrb distance map, positive by construction (``stride * exp(scale * x)``).

Initialisation follows FCOS: tower and output convolutions N(0, 0.01) with zero bias,
except the score bias, set so the initial foreground probability is ``prior`` (0.01):
without it the focal loss of the many background cells swamps the first steps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def xcorr_depthwise(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depth-wise cross-correlation (DW-XCorr, SiamRPN++).

    search (B, C, Hx, Wx), kernel (B, C, Hz, Wz) -> (B, C, Hx-Hz+1, Wx-Wz+1): each
    channel of each sample correlated with its own template channel (a grouped conv).
    """
    batch, channels = kernel.shape[:2]
    out = F.conv2d(search.reshape(1, batch * channels, *search.shape[2:]),
                   kernel.reshape(batch * channels, 1, *kernel.shape[2:]), groups=batch * channels)
    return out.reshape(batch, channels, *out.shape[2:])


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _tower(channels: int, depth: int, separable: bool) -> nn.Sequential:
    """psi of Eq. 1: ``depth`` 3x3 convolutions with GroupNorm + ReLU (padded: size kept).

    ``separable`` uses depth-wise 3x3 + point-wise 1x1 for each, the CPU model's choice.
    """
    layers = []
    for _ in range(depth):
        if separable:
            layers += [nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                       nn.Conv2d(channels, channels, 1, bias=False)]
        else:
            layers.append(nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        layers += [nn.GroupNorm(min(32, channels // 4), channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """One level's head. ``template(z)`` -> kernels; ``forward(kernels, x)`` -> outputs.

    Shapes (S = score size): z (B, C, 7, 7) cropped template features; x (B, C, Hx, Wx)
    search features; outputs ``score`` (B, 2, S, S) logits, ``centerness`` (B, 1, S, S)
    logits, ``ltrb`` (B, 4, S, S) distances in instance pixels.
    """

    def __init__(self, in_channels: int, channels: int, tower_convs: int, separable: bool,
                 stride: int, prior: float, adjust_kernel: int = 1):
        super().__init__()
        self.stride = stride
        self.cls_template = _conv_bn_relu(in_channels, channels, adjust_kernel)
        self.cls_search = _conv_bn_relu(in_channels, channels, adjust_kernel)
        self.reg_template = _conv_bn_relu(in_channels, channels, adjust_kernel)
        self.reg_search = _conv_bn_relu(in_channels, channels, adjust_kernel)
        self.cls_tower = _tower(channels, tower_convs, separable)
        self.reg_tower = _tower(channels, tower_convs, separable)
        self.score = nn.Conv2d(channels, 2, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 1)
        self.ltrb = nn.Conv2d(channels, 4, 3, padding=1)
        self.ltrb_scale = nn.Parameter(torch.tensor(1.0))
        for module in [*self.cls_tower.modules(), *self.reg_tower.modules(), self.score, self.centerness, self.ltrb]:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Two-way softmax: foreground probability sigmoid(b1 - b0) = prior.
        nn.init.constant_(self.score.bias[1], -math.log((1 - prior) / prior))

    def template(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_template(z), self.reg_template(z)

    def forward(self, kernels: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        cls_kernel, reg_kernel = kernels
        cls = self.cls_tower(xcorr_depthwise(self.cls_search(x), cls_kernel))
        reg = self.reg_tower(xcorr_depthwise(self.reg_search(x), reg_kernel))
        ltrb = self.stride * torch.exp((self.ltrb_scale * self.ltrb(reg)).clamp(max=6.0))
        return {"score": self.score(cls), "centerness": self.centerness(cls), "ltrb": ltrb}
