"""What every tracking network of this project shares: the training loss of Eq. 6-8,
the exemplar vector, and the embedding distance used by the HE branch (Sec. 3.3-3.5).

A network subclasses :class:`SiameseNetwork` and provides

* ``pair_outputs(batch, with_teacher)`` -> (fused outputs of the search crops: ``score``
  (B, 2, S, S) logits, ``centerness`` (B, 1, S, S) logits, ``ltrb`` (B, 4, S, S) instance
  pixels; the exemplar's and the search crops' embedding features (or None without HE
  head); with ``with_teacher``, the ``score`` logits and ``ltrb`` of the frozen network
  this one started as, for ``train.lambda_distill``, or None when there is none);
* ``template(z, box)`` and ``search(x, kernels)`` for tracking;

and sets ``config``, ``sizes``, ``grid`` (the (2, S, S) crop coordinates of the score
cells, Eq. 2) and ``embedding`` (an :class:`EmbeddingHead` or None).
"""
from __future__ import annotations

import torch
from torch import nn

from model.core.config import TrainConfig
from model.core.errors import InputError
from model.network.losses import centerness_loss, contrastive_loss, distill_loss, focal_loss, iou_loss, total_loss
from model.network.hard_negative import ExemplarDistance, select_rois
from model.network.targets import assign_targets, decode_ltrb
from model.core.ops import box_iou

# centerness_cells "hard_negative": a cell off the target counts when it scores this
# share of the pair's best (the look-alikes that could win, as he_min_ratio at tracking)
HARD_NEGATIVE_RATIO = 0.5


