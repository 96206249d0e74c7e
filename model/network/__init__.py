"""The tracking networks (Sec. 3.1-3.3): backbones, neck, heads, fusion, HE branch.

:func:`build_network` makes the network a :class:`~model.config.NetworkConfig` names:
:class:`HNSENet` (ResNet-50 or EfficientNet-Lite0, three levels at stride 8) or
:class:`HNSENanoNet` (NanoTrack v3's trunk and head, one level at stride 16).
"""
from model.config import NetworkConfig
from model.network.hnse import LEVELS, HNSENet
from model.network.hnse_nano import HNSENanoNet
from model.network.siamese import SiameseNetwork

NANO_BACKBONE = "nanotrack_v3"


def build_network(config: NetworkConfig) -> SiameseNetwork:
    return HNSENanoNet(config) if config.backbone == NANO_BACKBONE else HNSENet(config)


__all__ = ["HNSENet", "HNSENanoNet", "LEVELS", "NANO_BACKBONE", "SiameseNetwork", "build_network"]
