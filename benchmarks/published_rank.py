"""Rank agreement with the published UnlearnCanvas columns, from per-target tables on disk.

    python -m benchmarks.published_rank results/benchmark/mini-full/per_target.csv [--out DIR]
    python -m benchmarks.published_rank AFTER/per_target.csv --before BEFORE/per_target.csv

The sweep writes ``published_rank.md`` beside its summary; this reads committed ``per_target.csv``
files (e.g. the first turn's untuned mini-full in ``results/benchmark/mini-full-untuned/``), so a
before / after comparison needs no rerun. Targets marked ``validation`` in either table are left
out of both, so the two sides rank the methods on the same reported targets. Writes
``<out>/published_rank.md`` / ``.csv``, or with ``--before`` ``<out>/published_rank_before_after``
(default ``out``: beside the input).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.tables import BASE_METHOD, rank_agreement, rank_before_after, validation_mask, write_table


def _baselines(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame[frame["kind"].isin(["style", "object"]) & (frame["method"] != BASE_METHOD)]


def _validation(frame: pd.DataFrame) -> set[str]:
    return set(frame.loc[validation_mask(frame), "target"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("per_target", help="a per_target.csv written by a sweep")
    parser.add_argument("--before", default=None, help="an earlier per_target.csv to compare against")
    parser.add_argument("--out", default=None, help="folder for the table (default: the input's)")
    args = parser.parse_args(argv)
    path = Path(args.per_target)
    after = _baselines(path)
    before = _baselines(Path(args.before)) if args.before else None
    left_out = _validation(after) | (_validation(before) if before is not None else set())
    after = after[~after["target"].isin(left_out)]
    out = Path(args.out) if args.out else path.parent
    command = f"`python -m benchmarks.published_rank {path}" + (f" --before {args.before}`" if args.before else "`")
    note = f"From {command}. Reported, never tuned for."
    if left_out:
        note += f" Left out of both sides (validation targets): {', '.join(sorted(left_out))}."
    if before is None:
        table = rank_agreement(after)
        name, title = "published_rank", f"{path.parent.name}: Spearman rank correlation with the published columns"
    else:
        before = before[~before["target"].isin(left_out)]
        shared = set(before["target"]) & set(after["target"])
        if not shared:
            raise SystemExit(f"{args.before} and {path} share no reported target")
        before, after = before[before["target"].isin(shared)], after[after["target"].isin(shared)]
        note += f" Both sides over the {len(shared)} targets they share."
        table = rank_before_after(before, after)
        name = "published_rank_before_after"
        sides = f"{Path(args.before).parent.name} -> {path.parent.name}"
        title = f"{sides}: Spearman rank correlation with the published columns"
    write_table(table, out / name, title, note)
    print(table.to_string(index=False))
    print(f"wrote {out / name}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
