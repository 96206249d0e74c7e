"""Training pairs (model/data/pairs.py): sources, frame sampling, crops, reproducibility."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model.core.config import Config, NetworkConfig, TrainConfig
from model.data.pairs import PairDataset, build_sources
from model.core.errors import InputError

SHARED_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"
TARGET_COLOURS = [(40, 200, 60), (220, 40, 90), (30, 60, 230)]  # one flat target colour per still image
NO_COLOUR_CHANGE = dict(color_jitter=0.0, blur_prob=0.0, gray_prob=0.0)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Two 30-frame sequences (a square moving right; frames 10-12 of ``walk`` absent)
    and three still images, each with one flat-coloured target on its own background."""
    root = tmp_path_factory.mktemp("pairs_data")
    for name, speed in (("walk", 3), ("run", 5)):
        folder = root / "sequences" / name
        (folder / "img").mkdir(parents=True)
        lines = []
        for i in range(30):
            frame = np.full((120, 200, 3), 90, np.uint8)
            x = 10 + speed * i % 150
            cv2.rectangle(frame, (x, 40), (x + 29, 69), (250, 250, 250), -1)
            cv2.imwrite(str(folder / "img" / f"{i + 1:05d}.jpg"), frame)
            lines.append("NaN,NaN,NaN,NaN" if name == "walk" and 9 <= i <= 11 else f"{x},40,30,30")
        (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    images = root / "still" / "images"
    images.mkdir(parents=True)
    rows = ["image\tclass_id\tx\ty\tw\th"]
    for i, colour in enumerate(TARGET_COLOURS):
        image = np.full((240, 320, 3), 30 + 60 * i, np.uint8)
        x, y, w, h = 60 + 40 * i, 50 + 20 * i, 70, 50
        image[y:y + h, x:x + w] = colour
        cv2.imwrite(str(images / f"{i}.png"), image)  # lossless: the target colour stays exact
        rows.append(f"{i}.png\t0\t{x}\t{y}\t{w}\t{h}")
    (root / "still" / "boxes.tsv").write_text("\n".join(rows) + "\n")
    return root


def make_config(*datasets, **train_changes) -> Config:
    return Config(network=NetworkConfig(pretrained=False),
                  train=TrainConfig(seed=5, datasets=tuple(datasets), **train_changes))


def make_dataset(config: Config, base: Path, length: int = 64) -> PairDataset:
    return PairDataset(build_sources(config, base), config, length)


SEQUENCES = {"kind": "sequences", "path": "sequences", "frame_range": 5}
STILL = {"kind": "images", "path": "still"}
SYNTHETIC = {"kind": "synthetic", "count": 2, "length": 20, "distractors": 2, "frame_range": 4}


def items_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_items_are_a_function_of_the_seed_and_index(data_root):
    config = make_config(SEQUENCES, STILL, SYNTHETIC)
    first, again = make_dataset(config, data_root), make_dataset(config, data_root)
    for index in (0, 7, 63):
        assert items_equal(first[index], again[index])
    assert not items_equal(first[0], first[1])
    # Another seed draws other pairs from the same (seed-independent) sources.
    reseeded_config = make_config(SEQUENCES, STILL)
    reseeded_config = dataclasses.replace(reseeded_config, train=dataclasses.replace(reseeded_config.train, seed=6))
    same_sources = make_dataset(make_config(SEQUENCES, STILL), data_root)
    reseeded = make_dataset(reseeded_config, data_root)
    assert not any(items_equal(same_sources[i], reseeded[i]) for i in range(4))


def test_crops_hold_the_target_near_their_centre(data_root):
    """Boxes lie inside the crops; the exemplar is centred within its 4-pixel jitter,
    the instance within +-translation, and the target fills the same fraction of both."""
    translation = 32.0
    config = make_config(SEQUENCES, STILL, SYNTHETIC, translation=translation)
    dataset = make_dataset(config, data_root)
    train = config.train
    shifts = []
    for index in range(40):
        item = dataset[index]
        assert item["template"].shape == (3, 127, 127) and item["search"].shape == (3, 255, 255)
        assert item["template"].dtype == item["search"].dtype == torch.float32
        for crop, size, max_shift in (("template", 127, 4.0), ("search", 255, translation)):
            x0, y0, x1, y1 = item[f"{crop}_box"].tolist()
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size, (index, crop, x0, y0, x1, y1)
            centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - (size - 1) / 2
            assert np.abs(centre).max() <= max_shift + 1e-3, (index, crop, centre)
            if crop == "search":
                shifts.append(np.abs(centre).max())
        template_side = (item["template_box"][2:] - item["template_box"][:2]).prod().sqrt()
        search_side = (item["search_box"][2:] - item["search_box"][:2]).prod().sqrt()
        jitter = 0.05 + train.scale_jitter + 0.05  # both crops' scale jitter, and the frames' own size change
        assert abs(float(torch.log(search_side / template_side))) <= jitter
    assert max(shifts) > translation / 2  # the search crops really are shifted


def test_sequence_pairs_stay_within_the_frame_range_on_present_frames(data_root):
    dataset = make_dataset(make_config(SEQUENCES), data_root)
    rng = np.random.default_rng(0)
    gaps, sequences = [], set()
    for _ in range(300):
        track, template_index, search_index = dataset.sample_frames(rng)
        assert abs(template_index - search_index) < 5
        for index in (template_index, search_index):
            assert np.isfinite(track.boxes[index]).all()  # absent frames are never drawn
        gaps.append(abs(template_index - search_index))
        sequences.add(id(track))
    assert max(gaps) == 4 and min(gaps) == 0
    assert len(sequences) == 2


def test_synthetic_pairs_use_their_own_frame_range(data_root):
    dataset = make_dataset(make_config(SYNTHETIC), data_root)
    rng = np.random.default_rng(1)
    gaps = [abs(t - s) for _, t, s in (dataset.sample_frames(rng) for _ in range(200))]
    assert max(gaps) == SYNTHETIC["frame_range"] - 1


def test_still_image_pairs_take_template_and_search_from_one_image(data_root):
    dataset = make_dataset(make_config(STILL, **NO_COLOUR_CHANGE), data_root)
    rng = np.random.default_rng(2)
    for _ in range(50):
        _, template_index, search_index = dataset.sample_frames(rng)
        assert template_index == search_index
    seen = set()
    for index in range(12):
        item = dataset[index]
        colours = []
        for crop in ("template", "search"):
            x0, y0, x1, y1 = item[f"{crop}_box"].tolist()
            colours.append(tuple(item[crop][:, int((y0 + y1) / 2), int((x0 + x1) / 2)].round().int().tolist()))
        assert colours[0] == colours[1] and colours[0] in TARGET_COLOURS
        seen.add(colours[0])
    assert len(seen) > 1


@pytest.mark.parametrize("shared", [False, True])
def test_a_shared_colour_change_gives_both_crops_the_same_target_colour(data_root, shared):
    """shared_colour_change: the target's colour differs between the crops of a still-image
    pair only when each crop draws its own colour change."""
    dataset = make_dataset(make_config(STILL, color_jitter=0.2, blur_prob=0.0, gray_prob=0.0,
                                       shared_colour_change=shared), data_root)
    differing = 0
    for index in range(12):
        item = dataset[index]
        colours = []
        for crop in ("template", "search"):
            x0, y0, x1, y1 = item[f"{crop}_box"].tolist()
            colours.append(item[crop][:, int((y0 + y1) / 2), int((x0 + x1) / 2)])
        differing += int((colours[0] - colours[1]).abs().max() > 2)
    assert (differing == 0) if shared else (differing >= 10)


def test_distributed_shards_are_disjoint_and_draw_different_pairs(data_root):
    dataset = make_dataset(make_config(SEQUENCES, STILL), data_root, length=16)
    shards = [list(torch.utils.data.distributed.DistributedSampler(dataset, 2, rank, shuffle=False))
              for rank in (0, 1)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(16))
    for a, b in zip(shards[0][:4], shards[1][:4]):
        assert not items_equal(dataset[a], dataset[b])


def test_real_training_sequences_give_centred_pairs():
    if not SHARED_TRAIN.is_dir():
        pytest.skip(f"{SHARED_TRAIN} missing")
    config = make_config({"kind": "sequences", "path": str(SHARED_TRAIN)})
    dataset = make_dataset(config, SHARED_TRAIN)
    for index in range(6):
        item = dataset[index]
        box = item["search_box"]
        assert torch.isfinite(box).all() and (box[2:] > box[:2]).all()
        centre = (box[:2] + box[2:]) / 2 - 127
        assert centre.abs().max() <= config.train.translation + 1e-3


def test_bad_sources_raise_one_line_input_errors(data_root, tmp_path):
    with pytest.raises(InputError, match="boxes.tsv"):
        build_sources(make_config({"kind": "images", "path": str(tmp_path)}))
    with pytest.raises(InputError, match="no sequence folders"):
        build_sources(make_config({"kind": "sequences", "path": str(tmp_path)}))
    with pytest.raises(InputError, match="'videos'"):
        build_sources(make_config({"kind": "videos", "path": "x"}))
    with pytest.raises(InputError, match="no usable dataset"):
        build_sources(make_config())
    (tmp_path / "boxes.tsv").write_text("image\tclass_id\tx\ty\tw\th\na.jpg\t0\t1\t2\n")
    with pytest.raises(InputError, match=r"boxes.tsv line 2: expected 6 columns"):
        build_sources(make_config({"kind": "images", "path": str(tmp_path)}))


@pytest.mark.parametrize("entry, message", [
    ({"kind": "sequences"}, "needs a 'path'"),
    ({"kind": "synthetic", "count": 1, "weight": "heavy"}, "is not a number"),
])
def test_bad_dataset_entries_are_one_line_errors_naming_the_config(tmp_path, capsys, entry, message):
    import yaml

    import main

    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"train": {"datasets": [entry]}}))
    assert main.main(["train", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(config) in err[0] and message in err[0]


def test_validation_sequences_are_held_out_of_training(data_root):
    entry = {"kind": "sequences", "path": str(data_root / "sequences")}
    both = build_sources(Config(train=TrainConfig(datasets=(entry,))))
    held = build_sources(Config(train=TrainConfig(datasets=(entry,), validation=("walk",))))
    assert len(both[0][0]) == 2 and len(held[0][0]) == 1
    assert len(held[0][0][0].boxes) == 30 and np.isfinite(held[0][0][0].boxes).all()  # "run" has no absent frames


def _mot_clip(root: Path) -> Path:
    clip = root / "clip"
    (clip / "img1").mkdir(parents=True)
    (clip / "gt").mkdir()
    for i in range(3):
        cv2.imwrite(str(clip / "img1" / f"{i + 1:06d}.jpg"), np.full((60, 80, 3), 50 * i, np.uint8))
    rows = ["1,1,10,10,20,30,1,1,1", "2,1,12,10,20,30,1,1,0.5", "3,1,14,10,20,30,1,1,1",
            "1,2,50,5,15,25,1,1,1", "3,2,52,5,15,25,1,1,0.2", "2,3,1,1,5,5,0,1,1"]
    (clip / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return clip


def test_mot_clips_give_one_track_per_identity(tmp_path):
    from model.data.sequences import read_mot_clip

    sequences = read_mot_clip(_mot_clip(tmp_path))
    assert [s.name for s in sequences] == ["clip/1", "clip/2"]  # identity 3 is not considered
    np.testing.assert_allclose(sequences[0].boxes[1], [12, 10, 20, 30])
    assert np.isnan(sequences[1].boxes[1]).all() and len(sequences[1].frames) == 3
    sources = build_sources(Config(train=TrainConfig(datasets=({"kind": "mot", "path": str(tmp_path)},))))
    assert len(sources[0][0]) == 2


@pytest.mark.parametrize("line, message", [("1,1,10,10,20", "at least 6"), ("1,1,a,10,20,30", "not numbers"),
                                           ("0,1,10,10,20,30", "whole number"), ("1,1,10,10,0,30", "size")])
def test_malformed_mot_lines_name_the_file_and_line(tmp_path, line, message):
    from model.data.sequences import read_mot_file

    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,10,20,30,1,1,1\n" + line + "\n")
    with pytest.raises(InputError, match=rf"gt.txt line 2: .*{message}"):
        read_mot_file(path)
