"""``python main.py gui [PATH]``: open the desktop application.

PATH is a video file, an image folder, a benchmark sequence folder or a project
file (.h5); without it the bundled sample clip opens. ``--demo`` tracks ``--frames``
frames from the first box with both model variants, saves ``--screenshot`` and exits.
"""
from __future__ import annotations

from model.errors import InputError


def add_arguments(parser) -> None:
    parser.add_argument("path", nargs="?", help="video, image folder, sequence folder or project (.h5)")
    parser.add_argument("--demo", action="store_true",
                        help="track --frames frames from the first box, save --screenshot and exit")
    parser.add_argument("--frames", type=int, default=30, help="frames the demo tracks (default 30)")
    parser.add_argument("--screenshot", metavar="PNG", help="with --demo: save a screenshot of the window")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for tracking")
    parser.add_argument("--settings", metavar="INI", help="settings file (default: the user's settings)")


def run(args) -> int:
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    if args.screenshot and not args.demo:
        raise InputError("--screenshot needs --demo")
    from hnse_gui.app import main

    return main(args.path, demo_frames=args.frames if args.demo else None, screenshot=args.screenshot,
                torch_threads=args.threads, settings_file=args.settings)
