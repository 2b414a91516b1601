"""Command line: ``spare <command>`` (also ``python -m spare <command>``).

The commands live in :mod:`spare.cli.world` (concepts, data, classifiers, the base model, scoring) and
:mod:`spare.cli.runs` (unlearning runs, sweeps, attacks, sequences, export); each module registers its
own sub-parsers. This module only builds the parser and runs a command, turning a user error into one line.
"""

from __future__ import annotations

import logging
import sys

from spare.cli import runs, world
from spare.cli.common import Parser, at_least
from spare.errors import UserError

__all__ = ["at_least", "build_parser", "main"]


def build_parser() -> Parser:
    parser = Parser(prog="spare", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="a Python file that registers a method of your own (repeatable; also $SPARE_PLUGINS)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    world.register(sub)
    runs.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    import datasets

    datasets.disable_progress_bars()  # the harness shows its own bars; per-filter bars are noise (also on a terminal)
    try:
        from spare.methods import load_plugin

        for path in args.plugin:
            load_plugin(path)
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as why:  # Ctrl-C or SIGTERM (sweeps turn it into this)
        print(f"\ninterrupted ({why or 'Ctrl-C'}); finished work is kept: run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
