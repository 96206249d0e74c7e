"""HNSE-Nano: the paper's tracker (Fig. 2) built on NanoTrack v3's trained network.

NanoTrack v3's trunk and head (:mod:`model.network.nanotrack`) give the 2-channel score
and the ltrb regression, as trained by its authors on six large datasets; this module
adds what the paper adds to a Siamese tracker:

* a **center-ness** branch (Sec. 3.2, Eq. 4-5): a 1x1 convolution on the classification
  tower's features, initialised to a constant (weight 0, bias ``logit(CENTERNESS_START)``,
  0.98 everywhere) so that the starting model tracks like NanoTrack v3;
* the **HE** branch (Sec. 3.3, Eq. 6): RoI Align 5x5 on Cat(trunk block ``embed_tap`` (7), trunk output)
  (48 + 96 channels, both at stride 16) and two convolutions -> a vector per RoI;
* optionally (``adapter_channels``) a zero-initialised residual adapter on the trunk
  output (:mod:`model.network.adapter`), through which the losses, Eq. 6 included,
  reshape the features the frozen head correlates, as the paper's HE loss does to its
  backbone.

There is one level (the trunk's output, stride 16), so the fusion of Eq. 9 has nothing
to weigh: the "fused" maps are that level's. Sizes: exemplar 127 -> 8x8 features,
search 255 -> 16x16, score map 15x15 (:func:`model.core.config.derive_sizes` with
``stride: 16``, ``template_feature_crop: 4``, ``xcorr_padding: 1``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from model.core.config import NetworkConfig, derive_sizes
from model.core.errors import InputError
from model.core.geometry import score_grid
from model.network.adapter import FeatureAdapter
from model.network.hard_negative import EmbeddingHead
from model.network.nanotrack import BANHead, MobileNetV3Trunk, load_nanotrack_v3
from model.network.siamese import SiameseNetwork

CENTERNESS_START = 0.98


class HNSENanoNet(SiameseNetwork):
    """NanoTrack v3 + center-ness + HE branch. Parameter names: ``backbone.*`` and
    ``ban_head.*`` as in NanoTrack v3's file, ``centerness.*``, ``embedding.*``,
    ``adapter.*``.

    Image tensors are (B, 3, H, W) float BGR in 0..255 (no normalisation, as trained).
    """

    backends = ("eager", "torch", "onnx")
    cpu_backend = "onnx"  # ONNX Runtime runs the MobileNetV3 trunk 3-4x faster than torch here (BENCHMARKS.md)

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.sizes = derive_sizes(config)
        trunk = MobileNetV3Trunk()
        if (config.stride, self.sizes.template_feature) != (trunk.stride, 8) or self.sizes.score_size != 15:
            raise InputError("nanotrack_v3 needs stride 16, a 127 exemplar, a 255 instance, template_feature_crop 4 "
                             "and xcorr_padding 1 (its pixel-wise branch fixes the 8x8 -> 15x15 geometry)")
        self.backbone = trunk
        self.adapter = (FeatureAdapter(trunk.out_channels, config.adapter_channels)
                        if config.adapter_channels > 0 else None)
        self.ban_head = BANHead(trunk.out_channels, self.sizes.crop_start, config.template_feature_crop)
        self.centerness = nn.Conv2d(trunk.out_channels, 1, 1)
        nn.init.zeros_(self.centerness.weight)
        nn.init.constant_(self.centerness.bias, math.log(CENTERNESS_START / (1 - CENTERNESS_START)))
        embed_in = trunk.block_channels(config.embed_tap) + trunk.out_channels
        self.embedding = (EmbeddingHead(embed_in, config.embed_channels, config.roi_size, config.stride)
                          if config.he_head else None)
        self.register_buffer("grid", score_grid(self.sizes.score_size, self.sizes.offset, config.stride),
                             persistent=False)
        if config.pretrained and config.backbone_weights:
            load_nanotrack_v3(self.backbone, self.ban_head, config.backbone_weights)

    def _trunk(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Trunk output (B, 96, ceil(H/16), ...) and, with an HE head, block ``embed_tap``'s."""
        frozen = not any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            if self.embedding is None:
                return self.backbone(images), None
            out, (tap,) = self.backbone(images, taps=(self.config.embed_tap,))
            return out, tap

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Trunk output, through the adapter when there is one, and, with an HE head,
        Cat(block ``embed_tap``, that output)."""
        return self._adapted(*self._trunk(images))

    def _adapted(self, out: torch.Tensor, tap: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.adapter is not None:
            out = self.adapter(out)
        return out, None if tap is None else torch.cat([tap, out], dim=1)

    def _head(self, kernels, search: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.ban_head(kernels, search)
        return {"score": out["score"], "centerness": self.centerness(out["cls_features"]), "ltrb": out["ltrb"]}

    def pair_outputs(self, batch: dict[str, torch.Tensor], with_teacher: bool = False):
        """See :class:`SiameseNetwork`. With an adapter, the teacher is the trunk and
        head without it, i.e. NanoTrack v3 when both are frozen (the adapter starts as
        the identity); its outputs come from the student's own trunk passes."""
        template_raw, template_tap = self._trunk(batch["template"])
        search_raw, search_tap = self._trunk(batch["search"])
        template, template_embed = self._adapted(template_raw, template_tap)
        search, search_embed = self._adapted(search_raw, search_tap)
        teacher = None
        if with_teacher and self.adapter is not None:
            with torch.no_grad():
                out = self.ban_head(self.ban_head.template(template_raw), search_raw)
            teacher = {"score": out["score"], "ltrb": out["ltrb"]}
        return self._head(self.ban_head.template(template), search), template_embed, search_embed, teacher

    @torch.no_grad()
    def template(self, z: torch.Tensor, box_xyxy: torch.Tensor | None = None) -> None:
        """Cache the exemplar (1, 3, 127, 127): the head's kernels, and with an HE head the
        exemplar vector of ``box_xyxy`` (4,) in exemplar pixels."""
        features, embed = self.features(z)
        self._kernels = self.ban_head.template(features)
        self._set_exemplar_vector(embed, box_xyxy)

    def search(self, x: torch.Tensor, kernels) -> dict:
        """:meth:`track` with the exemplar ``kernels`` given explicitly."""
        features, embed = self.features(x)
        out = self._head(kernels, features)
        score = torch.softmax(out["score"], dim=1)[0, 1]
        return {"score": score, "centerness": torch.sigmoid(out["centerness"])[0, 0], "ltrb": out["ltrb"][0],
                "levels": [score], "embedding_features": embed}
