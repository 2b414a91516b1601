"""Uncertainty of the tables: 95% bootstrap intervals over targets and over images within a target,
and the paired table "SPARE against each baseline".

One resample of a cell (a method's mean of one metric over the targets of one kind) draws as
many targets as the cell has, with replacement; for each drawn target every run (one per
training seed) redraws its answer images with replacement. An accuracy over n images, each
right or wrong, redrawn n times with replacement is a Binomial(n, value / 100) count, so a
run's redraw needs only its value and its image count (``images <metric>`` of the per-target
table, :func:`image_counts`); FID and costs are not means over images and are resampled over
targets only. The interval is the 2.5th to 97.5th percentile of ``B`` resampled means
(``B`` = 2000, seed 0 unless told).

Paired: for every target both methods ran, the difference of their means over their own seeds;
resampled the same way (targets, then each run's images), and called better / worse when the
whole interval lies on one side of zero (FID: lower is better), else tie; a metric with nothing
to redraw (FID) on a single shared target has no interval, and no verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ACCURACY = ("UA", "IRA", "CRA")  # the accuracy metrics of every table (benchmarks.tables uses these)
RESAMPLES = 2000
LOWER_IS_BETTER = {"FID"}


def image_counts(result: dict, target: str, benchmark_styles: int) -> dict[str, int]:
    """How many answer images UA, IRA and CRA of a run average over, from its metrics.json (the
    answer set is every style class x object x answer seed: ``pair_accuracy`` gives the grid,
    ``n_images`` the seeds); ``benchmark_styles``: the style classes IRA / CRA count (photo left out).
    Empty for a pair target or a run that does not record its grid."""
    grid = (result.get("pair_accuracy") or {}).get("style") or {}
    kind = target.split(":")[0]
    if not grid or kind not in ("style", "object"):
        return {}
    rows, cols = len(grid), len(next(iter(grid.values())))
    seeds = int(result.get("n_images", 0)) // (rows * cols)
    if kind == "style":  # UA: the target style's images; IRA: the other benchmark styles'; CRA: every image
        counts = (cols, (benchmark_styles - 1) * cols, rows * cols)
    else:  # UA: the target object's images; IRA: the other objects'; CRA: the benchmark styles' images
        counts = (rows, rows * (cols - 1), benchmark_styles * cols)
    return {f"images {m}": n * seeds for m, n in zip(ACCURACY, counts, strict=True)}


def _runs(frame: pd.DataFrame, metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per target (in order) its runs' values and image counts, padded to (targets, most runs) with
    NaN values where a target has fewer runs; counts are 0 where a metric has none."""
    column = f"images {metric}"
    groups = [g for _, g in frame.dropna(subset=[metric]).groupby("target", sort=False)]
    width = max((len(g) for g in groups), default=0)
    values = np.full((len(groups), width), np.nan)
    counts = np.zeros((len(groups), width), dtype=np.int64)
    for i, g in enumerate(groups):
        values[i, : len(g)] = g[metric].to_numpy(float)
        if column in g:
            counts[i, : len(g)] = g[column].fillna(0).to_numpy(np.int64)
    return [g["target"].iloc[0] for g in groups], values, counts


def _redraw(values: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each run's value with its images redrawn (where it has a count), then each target's mean
    over its runs: shape ``values.shape[:-1]``."""
    p = np.clip(np.nan_to_num(values) / 100, 0, 1)
    drawn = rng.binomial(counts, p) / np.maximum(counts, 1) * 100
    drawn = np.where(counts > 0, drawn, values)
    return np.nanmean(drawn, axis=-1)


def bootstrap_interval(
    frame: pd.DataFrame, metric: str, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the mean of ``metric`` over the targets of ``frame`` (one method, one kind;
    one row per run, several rows per target when it ran several training seeds)."""
    _, values, counts = _runs(frame, metric)
    if values.size == 0:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    means = _redraw(values[picks], counts[picks], rng).mean(axis=1)
    return tuple(float(x) for x in np.percentile(means, [2.5, 97.5]))


def paired_difference(
    ours: pd.DataFrame, theirs: pd.DataFrame, metric: str, resamples: int = RESAMPLES, seed: int = 0
) -> dict:
    """Mean over shared targets of (ours - theirs) for ``metric``, its 95% interval and the verdict."""
    t_ours, v_ours, n_ours = _runs(ours, metric)
    t_theirs, v_theirs, n_theirs = _runs(theirs, metric)
    shared = [t for t in t_ours if t in t_theirs]
    if not shared:
        return {"targets": 0}
    a = [t_ours.index(t) for t in shared]
    b = [t_theirs.index(t) for t in shared]
    v_ours, n_ours, v_theirs, n_theirs = v_ours[a], n_ours[a], v_theirs[b], n_theirs[b]
    diff = float(np.mean(np.nanmean(v_ours, axis=1) - np.nanmean(v_theirs, axis=1)))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(shared), size=(resamples, len(shared)))
    drawn = _redraw(v_ours[picks], n_ours[picks], rng) - _redraw(v_theirs[picks], n_theirs[picks], rng)
    lo, hi = np.percentile(drawn.mean(axis=1), [2.5, 97.5])
    sign = -1 if metric in LOWER_IS_BETTER else 1
    verdict = "better" if sign * lo > 0 and sign * hi > 0 else "worse" if sign * lo < 0 and sign * hi < 0 else "tie"
    if len(shared) < 2 and not (n_ours.any() and n_theirs.any()):  # one target and no images to redraw
        verdict = "- (one target)"
    return {"targets": len(shared), "difference": diff, "low": float(lo), "high": float(hi), "verdict": verdict}


def paired_table(per_target: pd.DataFrame, reference: str = "spare", metrics=(*ACCURACY, "FID")) -> pd.DataFrame:
    """``reference`` against every other method, per target kind and metric (see the module docstring)."""
    rows = []
    ours_all = per_target[per_target["method"] == reference]
    for method in dict.fromkeys(per_target["method"]):
        if method == reference:
            continue
        for kind in ("style", "object"):
            ours = ours_all[ours_all["kind"] == kind]
            theirs = per_target[(per_target["method"] == method) & (per_target["kind"] == kind)]
            for metric in metrics:
                if metric not in per_target:
                    continue
                result = paired_difference(ours, theirs, metric)
                if result["targets"]:
                    rows.append({"baseline": method, "kind": kind, "metric": metric} | result)
    return pd.DataFrame(rows)
