"""Every method side by side on the same targets, rendered from the runs' metrics files only.

    python -m benchmarks.method_table [--runs runs/mini] [--out results/baselines] [--targets ...]

For each method folder under ``runs/<benchmark>/`` and each target (untagged runs only, the
methods' defaults), one row: UA, IRA, CRA, FID(cls), time, peak memory, edit storage and
trainable parameters, beside the base model's numbers. Writes ``methods.md`` / ``.csv``
and copies each run's ``config.json`` into ``configs/<method>/<target>/``. Missing runs
are listed, never filled in.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from benchmarks.spare_report import REPORTED, write_table
from spare.methods import method_names

METRICS = ("UA", "IRA", "CRA", "FID(cls)")


def collect(runs: Path, targets: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    rows, missing = [], []
    for target in targets:
        slug = target.replace(":", "-")
        base_file = runs / "base" / slug / "metrics.json"
        if base_file.exists():
            base = json.loads(base_file.read_text())["metrics"]
            rows.append({"target": target, "method": "base (no unlearning)", **{m: base[m]["value"] for m in METRICS}})
        for method in method_names():
            path = runs / method / slug / "metrics.json"
            if not path.exists():
                missing.append(f"{method} {target}")
                continue
            result = json.loads(path.read_text())
            row = {"target": target, "method": method, **{m: result["metrics"][m]["value"] for m in METRICS}}
            row.update(
                {
                    "time s": result["metrics"]["time_s"]["value"],
                    "peak memory GB": result["metrics"]["memory_gb"]["value"],
                    "storage bytes": result["storage_bytes"],
                    "trainable params": result.get("trainable_params"),
                    "run": str(path.parent),
                }
            )
            rows.append(row)
    return pd.DataFrame(rows), missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/mini")
    parser.add_argument("--out", default="results/baselines")
    parser.add_argument("--targets", nargs="+", default=list(REPORTED))
    args = parser.parse_args(argv)
    runs, out = Path(args.runs), Path(args.out)
    frame, missing = collect(runs, tuple(args.targets))
    if missing:
        print("runs not found (run `make baseline-runs` / `make spare-results`):\n  " + "\n  ".join(missing))
    if frame.empty or "run" not in frame:
        return 1
    out.mkdir(parents=True, exist_ok=True)
    shown = frame.drop(columns=["run"])
    write_table(shown, out / "methods", "Every method on the same canvas-mini targets (from runs/*/metrics.json)")
    for row in frame.dropna(subset=["run"]).itertuples():
        dest = out / "configs" / row.method / row.target.replace(":", "-")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(row.run) / "config.json", dest / "config.json")
    print(shown.to_string(index=False))
    print(f"wrote {out}/methods.md, methods.csv, configs/")
    return 0 if not missing else 2


if __name__ == "__main__":
    raise SystemExit(main())
