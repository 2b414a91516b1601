"""Finer-scale unlearning tables (UnlearnCanvas FU / FR): one style-object combination forgotten.

    finer.{md,csv}  per method: FU and the three FR parts, mean over the pair targets (and seeds)
    finer.png       grouped bars per method: FU, FR same style, FR same object, FR rest

The metrics (:func:`evaluators.accuracy.pair_metrics`): for a pair (S, O), FU is the share of the
(S, O) answer images not read as that combination; FR_style the share of (S, other object) images
read as their own combination, FR_object the same for (other style, O), FR_rest for every other
image (benchmark styles; photo excluded). UnlearnCanvas defines FU / FR but never published their
protocol or numbers in a form we could read: these definitions are ours, and no published row exists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.tables import FINER, with_base, write_table
from spare.viz import percent_bars, save_figure

LABELS = {"FU": "FU", "FR_style": "FR same style", "FR_object": "FR same object", "FR_rest": "FR rest"}


def finer_table(per_target: pd.DataFrame) -> pd.DataFrame:
    runs = per_target.dropna(subset=["FU"])
    rows = []
    for method, part in runs.groupby("method", sort=False):
        row = {"method": method, "pairs": part["target"].nunique(), "runs": len(part)}
        row.update({LABELS[m]: part[m].mean() for m in FINER})
        row.update({f"{LABELS[m]} sd": part[m].std(ddof=1) if len(part) > 1 else np.nan for m in ("FU",)})
        row["time s"] = part["time s"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def finer_plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(table)), 4.2))
    percent_bars(ax, table["method"], [(table[LABELS[m]], {"label": LABELS[m]}) for m in FINER], title, legend=True)
    return save_figure(fig, path)


def write_finer(
    per_target: pd.DataFrame, out: Path, label: str, gaps: str = "", base: pd.DataFrame | None = None
) -> dict[str, Path]:
    """The finer-scale table and plot under ``out`` when the sweep has pair targets; {name: path}.
    ``base``: the base model's rows on the same targets, its row first (what FR starts from)."""
    if "FU" not in per_target or per_target["FU"].isna().all():
        return {}
    table = finer_table(with_base(per_target, base))
    pairs = ", ".join(dict.fromkeys(per_target.dropna(subset=["FU"])["target"]))
    note = (
        f"Pairs: {pairs}. FU: share of the pair's answer images not read as that combination (higher: more "
        "forgotten); FR same style / same object / rest: share of those images read as their own combination "
        "(higher: better kept). Definitions are the harness's own (benchmarks/finer.py); UnlearnCanvas published "
        "no FU / FR protocol or numbers we could read, so no published row exists." + (f" {gaps}" if gaps else "")
    )
    write_table(table, out / "finer", f"{label}: finer-scale unlearning, mean over the pairs", note)
    plot = finer_plot(table, out / "finer.png", f"{label}: forgetting a combination, keeping its parts")
    return {"finer": out / "finer.md", "finer_plot": plot}
