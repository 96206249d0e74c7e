"""The three levels' FCOS heads (Eq. 1, Fig. 3) as one stack of grouped convolutions.

Per frame, :class:`~model.network.HNSENet` runs three heads of two branches each, every
branch a short chain of small convolutions: on the CPU model most of their time is the
per-operator overhead, not arithmetic. The six branches have the same structure and
their inputs the same spatial size (all levels have stride 8), so each step of all six
is one grouped convolution over the six branches' channels side by side:

    channels  [level2 cls | level2 reg | level3 cls | level3 reg | level4 cls | level4 reg]

* the adjust convolutions (``cls_search``, ``reg_search``) read the three levels
  concatenated, in 3 groups of 2 x head_channels outputs;
* the depth-wise cross-correlation takes the six template kernels concatenated;
* every tower convolution becomes one with 6x its groups; every GroupNorm one with 6x
  its groups (GroupNorm groups are runs of adjacent channels, so side by side they
  normalise exactly the channels they did apart);
* the output convolutions become one 3x3 convolution in 6 groups of 4 channels: a cls
  group gives (score background, score foreground, center-ness, unused), with the 1x1
  center-ness weights at the centre tap of a 3x3 kernel; a reg group gives the 4 ltrb.

The same arithmetic in 6x fewer operators: :meth:`FusedHeads.forward` returns what
:meth:`HNSENet._heads` returns, to float rounding. Built from a network with its
BatchNorms folded or not, for inference only (no gradients are meant to flow).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.network.head import xcorr_depthwise

BRANCHES = ("cls", "reg")
OUT_PER_BRANCH = 4


def folded_conv(conv: nn.Conv2d, norm: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``conv`` followed by the eval-mode BatchNorm ``norm`` (or by
    nothing / an Identity): ``W * g / sqrt(v + eps)``, ``(b - m) * g / sqrt(v + eps) + beta``."""
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(weight.shape[0])
    if not isinstance(norm, nn.BatchNorm2d):
        return weight, bias
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    return weight * scale.view(-1, 1, 1, 1), (bias - norm.running_mean) * scale + norm.bias.detach()


def _grouped(convs: list[nn.Conv2d], in_channels: int, groups: int, weight_bias=None) -> nn.Conv2d:
    """One convolution doing ``convs`` side by side, their outputs concatenated; the
    (weight, bias) pairs ``weight_bias`` replace the convolutions' own."""
    first = convs[0]
    pairs = weight_bias or [(c.weight.detach(), None if c.bias is None else c.bias.detach()) for c in convs]
    weights, biases = zip(*pairs)
    fused = nn.Conv2d(in_channels, sum(c.out_channels for c in convs), first.kernel_size, first.stride,
                      first.padding, first.dilation, groups=groups, bias=biases[0] is not None)
    fused.weight.data.copy_(torch.cat(weights))
    if biases[0] is not None:
        fused.bias.data.copy_(torch.cat(biases))
    return fused


class FusedHeads(nn.Module):
    """:meth:`HNSENet._heads` as grouped convolutions (see the module docstring).

    ``forward(kernels, levels)``: kernels [(cls, reg)] per level (1, B, k, k); levels
    [(1, C, H, W)] * 3 -> (per-level dicts of ``score`` (1, 2, S, S), ``centerness``
    (1, 1, S, S), ``ltrb`` (1, 4, S, S)), and their fusion (Eq. 9).
    """

    def __init__(self, net):
        super().__init__()
        heads = list(net.heads)
        self.levels = len(heads)
        self.fusion = net.fusion
        self.stride = heads[0].stride
        self.register_buffer("ltrb_scale", torch.stack([h.ltrb_scale.detach() for h in heads]).clone())
        branches = [(getattr(h, f"{name}_search"), getattr(h, f"{name}_tower")) for h in heads for name in BRANCHES]
        # Each level's features feed its cls and reg adjust: one group per level.
        self.adjust = _grouped([seq[0] for seq, _ in branches], sum(h.cls_search[0].in_channels for h in heads),
                               self.levels, [folded_conv(seq[0], seq[1]) for seq, _ in branches])
        self.tower = nn.Sequential(*(self._fused_step([tower[i] for _, tower in branches])
                                     for i in range(len(branches[0][1]))))
        self.out = self._output_conv(heads)

    @staticmethod
    def _fused_step(modules: list[nn.Module]) -> nn.Module:
        first = modules[0]
        if isinstance(first, nn.Conv2d):
            return _grouped(modules, sum(m.in_channels for m in modules), first.groups * len(modules))
        if isinstance(first, nn.GroupNorm):
            norm = nn.GroupNorm(first.num_groups * len(modules), first.num_channels * len(modules), first.eps)
            norm.weight.data.copy_(torch.cat([m.weight.detach() for m in modules]))
            norm.bias.data.copy_(torch.cat([m.bias.detach() for m in modules]))
            return norm
        if isinstance(first, nn.ReLU):
            return nn.ReLU()
        raise ValueError(f"cannot fuse a tower step of type {type(first).__name__}")

    @staticmethod
    def _output_conv(heads) -> nn.Conv2d:
        channels = heads[0].score.in_channels
        for head in heads:
            if head.score.kernel_size != (3, 3) or head.ltrb.kernel_size != (3, 3) \
                    or head.centerness.kernel_size != (1, 1) or head.score.padding != (1, 1):
                raise ValueError("FusedHeads expects 3x3 score/ltrb and 1x1 center-ness outputs")
        weight = torch.zeros(len(heads) * 2 * OUT_PER_BRANCH, channels, 3, 3)
        bias = torch.zeros(len(heads) * 2 * OUT_PER_BRANCH)
        for level, head in enumerate(heads):
            cls, reg = 2 * level * OUT_PER_BRANCH, (2 * level + 1) * OUT_PER_BRANCH
            weight[cls:cls + 2] = head.score.weight.detach()
            weight[cls + 2, :, 1, 1] = head.centerness.weight.detach()[0, :, 0, 0]
            weight[reg:reg + 4] = head.ltrb.weight.detach()
            bias[cls:cls + 2] = head.score.bias.detach()
            bias[cls + 2] = head.centerness.bias.detach()[0]
            bias[reg:reg + 4] = head.ltrb.bias.detach()
        out = nn.Conv2d(channels * 2 * len(heads), len(bias), 3, padding=1, groups=2 * len(heads))
        out.weight.data.copy_(weight)
        out.bias.data.copy_(bias)
        return out

    def forward(self, kernels: list, levels: list[torch.Tensor]):
        kernel = torch.cat([k for pair in kernels for k in pair], dim=1)
        x = F.relu(self.adjust(torch.cat(levels, dim=1)))
        out = self.out(self.tower(xcorr_depthwise(x, kernel)))
        per_level = []
        for level in range(self.levels):
            cls = out[:, 2 * level * OUT_PER_BRANCH:]
            reg = out[:, (2 * level + 1) * OUT_PER_BRANCH:(2 * level + 2) * OUT_PER_BRANCH]
            ltrb = self.stride * torch.exp((self.ltrb_scale[level] * reg).clamp(max=6.0))
            per_level.append({"score": cls[:, :2], "centerness": cls[:, 2:3], "ltrb": ltrb})
        return per_level, self.fusion(per_level)