class SiameseNetwork(nn.Module):
    """Base of :class:`~model.network.HNSENet` and :class:`~model.network.HNSENanoNet`.

    Tracking state: ``_kernels`` (the exemplar's correlation kernels, set by ``template``)
    and ``_exemplar_vector`` (the exemplar's HE embedding, or None).
    """

    #: inference backends (:mod:`model.tracking.inference`) that can run this network's search pass
    backends: tuple[str, ...] = ("eager",)
    #: the fastest of them on the CPU (BENCHMARKS.md), ``Tracker.from_checkpoint``'s default there
    cpu_backend: str = "eager"

    def __init__(self):
        super().__init__()
        self._kernels = None
        self._exemplar_vector: torch.Tensor | None = None

    # --- training -------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor], train: TrainConfig | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss terms for a batch of pairs.

        batch: ``template`` (B, 3, 127, 127), ``search`` (B, 3, 255, 255), ``template_box``
        and ``search_box`` (B, 4) xyxy ground truth in crop pixels. Returns ``score``,
        ``centerness``, ``reg``, ``contra``, ``distill`` and ``total`` (Eq. 8, plus
        ``lambda_distill`` x ``distill``) plus ``num_pos``.
        Focal, center-ness and IoU terms are divided by N_p, the batch's positive cells
        (clamped to 1); the contrastive term is a mean over RoIs (Eq. 6).
        """
        train = train or TrainConfig()
        fused, template_embed, search_embed, teacher = self.pair_outputs(batch, train.lambda_distill > 0)
        targets = assign_targets(self.grid, batch["search_box"], train.label_assignment)
        positive = targets.labels > 0
        num_pos = positive.sum().clamp(min=1).float()
        terms = {
            "score": focal_loss(fused["score"], targets.labels, train.focal_alpha, train.focal_gamma) / num_pos,
            "centerness": centerness_loss(fused["centerness"], targets.centerness,
                                          self._centerness_cells(fused, batch, positive, train)) / num_pos,
            "reg": iou_loss(fused["ltrb"], targets.ltrb, positive) / num_pos,
        }
        if self.embedding is not None and train.lambda_contra > 0:
            terms["contra"] = self._contrastive(template_embed, search_embed, fused, batch, train, generator)
        else:
            terms["contra"] = fused["score"].new_zeros(())
        if train.lambda_distill > 0:
            if teacher is None:
                raise InputError(f"train.lambda_distill needs a network with a frozen teacher (an HNSE-Nano adapter); "
                                 f"{type(self).__name__} has none")
            # the teacher's boxes at the positive cells, as Eq. 7 takes the ground truth's
            terms["distill"] = (distill_loss(fused["score"], teacher["score"])
                                + iou_loss(fused["ltrb"], teacher["ltrb"], positive)) / num_pos
        else:
            terms["distill"] = fused["score"].new_zeros(())
        lambdas = (train.lambda_score, train.lambda_centerness, train.lambda_reg, train.lambda_contra)
        terms["total"] = total_loss(terms, lambdas) + train.lambda_distill * terms["distill"]
        terms["num_pos"] = positive.sum().float()
        return terms

    def _centerness_cells(self, fused, batch, positive: torch.Tensor, train: TrainConfig) -> torch.Tensor:
        """(B, S, S) the cells whose center-ness enters the BCE (``train.centerness_cells``)."""
        if train.centerness_cells == "positive":
            return positive
        if train.centerness_cells == "all":
            return torch.ones_like(positive)
        probs, boxes = self._predictions(fused)
        with torch.no_grad():
            iou = torch.stack([box_iou(cell_boxes, batch["search_box"][b][None])[:, 0]
                               for b, cell_boxes in enumerate(boxes)]).reshape(positive.shape)
            likely = probs >= HARD_NEGATIVE_RATIO * probs.max(dim=1, keepdim=True).values
        return positive | (~positive & likely.reshape(positive.shape) & (iou < train.iou_low))

    @torch.no_grad()
    def _predictions(self, fused) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's foreground probability (B, S*S) and decoded box (B, S*S, 4) xyxy,
        detached: what the cells to train on are chosen by."""
        probs = torch.softmax(fused["score"], dim=1)[:, 1].flatten(1)
        boxes = decode_ltrb(self.grid, fused["ltrb"]).flatten(2).transpose(1, 2)
        return probs, boxes

    def _contrastive(self, template_embed, search_embed, fused, batch, train, generator):
        """Eq. 6 over the RoIs chosen by :func:`select_rois` for every pair of the batch."""
        batch_size = batch["search"].shape[0]
        probs, boxes = self._predictions(fused)
        with torch.no_grad():
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
        exemplar = self.embedding(template_embed, exemplar_rois)
        vectors = self.embedding(search_embed, rois)
        distances = (vectors - exemplar[rois[:, 0].long()]).pow(2).sum(1).clamp(min=1e-12).sqrt()
        return contrastive_loss(distances, labels, train.contrastive_margin)

    # --- tracking -------------------------------------------------------------------

    @staticmethod
    def flat_kernels(kernels) -> list[torch.Tensor]:
        """The exemplar kernels as a flat list of tensors (an exported graph's inputs)."""
        return list(kernels)

    @staticmethod
    def kernels_from_flat(flat: list[torch.Tensor]):
        """Inverse of :meth:`flat_kernels`."""
        return tuple(flat)

    def _set_exemplar_vector(self, embed_features: torch.Tensor | None, box_xyxy: torch.Tensor | None) -> None:
        """The exemplar vector of ``box_xyxy`` (4,) exemplar pixels, when there is an HE head."""
        self._exemplar_vector = None
        if self.embedding is not None and box_xyxy is not None and embed_features is not None:
            roi = torch.cat([box_xyxy.new_zeros(1), box_xyxy])[None]
            self._exemplar_vector = self.embedding(embed_features, roi)[0]

    @torch.no_grad()
    def track(self, x: torch.Tensor) -> dict:
        """Maps for a search crop (1, 3, I, I), S = score size.

        Returns ``score`` (S, S) fused foreground probability (softmax), ``centerness``
        (S, S) sigmoid, ``ltrb`` (4, S, S) instance pixels, ``levels`` [(S, S)] per-level
        foreground probabilities, and ``embedding_features`` for :meth:`embedding_distance`.
        """
        if self._kernels is None:
            raise RuntimeError("template() must be called before track()")
        return self.search(x, self._kernels)

    @torch.no_grad()
    def embedding_distance(self, embedding_features: torch.Tensor, boxes_xyxy: torch.Tensor) -> torch.Tensor:
        """Distance of each box's RoI vector (boxes (K, 4) instance pixels) to the exemplar vector."""
        if self.embedding is None or self._exemplar_vector is None:
            raise RuntimeError("this network has no HE head or no exemplar box")
        return ExemplarDistance(self.embedding)(embedding_features, boxes_xyxy, self._exemplar_vector)
