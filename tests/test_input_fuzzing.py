"""Random bytes and random mutations of valid files raise nothing but the project's own
:class:`~model.core.errors.InputError` (one line, naming the file), for the readers the other
test modules do not fuzz: YAML configs, weights files, image files, and ``track --init``.

(Videos, ground-truth files and project files are fuzzed in test_sources.py,
test_sequences.py and test_store.py.)
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hnse_cli.track import check_inside, parse_box
from model.core.checkpoint import read_checkpoint, save_checkpoint
from model.core.config import Config, TrackConfig, TrainConfig, load_config, save_config
from model.data.sources import FrameDecodeError, ImageFolderSource
from model.core.errors import InputError

FLIPS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8)
CUT = st.one_of(st.none(), st.floats(0, 1))


def mutated(data: bytes, flips, cut) -> bytes:
    """``data`` with bytes XOR-ed at the given fractions of its length, then cut at ``cut``."""
    data = bytearray(data)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    return bytes(data if cut is None else data[: int(cut * len(data))])


def read_as(reader, data: bytes, name: str):
    """``reader(path)`` on ``data`` written to a fresh file ``name``: its result, or None
    after an InputError whose one line names the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            return reader(path)
        except InputError as error:
            assert str(path) in str(error) and "\n" not in str(error), str(error)
            return None


# ---------------------------------------------------------------- YAML configs


VALID_CONFIG = Config(train=TrainConfig(epochs=3, base_lr=0.02, datasets=({"kind": "synthetic", "count": 4},)),
                      track=TrackConfig(penalty_k=0.1, window_influence=0.3))


@pytest.fixture(scope="module")
def valid_yaml(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("config") / "valid.yaml"
    save_config(VALID_CONFIG, path)
    return path.read_bytes()


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_as_a_config(data):
    config = read_as(load_config, data, "random.yaml")
    assert config is None or isinstance(config, Config)


YAML_PIECES = st.lists(st.sampled_from([*"{}[]:,-&*!|>'\"#%@ \t\n0123456789.eE", "\r\n", "null", "true",
                                         "~", "!!python/object", "<<", "- ", ": ", "{a: 1}", "[1, 2]"]),
                       max_size=5).map("".join)


@settings(max_examples=100, deadline=None)
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 4), YAML_PIECES), max_size=4),
       flips=st.one_of(st.just([]), FLIPS))
def test_mutated_config_loads_or_raises_input_error(valid_yaml, edits, flips):
    text = valid_yaml.decode()
    for where, remove, insert in edits:
        position = int(where * len(text))
        text = text[:position] + insert + text[position + remove:]
    config = read_as(load_config, mutated(text.encode(), flips, None), "mutated.yaml")
    assert config is None or isinstance(config, Config)


# ---------------------------------------------------------------- weights files


@pytest.fixture(scope="module")
def valid_weights(tmp_path_factory) -> bytes:
    """A real weights file around a tiny module: small, so that mutations hit its structure
    (zip records, the pickle) more often than tensor data."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, torch.nn.Linear(6, 3), VALID_CONFIG, meta={"note": "tiny"}, step=2)
    return path.read_bytes()


def assert_header_checked(payload) -> None:
    """What read_checkpoint lets through has passed its header checks."""
    assert payload["format"] and isinstance(payload["config"], dict) and isinstance(payload["state_dict"], dict)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_as_a_weights_file(data):
    payload = read_as(read_checkpoint, data, "random.pt")
    if payload is not None:
        assert_header_checked(payload)


@settings(max_examples=100, deadline=None)
@given(flips=FLIPS, cut=CUT)
def test_mutated_weights_file_reads_or_raises_input_error(valid_weights, flips, cut):
    """torch.load does not check the zip's CRCs, so a flip inside tensor data reads back
    (other values); everything else a mutation breaks must be an InputError."""
    payload = read_as(read_checkpoint, mutated(valid_weights, flips, cut), "mutated.pt")
    if payload is not None:
        assert_header_checked(payload)


def test_changed_pickle_protocol_byte_reads_without_a_warning(valid_weights):
    """A file whose pickle names another protocol (one changed byte, which torch reads on
    with a UserWarning) is checked as any other, and the user sees no torch warning."""
    data = bytearray(valid_weights)
    protocol = data.index(b"\x80\x02") + 1  # the pickle's PROTO opcode and its argument
    data[protocol] = 75
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        payload = read_as(read_checkpoint, bytes(data), "protocol.pt")
    assert payload is not None
    assert_header_checked(payload)


# ---------------------------------------------------------------- image files


@pytest.fixture(scope="module")
def valid_images() -> dict[str, bytes]:
    frame = np.zeros((24, 32, 3), np.uint8)
    cv2.rectangle(frame, (4, 4), (20, 16), (30, 200, 90), -1)
    return {suffix: cv2.imencode(suffix, frame)[1].tobytes() for suffix in (".jpg", ".png", ".bmp")}


def decode_first_frame(path: Path) -> np.ndarray | None:
    """Frame 0 of the folder holding ``path``: a BGR image, or None after a FrameDecodeError
    naming the file and the frame."""
    frames = ImageFolderSource(path.parent)
    try:
        frame = frames[0]
    except FrameDecodeError as error:
        assert error.frame_index == 0 and error.path == path and str(error).endswith(" 0")
        return None
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    return frame


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=1000), suffix=st.sampled_from([".jpg", ".png", ".bmp"]))
def test_random_bytes_as_an_image_frame(data, suffix):
    read_as(decode_first_frame, data, f"00001{suffix}")


@settings(max_examples=100, deadline=None)
@given(suffix=st.sampled_from([".jpg", ".png", ".bmp"]), flips=FLIPS, cut=CUT)
def test_mutated_image_frame_decodes_or_raises_frame_decode_error(valid_images, suffix, flips, cut):
    read_as(decode_first_frame, mutated(valid_images[suffix], flips, cut), f"00001{suffix}")


# ---------------------------------------------------------------- track --init


BOX_TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)),
             min_size=3, max_size=5).map(lambda values: ",".join(map(str, values))),
)


@settings(max_examples=300, deadline=None)
@given(text=BOX_TEXT)
def test_any_init_text_is_a_usable_box_or_one_line_input_error(text):
    frame_size = (320, 240)
    try:
        box = parse_box(text)
        check_inside(box, frame_size, Path("clip.mp4"), 0)
    except InputError as error:
        assert "\n" not in str(error)
        return
    x, y, w, h = box
    assert all(np.isfinite(box)) and 0 < w <= 320 and 0 < h <= 240
    assert x < 320 and y < 240 and x + w > 0 and y + h > 0
