"""Rank agreement with the published UnlearnCanvas columns, from any per-target table on disk.

    python -m benchmarks.published_rank results/benchmark/mini-full/per_target.csv [--out DIR]

The sweep writes the same table (``published_rank.md``) beside its summary; this reads a committed
``per_target.csv`` (e.g. the first turn's untuned mini-full) so a before / after comparison needs
no rerun. Writes ``<out>/published_rank.md`` / ``.csv`` (default: beside the input).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.tables import BASE_METHOD, rank_agreement, write_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("per_target", help="a per_target.csv written by a sweep")
    parser.add_argument("--out", default=None, help="folder for published_rank.md (default: the input's)")
    args = parser.parse_args(argv)
    path = Path(args.per_target)
    frame = pd.read_csv(path)
    frame = frame[frame["kind"].isin(["style", "object"]) & (frame["method"] != BASE_METHOD)]
    table = rank_agreement(frame)
    out = Path(args.out) if args.out else path.parent
    write_table(
        table,
        out / "published_rank",
        f"{path.parent.name}: Spearman rank correlation with the published columns, over the baselines",
        f"From {path} (`python -m benchmarks.published_rank {path}`). Reported, never tuned for.",
    )
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
