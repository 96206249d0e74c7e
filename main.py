"""HNSE Studio's single entry point: ``python main.py [gui|track|train|eval|compare|bench|tune] ...``.

With no subcommand the desktop application opens on the bundled sample clip.
Each subcommand lives in its own module under :mod:`hnse_cli` exposing
``add_arguments(parser)`` and ``run(args) -> int``; heavy imports (torch, Qt)
happen inside ``run`` so that ``--help`` and start-up stay fast.

A bad input ends the program with one line on stderr and exit code 2; ``--debug``
shows the traceback instead, and lets OpenCV and FFmpeg print their own warnings.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {
    "gui": ("hnse_cli.gui", "open the desktop application (default)"),
    "track": ("hnse_cli.track", "track a video or image folder headless"),
    "train": ("hnse_cli.train", "train a model from a YAML config"),
    "eval": ("hnse_cli.evaluate", "evaluate trackers on a dataset (one pass, or with --restarts also from later frames)"),
    "compare": ("hnse_cli.compare", "compare the trackers of several eval --json results (tables and paired bootstrap)"),
    "bench": ("hnse_cli.bench", "speed and memory benchmark"),
    "tune": ("hnse_cli.tune", "tune tracking hyper-parameters of a weights file on held-out sequences (--validation)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hnse", description="HNSE Studio: anchor-free Siamese tracking with hard negative emphasis."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show full tracebacks on errors")
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def quiet_native_libraries() -> None:
    """Keep OpenCV's and FFmpeg's own messages off stderr, where a damaged video would add
    lines like ``moov atom not found`` to the one line the program reports.

    Both libraries read these variables when they first log, so this must run before the
    subcommand opens anything; a variable the user has set is left alone.
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not any(a in COMMANDS for a in argv) and not {"-h", "--help"} & set(argv):
        argv = ["gui", *argv]  # the application is the default command
    args = parser.parse_args(argv)
    if not args.debug:
        quiet_native_libraries()
    from model.core.errors import HNSEError

    try:
        return int(args._module.run(args) or 0)
    except (HNSEError, OSError) as error:  # OSError: a path given cannot be read or written
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
