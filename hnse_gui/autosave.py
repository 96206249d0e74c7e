"""Autosave and crash recovery.

While the document has unsaved changes, :class:`Autosaver` writes it every
``document.autosave.interval_s`` seconds (atomically, through
:func:`hnse_gui.store.save_project`) to a recovery file:

* ``<project>.autosave.h5`` beside the project file once the work has been saved;
* ``<video name>.recovery.h5`` beside the video (or image folder) while it never has;

either of them in the application's data folder instead (QStandardPaths'
AppDataLocation, see :func:`hnse_gui.app.recovery_dir`) when that folder is read-only or
lies in the application's shipped ``resources/`` (the bundled sample).

A successful save or an explicit "discard" removes the recovery file; a recovery
file that outlives its session is offered back the next time the project or the
video is opened (:func:`recovery_candidate`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PyQt5 import QtCore

from hnse_gui.document import Document
from hnse_gui.store import save_project
from model.core.errors import HNSEError

RESOURCES = Path(__file__).resolve().parents[1] / "resources"  # shipped with the application


def autosave_path(project: Path, fallback_dir: Path) -> Path:
    """``foo.h5`` -> ``foo.autosave.h5``, beside it, else in ``fallback_dir``."""
    return _beside_or_fallback(Path(project), ".autosave.h5", fallback_dir, Path(project).stem)


def recovery_path(video: Path, fallback_dir: Path) -> Path:
    """Where an unsaved document on ``video`` is autosaved: beside it, else in ``fallback_dir``."""
    return _beside_or_fallback(Path(video), ".recovery.h5", fallback_dir, Path(video).resolve().name)


def _beside_or_fallback(path: Path, suffix: str, fallback_dir: Path, name: str) -> Path:
    """``<name><suffix>`` in ``path``'s folder; in ``fallback_dir`` (named with a digest
    of ``path``: two inputs may share a name) when that folder is read-only or is the
    application's own resources/ (the bundled sample must not gain files)."""
    path = path.resolve()
    folder = path.parent
    if os.access(folder, os.W_OK) and not path.is_relative_to(RESOURCES):
        return folder / f"{name}{suffix}"
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return fallback_dir / f"{name}-{digest}{suffix}"


def recovery_candidate(project: Path | None, video: Path, fallback_dir: Path) -> Path | None:
    """The recovery file worth offering when ``project`` (or, unsaved, ``video``) is opened.

    For a project, only an autosave newer than the project file counts: an older one
    holds work that was saved afterwards.
    """
    if project is not None:
        candidate = autosave_path(project, fallback_dir)
        if candidate.is_file() and (not project.is_file()
                                    or candidate.stat().st_mtime > project.stat().st_mtime):
            return candidate
        return None
    candidate = recovery_path(video, fallback_dir)
    return candidate if candidate.is_file() else None


class Autosaver(QtCore.QObject):
    """Writes the document to its recovery file on a timer while it is dirty."""

    saved = QtCore.pyqtSignal(str)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, fallback_dir: Path, parent=None):
        super().__init__(parent)
        self.fallback_dir = Path(fallback_dir)
        self.document: Document | None = None
        self.project: Path | None = None
        self._written_revision: int | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.save_now)

    def attach(self, document: Document | None, project: Path | None) -> None:
        """Follow ``document`` (saved as ``project``, None while unsaved); restarts the timer."""
        self.document, self.project = document, project
        self._written_revision = None
        self.restart()

    def restart(self) -> None:
        """Apply the document's autosave settings (enabled, interval)."""
        self._timer.stop()
        settings = self.document.autosave if self.document else None
        if settings is not None and settings.enabled and settings.interval_s > 0:
            self._timer.start(int(settings.interval_s * 1000))

    @property
    def interval_ms(self) -> int:
        return self._timer.interval() if self._timer.isActive() else 0

    def target(self) -> Path | None:
        if self.document is None:
            return None
        if self.project is not None:
            return autosave_path(self.project, self.fallback_dir)
        return recovery_path(Path(self.document.video_path), self.fallback_dir)

    def save_now(self) -> Path | None:
        """Write the recovery file if there is something new to keep; returns its path."""
        document, target = self.document, self.target()
        if document is None or not document.dirty or document.revision == self._written_revision:
            return None
        # save_project marks the document saved; an autosave must not, or closing would
        # no longer ask about the changes the user has not saved.
        saved_revision = document.saved_revision
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            save_project(document, target)
        except (HNSEError, OSError, ValueError) as error:
            self.failed.emit(f"autosave to {target} failed: {error}")
            return None
        finally:
            document.saved_revision = saved_revision
        self._written_revision = document.revision
        self.saved.emit(str(target))
        return target

    def discard(self) -> None:
        """Remove the recovery file (the work was saved, or the user threw it away)."""
        target = self.target()
        if target is not None:
            target.unlink(missing_ok=True)
        self._written_revision = None
