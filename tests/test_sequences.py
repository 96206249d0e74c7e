"""Sequence readers: the OTB, VOT, GOT-10k and LaSOT layouts, datasets, and malformed files."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.data.sequences import detect_layout, load_boxes_file, read_dataset, read_sequence
from model.core.errors import InputError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOXES = [(10, 20, 30, 40), (11.5, 21, 30, 41), (12, 22.25, 29, 40), (13, 23, 31, 39)]


def write_frames(folder: Path, count: int, pattern: str = "{:05d}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(folder / pattern.format(index + 1)), np.full((12, 16, 3), 20 * index, np.uint8))


def box_lines(separator: str, boxes=BOXES) -> str:
    return "".join(separator.join(f"{v:g}" for v in box) + "\n" for box in boxes)


def make_otb(folder: Path, separator: str = "\t") -> Path:
    write_frames(folder / "img", len(BOXES), "{:04d}.jpg")
    (folder / "groundtruth_rect.txt").write_text(box_lines(separator))
    return folder


def make_plain(folder: Path, text: str | None = None, count: int = len(BOXES)) -> Path:
    write_frames(folder / "img", count)
    (folder / "groundtruth.txt").write_text(box_lines(",") if text is None else text)
    return folder


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("separator", ["\t", ",", " ", ", ", "  "])
def test_otb_layout_any_separator(tmp_path, separator):
    folder = make_otb(tmp_path / "Walker", separator)
    assert detect_layout(folder) == "otb"
    sequence = read_sequence(folder)
    assert sequence.name == "Walker" and len(sequence) == 4
    assert sequence.boxes.dtype == np.float64
    np.testing.assert_array_equal(sequence.boxes, np.array(BOXES, float))


def test_vot_layout_polygons_become_min_max_boxes(tmp_path):
    folder = tmp_path / "ball"
    write_frames(folder / "color", 3, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text(
        "10,20,40,20,40,60,10,60\n"      # axis-aligned corners
        "25,10,45,30,25,50,5,30\n"       # a rotated square (diamond)
        "1,2,3,4\n"                      # VOT also writes plain boxes
    )
    assert detect_layout(folder) == "vot"
    np.testing.assert_array_equal(read_sequence(folder).boxes, [[10, 20, 30, 40], [5, 10, 40, 40], [1, 2, 3, 4]])


def test_old_vot_layout_frames_in_the_folder(tmp_path):
    folder = tmp_path / "bolt"
    write_frames(folder, 2, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text("0,0,8,0,8,6,0,6\n1,1,9,1,9,7,1,7\n")
    sequence = read_sequence(folder, layout="vot")
    assert len(sequence) == 2 and sequence.frames.path == folder
    np.testing.assert_array_equal(sequence.boxes[1], [1, 1, 8, 6])


def test_got10k_absence_label(tmp_path):
    folder = tmp_path / "GOT-10k_Val_000001"
    write_frames(folder, 4, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text("10,20,30,40\n0,0,0,0\n12,22,29,40\n13,23,31,39\n")
    (folder / "absence.label").write_text("0\n1\n0\n0\n")
    (folder / "meta_info.ini").write_text("[METAINFO]\n")
    assert detect_layout(folder) == "got10k"
    boxes = read_sequence(folder).boxes
    assert np.isnan(boxes[1]).all() and not np.isnan(boxes[[0, 2, 3]]).any()


def test_lasot_occlusion_and_out_of_view(tmp_path):
    folder = make_plain(tmp_path / "airplane-1", "10,20,30,40\n11,21,30,40\n0,0,0,0\n0,0,0,0\n")
    (folder / "full_occlusion.txt").write_text("0,0,1,0")
    (folder / "out_of_view.txt").write_text("0,0,0,1\n")
    assert detect_layout(folder) == "lasot"
    boxes = read_sequence(folder).boxes
    assert not np.isnan(boxes[:2]).any() and np.isnan(boxes[2:]).all()


def test_development_layout_nan_and_missing_values_mean_absent(tmp_path):
    text = "10,20,30,40\nNaN,NaN,NaN,NaN\n12,,29,40\n\n13,23,31,39\n\n\n"  # trailing blank lines ignored
    folder = make_plain(tmp_path / "seq", text, count=5)
    boxes = read_sequence(folder).boxes
    assert boxes.shape == (5, 4)
    np.testing.assert_array_equal(np.isnan(boxes).all(axis=1), [False, True, True, True, False])


def test_load_boxes_file(tmp_path):
    path = tmp_path / "boxes.txt"
    path.write_text(box_lines(" "))
    np.testing.assert_array_equal(load_boxes_file(path), BOXES)
    path.write_text("0,0,8,0,8,6,0,6\n")
    with pytest.raises(InputError, match="found 8"):
        load_boxes_file(path)
    np.testing.assert_array_equal(load_boxes_file(path, polygons=True), [[0, 0, 8, 6]])


# ---------------------------------------------------------------- datasets


def test_dataset_sorted_list_txt_and_manifest(tmp_path):
    for name in ["b", "a", "c"]:
        make_plain(tmp_path / name)
    (tmp_path / "anno").mkdir()  # a folder without ground truth is not a sequence
    assert [s.name for s in read_dataset(tmp_path)] == ["a", "b", "c"]

    (tmp_path / "list.txt").write_text("c\n\na\n")
    assert [s.name for s in read_dataset(tmp_path)] == ["c", "a"]

    (tmp_path / "MANIFEST.tsv").write_text("name\tkind\tnotes\nb\tsequence\tx\nimages\timages\ty\nc\tsequence\tz\n")
    assert [s.name for s in read_dataset(tmp_path)] == ["b", "c"]


def test_dataset_root_that_is_one_sequence(tmp_path):
    assert [s.name for s in read_dataset(make_otb(tmp_path / "Walker"))] == ["Walker"]


def test_dataset_errors(tmp_path):
    with pytest.raises(InputError, match="no sequence folders"):
        read_dataset(tmp_path)
    with pytest.raises(InputError, match="no such dataset folder"):
        read_dataset(tmp_path / "missing")
    make_plain(tmp_path / "a")
    (tmp_path / "list.txt").write_text("a\nghost\n")
    with pytest.raises(InputError, match=r"list\.txt line 2: .*'ghost'"):
        read_dataset(tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "sequences").is_dir(), reason="shared data not available")
def test_development_set_follows_its_manifest():
    with open(SHARED_DATA / "sequences" / "MANIFEST.tsv", newline="") as handle:
        manifest = list(csv.DictReader(handle, delimiter="\t"))
    sequences = read_dataset(SHARED_DATA / "sequences")
    assert [s.name for s in sequences] == [row["name"] for row in manifest]
    for sequence, row in zip(sequences, manifest):
        assert len(sequence) == int(row["n_frames"]) == len(sequence.boxes)
        assert sequence.frames.frame_size == (int(row["width"]), int(row["height"]))
        present = sequence.boxes[~np.isnan(sequence.boxes).any(axis=1)]
        assert (present[:, 2:] > 0).all()


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "text, count, pattern",
    [
        ("10,20,30,40\n10,twenty,30,40\n", 2, r"groundtruth\.txt line 2: cannot parse 'twenty'"),
        ("10,20,30,40\n10,20,30\n", 2, r"groundtruth\.txt line 2: expected 4 values .* found 3"),
        ("10,20,30,40,50\n", 1, r"groundtruth\.txt line 1: expected 4 values .* found 5"),
        ("10,20,30,40\n10,20,30,40\n", 3, r"groundtruth\.txt: 2 boxes for 3 frames"),
        ("10,20,30,40\n10,20,0,40\n", 2, r"groundtruth\.txt line 2: box has zero or negative size \(w=0, h=40\)"),
        ("10,20,30,40\n10,20,30,-1\n", 2, r"groundtruth\.txt line 2: box has zero or negative size"),
        ("10,20,30,inf\n", 1, r"groundtruth\.txt line 1: infinite value"),
    ],
)
def test_malformed_groundtruth(tmp_path, text, count, pattern):
    folder = make_plain(tmp_path / "seq", text, count=count)
    with pytest.raises(InputError, match=pattern):
        read_sequence(folder)


def test_malformed_files_around_the_boxes(tmp_path):
    folder = make_plain(tmp_path / "seq")
    (folder / "groundtruth.txt").write_bytes(b"10,20,30,40\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt: not a text file"):
        read_sequence(folder)

    folder = make_plain(tmp_path / "lasot")
    (folder / "out_of_view.txt").write_text("0,0,2,0")
    with pytest.raises(InputError, match=r"out_of_view\.txt line 1: expected 0 or 1, found '2'"):
        read_sequence(folder)
    (folder / "out_of_view.txt").write_text("0,0,0")
    with pytest.raises(InputError, match=r"out_of_view\.txt: 3 labels for 4 frames"):
        read_sequence(folder)

    with pytest.raises(InputError, match="not a sequence folder"):
        read_sequence(tmp_path)
    with pytest.raises(InputError, match="unknown sequence layout 'mot'"):
        read_sequence(folder, layout="mot")

    empty = tmp_path / "empty"
    (empty / "img").mkdir(parents=True)
    (empty / "groundtruth.txt").write_text("1,2,3,4\n")
    with pytest.raises(InputError, match=r"empty/img: no image files"):
        read_sequence(empty)


def assert_reads_or_input_error(folder: Path) -> None:
    try:
        sequence = read_sequence(folder)
    except InputError as error:
        assert "\n" not in str(error) and str(folder) in str(error)
        return
    assert sequence.boxes.shape == (len(sequence), 4)
    present = ~np.isnan(sequence.boxes).any(axis=1)
    assert (sequence.boxes[present, 2:] > 0).all()
    assert np.isfinite(sequence.boxes[present]).all()


@pytest.fixture(scope="module")
def sequence_folder(tmp_path_factory) -> Path:
    return make_plain(tmp_path_factory.mktemp("sequences") / "seq")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), name=st.sampled_from(["groundtruth.txt", "absence.label", "out_of_view.txt"]))
def test_random_bytes_as_annotation_files(sequence_folder, data, name):
    (sequence_folder / "groundtruth.txt").write_text(box_lines(","))
    (sequence_folder / name).write_bytes(data)
    try:
        assert_reads_or_input_error(sequence_folder)
    finally:
        for extra in ("absence.label", "out_of_view.txt"):
            (sequence_folder / extra).unlink(missing_ok=True)


MUTATION_TEXT = st.lists(
    st.sampled_from([*"0123456789.,-+e \t\nNnaIif", "nan", "inf", "1e400", "\r\n"]), max_size=4
).map("".join)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    separator=st.sampled_from([",", "\t", " "]),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 3), MUTATION_TEXT), max_size=4),
)
def test_mutated_groundtruth(sequence_folder, separator, edits):
    text = box_lines(separator)
    for where, remove, insert in edits:
        position = int(where * len(text))
        text = text[:position] + insert + text[position + remove:]
    (sequence_folder / "groundtruth.txt").write_text(text)
    assert_reads_or_input_error(sequence_folder)
