"""``python main.py gui [PATH]``: open the desktop application.

PATH is a video file, an image folder, a benchmark sequence folder or a project
file (.h5); without it the bundled sample clip opens. ``--demo`` tracks ``--frames``
frames from the first box with both model variants, saves ``--screenshot`` and exits;
``--pipeline`` shows the Pipeline dock (each variant's decision on the frame, step by step).
``--exit-after-first-frame`` prints ``first frame shown`` once the frame view has
painted a frame and ends the process at once: the start-up probe of ``bench``.
``--track`` presses "Track forward" once PATH is open; the run's length, its stop score
and the autosave interval are the settings' (``track/frames``, ``track/review_threshold``,
``autosave/interval_s`` in ``--settings INI``), so a scripted session works like a user's,
autosave included: the crash-recovery test kills such a session.

Without a display (no DISPLAY or WAYLAND_DISPLAY on Linux, and no other Qt platform
chosen) the command says in one line to run under ``xvfb-run -a`` or offscreen,
instead of Qt's plugin error. PATH is opened here once before any window, so that a bad file named on the command
line ends the program with one line and exit code 2 like every subcommand (a file
opened from the window's menus is reported in a dialog instead).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from model.core.errors import InputError

FIRST_FRAME_LINE = "first frame shown"


def add_arguments(parser) -> None:
    parser.add_argument("path", nargs="?", help="video, image folder, sequence folder or project (.h5)")
    parser.add_argument("--demo", action="store_true",
                        help="track --frames frames from the first box, save --screenshot and exit")
    parser.add_argument("--frames", type=int, default=30, help="frames the demo tracks (default 30)")
    parser.add_argument("--screenshot", metavar="PNG", help="with --demo: save a screenshot of the window")
    parser.add_argument("--pipeline", action="store_true",
                        help="show the Pipeline dock: each variant's decision on the frame, step by step")
    parser.add_argument("--weights", metavar="DIR", default=None,
                        help="folder holding nano_he.pt and nano_nohe.pt (default resources/weights); "
                             "a missing file becomes an untrained network")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for tracking")
    parser.add_argument("--settings", metavar="INI", help="settings file (default: the user's settings)")
    parser.add_argument("--exit-after-first-frame", action="store_true",
                        help="print a line and exit as soon as the first frame is on screen (start-up benchmark)")
    parser.add_argument("--track", action="store_true",
                        help="start tracking forward from the first box once PATH is open (run length and "
                             "stop score: the toolbar's, kept in the settings)")


def run(args) -> int:
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    if args.screenshot and not args.demo:
        raise InputError("--screenshot needs --demo")
    if args.track and args.demo:
        raise InputError("--track and --demo both start a run: choose one")
    if args.path and not Path(args.path).exists():
        raise InputError(f"{args.path}: no such file or folder")
    if args.path:
        check_path(Path(args.path))
    check_display(os.environ)
    from hnse_gui.app import create_application, main

    # The QApplication must outlive main(), which reuses it.
    app = _application_with_first_frame_probe() if args.exit_after_first_frame else create_application()  # noqa: F841
    if args.track:
        _track_forward_once_open()
    return main(args.path, demo_frames=args.frames if args.demo else None, screenshot=args.screenshot,
                torch_threads=args.threads, settings_file=args.settings, weights_dir=args.weights,
                pipeline=args.pipeline)


def check_display(environ) -> None:
    """On Linux, Qt's default platforms (xcb, wayland) need a display: without one Qt
    aborts with a plugin error and a core dump. Say what to do instead, in one line."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform not in ("", "xcb", "wayland"):
        return
    if not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        raise InputError("no display to open the window on: run it under `xvfb-run -a python main.py gui ...`, "
                         "or save a screenshot offscreen: "
                         "`QT_QPA_PLATFORM=offscreen python main.py gui --demo --screenshot shot.png`")


def check_path(path: Path) -> None:
    """Read ``path`` as the window will open it: a project file (fully validated), a
    sequence folder's ground truth, or a video / image folder up to its first frame.
    A bad file raises the readers' one-line :class:`~model.core.errors.InputError`."""
    from hnse_gui.main_window import PROJECT_SUFFIXES
    from hnse_gui.store import load_project
    from model.data.sequences import read_sequence
    from model.data.sources import open_frames

    if path.suffix.lower() in PROJECT_SUFFIXES:
        load_project(path)
        return
    sequence = path.is_dir() and ((path / "groundtruth.txt").is_file() or (path / "groundtruth_rect.txt").is_file())
    with read_sequence(path).frames if sequence else open_frames(path) as frames:
        frames.frame_size  # decodes frame 0, as the window does on opening


def _track_forward_once_open() -> None:
    """On the event loop's first turn, after main() has opened PATH, start a forward run of
    the window's current track; waits while a modal question (recovery) is still open."""
    from PyQt5 import QtCore, QtWidgets

    from hnse_gui.main_window import MainWindow

    def start() -> None:
        if QtWidgets.QApplication.activeModalWidget() is not None:
            QtCore.QTimer.singleShot(200, start)
            return
        window = next(w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow))
        if not window.start_tracking(1):
            window.show_error("--track: the opened sequence has no box to start tracking from")

    QtCore.QTimer.singleShot(0, start)


def _application_with_first_frame_probe():
    """The QApplication, watching every paint; after the first one of a frame view that
    holds a frame, print :data:`FIRST_FRAME_LINE` and end the process.

    The process ends with ``os._exit``: the window has only just opened its media (no
    edit to save), and a normal close would wait for the tracking thread, which may be
    busy importing torch, to finish.
    """
    from PyQt5 import QtCore

    from hnse_gui.app import create_application
    from hnse_gui.frame_view import FrameView

    class FirstFrameProbe(QtCore.QObject):
        def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
            if event.type() == QtCore.QEvent.Paint and isinstance(watched.parent(), FrameView) \
                    and watched.parent().image.image is not None:
                QtCore.QTimer.singleShot(0, self.report)  # after this paint has completed
            return False

        def report(self) -> None:
            print(FIRST_FRAME_LINE, flush=True)
            sys.stderr.flush()
            os._exit(0)

    app = create_application()
    probe = FirstFrameProbe(app)  # a child of the application: lives as long as it does
    app.installEventFilter(probe)
    return app
