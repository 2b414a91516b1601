"""Benchmark tables and plots, made from the runs' metrics files only (never typed).

    per_target   one row per (method, target): UA, IRA, CRA, FID, time, memory, storage
    summary      the UnlearnCanvas format: per method, Style UA/IRA/CRA and Object UA/IRA/CRA
                 as mean ± std over the targets of each kind [95% bootstrap interval over the
                 targets and the images within each, :mod:`benchmarks.uncertainty`], FID, time,
                 memory, storage
    paired       SPARE against each baseline: the difference per metric and kind over shared
                 targets, its 95% interval and better / worse / tie
    summary_reported  the same without the world's validation targets (rows marked ``validation``),
                 when the sweep has both kinds
    published    our summary rows beside the published UnlearnCanvas Table 2 rows, labelled
                 (different world, same protocol)
    tradeoff.png UA against mean retain accuracy ((IRA + CRA) / 2), one point per method and kind

Missing runs are listed, never filled in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.uncertainty import ACCURACY, bootstrap_interval, paired_table
from evaluators.cost import StageClock
from spare.io import atomic_path, read_json_dict
from spare.viz import save_figure

FINER = ("FU", "FR_style", "FR_object", "FR_rest")  # finer-scale (pair) targets
# Per-stage seconds of a run (``metrics.json`` "stages"; blank for runs made before they were kept).
# "time s" is the unlearning stage, as UnlearnCanvas reports it.
STAGES = {"answers s": "answers_s", "img/s": "answers_img_per_s", "score s": "score_s", "FID s": "fid_s"}
BASE_METHOD = "base (no unlearning)"  # the method column of the base model's rows
COST = ("time s", "memory GB", "storage MB")  # storage in MiB: most edits are far below a GB

# UnlearnCanvas paper, Table 2 (../shared/UNLEARNCANVAS.md section 3): Stable Diffusion v1.5 at
# 512x512 on A6000-class GPUs, means over 50 style and 20 object targets. Published, not ours.
PUBLISHED_COLUMNS = ("Style UA", "Style IRA", "Style CRA", "Object UA", "Object IRA", "Object CRA", "FID")
PUBLISHED_COLUMNS += ("time s", "memory GB", "storage MB")
_PUBLISHED_GB = {  # the last column as published: storage in GB
    "esd": (98.58, 80.97, 93.96, 92.15, 55.78, 44.23, 65.55, 6163, 17.8, 4.3),
    "fmn": (88.48, 56.77, 46.60, 45.64, 90.63, 73.46, 131.37, 350, 17.9, 4.2),
    "uce": (98.40, 60.22, 47.71, 94.31, 39.35, 34.67, 182.01, 434, 5.1, 1.7),
    "ca": (60.82, 96.01, 92.70, 46.67, 90.11, 81.97, 54.21, 734, 10.1, 4.2),
    "salun": (86.26, 90.39, 95.08, 86.91, 96.35, 99.59, 61.05, 667, 30.8, 4.0),
    "seot": (56.90, 94.68, 84.31, 23.25, 95.57, 82.71, 62.38, 95, 7.34, 0.0),
    "spm": (60.94, 92.39, 84.33, 71.25, 90.79, 81.65, 59.79, 29700, 6.9, 0.0),
    "ediff": (92.42, 73.91, 98.93, 86.67, 94.03, 48.48, 81.42, 1567, 27.8, 4.0),
    "shs": (95.84, 80.42, 43.27, 80.73, 81.15, 67.99, 119.34, 1223, 31.2, 4.0),
}
PUBLISHED = {m: (*v[:-1], v[-1] * 1024) for m, v in _PUBLISHED_GB.items()}
PUBLISHED_SPARE = {"Style UA": 99.96, "Object UA": 98.55}  # SPARE reports only these two


def read_metrics(path: Path) -> dict | None:
    """A run's metrics, or None when missing or damaged (then named in a warning, and listed as missing)."""
    return read_json_dict(path)


