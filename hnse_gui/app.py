"""Application start-up: the QApplication, the main window, and the scripted demo.

``python main.py gui [PATH]`` calls :func:`main`. With no path the bundled sample
(``resources/sample/``, the Crossing clip) opens, its first ground-truth box as the
first track. The model variants are the shipped weights
``resources/weights/nano_he.pt`` ("with HE") and ``nano_nohe.pt`` ("without HE");
a missing file becomes an untrained network of the same kind, so the application
works before training has produced weights.

``--demo`` runs :class:`DemoRun`: track N frames from the first box with both
variants, grab the whole window into a PNG (plus a JSON file saying where the frame,
the heatmap panels and, when shown, the Pipeline dock lie in it), and quit.
``--pipeline`` opens the window with the Pipeline dock shown.
"""
from __future__ import annotations

import json
import sys
import tempfile
import traceback
from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from hnse_gui.autosave import RESOURCES
from hnse_gui.worker import RunEnd, VariantSpec

SAMPLE = RESOURCES / "sample"
WEIGHTS = RESOURCES / "weights"
DEMO_TIMEOUT_S = 600


def default_variants(weights_dir: Path = WEIGHTS) -> list[VariantSpec]:
    """The two variants the application compares: with and without hard-negative emphasis.

    Untrained stand-ins get different seeds, so that they differ as trained models would.
    """
    return [
        VariantSpec("with HE", str(weights_dir / "nano_he.pt"), he_head=True, seed=0),
        VariantSpec("without HE", str(weights_dir / "nano_nohe.pt"), he_head=False, seed=1),
    ]


def dark_palette() -> QtGui.QPalette:
    palette = QtGui.QPalette()
    colours = {
        QtGui.QPalette.Window: (45, 45, 50), QtGui.QPalette.WindowText: (225, 225, 225),
        QtGui.QPalette.Base: (32, 32, 36), QtGui.QPalette.AlternateBase: (45, 45, 50),
        QtGui.QPalette.ToolTipBase: (60, 60, 66), QtGui.QPalette.ToolTipText: (230, 230, 230),
        QtGui.QPalette.Text: (225, 225, 225), QtGui.QPalette.Button: (55, 55, 61),
        QtGui.QPalette.ButtonText: (225, 225, 225), QtGui.QPalette.Highlight: (60, 120, 200),
        QtGui.QPalette.HighlightedText: (255, 255, 255), QtGui.QPalette.Link: (90, 160, 255),
    }
    for role, rgb in colours.items():
        palette.setColor(role, QtGui.QColor(*rgb))
    for role in (QtGui.QPalette.Text, QtGui.QPalette.ButtonText, QtGui.QPalette.WindowText):
        palette.setColor(QtGui.QPalette.Disabled, role, QtGui.QColor(120, 120, 120))
    return palette


def create_application(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The QApplication (an existing one is reused, e.g. under pytest-qt), styled."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(argv or [sys.argv[0]])
    app.setApplicationName("HNSE Studio")
    app.setOrganizationName("HNSE")
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    return app


def recovery_dir() -> Path:
    """Where recovery files go when the work's own folder is read-only or shipped (resources/)."""
    location = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.AppDataLocation)
    return Path(location or Path.home() / ".hnse-studio") / "recovery"


