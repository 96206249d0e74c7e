"""The whole network: backbone, neck, three FCOS heads, fusion and the HE branch (Fig. 2)."""
from __future__ import annotations

import torch
from torch import nn

from model.core.config import NetworkConfig, derive_sizes
from model.core.geometry import score_grid
from model.network.backbones import build_backbone
from model.network.fusion import LevelFusion
from model.network.hard_negative import EmbeddingHead
from model.network.head import FCOSHead
from model.network.neck import AdjustNeck
from model.network.siamese import SiameseNetwork

LEVELS = ("level2", "level3", "level4")


class HNSENet(SiameseNetwork):
    """Anchor-free Siamese tracker with hard negative samples emphasis.

    * ``forward(batch, train_config)`` -> dict of loss terms (Eq. 6-8) for training;
    * ``template(z, box)`` caches the exemplar's kernels (and exemplar vector);
    * ``track(x)`` -> per-level and fused maps plus regression for one search crop.

    Image tensors are (B, 3, H, W) float BGR in 0..255; exemplar 127, instance 255.
    """

    backends = ("eager", "torch", "onnx")
    cpu_backend = "onnx"

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.sizes = derive_sizes(config)
        self.backbone = build_backbone(config.backbone, config.pretrained, config.backbone_weights)
        self.neck = AdjustNeck(self.backbone.out_channels, config.neck_channels)
        adjust_kernel = 3 if config.backbone == "resnet50" else 1
        self.heads = nn.ModuleList(
            FCOSHead(config.neck_channels, config.head_channels, config.tower_convs, config.separable_towers,
                     config.stride, config.score_prior, adjust_kernel)
            for _ in LEVELS
        )
        self.fusion = LevelFusion(len(LEVELS))
        self.embedding = (EmbeddingHead(2 * config.neck_channels, config.embed_channels, config.roi_size,
                                        config.stride) if config.he_head else None)
        self.register_buffer("grid", score_grid(self.sizes.score_size, self.sizes.offset, config.stride),
                             persistent=False)

    # --- shared pieces --------------------------------------------------------------

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """phi_2, phi_3, phi_4 (Sec. 3.1): (B, neck_channels, ceil(H/8), ceil(W/8)) each."""
        backbone_frozen = not any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not backbone_frozen):
            levels = self.backbone(images)
        return self.neck(levels)

    def _kernels_from(self, template_levels: list[torch.Tensor]) -> list:
        cropped = AdjustNeck.crop_template(template_levels, self.sizes.crop_start, self.config.template_feature_crop)
        return [head.template(z) for head, z in zip(self.heads, cropped)]

    def _heads(self, kernels: list, search_levels: list[torch.Tensor]):
        per_level = [head(k, x) for head, k, x in zip(self.heads, kernels, search_levels)]
        return per_level, self.fusion(per_level)

    @staticmethod
    def _embedding_features(levels: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([levels[1], levels[2]], dim=1)  # Cat(phi_3, phi_4), Sec. 3.3

    # --- training -------------------------------------------------------------------

    def pair_outputs(self, batch: dict[str, torch.Tensor], with_teacher: bool = False):
        """Fused outputs of the search crops and Cat(phi_3, phi_4) of both crops (Sec. 3.3);
        no teacher (None): this network has no frozen network it started as."""
        template_levels = self.features(batch["template"])
        search_levels = self.features(batch["search"])
        _, fused = self._heads(self._kernels_from(template_levels), search_levels)
        return fused, self._embedding_features(template_levels), self._embedding_features(search_levels), None

    # --- tracking -------------------------------------------------------------------

    @torch.no_grad()
    def template(self, z: torch.Tensor, box_xyxy: torch.Tensor | None = None) -> None:
        """Cache the exemplar (1, 3, 127, 127): head kernels, and with an HE head the
        exemplar vector of ``box_xyxy`` (4,) in exemplar pixels."""
        levels = self.features(z)
        self._kernels = self._kernels_from(levels)
        self._set_exemplar_vector(self._embedding_features(levels) if self.embedding is not None else None, box_xyxy)

    @staticmethod
    def flat_kernels(kernels) -> list[torch.Tensor]:
        """(cls, reg) of level 2, then of level 3 and 4."""
        return [k for pair in kernels for k in pair]

    @staticmethod
    def kernels_from_flat(flat: list[torch.Tensor]) -> list:
        return [tuple(flat[i:i + 2]) for i in range(0, len(flat), 2)]

    def search(self, x: torch.Tensor, kernels: list, heads=None) -> dict:
        """:meth:`track` with the template ``kernels`` (one (cls, reg) pair per level) given
        explicitly, so that inference backends can export or trace this one function.
        ``heads(kernels, levels) -> (per_level, fused)`` replaces :meth:`_heads` (an
        inference backend's equivalent, e.g. :class:`model.tracking.fused_heads.FusedHeads`)."""
        levels = self.features(x)
        per_level, fused = (heads or self._heads)(kernels, levels)
        return {
            "score": torch.softmax(fused["score"], dim=1)[0, 1],
            "centerness": torch.sigmoid(fused["centerness"])[0, 0],
            "ltrb": fused["ltrb"][0],
            "levels": [torch.softmax(level["score"], dim=1)[0, 1] for level in per_level],
            "embedding_features": self._embedding_features(levels) if self.embedding is not None else None,
        }
