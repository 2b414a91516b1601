"""Tables of SPARE runs beside the base model, rendered from the runs' metrics files only.

    python -m benchmarks.spare_report [--runs runs/mini] [--out results/spare]

Writes ``spare_vs_base.md`` / ``.csv`` (the SPARE runs of the reported targets: UA, IRA,
CRA, FID(cls), time, trainable share, edit bytes, and the base model's numbers for the
same target and seeds), ``timesteps.md`` (UA per reported target for each timestep mode
at the same step budget), ``validation.md`` (every run on other targets: the tuning runs,
kept in view so that what was tried is on record) and copies every run's ``config.json``
and ``report.json`` timestep profile into ``configs/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from benchmarks.tables import write_table
from spare.io import copy_atomic, write_json
from spare.viz import answer_grid_png

METRICS = ("UA", "IRA", "CRA", "FID(cls)")
REPORTED = ("style:Ink_Outline", "object:Star")  # the targets of `make spare-results`; tuning never used them


def collect(runs: Path) -> pd.DataFrame:
    rows = []
    for metrics_file in sorted((runs / "spare").glob("*/metrics.json")):
        result = json.loads(metrics_file.read_text())
        target = result["target"]
        config = json.loads((metrics_file.parent / "config.json").read_text())
        base_file = runs / "base" / target.replace(":", "-") / "metrics.json"
        base = json.loads(base_file.read_text())["metrics"] if base_file.exists() else {}
        row = {"target": target, "variant": result.get("tag") or "default", "run": metrics_file.parent.name}
        ts = config["method_config"]["timesteps"]
        row["timesteps"] = ts["mode"]
        if ts["mode"] == "gap":  # configs written before these fields existed ran eps units, band only
            row["timesteps"] += f" ({ts.get('units', 'eps')}, focus {ts.get('focus', 1.0)})"
        row["localization"] = config["method_config"]["localization"]
        row["lr"] = f"{config['method_config']['optim']['lr']:g}"
        row["steps"] = config["method_config"]["optim"]["steps"]
        row["seeds"] = " ".join(str(x) for x in config["settings"]["sampling"]["seeds"])
        git = result.get("provenance", {}).get("git", "?")
        row["commit"] = git[:12] + ("-dirty" if git.endswith("-dirty") else "")
        for m in METRICS:
            row[m] = result["metrics"][m]["value"]
            row[f"base {m}"] = base.get(m, {}).get("value")
        row["time s"] = result["metrics"]["time_s"]["value"]
        row["trainable %"] = 100 * result["trainable_share"]
        row["edit bytes"] = result["storage_bytes"]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/mini")
    parser.add_argument("--out", default="results/spare")
    args = parser.parse_args(argv)
    runs, out = Path(args.runs), Path(args.out)
    frame = collect(runs)
    if frame.empty:
        print(f"no SPARE runs under {runs}/spare")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    cols = ["target", "variant", "localization", "timesteps", "lr", "steps", "seeds"]
    cols += [c for m in METRICS for c in (f"base {m}", m)] + ["time s", "trainable %", "edit bytes", "commit"]
    reported = frame["target"].isin(REPORTED)
    write_table(
        frame.loc[reported, cols],
        out / "spare_vs_base",
        "SPARE on canvas-mini, beside the base model (from runs/*/metrics.json)",
    )
    write_table(
        frame.loc[~reported, cols],
        out / "validation",
        "Tuning runs on validation targets and seeds (never the reported targets or answer-set seeds)",
    )
    module = frame[reported & (frame["localization"] == "module")]
    ts = module.pivot_table(index=["target", "lr", "steps"], columns="timesteps", values="UA")
    write_table(ts.reset_index(), out / "timesteps", "UA by timestep sampling at the same step budget")
    configs = out / "configs"
    for run in frame["run"]:
        dest = configs / run
        copy_atomic(runs / "spare" / run / "config.json", dest / "config.json")
        report = json.loads((runs / "spare" / run / "report.json").read_text())
        write_json(dest / "timesteps.json", report["timesteps"])
        if (runs / "spare" / run / "saliency.png").exists():
            copy_atomic(runs / "spare" / run / "saliency.png", dest / "saliency.png")
    for row in frame[reported].itertuples():
        answer_grid_png(
            runs / "spare" / row.run / "answers", out / f"answers_{row.run}.png", f"SPARE, {row.target} forgotten"
        )
    print(frame[cols].to_string(index=False))
    print(f"wrote {out}/spare_vs_base.md, timesteps.md, validation.md, configs/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
