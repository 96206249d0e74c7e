"""Frame sources: image folders and video files, decoded by index, and their errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.data.sources import FrameDecodeError, ImageFolderSource, VideoSource, open_frames
from model.core.errors import InputError

FRAME_W, FRAME_H, N_FRAMES = 64, 48, 12


def synthetic_frame(index: int) -> np.ndarray:
    """A frame that differs from every other one: grey level and a square that moves."""
    frame = np.full((FRAME_H, FRAME_W, 3), 10 + 18 * index, np.uint8)
    cv2.rectangle(frame, (2 + 4 * index, 10), (12 + 4 * index, 30), (0, 0, 255), -1)
    return frame


def write_video(path: Path, fourcc: str, count: int = N_FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (FRAME_W, FRAME_H))
    assert writer.isOpened()
    for index in range(count):
        writer.write(synthetic_frame(index))
    writer.release()
    return path


def decode_sequentially(path: Path) -> list[np.ndarray]:
    """Reference decode: every frame OpenCV reads in order, without seeking."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def avi_frame_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each frame's data in an MJPG AVI's ``movi`` list."""
    position = data.index(b"movi") + 4
    chunks = []
    while position + 8 <= len(data):
        fourcc, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if fourcc == b"idx1":
            break
        if fourcc.endswith(b"dc"):
            chunks.append((position + 8, size))
        position += 8 + size + (size & 1)
    return chunks


@pytest.fixture
def mjpg_video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.avi", "MJPG")


# ---------------------------------------------------------------- image folders


def test_image_folder_natural_order_and_colour_conversion(tmp_path):
    grey = np.full((FRAME_H, FRAME_W), 77, np.uint8)
    rgba = np.dstack([synthetic_frame(2), np.full((FRAME_H, FRAME_W), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "1.png"), synthetic_frame(0))
    cv2.imwrite(str(tmp_path / "2.png"), grey)
    cv2.imwrite(str(tmp_path / "10.png"), rgba)
    (tmp_path / "notes.txt").write_text("not a frame")

    frames = ImageFolderSource(tmp_path)
    assert [f.name for f in frames.files] == ["1.png", "2.png", "10.png"]
    assert len(frames) == 3 and frames.frame_size == (FRAME_W, FRAME_H) and frames.fps is None
    for frame in frames:
        assert frame.shape == (FRAME_H, FRAME_W, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], synthetic_frame(0))
    assert (frames[1] == 77).all()
    np.testing.assert_array_equal(frames[-1], synthetic_frame(2))


def test_image_folder_accepts_sequence_folder_with_img(tmp_path):
    (tmp_path / "img").mkdir()
    for index in range(3):
        cv2.imwrite(str(tmp_path / "img" / f"{index + 1:05d}.jpg"), synthetic_frame(index))
    frames = open_frames(tmp_path)
    assert isinstance(frames, ImageFolderSource) and frames.path == tmp_path / "img" and len(frames) == 3


def test_frames_are_copies_and_index_is_checked(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), synthetic_frame(0))
    with open_frames(tmp_path) as frames:
        first = frames[0]
        first[:] = 0  # drawing on a returned frame must not reach the cache
        np.testing.assert_array_equal(frames[0], synthetic_frame(0))
        with pytest.raises(IndexError):
            frames[1]


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_empty_image_folder(tmp_path, content):
    if content:
        (tmp_path / content).write_text("x")
    with pytest.raises(InputError, match=str(tmp_path)):
        ImageFolderSource(tmp_path)


