"""The work's files: opening a video, an image folder, a sequence folder, a demo scene or
a project, offering recovery files back, saving (as), asking before unsaved work is
dropped, autosave and its setting, imports, exports (boxes, and the figures of
:mod:`hnse_gui.figures`), and the window title that names the work.

:class:`ProjectFiles` reads and writes files and asks the user about them; what a new
document means for the views, the undo stack and the worker is the window's business,
told through ``opened``. Every question to the user is one method, so that tests can
answer it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PyQt5 import QtCore, QtWidgets

from hnse_gui import dialogs
from hnse_gui.autosave import Autosaver, recovery_candidate
from hnse_gui.demo_scenes import demo_scenes
from hnse_gui.document import Document, Origin
from hnse_gui.figures import export_heatmap_figure, export_score_curves
from hnse_gui.session import Session
from hnse_gui.store import (export_boxes_txt, export_cvat_video, export_mot_csv, import_boxes_txt, import_mot,
                            load_project, save_project)
from model.core.errors import HNSEError, InputError

PROJECT_SUFFIXES = (".h5", ".hdf5")
DEFAULT_AUTOSAVE_S = 30
APP_NAME = "HNSE Studio"


class ProjectFiles(QtCore.QObject):
    """Files of ``session``'s work. ``window`` is the dialogs' parent and carries the
    title; ``settings`` keeps the autosave interval; ``recovery_dir`` holds recovery files
    whose video folder is read-only; ``review_threshold`` gives a new document's."""

    opened = QtCore.pyqtSignal(object, object, object, object)  # document, source, project or None, reference or None
    saved = QtCore.pyqtSignal()  # the document was written to session.project_path
    status = QtCore.pyqtSignal(str, int)  # a message for the status bar, and for how many ms
    failed = QtCore.pyqtSignal(str)  # an error to show
    imported = QtCore.pyqtSignal(object, str)  # tracks an import added to the document, the undo text

    def __init__(self, session: Session, settings: QtCore.QSettings, recovery_dir: Path,
                 window: QtWidgets.QWidget, review_threshold: Callable[[], float]):
        super().__init__(window)
        self.session = session
        self.settings = settings
        self.window = window
        self._review_threshold = review_threshold
        self.offer_recovery = True  # ask about recovery files when opening (off for scripted runs)
        self.autosaver = Autosaver(recovery_dir, parent=self)
        self.autosaver.failed.connect(self.failed)
        self.autosaver.saved.connect(lambda path: self.status.emit(f"autosaved to {path}", 3000))

    # ================================================================ opening

    def open_path(self, path: str | Path) -> bool:
        """Open a project file (.h5) or a video / image folder / sequence folder."""
        path = Path(path)
        if path.suffix.lower() in PROJECT_SUFFIXES:
            return self.open_project(path)
        return self.open_media(path)

    def open_media(self, path: str | Path) -> bool:
        """Start a new document on a video file, an image folder or a benchmark sequence folder.

        A sequence folder's ground truth is kept as a reference drawn on the frames, and
        the first track starts from its first box.
        """
        path = Path(path)
        if not self.maybe_save():
            return False
        try:
            source, reference, name = open_source(path)
        except HNSEError as error:
            self.failed.emit(str(error))
            return False
        document = Document(str(path), len(source), source.frame_size)
        document.autosave.interval_s = self.autosave_interval_setting()
        document.autosave.enabled = document.autosave.interval_s > 0
        document.review_threshold = self._review_threshold()
        if reference is not None:
            present = np.flatnonzero(np.isfinite(reference).all(axis=1))
            if len(present):
                track = document.add_track(name)
                document.set_box(track.id, int(present[0]), tuple(reference[present[0]]), Origin.MANUAL)
        document.mark_saved()  # what the file holds is not the user's work yet
        recovered = self._offer_recovery(None, path)
        if recovered is not None:
            document = recovered
        self.opened.emit(document, source, None, reference)
        return True

    def open_project(self, path: str | Path) -> bool:
        path = Path(path)
        if not self.maybe_save():
            return False
        try:
            document = load_project(path)
            video = Path(document.video_path)
            if not video.is_absolute() and not video.exists():
                video = path.parent / video
            source, reference, _name = open_source(video)
            if len(source) != document.frame_count:
                raise InputError(f"{path}: the project has {document.frame_count} frames but {video} "
                                 f"has {len(source)}")
        except HNSEError as error:
            self.failed.emit(str(error))
            return False
        recovered = self._offer_recovery(path, video)
        self.opened.emit(recovered or document, source, path, reference)
        return True

    def _offer_recovery(self, project: Path | None, video: Path) -> Document | None:
        if not self.offer_recovery:
            return None
        candidate = recovery_candidate(project, video, self.autosaver.fallback_dir)
        if candidate is None or not self.ask_recover(candidate):
            return None
        try:
            document = load_project(candidate)
        except HNSEError as error:
            self.failed.emit(f"recovery failed: {error}")
            return None
        document.saved_revision = -1  # recovered work is not saved anywhere the user chose
        return document

    def open_media_dialog(self) -> None:
        path = self.ask_open_path("Open video", "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.mpg);;All files (*)")
        if path:
            self.open_media(path)

    def open_folder_dialog(self) -> None:
        path = self.ask_folder("Open an image folder or a sequence folder")
        if path:
            self.open_media(path)

    def open_demo_scene_dialog(self) -> None:
        """Offer the synthetic distractor scenes; the chosen one opens like a sequence
        folder (its ground truth the reference, its first box the first track)."""
        scenes = demo_scenes()
        chosen = self.ask_demo_scene([scene.describe() for scene in scenes])
        if chosen is None:
            return
        self.status.emit(f"writing {scenes[chosen].name} into {self.demo_cache_dir()}", 0)
        try:
            folder = scenes[chosen].folder(self.demo_cache_dir())
        except OSError as error:
            self.failed.emit(f"cannot write the demo scene: {error}")
            return
        self.open_media(folder)

    def demo_cache_dir(self) -> Path:
        """Where demo scenes are written as sequence folders: the user's cache."""
        location = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.CacheLocation)
        return Path(location or Path.home() / ".cache" / "hnse-studio") / "demo-scenes"

    def open_project_dialog(self) -> None:
        path = self.ask_open_path("Open project", "HNSE project (*.h5 *.hdf5)")
        if path:
            self.open_project(path)

    # ================================================================ imports

    def import_mot_dialog(self) -> None:
        path = self.ask_open_path("Import MOT", "MOT (*.txt *.csv);;All files (*)")
        if path:
            self._import(lambda document: import_mot(document, path), f"Import MOT {Path(path).name}")

    def import_boxes_dialog(self) -> None:
        """One new track from a box text file, labelled with the file's name."""
        path = self.ask_open_path("Import boxes", "Text (*.txt);;All files (*)")
        if path:
            self._import(lambda document: [import_boxes_txt(document, path, Path(path).stem)],
                         f"Import boxes {Path(path).name}")

    def _import(self, read, text: str) -> None:
        """``read(document)`` adds tracks and returns them, or raises leaving the document as it was."""
        if not self.session.editable():
            return
        try:
            tracks = read(self.session.document)
        except (HNSEError, OSError) as error:
            self.failed.emit(f"cannot import: {error}")
            return
        self.imported.emit(tracks, text)

    # ================================================================ saving

    def save(self) -> bool:
        if self.session.document is None:
            return False
        if self.session.project_path is None:
            return self.save_as()
        return self._save_to(self.session.project_path)

    def save_as(self) -> bool:
        document = self.session.document
        if document is None:
            return False
        path = self.ask_save_path("Save project", "HNSE project (*.h5)", document.video_path.rstrip("/") + ".h5")
        if not path:
            return False
        path = Path(path)
        if path.suffix.lower() not in PROJECT_SUFFIXES:
            path = path.with_suffix(".h5")
        return self._save_to(path)

    def _save_to(self, path: Path) -> bool:
        document = self.session.document
        try:
            save_project(document, path)
        except (HNSEError, OSError, ValueError) as error:
            self.failed.emit(f"{path}: cannot save ({error})")
            return False
        self.autosaver.discard()  # the recovery file of the previous name is stale now
        self.session.project_path = path
        self.autosaver.attach(document, path)
        self.autosaver.discard()
        self.saved.emit()
        self.status.emit(f"saved {path}", 4000)
        self.update_title()
        return True

    def maybe_save(self) -> bool:
        """Ask before dropping unsaved changes; False when the user cancels."""
        document = self.session.document
        if document is None or not document.dirty:
            return True
        answer = self.ask_save_changes()
        if answer == QtWidgets.QMessageBox.Save:
            return self.save()
        if answer == QtWidgets.QMessageBox.Discard:
            self.autosaver.discard()
            return True
        return False

    def autosave_interval_setting(self) -> int:
        """Seconds between autosaves of new documents (0: off)."""
        return int(self.settings.value("autosave/interval_s", DEFAULT_AUTOSAVE_S))

    def settings_dialog(self) -> None:
        current = self.session.document.autosave if self.session.document else None
        seconds = current.interval_s if current and current.enabled else self.autosave_interval_setting()
        chosen = dialogs.ask_autosave_interval(self.window, seconds)
        if chosen is not None:
            self.set_autosave_interval(chosen)

    def set_autosave_interval(self, seconds: int) -> None:
        """Autosave every ``seconds`` (0: never), for this document and the next ones."""
        self.settings.setValue("autosave/interval_s", int(seconds))
        document = self.session.document
        if document is not None:
            document.autosave.interval_s = int(seconds) if seconds > 0 else document.autosave.interval_s
            document.autosave.enabled = seconds > 0
            self.autosaver.restart()

    # ================================================================ exports

    def export_txt(self) -> None:
        document, track_id = self.session.document, self.session.current_track
        if document is None or track_id is None:
            return
        path = self.ask_save_path("Export boxes", "Text (*.txt)", f"{document.video_path.rstrip('/')}.txt")
        if path:
            self._export(lambda: export_boxes_txt(document, track_id, path), path)

    def export_mot(self) -> None:
        document = self.session.document
        if document is None:
            return
        path = self.ask_save_path("Export MOT CSV", "CSV (*.csv *.txt)", f"{document.video_path.rstrip('/')}.csv")
        if path:
            self._export(lambda: export_mot_csv(document, path), path)

    def export_cvat(self) -> None:
        document = self.session.document
        if document is None:
            return
        path = self.ask_save_path("Export CVAT XML", "CVAT for video 1.1 (*.xml)",
                                  f"{document.video_path.rstrip('/')}.xml")
        if path:
            self._export(lambda: export_cvat_video(document, path), path)

    def export_figure(self, results: dict) -> None:
        """The heatmap figure (PNG or SVG) of this frame's ``results`` (variant ->
        TrackResult or None) over the frame itself."""
        document, index = self.session.document, self.session.frame_index
        if document is None or not any(result is not None for result in results.values()):
            self.failed.emit("no maps on this frame to draw: track it first (or keep maps in the project)")
            return
        path = self.ask_save_path("Export figure", "PNG (*.png);;SVG (*.svg)",
                                  f"{document.video_path.rstrip('/')}_frame{index + 1:05d}.png")
        if path:
            self._export(lambda: export_heatmap_figure(results, self.session.source[index], path), path)

    def export_scores(self, scores: dict) -> None:
        """The current track's ``scores`` (tracker -> per-frame score) as a plot (PNG) or a table (CSV)."""
        document = self.session.document
        if document is None or not scores:
            self.failed.emit("no scores to export: track the current track first")
            return
        path = self.ask_save_path("Export score curves", "PNG (*.png);;CSV (*.csv)",
                                  f"{document.video_path.rstrip('/')}_scores.png")
        if path:
            self._export(lambda: export_score_curves(scores, path), path)

    def _export(self, write, path: str) -> None:
        try:
            write()
        except (HNSEError, OSError, ValueError) as error:
            self.failed.emit(f"{path}: cannot export ({error})")
            return
        self.status.emit(f"exported {path}", 4000)

    # ================================================================ title

    def title(self) -> str:
        """The project file's name, or the video's marked unsaved; ``[*]`` shows when it is modified."""
        document, project = self.session.document, self.session.project_path
        if document is None:
            return APP_NAME
        name = project.name if project else f"{Path(document.video_path).name} (unsaved)"
        return f"{name}[*] — {APP_NAME}"

    def update_title(self) -> None:
        self.window.setWindowTitle(self.title())
        if self.session.document is not None:
            self.window.setWindowModified(self.session.document.dirty)

    # ================================================================ questions

    def ask_save_changes(self) -> int:
        return QtWidgets.QMessageBox.question(
            self.window, "Unsaved changes", "The annotations have unsaved changes. Save them?",
            QtWidgets.QMessageBox.Save | QtWidgets.QMessageBox.Discard | QtWidgets.QMessageBox.Cancel,
            QtWidgets.QMessageBox.Save)

    def ask_recover(self, path: Path) -> bool:
        stamp = QtCore.QDateTime.fromSecsSinceEpoch(int(path.stat().st_mtime)).toString()
        answer = QtWidgets.QMessageBox.question(
            self.window, "Recover unsaved work", f"Unsaved work from {stamp} was found in\n{path}\n\nRecover it?",
            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No, QtWidgets.QMessageBox.Yes)
        return answer == QtWidgets.QMessageBox.Yes

    def ask_save_path(self, title: str, filters: str, suggestion: str = "") -> str:
        return QtWidgets.QFileDialog.getSaveFileName(self.window, title, suggestion, filters)[0]

    def ask_open_path(self, title: str, filters: str) -> str:
        return QtWidgets.QFileDialog.getOpenFileName(self.window, title, "", filters)[0]

    def ask_folder(self, title: str) -> str:
        return QtWidgets.QFileDialog.getExistingDirectory(self.window, title)

    def ask_demo_scene(self, descriptions: list[str]) -> int | None:
        """The index of the scene the user picks among ``descriptions``, None when cancelled."""
        text, chosen = QtWidgets.QInputDialog.getItem(
            self.window, "Open demo scene",
            "Synthetic scenes with look-alike distractors (the same object, tinted and rescaled), "
            "the hard negatives HE emphasises.\nTrack one with both variants and step through the "
            "frames with the Pipeline dock (P) to see where they part:", descriptions, 0, False)
        return descriptions.index(text) if chosen else None


def open_source(path: Path):
    """(frame source, ground-truth boxes or None, name) for a media path."""
    from model.data.sequences import read_sequence
    from model.data.sources import open_frames

    if path.is_dir() and ((path / "groundtruth.txt").is_file() or (path / "groundtruth_rect.txt").is_file()):
        sequence = read_sequence(path)
        return sequence.frames, sequence.boxes, sequence.name
    source = open_frames(path)
    source.frame_size  # decodes frame 0: a video whose first frame is unreadable fails here
    return source, None, path.stem or path.name