def per_target_row(result: dict, method: str, target: str) -> dict:
    metrics = result["metrics"]
    fid = next((k for k in metrics if k.startswith("FID")), None)
    row = {"method": method, "target": target, "kind": target.split(":")[0]}
    row.update({m: metrics[m]["value"] if m in metrics else np.nan for m in ACCURACY})  # a pair has none
    row.update({m: metrics[m]["value"] for m in FINER if m in metrics})  # a pair's (evaluators.accuracy)
    row["FID"] = metrics[fid]["value"] if fid else np.nan
    row["FID features"] = fid or ""
    row["time s"] = metrics.get("time_s", {}).get("value", np.nan)
    cost = result.get("cost") or {}
    row["CPU s"] = cost.get("cpu_time_s", np.nan)  # runs made before the meter recorded it: blank
    stages = result.get("stages") or {}
    row.update({col: stages.get(key, np.nan) for col, key in STAGES.items()})
    row["load"] = cost.get("load_1min", np.nan)  # machine load at the end: > cores means shared
    row["wall/CPU"] = waited(result)
    row["machine"] = machine(result.get("provenance") or {})
    row["memory GB"] = metrics.get("memory_gb", {}).get("value", np.nan)
    row["storage MB"] = result.get("storage_bytes", np.nan) / 2**20
    row["trainable params"] = result.get("trainable_params")
    return row


WAIT_LIMIT = 1.25  # a stage's wall seconds over its CPU seconds, above which they include waiting
_WAIT_MIN_S = 20.0  # shorter stages: too short to tell waiting from start-up


def waited(result: dict) -> float:
    """How much longer than its CPU time the most delayed stage (over 20 s) of a one-thread CPU run
    took on the clock: about 1 when the run had its core to itself; above ``WAIT_LIMIT`` when its
    process was paused (SIGSTOP) or shared its core, and then its seconds measure the machine, not
    the method. NaN where the ratio says nothing: on a GPU, with several threads (CPU seconds then
    exceed wall seconds), or for runs made before the stages recorded their CPU seconds."""
    provenance = result.get("provenance") or {}
    threads = (provenance.get("cpu") or {}).get("threads")
    if not str(provenance.get("device") or "").startswith("cpu") or threads != 1:
        return np.nan
    clock = StageClock.from_dict(result.get("stages") or {})
    ratios = [wall / clock.cpu[s] for s, wall in clock.wall.items() if wall >= _WAIT_MIN_S and clock.cpu[s]]
    return max(ratios) if ratios else np.nan


def waiting_note(per_target: pd.DataFrame) -> str:
    """The tables' line naming the runs whose seconds include waiting (:func:`waited`), or ""."""
    if "wall/CPU" not in per_target:
        return ""
    over = per_target[per_target["wall/CPU"] > WAIT_LIMIT]
    if over.empty:
        return ""

    def column(name: str) -> pd.Series:
        return over[name] if name in over else pd.Series(np.nan, index=over.index)

    names = ", ".join(
        f"{method} {target}{f' {variant}' if pd.notna(variant) else ''}"
        f"{f' seed {int(seed)}' if pd.notna(seed) else ''} ({ratio:.2f}x)"
        for method, target, variant, seed, ratio in zip(
            over["method"], over["target"], column("variant"), column("seed"), over["wall/CPU"], strict=True
        )
    )
    return (
        f"Times that include waiting (a stage's wall seconds over {WAIT_LIMIT}x its CPU seconds, the largest "
        "ratio in brackets: the process was paused or shared its core, so that stage's seconds, time s or "
        f"answers s, measure the machine too; accuracies are unaffected): {names}."
    )


def with_retain(per_target: pd.DataFrame) -> pd.DataFrame:
    """``per_target`` with ``retain``, the mean retain accuracy (IRA + CRA) / 2 of each run."""
    return per_target.assign(retain=(per_target["IRA"] + per_target["CRA"]) / 2)


def machine(provenance: dict) -> str:
    """What a run's time was measured on: the GPU's name, or on the CPU its model name with torch's
    vector kernels and the threads the run had, "AMD EPYC (AVX2, 2 threads)" ("" for runs made
    before provenance recorded it). One model name covers CPU generations 2 to 3 times apart in
    speed, the kernels tell them apart; a sharded sweep's job runs in one thread, a plain sweep's in
    every core. Times from different machines or thread counts are not comparable."""
    device = provenance.get("device") or ""
    if not device.startswith("cpu"):
        return device
    cpu = provenance.get("cpu") or {}
    model, kernels, threads = cpu.get("model", ""), cpu.get("capability"), cpu.get("threads")
    if not (model and kernels):
        return model
    return f"{model} ({kernels}{f', {threads} thread' + 's' * (threads != 1) if threads else ''})"


