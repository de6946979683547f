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
    """The ``yolact`` argument parser: global --version/--debug and one subcommand per verb, each
    with ``func`` set to its ``cmd_*`` handler."""
    from .. import __version__

    from .common import Parser, fill_help

    # Parser: no abbreviated options in any verb (subparsers inherit the class).
    parser = Parser(prog="yolact", description="YOLACT / YOLACT++ instance segmentation")
    parser.add_argument("--version", action="version", version=f"yolact {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in VERB_GROUPS:
        group.add_commands(sub)
    for verb in set(sub.choices.values()):  # --debug before or after the verb (SUPPRESS: keeps the global one)
        _add_debug(verb)
    fill_help(parser)  # no flag without help
    return parser


def _add_debug(parser) -> None:
    """Add --debug to a verb's parser and to the sub-verbs under it (``data check``)."""
    if "--debug" not in parser._option_string_actions:
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show full tracebacks on errors")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _add_debug(child)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``yolact`` command; returns the exit code: the verb's (0 on success), 2 when no verb
    is given or on a YolactError (printed as one line; --debug adds the traceback), 130 on Ctrl-C, 143 when
    SIGTERM stopped a training run.
    Bad arguments make argparse exit with 2 (SystemExit)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except YolactError as e:
        if args.debug:
            traceback.print_exc()
        print(f"yolact: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("yolact: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM (StoppedBySignal)
    except BrokenPipeError:  # the reader went away (`yolact data check ... | head`): end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell tool cut off by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
