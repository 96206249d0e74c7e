"""The tracking networks (Sec. 3.1-3.3): backbones, neck, heads, fusion, HE branch.

:func:`build_network` makes the network a :class:`~model.core.config.NetworkConfig` names:
:class:`HNSENet` (ResNet-50 or EfficientNet-Lite0, three levels at stride 8) or
:class:`HNSENanoNet` (NanoTrack v3's trunk and head, one level at stride 16).
"""
from dataclasses import replace
from pathlib import Path

import torch

from model.core.checkpoint import load_state_checked, read_checkpoint
from model.core.config import NetworkConfig, config_from_dict
from model.network.hnse import LEVELS, HNSENet
from model.network.hnse_nano import HNSENanoNet
from model.network.siamese import SiameseNetwork

NANO_BACKBONE = "nanotrack_v3"


def build_network(config: NetworkConfig) -> SiameseNetwork:
    return HNSENanoNet(config) if config.backbone == NANO_BACKBONE else HNSENet(config)


def load_network(path: str | Path, device: str | torch.device = "cpu"):
    """Build the network a weights file's config names and load its weights.

    Returns ``(net, config, payload)``. The backbone's pretrained initialisation is
    skipped (the file has the trained weights). Missing or unexpected keys and shape
    mismatches are refused with one line naming the file.
    """
    payload = read_checkpoint(path)
    config = config_from_dict(payload["config"], f"{path} (config)")
    config = replace(config, network=replace(config.network, pretrained=False, backbone_weights=None))
    net = build_network(config.network)
    load_state_checked(net, payload["state_dict"], path)
    return net.to(device).eval(), config, payload


__all__ = ["HNSENet", "HNSENanoNet", "LEVELS", "NANO_BACKBONE", "SiameseNetwork", "build_network", "load_network"]
