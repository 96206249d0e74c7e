"""Online tracking (Sec. 3.5) with pysot's contract: ``init(frame, box)``, ``track(frame)``.

The exemplar is cropped once from the first frame and never updated. Each new frame is
cropped around the last position (context padding, mean-colour fill at the borders; with
``TrackConfig.motion_prediction``, ahead of it along the smoothed velocity);
the fused foreground probability is multiplied by the center-ness, by the scale/aspect
change penalty (Eq. 10-11) and blended with a cosine window; the arg-max cell gives the
box decoded from its ltrb distances, whose size is smoothed with the previous one.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from model.core.config import Config, NetworkConfig, TrackConfig
from model.core.errors import InputError
from model.core.geometry import CropWindow, context_size, map_rect
from model.tracking.colour import bhattacharyya_distance, colour_histogram
from model.tracking.inference import make_backend
from model.core.ops import box_iou, greedy_keep, nms
from model.tracking.result import Candidate, Pipeline, TrackResult
from model.network.targets import decode_ltrb


LEVEL_MAPS = ("level2", "level3", "level4")
RERANK_CUES = ("he", "colour")  # Tracker._rerank's factors, in Candidate.factors
# weight of the newest displacement in the velocity estimate (TrackConfig.motion_prediction):
# half, so one jump to a look-alike moves the next crop by at most half of it
VELOCITY_SMOOTHING = 0.5
# A cell that could be the target or a look-alike scores at least this fraction of the
# best raw score: only such cells get an embed_dist value (Tracker._embedding_map) or
# enter the candidate list, whose hard negatives are high-scoring ones, as in Sec. 3.3.
CANDIDATE_MIN_FRACTION = 0.1
EMBED_MAX_CELLS = 32  # embed_dist is computed on this many of the best-scoring cells at most


def as_bgr(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame of shape {frame.shape} is not an image")
    return frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)


def _size_with_context(w, h):
    """s of Eq. 11: sqrt((w + p)(h + p)), p = (w + h) / 2."""
    p = (w + h) / 2
    return np.sqrt((w + p) * (h + p))


def _change(ratio):
    return np.maximum(ratio, 1.0 / ratio)


def scale_penalty(pred_w, pred_h, target_w, target_h, k: float):
    """Eq. 10-11, normalised so that no change gives penalty 1 (pysot's form):
    exp(-(r * s - 1) k), r the aspect-ratio change and s the size change of each
    predicted box (arrays) against the target's size in the same (crop) pixels."""
    scale_change = _change(_size_with_context(pred_w, pred_h) / _size_with_context(target_w, target_h))
    ratio_change = _change((target_w / target_h) / np.maximum(pred_w / np.maximum(pred_h, 1e-6), 1e-6))
    return np.exp(-(ratio_change * scale_change - 1) * k)


def final_map(score: np.ndarray, centerness: np.ndarray, penalty: np.ndarray, window: np.ndarray,
              track: TrackConfig) -> np.ndarray:
    """The map the box is chosen from (Sec. 3.5), before any re-ranking: score x
    center-ness^weight x scale penalty, blended with the cosine window; NaN cells 0."""
    penalised = penalty * score * centerness ** track.centerness_weight
    return np.nan_to_num(penalised * (1 - track.window_influence) + window * track.window_influence, nan=0.0)


class Tracker:
    """Tracks one target with an :class:`~model.network.HNSENet`.

    ``inspect=True`` fills :attr:`TrackResult.maps` with every inspection map and the NMS
    candidates; ``False`` keeps only ``score`` and ``final`` (the fastest path).
    ``backend`` runs the per-frame network pass: a name of :data:`model.tracking.inference.BACKENDS`
    or a backend object (shared, e.g. by :meth:`with_track_config`); ``"eager"`` always
    uses ``net``'s current weights, the others freeze them when the tracker is made.
    """

    def __init__(self, net, config: Config, inspect: bool = True, backend="eager"):
        self.net = net.eval()
        self.config = config
        self.inspect = inspect
        self.backend = make_backend(net, backend) if isinstance(backend, str) else backend
        self.sizes = net.sizes
        self.device = next(net.parameters()).device
        s = self.sizes.score_size
        hanning = np.hanning(s + 2)[1:-1]  # strictly positive inside, as pysot's window
        self.window = np.outer(hanning, hanning).astype(np.float32)
        self.window /= self.window.max()
        self.center = np.zeros(2)
        self.size = np.zeros(2)
        self.velocity = np.zeros(2)  # smoothed centre displacement a frame, frame pixels
        self.frame_size = (0, 0)

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", inspect: bool = True,
                        backend: str | None = None, exclusive: bool = False) -> "Tracker":
        """The tracker of a weights file; ``backend`` defaults to
        the network's ``cpu_backend`` on the CPU and ``"torch"`` elsewhere; ``exclusive``:
        the process runs no other network while this one tracks (see :func:`make_backend`)."""
        from model.network import load_network

        net, config, _ = load_network(path, device)
        if backend is None:
            on_cpu = torch.device(device).type == "cpu"
            backend = net.cpu_backend if on_cpu else ("torch" if "torch" in net.backends else "eager")
        return cls(net, config, inspect, make_backend(net, backend, exclusive=exclusive))

    @classmethod
    def random(cls, backbone: str = "efficientnet_lite0", he_head: bool = True, seed: int = 0,
               inspect: bool = True, backend: str = "eager", **network) -> "Tracker":
        """A tracker with untrained heads (ImageNet backbone for the lite model), for tests."""
        from model.network import build_network

        torch.manual_seed(seed)
        network.setdefault("pretrained", backbone == "efficientnet_lite0")
        net_config = NetworkConfig(backbone=backbone, he_head=he_head, **network)
        return cls(build_network(net_config), Config(network=net_config), inspect, backend)

    # --- tracking ----------------------------------------------------------------------

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        """(1, 3, H, W) float32 of an (H, W, 3) uint8 crop, contiguous: one copy, which
        the ONNX backend then passes on without another."""
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)).to(self.device)

    def init(self, frame: np.ndarray, box) -> None:
        """Crop the exemplar around ``box`` (x, y, w, h in frame pixels) and cache it."""
        frame = as_bgr(frame)
        x, y, w, h = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise InputError(f"initial box {tuple(box)} must have finite values and positive size")
        height, width = frame.shape[:2]
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise InputError(f"initial box {tuple(box)} lies outside the {width}x{height} frame")
        self.frame_size = (width, height)
        self.center = np.array([x + w / 2, y + h / 2])
        self.size = np.array([w, h])
        self.velocity = np.zeros(2)
        self.channel_mean = frame.reshape(-1, 3).mean(axis=0)
        net_config = self.net.config
        window = CropWindow(self.center[0], self.center[1],
                            context_size(w, h, self.config.track.context_amount), net_config.exemplar_size)
        z = window.extract(frame, self.channel_mean)
        bx, by, bw, bh = window.box_to_crop((x, y, w, h))
        self.exemplar, self.exemplar_box = z, (float(bx), float(by), float(bw), float(bh))
        self.exemplar_colour = colour_histogram(z, (bx, by, bx + bw, by + bh))
        box_xyxy = torch.tensor([bx, by, bx + bw, by + bh], dtype=torch.float32, device=self.device)
        self.net.template(self._tensor(z), box_xyxy)

    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in ``frame``; never raises on hard frames (low score instead)."""
        frame = as_bgr(frame)
        cfg = self.config.track
        net_config = self.net.config
        height, width = frame.shape[:2]
        self.frame_size = (width, height)
        s_z = context_size(self.size[0], self.size[1], cfg.context_amount)
        shift = cfg.motion_prediction * self.velocity
        predicted = self.center + shift
        window = CropWindow(predicted[0], predicted[1], s_z * net_config.instance_size / net_config.exemplar_size,
                            net_config.instance_size)
        search = window.extract(frame, self.channel_mean)
        out = self.backend.track(self._tensor(search))

        score = out["score"].float().cpu().numpy()
        centerness = out["centerness"].float().cpu().numpy()
        boxes = decode_ltrb(self.net.grid, out["ltrb"][None])[0]  # (4, S, S) xyxy, crop pixels
        boxes_np = boxes.cpu().numpy()
        pred_w = boxes_np[2] - boxes_np[0]
        pred_h = boxes_np[3] - boxes_np[1]

        target_w, target_h = self.size * window.scale
        penalty = scale_penalty(pred_w, pred_h, target_w, target_h, cfg.penalty_k)
        final = final_map(score, centerness, penalty, self.window, cfg)
        # when inspecting, the embed_dist map's distances also serve the re-ranking
        embed_dist = (self._embedding_map(out["embedding_features"], boxes.reshape(4, -1).T, score)
                      if self.inspect and out["embedding_features"] is not None
                      and self.net._exemplar_vector is not None else None)
        rerank = self._rerank(out, boxes_np, final, score, search, embed_dist)
        for factor in (rerank or {}).values():
            final = final * factor
        best = np.unravel_index(int(np.argmax(final)), final.shape)

        bx0, by0, bx1, by1 = boxes_np[:, best[0], best[1]]
        confidence = float(np.nan_to_num(score[best]))
        if np.isfinite([bx0, by0, bx1, by1]).all():
            cx, cy = window.crop_to_frame((bx0 + bx1) / 2, (by0 + by1) / 2)
            lr = float(penalty[best] * score[best] * cfg.size_lr)
            new_size = self.size * (1 - lr) + np.array([bx1 - bx0, by1 - by0]) / window.scale * lr
            self._update(np.array([cx, cy]), new_size)
        else:
            confidence = 0.0
        box = self._reported_box()
        result = TrackResult(box=box, score=confidence,
                             maps={"score": score.astype(np.float32), "final": final.astype(np.float32)},
                             search_box=window.frame_rect(),
                             map_box=map_rect(window, self.sizes.score_size, self.sizes.offset, self.sizes.stride))
        if self.inspect:
            factors = {"score": score, "centerness": centerness ** cfg.centerness_weight, "penalty": penalty,
                       "window": self.window * cfg.window_influence,
                       **{cue: (rerank or {}).get(cue, np.ones_like(final)) for cue in RERANK_CUES}, "final": final}
            self._inspect(result, out, boxes, final, best, centerness, window, factors, embed_dist, rerank)
            result.pipeline = Pipeline(
                exemplar=self.exemplar, exemplar_box=self.exemplar_box, search=search,
                fusion_weights=self._fusion_weights(), best_cell=(int(best[0]), int(best[1])),
                box_in_search=(float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)),
                search_shift=(float(shift[0]), float(shift[1])))
        return result

    def _fusion_weights(self) -> dict[str, list[float]] | None:
        fusion = getattr(self.net, "fusion", None)
        if fusion is None:
            return None
        with torch.no_grad():
            return {name: fusion.weights(name).cpu().tolist() for name in fusion.logits}

    def _rerank(self, out: dict, boxes: np.ndarray, final: np.ndarray, score: np.ndarray,
                search: np.ndarray, known: np.ndarray | None = None) -> dict[str, np.ndarray] | None:
        """Beyond the paper: deciding between look-alikes by appearance while tracking,
        with the HE embedding (``TrackConfig.he_rerank``) and colour (``colour_rerank``).

        The ``he_candidates`` best cells of the final map whose raw score is at least
        ``he_min_ratio`` times the best of theirs (the only ones that can win) are grouped
        into objects by NMS on their boxes at T_l (``hardneg_iou``: two objects overlap as
        little as a hard negative overlaps the target, so the boxes around one object
        form one group): each cell joins the kept box it overlaps most. Each object's
        kept box gets, per cue that is on, a distance to the exemplar and a factor for all
        its cells:

        * ``"he"``: d, the distance of its RoI vector to the exemplar vector, which the HE
          branch was trained (Eq. 6) to make small for the target and at least the margin
          m for hard negatives; factor exp(-he_rerank * d / m);
        * ``"colour"``: c, the Bhattacharyya distance of its colour histogram in the search
          crop to the exemplar box's (:mod:`model.tracking.colour`); factor
          exp(-colour_rerank * c).

        Every other cell gets 0. Within one object the order of the cells is kept, so
        re-ranking decides between look-alikes without moving the box on the target; with
        a single object above the ratio every candidate gets 1. ``known``: (S, S) HE
        distances already computed (the ``embed_dist`` map, NaN where not), which are not
        computed again. ``boxes``: (4, S, S) decoded boxes, crop pixels. Returns the
        (S, S) factor map of each cue that is on (the HE cue needs an HE head), or None
        when none is.
        """
        cfg = self.config.track
        cues = [name for name, on in (("he", cfg.he_rerank > 0 and out["embedding_features"] is not None
                                       and self.net._exemplar_vector is not None),
                                      ("colour", cfg.colour_rerank > 0)) if on]
        if not cues:
            return None
        # numpy on these few cells: torch's per-call overhead would cost more than the work
        order = np.argsort(-final.reshape(-1), kind="stable")[:cfg.he_candidates]
        raw = np.nan_to_num(score.reshape(-1)[order])
        order = order[raw >= cfg.he_min_ratio * raw.max()]
        cell_boxes = boxes.reshape(4, -1).T[order]
        # NMS over the candidates, already in decreasing order, on one IoU matrix that
        # then also gives each candidate its object
        overlaps = np.nan_to_num(box_iou(cell_boxes, cell_boxes))
        kept = greedy_keep(overlaps > cfg.hardneg_iou)
        owner = overlaps[:, kept].argmax(axis=1)  # a kept box owns itself (IoU 1)
        maps = {}
        for cue in cues:
            if len(kept) == 1:  # one object: nothing to decide between, and no distance to compute
                object_factor = np.ones(1, dtype=np.float32)
            elif cue == "he":
                object_factor = np.exp(-cfg.he_rerank * self._he_distances(out, cell_boxes, order, kept, known)
                                       / cfg.he_margin)
            else:
                kept_boxes = cell_boxes[kept]
                colour = np.array([bhattacharyya_distance(colour_histogram(search, box), self.exemplar_colour)
                                   for box in kept_boxes])
                object_factor = np.exp(-cfg.colour_rerank * colour)
            factor = np.zeros(final.size, dtype=np.float32)
            factor[order] = object_factor[owner]
            maps[cue] = factor.reshape(final.shape)
        return maps

    def _he_distances(self, out: dict, cell_boxes: np.ndarray, order: np.ndarray, kept: list[int],
                      known: np.ndarray | None) -> np.ndarray:
        """The HE distance of each kept candidate box, from ``known`` where it has one."""
        distance = np.full(len(kept), np.nan, dtype=np.float32)
        if known is not None:
            distance[:] = known.reshape(-1)[order[kept]]
        missing = np.flatnonzero(np.isnan(distance))
        if len(missing):
            missing_boxes = torch.from_numpy(cell_boxes[[kept[i] for i in missing]]).to(self.device)
            distance[missing] = self.backend.embedding_distance(
                out["embedding_features"], missing_boxes).float().cpu().numpy()
        return np.nan_to_num(distance, nan=1e6)

    def _update(self, center: np.ndarray, size: np.ndarray) -> None:
        """Keep the centre inside the frame and the size between min_size and the frame;
        smooth the centre's displacement into the velocity."""
        width, height = self.frame_size
        center = np.clip(center, [0, 0], [width, height])
        self.velocity += VELOCITY_SMOOTHING * (center - self.center - self.velocity)
        self.center = center
        min_size = self.config.track.min_size
        self.size = np.clip(size, min_size, [max(width, min_size), max(height, min_size)])

    def _reported_box(self) -> tuple[float, float, float, float]:
        """The tracked box clipped to the frame (non-empty: the centre is kept inside)."""
        width, height = self.frame_size
        x0, y0 = np.maximum(self.center - self.size / 2, 0)
        x1, y1 = np.minimum(self.center + self.size / 2, [width, height])
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)

    def _inspect(self, result, out, boxes, final, best, centerness, window, factors, embed_dist, rerank) -> None:
        """Center-ness, penalty, window, per-level and hard-negative maps, the embedding
        map ``embed_dist`` (computed before the re-ranking, which shares it), the
        re-ranking's factors multiplied (``rerank``, when a cue is on), and the NMS
        candidates with their score factors."""
        cfg = self.config.track
        s = self.sizes.score_size
        flat_boxes = boxes.reshape(4, -1).T  # (S*S, 4)
        chosen = boxes[:, best[0], best[1]][None]
        iou = box_iou(flat_boxes, chosen)[:, 0].reshape(s, s).cpu().numpy()
        iou = np.nan_to_num(iou)
        result.maps["centerness"] = centerness.astype(np.float32)
        result.maps["penalty"] = factors["penalty"].astype(np.float32)
        result.maps["window"] = self.window.astype(np.float32)
        if rerank:
            result.maps["rerank"] = np.prod(list(rerank.values()), axis=0).astype(np.float32)
        result.maps["hardneg"] = np.where(iou < cfg.hardneg_iou, result.maps["score"], 0).astype(np.float32)
        if len(out["levels"]) == len(LEVEL_MAPS):  # a one-level network (HNSE-Nano) has no fusion to show
            for name, level in zip(LEVEL_MAPS, out["levels"]):
                result.maps[name] = level.float().cpu().numpy()
        if embed_dist is not None:
            result.maps["embed_dist"] = embed_dist

        final_t = torch.from_numpy(final).reshape(-1).to(flat_boxes.device)
        # stable: among equal scores the first cell leads, the one np.argmax chose as best
        order = final_t.argsort(descending=True, stable=True)
        # the chosen cell, and the cells that score like a target: the cosine window alone
        # would otherwise fill the list with background next to the target
        raw = torch.from_numpy(np.nan_to_num(result.maps["score"].reshape(-1))).to(flat_boxes.device)
        likely = (raw[order] >= CANDIDATE_MIN_FRACTION * raw.max()) | (order == best[0] * s + best[1])
        order = order[likely][: max(cfg.top_k * 8, cfg.top_k)]
        keep = order[nms(flat_boxes[order], final_t[order], cfg.nms_threshold)][: cfg.top_k]
        chosen_iou = box_iou(flat_boxes[keep], chosen)[:, 0].cpu().numpy()
        for index, overlap in zip(keep.tolist(), chosen_iou):
            x0, y0, x1, y1 = flat_boxes[index].tolist()
            frame_box = window.box_to_frame((x0, y0, x1 - x0, y1 - y0))
            label = ("positive" if overlap > cfg.positive_iou else
                     "hard_negative" if overlap < cfg.hardneg_iou else "other")
            cell = divmod(index, s)
            result.candidates.append(Candidate(
                box=tuple(float(v) for v in frame_box), score=float(result.maps["score"].reshape(-1)[index]),
                iou=float(overlap), label=label, factors={k: float(v[cell]) for k, v in factors.items()},
                cell=(int(cell[0]), int(cell[1]))))

    def _embedding_map(self, features: torch.Tensor, flat_boxes: torch.Tensor, score: np.ndarray) -> np.ndarray:
        """(S, S) distance of each cell's box embedding to the exemplar vector (Sec. 3.3),
        NaN on the cells not computed.

        Embedding all S*S boxes (RoI Align + two convolutions each) costs several times
        the whole network pass, so only the cells that could be a target or a distractor
        get one: those scoring at least ``CANDIDATE_MIN_FRACTION`` of the best score, the
        ``EMBED_MAX_CELLS`` best of them at most.
        """
        flat_score = torch.from_numpy(score.reshape(-1))
        order = flat_score.argsort(descending=True)[:EMBED_MAX_CELLS]
        order = order[flat_score[order] >= CANDIDATE_MIN_FRACTION * flat_score[order[0]]]
        distance = torch.full((score.size,), float("nan"))
        if len(order):  # empty only when the score map is NaN
            distance[order] = self.backend.embedding_distance(features, flat_boxes[order]).float().cpu()
        return distance.reshape(score.shape).numpy()

    def with_track_config(self, **changes) -> "Tracker":
        """The same network with other tracking hyper-parameters (for tuning)."""
        return Tracker(self.net, replace(self.config, track=replace(self.config.track, **changes)), self.inspect,
                       self.backend)
