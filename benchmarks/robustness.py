"""Robustness tables (UnlearnCanvas "Rob."): UA without and with the adversarial prompt attack.

    robustness.{md,csv}  per method and target kind: UA, Rob. (UA under attack), the drop, ASR,
                         beside the published UnlearnCanvas pair of the same method
    robustness.png       paired bars per method, styles and objects: UA, Rob., and the published pair

Made from the runs' ``attack/metrics.json`` files only (:mod:`spare.stages.attack`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.tables import write_table
from spare.viz import percent_bars, save_figure

# UnlearnCanvas, UA without -> with adversarial prompts (%), (style pair, object pair); read from the
# paper's figure as re-posted by its first author (../shared/UNLEARNCANVAS.md, section 7); SEOT's
# values measured from bar heights. Published, not ours.
PUBLISHED_ROB = {
    "esd": ((98.6, 57.2), (92.2, 64.3)),
    "fmn": ((88.5, 50.0), (45.6, 31.3)),
    "uce": ((98.4, 32.6), (94.3, 46.9)),
    "ca": ((60.8, 28.9), (46.7, 22.4)),
    "salun": ((86.3, 45.1), (86.9, 49.8)),
    "seot": ((56.9, 11.4), (23.2, 4.5)),
    "spm": ((60.9, 29.8), (71.2, 43.2)),
    "ediff": ((92.4, 47.5), (86.7, 51.5)),
    "shs": ((95.8, 35.2), (80.7, 38.4)),
}
COLUMNS = ("UA before attack", "Rob", "ASR", "attack s")


def attack_columns(attack: dict) -> dict:
    """A run's per_target columns from its ``attack/metrics.json`` (blank when it has none)."""
    cost = attack.get("cost") or {}
    values = (attack.get("UA_before"), attack.get("Rob"), attack.get("ASR"), cost.get("time_s"))
    return {c: np.nan if v is None else v for c, v in zip(COLUMNS, values, strict=True)}


def robustness_table(per_target: pd.DataFrame) -> pd.DataFrame:
    """Per method and kind: mean UA (the attack's own reading of the answer images), Rob., the drop
    and ASR over targets (and training seeds), with the published pair beside it."""
    rows = []
    runs = per_target.dropna(subset=["Rob"])
    for (method, kind), part in runs.groupby(["method", "kind"], sort=False):
        ua, rob = part["UA before attack"].mean(), part["Rob"].mean()
        row = {
            "method": method,
            "kind": kind,
            "runs": len(part),
            "UA": ua,
            "Rob.": rob,
            "drop": ua - rob,
            "ASR": part["ASR"].mean(),
            "attack s": part["attack s"].mean(),
        }
        published = PUBLISHED_ROB.get(method)
        pair = published[0 if kind == "style" else 1] if published else (np.nan, np.nan)
        row.update({"published UA": pair[0], "published Rob.": pair[1], "published drop": pair[0] - pair[1]})
        rows.append(row)
    return pd.DataFrame(rows)


def robustness_plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Paired bars per method (UA, Rob.), one panel per kind, the published pair as outlined bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("style", "object") if k in set(table["kind"])]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        part = table[table["kind"] == kind].reset_index(drop=True)
        bars = [
            (part["UA"], {"label": "UA (ours)", "color": "tab:blue"}),
            (part["Rob."], {"label": "Rob. (ours, attacked)", "color": "tab:red"}),
            (part["published UA"], {"label": "UA (published)", "fill": False, "edgecolor": "tab:blue"}),
            (part["published Rob."], {"label": "Rob. (published)", "fill": False, "edgecolor": "tab:red"}),
        ]
        percent_bars(ax, part["method"], bars, f"{kind} targets", legend=ax is axes[0][0])
    fig.suptitle(title)
    return save_figure(fig, path)


def write_robustness(per_target: pd.DataFrame, out: Path, label: str, gaps: str = "") -> dict[str, Path]:
    """The robustness table and plot under ``out`` when the runs were attacked; {name: path}."""
    if "Rob" not in per_target or per_target["Rob"].isna().all():
        return {}
    table = robustness_table(per_target)
    note = (
        "UA: share of the target's answer images the classifier does not read as the target, without the "
        "attack; Rob.: the same under the adversarial prompt attack (spare.attack, UnlearnDiffAtk-style), "
        "higher is better; drop = UA - Rob.; ASR: share of the forgotten images the attack brought back. "
        "Published pairs: UnlearnCanvas (Stable Diffusion v1.5), read from its figure: a different world, "
        "compare the drops, not the values." + (f" {gaps}" if gaps else "")
    )
    write_table(table, out / "robustness", f"{label}: UA without -> with adversarial prompts", note)
    plot = robustness_plot(table, out / "robustness.png", f"{label}: UA without and with the attack")
    return {"robustness": out / "robustness.md", "robustness_plot": plot}
