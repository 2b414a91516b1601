"""What every command shares: the one-line-error parser, number types and the common options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spare.concepts import catalogue_names


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument answered in one line naming it (not a usage block)."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def at_least(minimum: float, kind: type = int):
    """An argparse type: a number of ``kind`` >= ``minimum``, else a one-line error with the range."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse


def _add_benchmark_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", default="mini", help=f"benchmark world: {', '.join(catalogue_names())} (default: mini)"
    )
    parser.add_argument("--data", default=None, help="UnlearnCanvas folder, parquet shards, saved dataset or hub id")


def _add_sweep_args(parser: argparse.ArgumentParser, results_help: str) -> None:
    """The options every sweep command shares (spare benchmark, spare ablation)."""
    parser.add_argument("--dry-run", action="store_true", help="print the job list (done / to run) and stop")
    parser.add_argument("--limit", type=at_least(1), default=None, help="run only the first N jobs of the plan")
    parser.add_argument("--tables-only", action="store_true", help="only render the tables of the finished jobs")
    parser.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    parser.add_argument("--results", default=None, help=results_help)
    parser.add_argument("--wandb", default="offline", help="W&B mirror: off, offline (default) or online")
    parser.add_argument(
        "--restore",
        nargs="*",
        metavar="DIR",
        default=None,
        help="first take the finished runs stored beside the tables (<results>/configs/, same config key), "
        "e.g. to continue a committed sweep from a fresh clone; DIRs: other results folders to take them "
        "from too (a sweep that shares runs with another, e.g. results/robustness/mini-robust)",
    )


def _sweep_options(args: argparse.Namespace, **results) -> dict:
    return {
        **results,
        "limit": args.limit,
        "dry_run": args.dry_run,
        "tables_only": args.tables_only,
        "wandb_mode": args.wandb,
        "restore": args.restore is not None,
        "restore_from": [Path(d) for d in args.restore or []],
    }


def _add_config_args(parser: argparse.ArgumentParser, config_name: str, example: str) -> None:
    parser.add_argument("--config", default=None, help=f"YAML file with {config_name} fields")
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {example}")
