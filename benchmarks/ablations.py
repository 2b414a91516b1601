"""Ablations: one YAML per SPARE design choice under ``ablations/``, each run alone through the runner.

    spare ablation <name> [--dry-run] [--limit N]      (= make ablation NAME=<name>)

An ablation file is a preset (:class:`benchmarks.presets.Preset`) with ``variants``: named
override sets, each a run folder tag ``abl-<variant>``. Every ablation names the SPARE
default ``default``, so it is trained once and shared by all of them (same folder, same
config hash). It resumes and shards like the benchmark, and writes
``results/ablations/<name>/ablation.md`` / ``.csv`` (mean over its targets per variant) and
``ablation.png`` (UA and retain accuracy against the ablated key, or UA against retain
accuracy when the variants are not on one numeric axis), beside the per-target table.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.presets import Preset, get_preset
from benchmarks.tables import COST, gaps_note, integer_columns, waiting_note, with_base, with_retain, write_table
from spare.errors import UserError
from spare.viz import save_figure

ABLATIONS_DIR = Path(__file__).resolve().parents[1] / "ablations"


def ablation_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in ABLATIONS_DIR.glob("*.yaml")))


def get_ablation(name: str) -> Preset:
    """The ablation ``name`` (a file ablations/<name>.yaml); an unknown name lists the valid ones."""
    path = ABLATIONS_DIR / f"{name}.yaml"
    if not path.is_file():
        near = difflib.get_close_matches(name, ablation_names(), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UserError(f"unknown ablation {name!r}.{hint} Valid ablations: {', '.join(ablation_names())}")
    preset = get_preset(str(path))
    if not preset.variants:
        raise UserError(f"ablation {name!r} ({path}) defines no variants")
    return preset


def ablation_table(per_target: pd.DataFrame, preset: Preset) -> pd.DataFrame:
    """Mean over targets per (method, variant), with the ablated keys and mean retain accuracy."""
    keys = [k for k in dict.fromkeys((preset.x, preset.series)) if k and k in per_target]
    frame = with_retain(per_target)
    group = ["method", "variant", *keys]
    metrics = ["UA", "IRA", "CRA", "retain", "FID", *COST]
    table = frame.groupby(group, sort=False, dropna=False)[metrics].mean().reset_index()
    table["targets"] = frame.groupby(group, sort=False, dropna=False).size().to_numpy()
    return table.rename(columns={"retain": "retain (IRA+CRA)/2"})


def spread_labels(ys: list[float], gap: float, top: float) -> list[float]:
    """Label heights for points at ``ys``: each at its point where it can be, at least ``gap``
    from its neighbours, none above ``top``; the order of ``ys`` is kept (ties in input order).

    A forward pass pushes crowded labels up, a backward pass pulls the ones past ``top`` down.
    """
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [float(ys[i]) for i in order]
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    if placed:
        placed[-1] = min(placed[-1], top)
    for k in range(len(placed) - 2, -1, -1):
        placed[k] = min(placed[k], placed[k + 1] - gap)
    out = [0.0] * len(ys)
    for k, i in enumerate(order):
        out[i] = placed[k]
    return out


def set_retain_xlim(ax, retain: list[float]) -> None:
    """The retain axis of a UA-retain plane: at least 10 points wide around ``retain``, so that one
    or two answer images do not look like a trend, and never past 100."""
    lo, hi = min(retain), max(retain)
    pad = max(0.0, 10 - (hi - lo)) / 2 + 1
    ax.set_xlim(lo - pad, min(hi + pad, 100.5))


def ablation_plot(
    table: pd.DataFrame, preset: Preset, path: Path, title: str, base: dict[str, float] | None = None
) -> Path:
    """UA and retain accuracy per variant; ``base`` = the base model's UA, IRA, CRA and retain, for reference.

    A numeric ablated key gives curves against it; named variants (localization, surrogate) give
    bars; baselines beside SPARE give the UA-retain plane. The UA axis always spans 0..100 and
    the plane's retain axis at least 10 points, so that differences of one or two answer images
    (5 points of a style target's UA) do not look like trends.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spare = table[table["method"] == "spare"]
    others = table[table["method"] != "spare"]
    x = preset.x
    numeric = x and pd.to_numeric(spare[x], errors="coerce").notna().all() and not len(others)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if not numeric and not len(others):
        metrics = ["UA", "IRA", "CRA"]
        width = 0.8 / len(metrics)
        pos = np.arange(len(spare))
        for i, metric in enumerate(metrics):
            bars = ax.bar(pos + (i - 1) * width, spare[metric], width, label=metric)
            ax.bar_label(bars, fmt="%.1f", fontsize=6)
            if base is not None:
                ax.axhline(base[metric], color=bars.patches[0].get_facecolor(), ls=":", lw=1)
        ax.set_xticks(
            pos,
            [f"{v}\n({k})" if str(k) else v for v, k in zip(spare["variant"], spare[x], strict=True)]
            if x
            else spare["variant"],
        )
        ax.set_ylabel("accuracy, % (mean over targets; dotted: base model)")
        ax.set_ylim(0, 110)
        ax.legend(fontsize=7, loc="lower right")
    elif numeric:
        series = spare.groupby(preset.series, sort=False) if preset.series else [("SPARE", spare)]
        for label, part in series:
            part = part.assign(_x=pd.to_numeric(part[x])).sort_values("_x")
            (line,) = ax.plot(part["_x"], part["UA"], marker="o", label=f"UA, {label}")
            ax.plot(part["_x"], part["retain (IRA+CRA)/2"], marker="s", ls="--", color=line.get_color(),
                    label=f"retain, {label}")  # fmt: skip
        if base is not None:
            ax.axhline(base["retain"], color="grey", ls=":", lw=1, label="retain, base model")
        ax.set_xlabel(x)
        ax.set_ylabel("accuracy, % (mean over targets)")
        ax.set_ylim(-2, 102)
        if pd.to_numeric(spare[x]).min() > 0 and pd.to_numeric(spare[x]).max() / pd.to_numeric(spare[x]).min() > 8:
            ax.set_xscale("log")
    else:
        order = spare.assign(_x=pd.to_numeric(spare[x], errors="coerce") if x else np.nan).sort_values("_x")
        ax.plot(order["retain (IRA+CRA)/2"], order["UA"], marker="o", color="black", label="SPARE variants")
        # Variants often sit within an answer image of each other: labels go to the left of the
        # points, spread apart in UA, each with a leader line to its point.
        heights = spread_labels(list(order["UA"]), gap=5.0, top=101.0)
        for (_, row), height in zip(order.iterrows(), heights, strict=True):
            ax.annotate(str(row["variant"]), (row["retain (IRA+CRA)/2"], row["UA"]), xytext=(-30, height),
                        textcoords=("offset points", "data"), fontsize=7, ha="right", va="center",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"})  # fmt: skip
        for method, rows in others.groupby("method", sort=False):  # a method's variants share a colour
            ax.scatter(rows["retain (IRA+CRA)/2"], rows["UA"], marker="s", label=method)
        retain = list(table["retain (IRA+CRA)/2"])
        if base is not None:
            ax.scatter(base["retain"], base["UA"], marker="x", color="grey", label="base model")
            retain.append(base["retain"])
        set_retain_xlim(ax, retain)
        ax.set_ylim(-2, 102)
        ax.set_xlabel("mean retain accuracy (IRA + CRA) / 2, %")
        ax.set_ylabel("UA, %")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if not ax.get_legend():
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def reporter(preset: Preset, plot: bool = True):
    """The runner's ``report`` hook for an ablation: per-target rows, the variant table, the plot
    (``plot``: ``ablation.png``; an ablation with a plot of its own, such as the tuning grid, says False)."""

    def report(per_target: pd.DataFrame, base: pd.DataFrame, out: Path, label: str, missing) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        gaps = gaps_note(missing)
        rows = integer_columns(with_base(per_target, base))
        per_target_note = "\n\n".join(filter(None, [gaps, waiting_note(per_target)]))
        write_table(rows, out / "per_target", f"ablation {label}: every run", per_target_note)
        table = ablation_table(per_target, preset)
        ref, shown = None, table
        if len(base):  # the base model's mean over the same targets, on top of the table and in the plot
            base_row = ablation_table(base.assign(variant="-"), preset)
            shown = pd.concat([base_row, table], ignore_index=True)[list(table.columns)]
            ref = {k: float(base_row[k].iloc[0]) for k in ("UA", "IRA", "CRA")}
            ref["retain"] = float(base_row["retain (IRA+CRA)/2"].iloc[0])
        note = f"{preset.description}. Targets: {', '.join(dict.fromkeys(per_target['target']))}; answer seeds "
        note += " ".join(map(str, preset.sampling.seeds)) + (f". {gaps}" if gaps else "")
        write_table(shown, out / "ablation", f"ablation {label}: mean over targets per variant", note)
        paths = {"per_target": out / "per_target.md", "ablation": out / "ablation.md"}
        if plot:
            paths["plot"] = ablation_plot(table, preset, out / "ablation.png", f"ablation {label}", base=ref)
        return paths

    return report