class DemoRun(QtCore.QObject):
    """Track ``frames`` frames on the open document, save a screenshot, quit with 0 (1 on failure)."""

    def __init__(self, window, frames: int, screenshot: Path | None):
        super().__init__(window)
        self.window, self.frames, self.screenshot = window, frames, screenshot
        self.exit_code = 1
        window.runFinished.connect(self._finished)
        window.runs.tracking.worker.failed.connect(self._failed)
        QtCore.QTimer.singleShot(DEMO_TIMEOUT_S * 1000, self._timed_out)

    def start(self) -> None:
        window = self.window
        if window.current_track is None:
            self._failed("the demo needs a sequence with a first box")
            return
        window.document.autosave.enabled = False  # a demo's run is not work to keep
        window.files.autosaver.restart()
        window.inspect.overlay_variant.setCurrentIndex(0)
        window.threshold_spin.setValue(0.0)  # the demo runs its N frames whatever the score
        window.frames_spin.setValue(self.frames)
        if not window.start_tracking(1):
            self._failed("tracking did not start")

    def _finished(self, end: RunEnd) -> None:
        if end.reason not in ("done", "end_of_video"):
            self._failed(f"tracking ended early: {end.reason} {end.message}")
            return
        QtCore.QTimer.singleShot(200, self._grab)  # let the last frame's redraw reach the screen

    def _grab(self) -> None:
        QtWidgets.QApplication.processEvents()
        if self.screenshot is not None:
            image = self.window.grab().toImage()
            if not image.save(str(self.screenshot)):
                self._failed(f"{self.screenshot}: cannot write the screenshot")
                return
            layout_file = self.screenshot.with_suffix(".json")
            layout_file.write_text(json.dumps(screenshot_layout(self.window), indent=1))
        self.exit_code = 0
        self._quit()

    def _timed_out(self) -> None:
        self._failed(f"the demo did not finish within {DEMO_TIMEOUT_S} s")

    def _failed(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        self.exit_code = 1
        self._quit()

    def _quit(self) -> None:
        if self.window.document is not None:
            self.window.document.mark_saved()  # a demo's run is not work to keep
        self.window.close()
        QtWidgets.QApplication.instance().exit(self.exit_code)


def screenshot_layout(window) -> dict:
    """Where things lie in ``window.grab()``, in its pixels: the frame image, the
    current track's box, and each heatmap panel (by variant and column)."""
    def rect_in_window(widget, rect: QtCore.QRectF) -> list[float]:
        top_left = widget.mapTo(window, rect.topLeft().toPoint())
        return [top_left.x(), top_left.y(), rect.width(), rect.height()]

    view = window.frame_view
    width, height = window.document.frame_size
    corner_a = view.frame_to_widget(0, 0)
    corner_b = view.frame_to_widget(width, height)
    frame_rect = QtCore.QRectF(QtCore.QPointF(corner_a), QtCore.QPointF(corner_b))
    layout = {
        "frame_index": window.frame_index,
        "frame_size": [width, height],
        "frame_rect": rect_in_window(view.viewport(), frame_rect),
        "frame_view_rect": rect_in_window(view, QtCore.QRectF(view.rect())),
        "panels": [],
    }
    track = window.document.track(window.current_track) if window.current_track is not None else None
    if track is not None:
        layout["track_color"] = list(track.color)
        x, y, w, h = (float(v) for v in track.boxes[window.frame_index])
        a, b = view.frame_to_widget(x, y), view.frame_to_widget(x + w, y + h)
        layout["box_rect"] = rect_in_window(view.viewport(), QtCore.QRectF(QtCore.QPointF(a), QtCore.QPointF(b)))
    dock = window.pipeline_dock
    if dock.isVisible():
        layout["pipeline_rect"] = rect_in_window(dock, QtCore.QRectF(dock.rect()))
    grid = window.inspect.grid
    for row, variant in enumerate(grid.variants):
        for column, name in enumerate(grid.columns()):
            image = grid.images[row][column]
            scene_rect = image.mapRectToScene(image.boundingRect())
            rect = grid.mapFromScene(scene_rect).boundingRect()
            layout["panels"].append({"variant": variant, "map": name,
                                     "rect": rect_in_window(grid.viewport(), QtCore.QRectF(rect))})
    return layout


def report_unexpected_errors(window) -> None:
    """Show a bug's traceback's last line in the window instead of aborting.

    PyQt ends the process on an exception escaping a slot unless ``sys.excepthook`` is
    replaced; a bug in one view must not cost the user the work they have not saved.
    """
    def hook(kind, error, trace):
        traceback.print_exception(kind, error, trace)
        window.show_error(f"internal error: {kind.__name__}: {error} (details on the console)")

    sys.excepthook = hook


def main(path: str | None = None, demo_frames: int | None = None, screenshot: str | None = None,
         torch_threads: int | None = None, settings_file: str | None = None,
         weights_dir: str | None = None, pipeline: bool = False) -> int:
    """Run the application; returns the exit code."""
    from hnse_gui.main_window import MainWindow

    app = create_application()
    if settings_file is None and demo_frames is not None:
        # a demo sets the toolbar for its run: keep that out of the user's own settings
        scratch = tempfile.TemporaryDirectory(prefix="hnse-demo-")
        settings_file = str(Path(scratch.name) / "settings.ini")
    settings = (QtCore.QSettings(settings_file, QtCore.QSettings.IniFormat) if settings_file
                else QtCore.QSettings())
    variants = default_variants(Path(weights_dir) if weights_dir else WEIGHTS)
    window = MainWindow(variants, settings, recovery_dir(), torch_threads=torch_threads)
    window.files.offer_recovery = demo_frames is None
    if demo_frames is None:
        report_unexpected_errors(window)
    window.show()
    window.pipeline_dock.setVisible(pipeline)
    opened = window.open_path(path) if path else window.open_media(SAMPLE)
    if demo_frames is not None:
        if not opened:
            print(f"error: {window.last_error}", file=sys.stderr)
            window.close()
            return 1
        demo = DemoRun(window, demo_frames, Path(screenshot) if screenshot else None)
        QtCore.QTimer.singleShot(0, demo.start)
        app.exec_()
        return demo.exit_code
    return app.exec_()
