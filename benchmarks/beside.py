"""One method's runs beside other methods' runs of the same targets and seeds, from their tables.

    python -m benchmarks.beside --tables results/spare/mini-full-seeds/per_target.csv \
        results/benchmark/mini-full-subsets/065d7271/per_target.csv --out results/spare/beside_baselines \
        [--reference spare]

Sweeps made apart (SPARE's 20 targets x 3 seeds in one, the baselines' 4 targets x 3 seeds in
another) each write a ``per_target.csv``; this reads them, keeps the targets every table has,
and writes one row per method and target kind: the mean of UA, IRA, CRA and FID over targets and
seeds, and the mean over targets of each target's sd over seeds (how far a seed moves a run).
The base model's rows come from the first table that has them. Beside it, ``<out>_paired``: the
reference method against each other one on those targets (:func:`benchmarks.uncertainty.paired_table`:
the mean difference, its 95% bootstrap interval over targets and images, better / worse / tie).
Nothing is typed by hand: the Markdown and CSV are rendered from the runs' own rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.tables import BASE_METHOD, seed_means, seed_spread, write_table
from benchmarks.uncertainty import ACCURACY, paired_table
from spare.errors import UserError

METRICS = ("UA", "IRA", "CRA", "FID")


def shared_rows(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Every table's rows of the targets all tables share; a method in several tables is taken
    from the first that has it, so a run is never counted twice."""
    targets = set.intersection(*(set(t["target"]) for t in tables))
    if not targets:
        raise UserError("the tables share no target; nothing can be put side by side")
    rows, seen = [], set()
    for table in tables:
        methods = [m for m in table["method"].unique() if m not in seen]
        seen.update(methods)
        rows.append(table[table["target"].isin(targets) & table["method"].isin(methods)])
    return pd.concat(rows, ignore_index=True)


def beside(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (kind, method): runs, targets, the mean over targets of each target's mean over
    its seeds for METRICS (:func:`benchmarks.tables.seed_means`), and the mean over targets of the
    sd over seeds (:func:`benchmarks.tables.seed_spread`; blank for a method run once)."""
    means = seed_means(rows)
    spread = seed_spread(rows)
    spread = spread.set_index(["method", "kind", "metric"])["sd over seeds"] if len(spread) else pd.Series()
    out = []
    order = [m for m in rows["method"].unique() if m != BASE_METHOD] + [BASE_METHOD]
    for kind in sorted(rows["kind"].unique(), key=lambda k: (k != "style", k)):
        for method in order:
            part = means[(means["kind"] == kind) & (means["method"] == method)]
            if part.empty:
                continue
            runs = int(((rows["kind"] == kind) & (rows["method"] == method)).sum())
            row = {"kind": kind, "method": method, "targets": len(part), "runs": runs}
            for metric in METRICS:  # each target weighs the same, however many seeds it has
                row[metric] = part[metric].mean()
            for metric in ACCURACY:
                row[f"{metric} sd over seeds"] = spread.get((method, kind, metric))
            out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", type=Path, required=True, help="per_target.csv files of the sweeps")
    parser.add_argument("--out", type=Path, required=True, help="output stem (.md and .csv are written)")
    parser.add_argument("--reference", default="spare", help="the method the paired table compares the others with")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.tables if not p.is_file()]
    if missing:
        raise SystemExit(f"error: no such table: {', '.join(missing)}")
    frames = [pd.read_csv(p) for p in args.tables]
    for path, frame in zip(args.tables, frames, strict=True):
        lacking = [c for c in ("method", "target", "kind", *METRICS) if c not in frame]
        if lacking:
            raise SystemExit(f"error: {path} is not a per_target table (no {', '.join(lacking)} column)")
    try:
        rows = shared_rows(frames)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    if args.reference not in set(rows["method"]):
        raise SystemExit(f"error: no {args.reference!r} rows; methods: {', '.join(rows['method'].unique())}")
    table = beside(rows)
    targets = ", ".join(sorted(rows["target"].unique()))
    sources = ", ".join(f"`{p}`" for p in args.tables)
    note = (
        f"`python -m benchmarks.beside --tables {' '.join(map(str, args.tables))} --out {args.out}`: the rows of "
        f"{sources} on the targets they share ({targets}); means over targets and training seeds, and the mean "
        "over targets of the sd over seeds. FID is the table's FID column (FID(cls) on canvas-mini)."
    )
    write_table(table, args.out, "Beside each other: the same targets and seeds", note)
    print(table.to_string(index=False))
    paired = paired_table(rows[rows["method"] != BASE_METHOD], reference=args.reference)
    paired_out = args.out.with_name(args.out.name + "_paired")
    write_table(
        paired,
        paired_out,
        f"{args.reference} against each method on the same targets",
        f"The rows of the table beside this one (`{args.out.name}.md`). difference: {args.reference} minus the "
        "method, mean over the shared targets of each one's mean over its seeds; low / high: the 95% bootstrap "
        "interval (targets, then each run's answer images, 2000 resamples, seed 0); better / worse when the whole "
        "interval lies on one side of zero (FID: lower is better), else tie.",
    )
    print(paired.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
