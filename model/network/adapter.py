"""Residual feature adapter: where HNSE-Nano's losses reach the features NanoTrack v3's
frozen head correlates.

In the paper the HE loss (Eq. 6) trains the backbone features that the correlation and
the heads use (Fig. 2): the RoI vectors are pooled from those same features, so pushing
hard negatives away from the exemplar vector reshapes what the score head sees. HNSE-Nano
keeps NanoTrack v3's trunk and head frozen (training them on our small data loses what
they learned on six large datasets), so without an adapter the HE branch learns alone and
cannot change the score. The adapter sits on the trunk output, shared by exemplar and
search: ``x + expand(relu(mix(reduce(x))))`` with ``expand`` initialised to zero, so the
starting network is exactly NanoTrack v3 and every change is learned by Eq. 8's losses.
"""
from __future__ import annotations

import torch
from torch import nn


class FeatureAdapter(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): 1x1 to ``hidden``, depth-wise 3x3 (padding 1), ReLU,
    1x1 back to C (zero-initialised), added to the input."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.mix = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.relu = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.relu(self.mix(self.reduce(x))))
