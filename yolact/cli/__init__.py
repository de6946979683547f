"""The ``yolact`` command. One module per verb group; each adds its parsers with ``add_commands``.

The CLI depends on the library; the library never imports the CLI.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import List, Optional

from ..errors import YolactError
from . import data, deploy, evaluate, info, predict, serve, track, train, weights

VERB_GROUPS = (predict, track, data, train, evaluate, deploy, serve, info, weights)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    from .common import Parser

    # Parser: no abbreviated options in any verb (subparsers inherit the class).
    parser = Parser(prog="yolact", description="YOLACT / YOLACT++ instance segmentation")
    parser.add_argument("--version", action="version", version=f"yolact {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in VERB_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except YolactError as e:
        if args.debug:
            traceback.print_exc()
        print(f"yolact: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("yolact: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
