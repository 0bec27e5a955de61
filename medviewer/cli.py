"""The `medviewer` command. Each subcommand lives in medviewer/commands/<name>.py and exposes
``register(subparsers)``; errors reach the user as one line, tracebacks only with --debug."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from medviewer import __version__
from medviewer.core.errors import MedviewerError

# Modules that each add one subcommand (imported lazily by the command they register).
COMMAND_MODULES = (
    "medviewer.commands.info",
    "medviewer.commands.demo",
    "medviewer.commands.open",
    "medviewer.commands.export",
    "medviewer.commands.compare",
    "medviewer.commands.segment",
    "medviewer.commands.pacs",
    "medviewer.commands.plugins",
    "medviewer.commands.models",
    "medviewer.commands.run",
    "medviewer.commands.batch",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medviewer", description="CT viewer with click-to-segment and AI plugins.",
        epilog="Without a command, medviewer opens the viewer window.")
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Options whose value is a point X,Y,Z in mm. Patient coordinates are often negative, and argparse
# takes "-21,-78,-157" after a space for an option ("expected one argument").
POINT_OPTIONS = ("--point", "--negative", "--negative-point")
_POINT_VALUE = re.compile(r"^-[0-9.]")


def join_point_values(argv: list[str]) -> list[str]:
    """``--point -21,-78,-157`` -> ``--point=-21,-78,-157`` (what argparse can read)."""
    out: list[str] = []
    k = 0
    while k < len(argv):
        if argv[k] in POINT_OPTIONS and k + 1 < len(argv) and _POINT_VALUE.match(argv[k + 1]):
            out.append(f"{argv[k]}={argv[k + 1]}")
            k += 2
            continue
        if argv[k] == "--":
            out.extend(argv[k:])
            break
        out.append(argv[k])
        k += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = join_point_values(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # library warnings (pydicom, highdicom) are for developers, not users
        import logging
        import warnings

        warnings.simplefilter("ignore")
        logging.getLogger().setLevel(logging.ERROR)
    if not getattr(args, "command", None):
        args.func = _open_window  # no command: the viewer window, empty
    try:
        return int(args.func(args) or 0)
    except MedviewerError as exc:
        if args.debug:
            raise
        print(f"medviewer: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("medviewer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback
        if args.debug:
            raise
        print(f"medviewer: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 2


def _open_window(args) -> int:
    from medviewer.ui.app import run_app  # Qt and VTK are loaded only here

    return run_app()


if __name__ == "__main__":
    raise SystemExit(main())
