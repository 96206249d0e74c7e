"""Frame sources: a video file or an image folder, decoded on demand by frame index.

A source behaves like a read-only sequence of frames::

    with open_frames("clip.mp4") as frames:
        print(len(frames), frames.frame_size, frames.fps)
        frame = frames[41]          # (H, W, 3) uint8, BGR

Nothing is decoded ahead of time, so a long video never sits in memory; a small
least-recently-used cache keeps the last few frames, because the GUI steps back and
forth around the current frame. Every frame comes out as 3-channel BGR uint8:
greyscale and 4-channel images are converted on decoding.

A frame that cannot be decoded raises :class:`FrameDecodeError` (an
:class:`~model.core.errors.InputError`) naming the file and the frame index, so callers can
flag that frame and go on with the next one. Sources are not thread-safe: one thread
owns a source.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from model.core.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
FRAME_SUBFOLDERS = ("img", "color")  # OTB/LaSOT/ours keep frames in img/, VOT in color/


class FrameDecodeError(InputError):
    """One frame of a source cannot be decoded; ``path`` and ``frame_index`` say which."""

    def __init__(self, path: Path, frame_index: int, reason: str = "cannot decode frame"):
        super().__init__(f"{path}: {reason} {frame_index}")
        self.path = Path(path)
        self.frame_index = frame_index


class FrameSource:
    """Base of the frame sources: indexing, the LRU cache and the context manager.

    Subclasses set ``path`` and implement ``__len__`` and ``_decode(index)``; indices
    reaching ``_decode`` are already range-checked and non-negative.
    """

    path: Path
    cache_size = 8

    def __init__(self) -> None:
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._frame_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def _decode(self, index: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def fps(self) -> float | None:
        """Frames per second when the source knows it, else ``None``."""
        return None

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the first frame."""
        if self._frame_size is None:
            height, width = self[0].shape[:2]
            self._frame_size = (width, height)
        return self._frame_size

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative counts from the end) as (H, W, 3) uint8 BGR.

        The array is the caller's own copy: drawing on it does not touch the cache.
        """
        index = int(index)
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"frame {index} out of range for {count} frames of {self.path}")
        frame = self._cache.get(index)
        if frame is None:
            frame = self._decode(index)
            self._cache[index] = frame
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return frame.copy()

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def close(self) -> None:
        """Release the decoder and the cached frames."""
        self._cache.clear()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={len(self)})"


def _natural_key(name: str) -> list:
    """Sort key that orders ``2.jpg`` before ``10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ImageFolderSource(FrameSource):
    """The image files of a folder, in natural order of their names.

    ``path`` is either the folder holding the images or a sequence folder with an
    ``img/`` (or VOT's ``color/``) subfolder holding them.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        folder = Path(path)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        for name in FRAME_SUBFOLDERS:
            if (folder / name).is_dir():
                folder = folder / name
                break
        self.path = folder
        self.files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
        if not self.files:
            raise InputError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, index: int) -> np.ndarray:
        file = self.files[index]
        try:
            data = np.fromfile(file, dtype=np.uint8)
        except OSError as error:
            raise FrameDecodeError(file, index, f"cannot read ({error.strerror}) frame") from None
        # IMREAD_COLOR turns greyscale and 4-channel images into 3-channel BGR uint8.
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        except cv2.error:  # OpenCV raises, not returns None, for a header claiming a huge size
            image = None
        if image is None:
            raise FrameDecodeError(file, index, "not a readable image, frame")
        return image


class VideoSource(FrameSource):
    """A video file read through OpenCV's FFmpeg backend, with exact frame-index seeks.

    Reading frame ``i + 1`` right after frame ``i`` just decodes the next frame; any
    other jump seeks with ``CAP_PROP_POS_FRAMES`` and checks that the decoder landed
    on the asked frame, else decodes forward to it (slow but exact). OpenCV's frame
    position does not count frames that fail to decode, so the source keeps its own:
    a frame that fails still consumes its place, and the frames after it stay
    reachable by their true index.

    The frame count comes from the container, but containers lie (a truncated file
    keeps the header of the whole one): the last frame is decoded at opening, and if
    that fails the frames are counted by decoding them.
    """

    max_failed_run = 16  # this many failures in a row end a count: the stream is over

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such video file")
        self._capture = self._open_capture()
        self._position: int | None = 0  # index the next read() returns; None when unknown
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if math.isfinite(fps) and fps > 0 else None
        self._count = self._verified_frame_count()
        if self._count == 0:
            self._capture.release()
            raise InputError(f"{self.path}: video has no decodable frames")

    def _open_capture(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise InputError(f"{self.path}: not a video, or an unreadable one")
        return capture

    def _verified_frame_count(self) -> int:
        claimed = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        if not (math.isfinite(claimed) and claimed >= 1):
            return self._count_by_decoding(limit=None)
        claimed = int(claimed)
        try:
            self._cache[claimed - 1] = self._decode(claimed - 1)
            return claimed
        except FrameDecodeError:
            return self._count_by_decoding(limit=claimed)

    def _count_by_decoding(self, limit: int | None) -> int:
        """1 + the index of the last frame that decodes, looking no further than ``limit``."""
        self._restart()
        index, last_decoded = 0, -1
        while (limit is None or index < limit) and index - last_decoded <= self.max_failed_run:
            if self._capture.grab():
                last_decoded = index
            index += 1
        self._position = index
        return last_decoded + 1

    def _restart(self) -> None:
        self._capture.release()
        self._capture = self._open_capture()
        self._position = 0

    def __len__(self) -> int:
        return self._count

    @property
    def fps(self) -> float | None:
        return self._fps

    def _decode(self, index: int) -> np.ndarray:
        if self._position != index and not self._seek(index):
            # The seek is not exact for this file, and left the decoder somewhere
            # unknown: decode forward from the start; failed frames count as frames.
            self._restart()
            while self._position < index:
                self._capture.grab()
                self._position += 1
        ok, frame = self._capture.read()
        self._position = index + 1  # a frame that fails to decode consumes its place too
        if not ok or frame is None:
            raise FrameDecodeError(self.path, index)
        return frame

    def _seek(self, index: int) -> bool:
        """Seek so that the next read() returns frame ``index``; False if it cannot."""
        return bool(self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)) and (
            self._capture.get(cv2.CAP_PROP_POS_FRAMES) == index
        )

    def close(self) -> None:
        super().close()
        self._capture.release()
        self._position = None


def open_frames(path: str | Path) -> FrameSource:
    """A folder becomes an :class:`ImageFolderSource`, a file a :class:`VideoSource`."""
    path = Path(path)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.is_file():
        return VideoSource(path)
    raise InputError(f"{path}: no such file or folder")
