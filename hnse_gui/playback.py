"""Which frame is shown: the frame index, stepping, the play timer and its speed, jumps to keyframes
and flagged frames, and the "go to frame" dialog.

:class:`Playback` only moves :attr:`Session.frame_index <hnse_gui.session.Session.frame_index>`
and says so with ``frameChanged``; decoding and drawing the frame is the views' job
(:meth:`hnse_gui.views.Views.show_frame`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PyQt5 import QtCore, QtWidgets

from hnse_gui.session import Session

DEFAULT_PLAY_FPS = 25.0
PLAY_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # times the video's own frame rate


class Playback(QtCore.QObject):
    """``busy`` says whether tracking holds the worker; playing waits for it to end."""

    frameChanged = QtCore.pyqtSignal(int)  # the session's frame index moved here
    playingChanged = QtCore.pyqtSignal()  # the timer started or stopped by itself or on request

    def __init__(self, session: Session, busy: Callable[[], bool] = lambda: False, parent=None):
        super().__init__(parent)
        self.session = session
        self._busy = busy
        self.speed = 1.0
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._tick)

    def set_frame(self, index: int) -> None:
        """Go to frame ``index``, clamped to the video."""
        session = self.session
        if session.document is None:
            return
        index = min(max(int(index), 0), session.document.frame_count - 1)
        if index == session.frame_index:
            return
        session.frame_index = index
        self.frameChanged.emit(index)

    def step(self, delta: int) -> None:
        self.set_frame(self.session.frame_index + delta)

    def last(self) -> None:
        self.set_frame(self.session.frame_count() - 1)

    def toggle_play(self) -> None:
        session = self.session
        if self.timer.isActive():
            self.timer.stop()
        elif session.document is not None and not self._busy():
            if session.frame_index >= session.document.frame_count - 1:
                self.set_frame(0)
            self.timer.start(self._interval_ms())
        self.playingChanged.emit()

    def change_speed(self, steps: int) -> float:
        """``steps`` along :data:`PLAY_SPEEDS` (faster when positive), at once when playing;
        returns the new speed."""
        index = min(max(PLAY_SPEEDS.index(self.speed) + steps, 0), len(PLAY_SPEEDS) - 1)
        self.speed = PLAY_SPEEDS[index]
        if self.timer.isActive():
            self.timer.setInterval(self._interval_ms())
        return self.speed

    def _interval_ms(self) -> int:
        fps = getattr(self.session.source, "fps", None) or DEFAULT_PLAY_FPS
        return max(1, int(1000 / (fps * self.speed)))

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        if self.session.frame_index >= self.session.frame_count() - 1:
            self.timer.stop()
            self.playingChanged.emit()
            return
        self.step(1)

    def jump_keyframe(self, direction: int) -> None:
        session = self.session
        if session.current_track is not None:
            self._jump_to(session.document.keyframes(session.current_track), direction)

    def jump_flagged(self, direction: int) -> None:
        session = self.session
        if session.current_track is not None:
            self._jump_to(np.flatnonzero(session.document.track(session.current_track).flags), direction)

    def _jump_to(self, frames: np.ndarray, direction: int) -> None:
        frame = self.session.frame_index
        later = frames[frames > frame] if direction > 0 else frames[frames < frame][::-1]
        if len(later):
            self.set_frame(int(later[0]))

    def goto_dialog(self, parent: QtWidgets.QWidget) -> None:
        session = self.session
        if session.document is None:
            return
        frame, ok = QtWidgets.QInputDialog.getInt(parent, "Go to frame", "Frame:", session.frame_index + 1, 1,
                                                  session.document.frame_count)
        if ok:
            self.set_frame(frame - 1)
