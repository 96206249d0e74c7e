"""1x1 adjust neck (Sec. 3.1): every level to the same channel count, phi_i(z), phi_i(x)."""
from __future__ import annotations

import torch
from torch import nn


class AdjustNeck(nn.Module):
    """Per level a 1x1 convolution + BatchNorm to ``channels``.

    ``crop_template`` centre-crops template features to ``crop`` x ``crop`` cells
    (7x7 for the 127 exemplar), starting at ``crop_start`` (from ``derive_sizes``).
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int):
        super().__init__()
        self.adjust = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels)) for c in in_channels
        )

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        return [adjust(level) for adjust, level in zip(self.adjust, levels)]

    @staticmethod
    def crop_template(levels: list[torch.Tensor], crop_start: int, crop: int) -> list[torch.Tensor]:
        end = crop_start + crop
        return [level[:, :, crop_start:end, crop_start:end] for level in levels]
