"""The HNSE network (Sec. 3.1-3.3): backbones, neck, FCOS heads, fusion, HE branch."""
from model.network.hnse import LEVELS, HNSENet

__all__ = ["HNSENet", "LEVELS"]