def seed_means(per_target: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, target): the mean over its training seeds (the frame as it is when
    every target has one run per method), so that a std over targets is over targets only."""
    keys = ["method", "target", "kind"]
    if "seed" not in per_target or per_target.groupby(keys[:2]).size().max() <= 1:
        return per_target
    numeric = [c for c in per_target.select_dtypes("number").columns if c != "seed"]
    return per_target.groupby(keys, sort=False, as_index=False)[numeric].mean()


def seed_spread(per_target: pd.DataFrame) -> pd.DataFrame:
    """Per method, kind and metric: the mean, the std over targets (of each target's mean over
    seeds) and the std over training seeds (each target's std over its seeds, averaged over
    targets), for the methods run with more than one training seed."""
    rows = []
    for (method, kind), runs in per_target.groupby(["method", "kind"], sort=False):
        if kind not in ("style", "object"):
            continue
        per_target_seeds = runs.groupby("target", sort=False)
        seeds = per_target_seeds.size()
        if seeds.max() <= 1:
            continue
        for m in ACCURACY:
            means, stds = per_target_seeds[m].mean(), per_target_seeds[m].std(ddof=1)
            rows.append(
                {
                    "method": method,
                    "kind": kind,
                    "metric": m,
                    "mean": means.mean(),
                    "sd over targets": means.std(ddof=1),
                    "sd over seeds": stds.mean(),
                    "targets": len(means),
                    "seeds per target": int(seeds.min()),
                }
            )
    return pd.DataFrame(rows)


def validation_mask(per_target: pd.DataFrame) -> pd.Series:
    """The rows of the world's validation targets (the ``validation`` column the runner writes;
    none in a table without it)."""
    if "validation" not in per_target:
        return pd.Series(False, index=per_target.index)
    return per_target["validation"].fillna(False).astype(bool)


def summary(per_target: pd.DataFrame, intervals: bool = True) -> pd.DataFrame:
    """UnlearnCanvas format: per method, mean ± std over targets of each kind (strings "m ± s");
    a target run with several training seeds counts once, with its mean over the seeds. With
    ``intervals``, the accuracy and FID cells add their 95% bootstrap interval "[lo, hi]" over the
    targets and each run's images (:func:`benchmarks.uncertainty.bootstrap_interval`)."""
    rows = []
    means = seed_means(per_target)
    for method, runs in means.groupby("method", sort=False):
        every = per_target[per_target["method"] == method]  # one row per run, for the bootstrap
        row = {"method": method}
        for kind, label in (("style", "Style"), ("object", "Object")):
            part = runs[runs["kind"] == kind]
            for m in ACCURACY:
                row[f"{label} {m}"] = _mean_std(part[m], every[every["kind"] == kind] if intervals else None, m)
            row[f"{label} targets"] = len(part)
        row["FID"] = _mean_std(runs["FID"], every if intervals else None, "FID")
        for col in COST:
            row[col] = _mean_std(runs[col])
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series, runs: pd.DataFrame | None = None, metric: str = "") -> str:
    values = values.dropna().astype(float)
    if values.empty:
        return "-"
    cell = _fmt(values.iloc[0]) if len(values) == 1 else f"{_fmt(values.mean())} ± {_fmt(values.std(ddof=1))}"
    if runs is not None:
        lo, hi = bootstrap_interval(runs, metric)
        cell += f" [{_fmt(lo)}, {_fmt(hi)}]"
    return cell


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.2f}"


def published_side_by_side(per_target: pd.DataFrame, world: str) -> pd.DataFrame:
    """Our mean per method beside the published UnlearnCanvas row of the same method."""
    rows = []
    for method, runs in per_target.groupby("method", sort=False):
        ours = {"method": method, "source": f"ours ({world})"}
        for kind, label in (("style", "Style"), ("object", "Object")):
            part = runs[runs["kind"] == kind]
            for m in ACCURACY:
                ours[f"{label} {m}"] = part[m].mean() if len(part) else np.nan
        ours.update({"FID": runs["FID"].mean(), **{c: runs[c].mean() for c in COST}})
        rows.append(ours)
        if method in PUBLISHED:
            rows.append(
                {"method": method, "source": "published (UnlearnCanvas, SD-1.5)"}
                | dict(zip(PUBLISHED_COLUMNS, PUBLISHED[method], strict=True))
            )
        elif method == "spare":
            rows.append({"method": method, "source": "published (SPARE paper)"} | PUBLISHED_SPARE)
    return pd.DataFrame(rows)


