"""Weighted fusion of the three levels' outputs (Eq. 9)."""
from __future__ import annotations

import torch
from torch import nn

FUSED_OUTPUTS = ("score", "centerness", "ltrb")


class LevelFusion(nn.Module):
    """S = sum_i w_i^s s_i, C = sum_i w_i^c c_i, R = sum_i w_i^r r_i (Eq. 9).

    One trainable weight per level and output, softmax-normalised over the levels so the
    fused maps stay on the levels' scale; initialised equal (1/3 each). Score and
    center-ness are fused as logits, before their softmax / sigmoid.
    """

    def __init__(self, levels: int = 3):
        super().__init__()
        self.logits = nn.ParameterDict({name: nn.Parameter(torch.zeros(levels)) for name in FUSED_OUTPUTS})

    def weights(self, name: str) -> torch.Tensor:
        return torch.softmax(self.logits[name], dim=0)

    def forward(self, per_level: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        fused = {}
        for name in FUSED_OUTPUTS:
            w = self.weights(name)
            fused[name] = sum(w[i] * level[name] for i, level in enumerate(per_level))
        return fused
