"""How well do the score, the HE embedding and plain trunk features tell a target from
the look-alikes around it?  Numbers for BENCHMARKS.md ("What the HE embedding knows").

    python scripts/he_discrimination.py WEIGHTS.pt SEQUENCES_FOLDER NAME[,NAME...]

Every frame is cropped around the previous frame's ground truth (what a tracker that is
still on target sees). The candidates are the best cells of the raw score map (at least
0.3 of the best), grouped by NMS at IoU 0.3. A frame counts when it has a candidate on
the target (IoU > 0.5 with the ground truth) and a hard negative (IoU < 0.2); for each
cue the frame is "right" when the target candidate ranks above every hard negative:

* ``score``: the raw score; ``final``: score x scale penalty, blended with the window;
* ``embed``: distance of the HE vector to the exemplar vector (needs an HE head);
* ``trunk``: cosine distance of RoI-aligned trunk features to the exemplar's;
* ``embed_memory`` / ``trunk_memory``: the same vectors, but the distance to the nearest
  of the exemplar and the ground-truth boxes of all earlier frames, minus the distance
  to the nearest hard negative of earlier frames: an upper bound for an online memory,
  since its labels come from the ground truth;
* ``embed_first`` / ``trunk_first``: the distance to the exemplar minus the distance to
  the nearest hard negative of the first frame (cropped around the first box), the one
  frame whose labels a tracker knows for certain (``first_negatives`` counts them);
* ``embed_previous`` / ``trunk_previous``: the distance to the previous frame's target
  (its ground-truth box), what a tracker that is still on target could compare with;
* ``colour``: the Bhattacharyya distance of the box's HSV histogram in the search crop to
  the exemplar box's (``TrackConfig.colour_rerank``'s cue);
* ``tower`` / ``tower_memory``: cosine distance of the classification tower's features at
  the candidate's cell (what the score and the center-ness are read from, so conditioned
  on the exemplar) to those at the target's cell in the first frame (cropped around the
  first box), and a ground-truth memory of them as for ``*_memory`` (its positives the
  candidate on the target in each earlier frame that has one).
* ``block2`` / ``block3`` / ``block4``: cosine distance of RoI-aligned features of an earlier
  trunk block (features.2 and .3 at stride 8, features.4 at stride 16; 5x5 bins) to the
  exemplar's, and ``block2_memory`` / ``block3_memory`` a ground-truth memory of them as for
  ``*_memory``: what an HE branch on finer, lower-level features would start from.
* ``embed_rescue`` / ``trunk_rescue``: the frames where ``final`` is wrong and ``embed`` /
  ``trunk`` right, the only frames on which re-ranking by that cue can help.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from model.core.geometry import CropWindow, context_size, pixel_to_feature_shift
from model.core.ops import box_iou, nms, roi_align
from model.data.sequences import read_sequence
from model.network.targets import decode_ltrb
from model.tracking.colour import bhattacharyya_distance, colour_histogram
from model.tracking.tracker import Tracker, scale_penalty

CUES = ("score", "final", "embed", "trunk", "embed_memory", "trunk_memory", "embed_first", "trunk_first",
        "embed_previous", "trunk_previous", "colour", "tower", "tower_memory",
        "block2", "block3", "block4", "block2_memory", "block3_memory", "embed_rescue", "trunk_rescue")
EARLY_BLOCKS = {2: 8, 3: 8, 4: 16}  # trunk block -> its stride
EARLY_MEMORY = (2, 3)


def trunk_output(net, embedding_features: torch.Tensor) -> torch.Tensor:
    """The trunk output inside the HE branch's input Cat(block ``embed_tap``, output)."""
    return embedding_features[:, net.backbone.block_channels(net.config.embed_tap):]


def tower_vectors(net, embedding_features: torch.Tensor, cells):
    """L2-normalised classification-tower features (exemplar-conditioned) at ``cells``,
    from the search pass's own trunk output."""
    cls = net.ban_head(net._kernels, trunk_output(net, embedding_features))["cls_features"][0].flatten(1).T
    return torch.nn.functional.normalize(cls[cells], dim=1)


def _rois(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)