def rank_agreement(per_target: pd.DataFrame, methods: Collection[str] | None = None) -> pd.DataFrame:
    """Per published column: Spearman's rank correlation, over the baselines with a published row
    (or those of them in ``methods``), between our means and the published values (how far
    canvas-mini orders the methods as the paper does; the columns are compared, never tuned for)."""
    ours = published_side_by_side(per_target, "")
    ours = ours[ours["source"].str.startswith("ours")].set_index("method")
    rows = []
    for column in PUBLISHED_COLUMNS[:7]:
        names = [m for m in ours.index if m in PUBLISHED and pd.notna(ours.loc[m, column])]
        names = [m for m in names if methods is None or m in methods]
        if len(names) < 3:
            continue
        mine = ours.loc[names, column].astype(float).rank()
        theirs = pd.Series([PUBLISHED[m][PUBLISHED_COLUMNS.index(column)] for m in names], index=names).rank()
        rows.append({"column": column, "methods": len(names), "Spearman rho": float(np.corrcoef(mine, theirs)[0, 1])})
    return pd.DataFrame(rows)


def rank_before_after(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Rank agreement of two per-target tables side by side, per published column: each over its
    own baselines, and ``after`` again over only the baselines ``before`` has (so a method added
    in between, such as SEOT, does not pass for a change of order). Pass both tables on the same
    targets."""
    old = rank_agreement(before).set_index("column")
    new = rank_agreement(after).set_index("column")
    same = rank_agreement(after, methods=set(before["method"])).set_index("column")
    table = pd.DataFrame(
        {
            "before rho": old["Spearman rho"],
            "before methods": old["methods"],
            "after rho": new["Spearman rho"],
            "after methods": new["methods"],
            "after rho, before's methods": same["Spearman rho"],
        }
    )
    table = table.reindex([c for c in PUBLISHED_COLUMNS if c in table.index])
    return integer_columns(table.rename_axis("column").reset_index(), ("before methods", "after methods"))


def integer_columns(frame: pd.DataFrame, columns: Sequence[str] = ("seed", "trainable params")) -> pd.DataFrame:
    """Counts stay integers in the tables even where base-model rows leave them blank."""
    present = [c for c in columns if c in frame]
    return frame.astype({c: "Int64" for c in present})


def write_table(frame: pd.DataFrame, path: Path, title: str, note: str = "") -> None:
    """CSV (full precision) and Markdown (2 decimals) beside each other, both written atomically."""
    with atomic_path(path.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    shown = frame.map(_cell)
    body = shown.to_markdown(index=False, disable_numparse=True)
    with atomic_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(f"# {title}\n\n" + (note + "\n\n" if note else "") + body + "\n")


def _cell(v):
    """Markdown cell: floats to 2 decimals, blanks (None, NaN, NA) as "-", the rest as written."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else v


def tradeoff_plot(per_target: pd.DataFrame, path: Path, title: str) -> Path:
    """UA against mean retain accuracy ((IRA + CRA) / 2), one marker per method and target kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    frame = with_retain(per_target)
    colours = plt.get_cmap("tab10")
    for i, (method, runs) in enumerate(frame.groupby("method", sort=False)):
        for kind, marker in (("style", "o"), ("object", "s")):
            part = runs[runs["kind"] == kind]
            if len(part):
                ax.scatter(
                    part["retain"].mean(),
                    part["UA"].mean(),
                    marker=marker,
                    s=60,
                    color=colours(i % 10),
                    label=f"{method} ({kind})",
                    edgecolors="black",
                    linewidths=0.5,
                )
    ax.set_xlabel("mean retain accuracy (IRA + CRA) / 2, %")
    ax.set_ylabel("unlearning accuracy UA, %")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a sweep of pair targets only has no point here
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    return save_figure(fig, path)


INTERVAL_NOTE = (
    "[lo, hi]: 95% bootstrap interval of the mean (2000 resamples, seed 0): targets drawn with "
    "replacement, and each run's answer images redrawn with replacement (accuracies; FID over targets only)."
)
PAIRED_NOTE = (
    "difference = SPARE minus the baseline, mean over the shared targets (each method's mean over its own "
    "training seeds); [low, high]: 95% bootstrap interval (targets and each run's images redrawn). better / "
    "worse: the whole interval on SPARE's better / worse side (FID: lower is better); else tie."
)


def gaps_note(missing: str) -> str:
    """The tables' line on the runs without metrics (``missing``: the runner's ``missing_runs``)."""
    return f"Missing runs (not filled in), {missing}" if missing else ""


def with_base(per_target: pd.DataFrame, base: pd.DataFrame | None) -> pd.DataFrame:
    """The base model's rows (if any) on top of ``per_target``: what each table starts from."""
    return pd.concat([base, per_target], ignore_index=True) if base is not None and len(base) else per_target


