"""The tuning protocol: the same grid and the same selection rule for every trained method.

    spare ablation tuning [--dry-run] [--limit N] [--tables-only]      (= make tuning)

Runs (or resumes) the grid of ``ablations/tuning.yaml``: every trained method at its rule
default and at lr x {1/3, 1, 3} x steps x {1, 2} around it (6 points), on the catalogue's four
validation targets with the validation answer seeds; never a reported target, never the answer
set's seeds, never a published number. Then the rule, fixed before the runs, picks each
method's point:

    score = mean over the targets of (UA + retain) / 2,  retain = (IRA + CRA) / 2;
    the highest score wins; scores within TIE (0.5 points, below one validation image of UA)
    go to the rule default, then to fewer steps, then to the lower lr.

Writes ``results/tuning/``: the runner's per-target and per-variant tables, ``grid.md`` (every
point per method with its figures and score), ``grid.png`` (the same in the UA-retain plane, one
panel per method, the choice ringed), ``chosen.md`` and ``chosen.yaml`` (method ->
the chosen point's overrides), which the presets that say ``tuned:`` (mini-full, mini-robust,
mini-finer) apply on top of each method's default. A method missing from the grid's results
keeps its default, and the tables say so. Once the grid is complete, ``cost.md``: what the grid
cost per method (process-hours, by machine) and what ``mini-full`` will cost at the chosen points,
projected from those points' measured stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.ablations import get_ablation, reporter, set_retain_xlim
from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep
from benchmarks.tables import BASE_METHOD, WAIT_LIMIT, with_retain, write_table
from spare.io import atomic_path

GRID = "tuning"
RESULTS = Path("results") / "tuning"
CHOSEN = RESULTS / "chosen.yaml"
DEFAULT = "default"
TIE = 0.5


def grid_table(per_target: pd.DataFrame, variants: dict[str, dict[str, list[str]]]) -> pd.DataFrame:
    """One row per (method, grid point): its overrides and their step and lr factors, means over
    the targets and the score; ``complete``: the point has every target its method has run on.
    Once the grid is done that is every grid target (the choice is applied only then); while it
    runs, a method's provisional choice is over the targets its points share, not emptied by
    another method that has started a target it has not."""
    frame = with_retain(per_target)
    frame = frame.assign(point=(frame["UA"] + frame["retain"]) / 2)
    want = frame.groupby("method")["target"].nunique()
    rows = []
    for (method, variant), runs in frame.groupby(["method", "variant"], sort=False):
        overrides = variants[variant].get("*", []) + variants[variant].get(method, [])
        steps_x, lr_x = _steps_and_lr(overrides)
        row = {"method": method, "point": variant, "overrides": " ".join(overrides) or "(rule default)"}
        row |= {"steps x": steps_x, "lr x": lr_x}
        row |= {m: runs[m].mean() for m in ("UA", "IRA", "CRA", "retain")}
        row |= {"score": runs["point"].mean(), "targets": runs["target"].nunique()}
        row["complete"] = row["targets"] == want[method]
        rows.append(row)
    return pd.DataFrame(rows)


def _steps_and_lr(overrides: list[str]) -> tuple[float, float]:
    """The step and lr factors a point's overrides spell (1 where they name none)."""
    factors = {"optim.steps": 1.0, "optim.lr": 1.0}
    for item in overrides:
        key, _, value = item.partition("*=")
        if key in factors:
            factors[key] = float(value)
    return factors["optim.steps"], factors["optim.lr"]


def choose(grid: pd.DataFrame) -> pd.DataFrame:
    """The rule (module docstring) per method, over its complete points; one row per method."""
    rows = []
    for method, points in grid[grid["complete"]].groupby("method", sort=False):
        best = points["score"].max()
        near = points[points["score"] >= best - TIE]
        near = near.assign(is_default=near["point"] == DEFAULT)
        pick = near.sort_values(["is_default", "steps x", "lr x"], ascending=[False, True, True]).iloc[0]
        rows.append(
            {
                "method": method,
                "chosen": pick["point"],
                "overrides": pick["overrides"],
                "score": pick["score"],
                "best score": best,
                "default score": points.loc[points["point"] == DEFAULT, "score"].max(),
                "points within tie": len(near),
                "targets": pick["targets"],
            }
        )
    return pd.DataFrame(rows)


def chosen_overrides(chosen: pd.DataFrame) -> dict[str, list[str]]:
    """method -> the overrides of its chosen point ([] for the rule default)."""
    return {r.method: [] if r.overrides == "(rule default)" else r.overrides.split() for r in chosen.itertuples()}


STAGES = ("time s", "answers s", "score s", "FID s")  # unlearning, answer set, scoring, FID