def test_unreadable_image_names_file_and_frame(tmp_path):
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"{index:03d}.jpg"), synthetic_frame(index))
    (tmp_path / "001.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    frames = open_frames(tmp_path)
    np.testing.assert_array_equal(frames[2].shape, (FRAME_H, FRAME_W, 3))
    with pytest.raises(FrameDecodeError, match=r"001\.jpg.* 1$") as caught:
        frames[1]
    assert caught.value.frame_index == 1 and caught.value.path.name == "001.jpg"


def test_open_frames_missing_path(tmp_path):
    with pytest.raises(InputError, match="nothing_here"):
        open_frames(tmp_path / "nothing_here")


# ---------------------------------------------------------------- videos


@pytest.mark.parametrize("fourcc, suffix", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_video_random_access_matches_sequential_decode(tmp_path, fourcc, suffix):
    path = write_video(tmp_path / f"clip{suffix}", fourcc)
    reference = decode_sequentially(path)
    assert len(reference) == N_FRAMES
    with open_frames(path) as frames:
        assert isinstance(frames, VideoSource)
        assert len(frames) == N_FRAMES and frames.frame_size == (FRAME_W, FRAME_H) and frames.fps == 10.0
        for index in [5, 0, 11, 3, 4, 5, 10, 9, 1, 2, 6, 7, 8, -1]:
            np.testing.assert_array_equal(frames[index], reference[index], err_msg=f"frame {index}")


def test_video_whose_container_overstates_the_frame_count(mjpg_video, tmp_path):
    """A truncated AVI keeps the header of the whole file: count by decoding instead."""
    data = mjpg_video.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    assert cv2.VideoCapture(str(truncated), cv2.CAP_FFMPEG).get(cv2.CAP_PROP_FRAME_COUNT) == N_FRAMES
    reference = decode_sequentially(mjpg_video)
    frames = open_frames(truncated)
    assert 0 < len(frames) < N_FRAMES
    for index in reversed(range(len(frames))):
        np.testing.assert_array_equal(frames[index], reference[index])


def test_video_frame_that_fails_to_decode(mjpg_video, tmp_path):
    """A broken frame in the middle raises FrameDecodeError; the frames after it keep their index."""
    data = bytearray(mjpg_video.read_bytes())
    offset, size = avi_frame_chunks(bytes(data))[5]
    data[offset:offset + size] = bytes(size)
    broken = tmp_path / "broken.avi"
    broken.write_bytes(bytes(data))
    reference = decode_sequentially(mjpg_video)

    frames = open_frames(broken)
    assert len(frames) == N_FRAMES
    for order in ([9, 5, 6], [4, 5, 6, 7]):  # after a seek, and read in sequence
        for index in order:
            if index == 5:
                with pytest.raises(FrameDecodeError, match=r"broken\.avi.* 5$") as caught:
                    frames[index]
                assert caught.value.frame_index == 5 and caught.value.path == broken
            else:
                np.testing.assert_array_equal(frames[index], reference[index], err_msg=f"frame {index}")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("hello, I am text")
    with pytest.raises(InputError, match=r"notes\.mp4"):
        open_frames(path)


def test_video_with_zero_frames(tmp_path):
    path = write_video(tmp_path / "empty.avi", "MJPG", count=0)
    with pytest.raises(InputError, match=r"empty\.avi"):
        open_frames(path)


def read_everything(path: Path) -> None:
    """Open ``path`` and decode its first frames and last frames: only InputError may escape."""
    try:
        frames = open_frames(path)
    except InputError as error:
        assert path.name in str(error)
        return
    with frames:
        for index in [*range(min(len(frames), 16)), *range(max(len(frames) - 3, 0), len(frames))]:
            try:
                assert frames[index].shape[2] == 3
            except FrameDecodeError as error:
                assert error.frame_index == index and path.name in str(error)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".mp4", ".avi", ".mkv"]))
def test_random_bytes_as_video(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    read_everything(path)


@pytest.fixture(scope="module")
def valid_videos(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        suffix: write_video(folder / f"clip{suffix}", fourcc).read_bytes()
        for fourcc, suffix in [("MJPG", ".avi"), ("mp4v", ".mp4")]
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suffix=st.sampled_from([".avi", ".mp4"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=8),
)
def test_mutated_video_files(tmp_path, valid_videos, suffix, cut, flips):
    data = bytearray(valid_videos[suffix])
    for where, value in flips:
        data[int(where * len(data))] = value
    path = tmp_path / f"mutated{suffix}"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))
    read_everything(path)