def trunk_vectors(net, embedding_features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """L2-normalised RoI Align of the trunk output (the channels after block 7's), pooled
    as the HE branch pools its RoIs."""
    return torch.nn.functional.normalize(net.embedding.pool(trunk_output(net, embedding_features),
                                                            _rois(boxes)).flatten(1), dim=1)


def embed_vectors(net, embedding_features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    return net.embedding(embedding_features, _rois(boxes))


def block_features(net, image: torch.Tensor) -> dict[int, torch.Tensor]:
    """The outputs of the ``EARLY_BLOCKS`` for ``image``, from one trunk pass."""
    _, tapped = net.backbone(image, taps=tuple(EARLY_BLOCKS))
    return dict(zip(EARLY_BLOCKS, tapped))


def block_vectors(features: dict[int, torch.Tensor], boxes: torch.Tensor, block: int) -> torch.Tensor:
    """L2-normalised 5x5 RoI Align of trunk block ``block``'s output (``block_features``)."""
    stride = EARLY_BLOCKS[block]
    return torch.nn.functional.normalize(
        roi_align(features[block], _rois(boxes + pixel_to_feature_shift(stride)), 5, spatial_scale=1.0 / stride,
                  sampling_ratio=2, aligned=True).flatten(1), dim=1)


def euclidean(a, b):
    return torch.cdist(a, b)


def cosine(a, b):
    return 1 - a @ b.T


def candidates(tracker: Tracker, frame, around, truth_box):
    """The frame cropped around box ``around`` (x, y, w, h); returns the network's outputs,
    every cell's box, the crop window, the crop, the candidates (NMS-kept cells,
    decreasing score) and their IoU with ``truth_box``."""
    net, track = tracker.net, tracker.config.track
    size = context_size(around[2], around[3], track.context_amount)
    window = CropWindow(around[0] + around[2] / 2, around[1] + around[3] / 2,
                        size * net.config.instance_size / net.config.exemplar_size, net.config.instance_size)
    search = window.extract(frame, tracker.channel_mean)
    out = net.track(tracker._tensor(search))
    score = out["score"].reshape(-1)
    boxes = decode_ltrb(net.grid, out["ltrb"][None])[0].reshape(4, -1).T
    gx, gy, gw, gh = window.box_to_crop(truth_box)
    truth = torch.tensor([[gx, gy, gx + gw, gy + gh]], dtype=torch.float32)
    order = score.argsort(descending=True)[:32]
    order = order[score[order] >= 0.3 * score[order[0]]]
    kept = order[nms(boxes[order], score[order], 0.3)]
    return out, boxes, window, search, truth, kept, box_iou(boxes[kept], truth)[:, 0]


def sequence_counts(tracker: Tracker, sequence) -> dict[str, int]:
    net, track = tracker.net, tracker.config.track
    counts = dict.fromkeys(("frames", "first_negatives", *CUES), 0)
    tracker.init(sequence.frames[0], sequence.boxes[0])
    x0, y0, w0, h0 = tracker.exemplar_box
    exemplar_box = torch.tensor([[x0, y0, x0 + w0, y0 + h0]], dtype=torch.float32)
    exemplar_features = net.features(tracker._tensor(tracker.exemplar))[1]
    kinds = {"embed": (embed_vectors, euclidean), "trunk": (trunk_vectors, cosine)}
    positives = {k: [make(net, exemplar_features, exemplar_box)] for k, (make, _) in kinds.items()}
    negatives = {k: [] for k in kinds}
    out, boxes, _, _, _, kept, iou = candidates(tracker, sequence.frames[0], sequence.boxes[0], sequence.boxes[0])
    first_hard = kept[iou < 0.2]
    first_negatives = {k: make(net, out["embedding_features"], boxes[first_hard]) for k, (make, _) in kinds.items()}
    counts["first_negatives"] = len(first_hard)
    tower_positives = [tower_vectors(net, out["embedding_features"], kept[iou.argmax()][None])]
    tower_negatives = []
    exemplar_blocks = block_features(net, tracker._tensor(tracker.exemplar))
    block_positives = {b: [block_vectors(exemplar_blocks, exemplar_box, b)] for b in EARLY_BLOCKS}
    block_negatives = {b: [] for b in EARLY_MEMORY}
    for index in range(1, len(sequence.boxes)):
        gt, previous = sequence.boxes[index], sequence.boxes[index - 1]
        if not (np.isfinite(gt).all() and np.isfinite(previous).all()):
            continue
        out, boxes, window, search, truth, kept, iou = candidates(tracker, sequence.frames[index], previous, gt)
        score = out["score"].reshape(-1)
        penalty = torch.from_numpy(scale_penalty((boxes[:, 2] - boxes[:, 0]).numpy(), (boxes[:, 3] - boxes[:, 1]).numpy(),
                                                 previous[2] * window.scale, previous[3] * window.scale, track.penalty_k))
        final = penalty * score * (1 - track.window_influence) + torch.from_numpy(tracker.window).reshape(-1) * track.window_influence
        hard = iou < 0.2
        vectors = {k: make(net, out["embedding_features"], boxes[kept]) for k, (make, _) in kinds.items()}
        tower = tower_vectors(net, out["embedding_features"], kept)
        search_blocks = block_features(net, tracker._tensor(search))
        blocks = {block: block_vectors(search_blocks, boxes[kept], block) for block in EARLY_BLOCKS}
        if (iou > 0.5).any() and hard.any():
            target = int(iou.argmax())
            counts["frames"] += 1
            colour = np.array([bhattacharyya_distance(colour_histogram(search, box), tracker.exemplar_colour)
                               for box in boxes[kept].tolist()])
            counts["colour"] += int(colour[target] <= colour[hard.numpy()].min())
            counts["score"] += int(score[kept][target] >= score[kept][hard].max())
            to_first = cosine(tower, tower_positives[0])[:, 0]
            counts["tower"] += int(to_first[target] <= to_first[hard].min())
            margin = cosine(tower, torch.cat(tower_positives)).min(dim=1).values
            if tower_negatives:
                margin = margin - cosine(tower, torch.cat(tower_negatives)).min(dim=1).values
            counts["tower_memory"] += int(margin[target] <= margin[hard].min())
            final_right = bool(final[kept][target] >= final[kept][hard].max())
            counts["final"] += int(final_right)
            for block, block_vecs in blocks.items():
                to_exemplar = cosine(block_vecs, block_positives[block][0])[:, 0]
                counts[f"block{block}"] += int(to_exemplar[target] <= to_exemplar[hard].min())
                if block in EARLY_MEMORY:
                    margin = cosine(block_vecs, torch.cat(block_positives[block])).min(dim=1).values
                    if block_negatives[block]:
                        margin = margin - cosine(block_vecs, torch.cat(block_negatives[block])).min(dim=1).values
                    counts[f"block{block}_memory"] += int(margin[target] <= margin[hard].min())
            for kind, (_, distance) in kinds.items():
                to_exemplar = distance(vectors[kind], positives[kind][0])[:, 0]
                right = bool(to_exemplar[target] <= to_exemplar[hard].min())
                counts[kind] += int(right)
                counts[f"{kind}_rescue"] += int(right and not final_right)
                margin = distance(vectors[kind], torch.cat(positives[kind])).min(dim=1).values
                if negatives[kind]:
                    margin = margin - distance(vectors[kind], torch.cat(negatives[kind])).min(dim=1).values
                counts[f"{kind}_memory"] += int(margin[target] <= margin[hard].min())
                first = to_exemplar
                if len(first_negatives[kind]):
                    first = first - distance(vectors[kind], first_negatives[kind]).min(dim=1).values
                counts[f"{kind}_first"] += int(first[target] <= first[hard].min())
                to_previous = distance(vectors[kind], positives[kind][-1])[:, 0]
                counts[f"{kind}_previous"] += int(to_previous[target] <= to_previous[hard].min())
        for kind, (make, _) in kinds.items():  # the memory learns from the ground truth
            positives[kind].append(make(net, out["embedding_features"], truth))
            if hard.any():
                negatives[kind].append(vectors[kind][hard])
        for block in EARLY_MEMORY:
            block_positives[block].append(block_vectors(search_blocks, truth, block))
            if hard.any():
                block_negatives[block].append(blocks[block][hard])
        if (iou > 0.5).any():  # a cell, not a box: the tower's memory takes the candidate on the target
            tower_positives.append(tower[int(iou.argmax())][None])
        if hard.any():
            tower_negatives.append(tower[hard])
    return counts


@torch.no_grad()
def main(weights: str, folder: str, names: str) -> None:
    tracker = Tracker.from_checkpoint(weights, inspect=False, backend="eager")
    if tracker.net.embedding is None:
        raise SystemExit(f"{weights} has no HE branch")
    total = dict.fromkeys(("frames", "first_negatives", *CUES), 0)
    for name in names.split(","):
        counts = sequence_counts(tracker, read_sequence(f"{folder}/{name}"))
        print(name, counts, flush=True)
        total = {k: total[k] + counts[k] for k in total}
    frames = max(total["frames"], 1)
    print(f"{total['frames']} frames with a target candidate and a hard negative "
          f"({total['first_negatives']} first-frame hard negatives); right:",
          ", ".join(f"{cue} {total[cue] / frames:.2f}" for cue in CUES))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