def write_all(per_target: pd.DataFrame, base: pd.DataFrame, out: Path, label: str, missing: str) -> dict:
    """Every table and the plot under ``out``; returns {name: path}."""
    out.mkdir(parents=True, exist_ok=True)
    gaps = gaps_note(missing)
    waiting = waiting_note(per_target)
    paths = {}
    table = integer_columns(with_base(per_target, base))
    write_table(
        table,
        out / "per_target",
        f"{label}: every run (from runs/*/metrics.json)",
        "\n\n".join(filter(None, [gaps, waiting])),
    )
    paths["per_target"] = out / "per_target.md"
    write_table(
        summary(per_target),
        out / "summary",
        f"{label}: UnlearnCanvas-format summary, mean ± std over targets [95% bootstrap interval]",
        "\n\n".join(filter(None, [gaps, waiting, INTERVAL_NOTE])),
    )
    paths["summary"] = out / "summary.md"
    marked = validation_mask(per_target)
    left_out = marked.any() and not marked.all()
    if left_out:
        names = ", ".join(dict.fromkeys(per_target.loc[marked, "target"]))
        write_table(
            summary(per_target[~marked]),
            out / "summary_reported",
            f"{label}: the summary without the validation targets, mean ± std over the other targets",
            f"Left out: {names}, the targets the methods' default steps and lr were chosen on. {INTERVAL_NOTE}",
        )
        paths["summary_reported"] = out / "summary_reported.md"
    reported = per_target[~marked] if left_out else per_target
    paired = paired_table(reported)
    if len(paired):
        write_table(
            paired,
            out / "paired",
            f"{label}: SPARE against each baseline, over the targets both ran",
            PAIRED_NOTE + (" Validation targets left out." if left_out else ""),
        )
        paths["paired"] = out / "paired.md"
    note = (
        "Different world, same protocol: our rows are canvas-mini (32x32 renders, a 1.4M-parameter "
        "pixel-space model, our classifiers, FID on classifier features), the published rows Stable "
        "Diffusion v1.5 on UnlearnCanvas at 512x512. Compare orderings and trade-offs, not values."
    )
    if label.startswith("unlearncanvas"):
        note = "Our rows and the published rows: both UnlearnCanvas, Stable Diffusion v1.5."
    write_table(
        published_side_by_side(per_target, label),
        out / "published",
        f"{label} beside the published UnlearnCanvas numbers",
        note,
    )
    paths["published"] = out / "published.md"
    ranks = rank_agreement(reported)
    if len(ranks):
        write_table(
            ranks,
            out / "published_rank",
            f"{label}: do our columns order the baselines as the published ones do?",
            "Spearman's rank correlation per column over the baselines with a published UnlearnCanvas row "
            "(1: the same order; 0: unrelated; -1: reversed). Reported, never tuned for."
            + (" Validation targets left out." if reported is not per_target else ""),
        )
        paths["published_rank"] = out / "published_rank.md"
    spread = seed_spread(per_target)
    if len(spread):
        write_table(
            spread,
            out / "seeds",
            f"{label}: spread over targets and over training seeds, separately",
            "sd over targets: of each target's mean over its seeds; sd over seeds: each target's std over its "
            "training seeds, averaged over the targets.",
        )
        paths["seeds"] = out / "seeds.md"
    paths["plot"] = tradeoff_plot(per_target, out / "tradeoff.png", f"{label}: forgetting vs retention")
    return paths