def _machines(runs: pd.DataFrame) -> str:
    """'Intel(R) Xeon(R) Processor 3, AMD EPYC 1': the CPUs (threads dropped) and their run counts."""
    names = runs["machine"].astype(object).fillna("unknown").astype(str).str.replace(r" \(.*\)$", "", regex=True)
    return ", ".join(f"{name} {n}" for name, n in names.value_counts(sort=False).items())


def cost_table(per_target: pd.DataFrame, chosen: pd.DataFrame, jobs: dict[str, int], seeds_ratio: float):
    """Per method: the grid's measured cost (stage seconds summed over its runs; each process ran on
    one thread, so these are process-hours) and a projection of ``jobs[method]`` jobs at its chosen
    point, each as that point's mean unlearning time plus the answer set, scoring and FID scaled by
    ``seeds_ratio`` (the sweep's answer seeds over the grid's: the images grow with them)."""
    rows = []
    extra = [*STAGES, "img/s", "machine", "wall/CPU"]
    per_target = per_target.reindex(columns=list(dict.fromkeys([*per_target.columns, *extra])))
    for pick in chosen.itertuples():
        runs = per_target[per_target["method"] == pick.method]
        at = runs[runs["variant"] == pick.chosen]
        answer_set = at[["answers s", "score s", "FID s"]].sum(axis=1).mean()  # grows with the images
        job = at["time s"].mean() + seeds_ratio * answer_set
        rows.append(
            {
                "method": pick.method,
                "grid runs": len(runs),
                "grid h": runs[list(STAGES)].sum(axis=1).sum() / 3600,
                "grid machines": _machines(runs),
                "runs that waited": int((runs["wall/CPU"] > WAIT_LIMIT).sum()),
                "chosen": pick.chosen,
                "unlearn s": at["time s"].mean(),
                "img/s": at["img/s"].mean(),
                "projected job s": job,
                "jobs": jobs.get(pick.method, 0),
                "projected h": job * jobs.get(pick.method, 0) / 3600,
                "chosen runs on": _machines(at),
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        total = {"method": "all", "grid runs": table["grid runs"].sum(), "grid h": table["grid h"].sum()}
        total["runs that waited"] = table["runs that waited"].sum()
        total |= {"jobs": table["jobs"].sum(), "projected h": table["projected h"].sum()}
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table


def write_cost(per_target: pd.DataFrame, chosen: pd.DataFrame, out: Path, sweep_preset: str = "mini-full") -> Path:
    """cost.md: :func:`cost_table` for ``sweep_preset``'s job list (per method) and answer seeds."""
    grid_seeds = get_ablation(GRID).sampling.seeds
    sweep = build_sweep(get_preset(sweep_preset), runs_dir="runs")
    jobs = pd.Series([j.method for j in sweep.jobs]).value_counts().to_dict()
    ratio = len(sweep.settings.sampling.seeds) / len(grid_seeds)
    table = cost_table(per_target, chosen, jobs, ratio)
    untuned = sorted(m for m in jobs if m not in set(chosen["method"]))
    note = (
        f"Measured: every grid run's stages (unlearning, answer set, scoring, FID; `{'`, `'.join(STAGES)}` of "
        "per_target.csv), one thread per process, on the machines named. Projected: "
        f"{sweep_preset}'s jobs per method at the chosen point, each the point's mean unlearning time plus its "
        f"answer set, scoring and FID x {ratio:g} ({len(sweep.settings.sampling.seeds)} answer seeds against the "
        f"grid's {len(grid_seeds)}); a projection from runs on different machines is as good as their mix. "
        f"Runs that waited: a stage's wall seconds over {WAIT_LIMIT}x its CPU seconds (the process was paused or "
        "shared its core), counted in grid h as paid; named in per_target.md. "
        f"Not tuned, so not here: {', '.join(untuned) or 'none'} "
        f"({sum(jobs[m] for m in untuned)} more jobs of {sweep_preset}, an answer set each)."
    )
    write_table(table, out / "cost", f"tuning: the grid's cost and {sweep_preset}'s at the chosen points", note)
    return out / "cost.md"


def grid_plot(grid: pd.DataFrame, chosen: pd.DataFrame, path: Path, title: str, base: dict | None = None) -> Path:
    """Every method's grid points in the UA-retain plane, one panel per method: the colour is the
    point's lr factor and the marker its step factor (the same in every panel), the chosen point
    ringed, points still missing a target faded; ``base``: the base model's UA and retain.

    The UA axis spans 0..100 in every panel, the retain axis at least 10 points around the
    method's own points, so that one or two validation images do not look like a trend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from spare.viz import save_figure

    grid = grid.rename(columns={"steps x": "steps_x", "lr x": "lr_x"})
    lrs = sorted(grid["lr_x"].unique())
    colour = dict(zip(lrs, plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(lrs))), strict=True))
    marker = {s: m for s, m in zip(sorted(grid["steps_x"].unique()), "osD^v<>", strict=False)}
    picks = dict(zip(chosen["method"], chosen["chosen"], strict=True)) if len(chosen) else {}
    methods = list(dict.fromkeys(grid["method"]))
    cols = min(4, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.6 * rows + 0.9), squeeze=False)
    for ax, method in zip(axes.flat, methods, strict=False):
        points = grid[grid["method"] == method]
        for p in points.itertuples():
            ax.scatter(p.retain, p.UA, color=colour[p.lr_x], marker=marker[p.steps_x], s=36,
                       alpha=1.0 if p.complete else 0.35, zorder=3)  # fmt: skip
            if p.point == picks.get(method):
                ax.scatter(p.retain, p.UA, s=230, facecolors="none", edgecolors="crimson", lw=1.5, zorder=4)
        retain = list(points["retain"])
        if base is not None:
            ax.scatter(base["retain"], base["UA"], marker="x", color="grey", zorder=2)
            retain.append(base["retain"])
        set_retain_xlim(ax, retain)
        ax.set_ylim(-5, 105)
        pick = picks.get(method)
        score = chosen.loc[chosen["method"] == method, "score"]
        ax.set_title(f"{method}: {pick} ({score.iloc[0]:.1f})" if pick else f"{method}: no complete point",
                     fontsize=8)  # fmt: skip
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(methods) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("UA, %", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("retain (IRA + CRA) / 2, %", fontsize=8)
    handles = [Line2D([], [], ls="", marker="o", color=colour[v], label=f"lr x{v:.3g}") for v in lrs]
    handles += [Line2D([], [], ls="", marker=marker[v], color="black", label=f"steps x{v:.3g}") for v in marker]
    handles.append(Line2D([], [], ls="", marker="o", ms=11, mfc="none", mec="crimson", label="chosen (score)"))
    if base is not None:
        handles.append(Line2D([], [], ls="", marker="x", color="grey", label="base model"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, rect=(0, 0.06, 1, 1))


def write_choice(
    per_target: pd.DataFrame, out: Path, chosen_file: Path, missing: str = "", base: pd.DataFrame | None = None
) -> dict[str, Path]:
    """grid.md, grid.png, chosen.md and, once no run of the grid is missing, the chosen overrides
    (``chosen_file``) from the grid's per-target rows: a partial grid's choice is shown, never applied.
    ``base``: the base model's rows on the same targets, drawn for reference."""
    preset = get_ablation(GRID)
    grid = grid_table(per_target[per_target["method"] != BASE_METHOD], preset.variants)
    chosen = choose(grid)
    targets = ", ".join(dict.fromkeys(per_target["target"]))
    seeds = " ".join(map(str, preset.sampling.seeds))
    note = f"Targets: {targets}; answer seeds {seeds}. score = mean over targets of (UA + (IRA + CRA) / 2) / 2."
    write_table(grid, out / "grid", "tuning grid: every point per method (validation targets and seeds)", note)
    partial = f" PROVISIONAL, not applied (no {chosen_file.name} written): missing runs {missing}." if missing else ""
    write_table(
        chosen,
        out / "chosen",
        "tuning: the point each method's rule picked",
        note + f" Rule: the highest score; within {TIE} of it the rule default, then fewer steps, then lower lr. "
        "Only complete points (every target the method has run; all of them once the grid is done) compete; "
        "a method with none keeps its default." + partial,
    )
    ref = None
    if base is not None:  # over the targets the points have so far (all four once the grid is done)
        base = with_retain(base[base["target"].isin(per_target["target"])])
        ref = {"UA": float(base["UA"].mean()), "retain": float(base["retain"].mean())} if len(base) else None
    n = per_target["target"].nunique()
    plot_title = f"tuning grid: mean over {n} validation target{'s' * (n != 1)} per point; ring: the rule's choice"
    plot_title += " (PROVISIONAL: runs missing)" if missing else ""
    paths = {"grid": out / "grid.md", "chosen": out / "chosen.md"}
    paths["grid plot"] = grid_plot(grid, chosen, out / "grid.png", plot_title, base=ref)
    if missing:
        return paths
    with atomic_path(chosen_file) as tmp:
        tmp.write_text(
            "# written by `make tuning` from results/tuning/grid.csv: each trained method's\n"
            "# chosen point, applied on top of its rule default by the presets that say `tuned:`\n"
            + yaml.safe_dump(chosen_overrides(chosen), sort_keys=False)
        )
    return paths | {"chosen.yaml": chosen_file, "cost": write_cost(per_target, chosen, out)}


def tuning_reporter(preset, chosen_file: Path = CHOSEN):
    """The ablation tables of the grid, then the choice."""
    tables = reporter(preset, plot=False)  # grid.png instead: one panel per method

    def report(per_target, base, out, label, missing) -> dict:
        paths = tables(per_target, base, out, label, missing)
        if len(per_target):
            paths |= write_choice(per_target, out, chosen_file, missing, base=base)
        return paths

    return report
