"""The whole network: backbone, neck, three FCOS heads, fusion and the HE branch (Fig. 2)."""
from __future__ import annotations

import torch
from torch import nn

from model.config import NetworkConfig, TrainConfig, derive_sizes
from model.geometry import score_grid
from model.losses import centerness_loss, contrastive_loss, focal_loss, iou_loss, total_loss
from model.network.backbones import build_backbone
from model.network.fusion import LevelFusion
from model.network.hard_negative import EmbeddingHead, select_rois
from model.network.head import FCOSHead
from model.network.neck import AdjustNeck
from model.targets import assign_targets, decode_ltrb

LEVELS = ("level2", "level3", "level4")


class HNSENet(nn.Module):
    """Anchor-free Siamese tracker with hard negative samples emphasis.

    * ``forward(batch, train_config)`` -> dict of loss terms (Eq. 6-8) for training;
    * ``template(z, box)`` caches the exemplar's kernels (and exemplar vector);
    * ``track(x)`` -> per-level and fused maps plus regression for one search crop.

    Image tensors are (B, 3, H, W) float BGR in 0..255; exemplar 127, instance 255.
    """

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
        self._kernels: list | None = None
        self._exemplar_vector: torch.Tensor | None = None

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

    def forward(self, batch: dict[str, torch.Tensor], train: TrainConfig | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss terms for a batch of pairs.

        batch: ``template`` (B, 3, 127, 127), ``search`` (B, 3, 255, 255), ``template_box``
        and ``search_box`` (B, 4) xyxy ground truth in crop pixels. Returns ``score``,
        ``centerness``, ``reg``, ``contra`` and ``total`` (Eq. 8) plus ``num_pos``.
        """
        train = train or TrainConfig()
        template_levels = self.features(batch["template"])
        search_levels = self.features(batch["search"])
        _, fused = self._heads(self._kernels_from(template_levels), search_levels)
        targets = assign_targets(self.grid, batch["search_box"])
        positive = targets.labels > 0
        num_pos = positive.sum().clamp(min=1).float()
        terms = {
            "score": focal_loss(fused["score"], targets.labels, train.focal_alpha, train.focal_gamma) / num_pos,
            "centerness": centerness_loss(fused["centerness"], targets.centerness, positive) / num_pos,
            "reg": iou_loss(fused["ltrb"], targets.ltrb, positive) / num_pos,
        }
        if self.embedding is not None and train.lambda_contra > 0:
            terms["contra"] = self._contrastive(template_levels, search_levels, fused, batch, train, generator)
        else:
            terms["contra"] = fused["score"].new_zeros(())
        lambdas = (train.lambda_score, train.lambda_centerness, train.lambda_reg, train.lambda_contra)
        terms["total"] = total_loss(terms, lambdas)
        terms["num_pos"] = positive.sum().float()
        return terms

    def _contrastive(self, template_levels, search_levels, fused, batch, train, generator):
        """Eq. 6 over the RoIs chosen by :func:`select_rois` for every pair of the batch."""
        batch_size = batch["search"].shape[0]
        with torch.no_grad():
            probs = torch.softmax(fused["score"], dim=1)[:, 1].flatten(1)
            boxes = decode_ltrb(self.grid, fused["ltrb"]).flatten(2).transpose(1, 2)
            rois, labels = [], []
            for b in range(batch_size):
                r, l = select_rois(probs[b], boxes[b], batch["search_box"][b], train.num_rois,
                                   train.candidate_pre_nms, train.nms_threshold, train.iou_high, train.iou_low,
                                   float(self.config.instance_size), generator)
                rois.append(torch.cat([r.new_full((len(r), 1), b), r], dim=1))
                labels.append(l)
            rois, labels = torch.cat(rois), torch.cat(labels)
            exemplar_rois = torch.cat([torch.arange(batch_size, device=rois.device, dtype=rois.dtype)[:, None],
                                       batch["template_box"]], dim=1)
        exemplar = self.embedding(self._embedding_features(template_levels), exemplar_rois)
        vectors = self.embedding(self._embedding_features(search_levels), rois)
        distances = (vectors - exemplar[rois[:, 0].long()]).pow(2).sum(1).clamp(min=1e-12).sqrt()
        return contrastive_loss(distances, labels, train.contrastive_margin)

    # --- tracking -------------------------------------------------------------------

    @torch.no_grad()
    def template(self, z: torch.Tensor, box_xyxy: torch.Tensor | None = None) -> None:
        """Cache the exemplar (1, 3, 127, 127): head kernels, and with an HE head the
        exemplar vector of ``box_xyxy`` (4,) in exemplar pixels."""
        levels = self.features(z)
        self._kernels = self._kernels_from(levels)
        self._exemplar_vector = None
        if self.embedding is not None and box_xyxy is not None:
            roi = torch.cat([box_xyxy.new_zeros(1), box_xyxy])[None]
            self._exemplar_vector = self.embedding(self._embedding_features(levels), roi)[0]

    @torch.no_grad()
    def track(self, x: torch.Tensor) -> dict:
        """Maps for a search crop (1, 3, 255, 255), S = score size.

        Returns ``score`` (S, S) fused foreground probability (softmax), ``centerness``
        (S, S) sigmoid, ``ltrb`` (4, S, S) instance pixels, ``levels`` [(S, S)] per-level
        foreground probabilities, and ``embedding_features`` for :meth:`embedding_distance`.
        """
        if self._kernels is None:
            raise RuntimeError("template() must be called before track()")
        return self.search(x, self._kernels)

    def search(self, x: torch.Tensor, kernels: list, heads=None) -> dict:
        """:meth:`track` with the template ``kernels`` (one (cls, reg) pair per level) given
        explicitly, so that inference backends can export or trace this one function.
        ``heads(kernels, levels) -> (per_level, fused)`` replaces :meth:`_heads` (an
        inference backend's equivalent, e.g. :class:`model.fused_heads.FusedHeads`)."""
        levels = self.features(x)
        per_level, fused = (heads or self._heads)(kernels, levels)
        return {
            "score": torch.softmax(fused["score"], dim=1)[0, 1],
            "centerness": torch.sigmoid(fused["centerness"])[0, 0],
            "ltrb": fused["ltrb"][0],
            "levels": [torch.softmax(level["score"], dim=1)[0, 1] for level in per_level],
            "embedding_features": self._embedding_features(levels) if self.embedding is not None else None,
        }

    @torch.no_grad()
    def embedding_distance(self, embedding_features: torch.Tensor, boxes_xyxy: torch.Tensor) -> torch.Tensor:
        """Distance of each box's RoI vector (boxes (K, 4) instance pixels) to the exemplar vector."""
        if self.embedding is None or self._exemplar_vector is None:
            raise RuntimeError("this network has no HE head or no exemplar box")
        rois = torch.cat([boxes_xyxy.new_zeros(len(boxes_xyxy), 1), boxes_xyxy], dim=1)
        vectors = self.embedding(embedding_features, rois)
        return (vectors - self._exemplar_vector).norm(dim=1)
