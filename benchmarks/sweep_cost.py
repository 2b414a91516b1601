"""What one sweep job costs, stage by stage, per method and harness configuration.

    python -m benchmarks.sweep_cost [--target style:Ink_Outline] [--steps 20] [--configs fp32 auto]

Runs one target per registered method at a fixed small step count, through the harness's own
:func:`spare.run.run_unlearning` (a fresh runs folder, so nothing is reused), once per harness
configuration, and reads each run's stage times from its ``metrics.json`` (``stages``):

- ``fp32``: everything in fp32, one network call per prediction, answer sets in micro-batches of
  32 (the harness as it was: ``optim.precision=fp32 optim.fused=false``);
- ``auto``: the faster settings: answer sets and training in the precision this machine runs
  natively (:mod:`spare.precision`), the network calls of a step that share a model fused into
  one, answer sets in micro-batches of 55.

Per method and configuration it writes model loading, data, unlearning (set-up and seconds per
step, from the training log), the answer set (images/s), scoring and FID, and projects a
``mini-full`` job (the method's full step count, 550 answer images) and the whole ``mini-full``
sweep (20 targets per method plus the base model's answer set) from those figures, to
``results/benchmarks/sweep_cost.{json,md}``. Compare configurations only within one invocation
(one machine, one load); the CPU is named in the file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep
from benchmarks.tables import write_table
from evaluators.cost import StageClock
from spare.answers import SamplingConfig
from spare.config import apply_overrides
from spare.io import write_json
from spare.methods import method_names
from spare.methods.contract import trains
from spare.methods.trainer import resolved_config, seconds_per_step
from spare.pipeline import default_device
from spare.provenance import cpu_info, provenance
from spare.run import RunSettings, real_features, run_dir, run_unlearning

# configuration -> (answer-set sampling settings, overrides of every trained method)
CONFIGS = {
    "fp32": (
        {"precision": "fp32", "micro_batch": 32, "batch_size": 128},
        ["optim.precision=fp32", "optim.fused=false"],
    ),
    "auto": ({"precision": "auto", "micro_batch": 55, "batch_size": 110}, ["optim.precision=auto", "optim.fused=true"]),
}


def job_cost(metrics: dict, report: dict, steps: int) -> dict:
    """Stage seconds of one run, with the unlearning split into set-up and seconds per step."""
    stages = metrics["stages"]
    per_step = seconds_per_step(report.get("log") or [])
    return {
        "load s": stages.get("load_s", 0.0),
        "data s": stages.get("data_s", 0.0),
        "unlearn s": stages["unlearn_s"],
        "s/step": per_step,
        "set-up s": max(0.0, stages["unlearn_s"] - steps * per_step),
        "answers s": stages["answers_s"],
        "images": stages["answers_generated"],
        "img/s": stages.get("answers_img_per_s", float("nan")),
        "score s": stages["score_s"],
        "FID s": stages.get("fid_s", 0.0),
        "CPU s": sum(StageClock.from_dict(stages).cpu.values()),
        "measured s": sum(stages.get(k, 0.0) for k in ("load_s", "data_s", "unlearn_s", "answers_s", "score_s")),
    }


def projected_job(cost: dict, full_steps: int, images: int) -> float:
    """A mini-full job's seconds from a measured one: the full step count, ``images`` answers
    (sampling and scoring scale with the images), the same loading and data."""
    scale = images / cost["images"]
    return (
        cost["load s"]
        + cost["data s"]
        + cost["set-up s"]
        + full_steps * cost["s/step"]
        + scale * (cost["answers s"] + cost["score s"])
    )


def measure(config: str, target: str, steps: int, seeds: tuple[int, ...], runs_dir: Path, methods) -> list[dict]:
    """One run per method under ``config``; returns the per-method cost rows."""
    full = build_sweep(get_preset("mini-full"), runs_dir=str(runs_dir))
    sampling_settings, overrides = CONFIGS[config]
    sampling = SamplingConfig(seeds=seeds, **sampling_settings)
    settings = RunSettings(
        model=full.settings.model, classifiers=full.settings.classifiers, sampling=sampling, runs_dir=str(runs_dir)
    )
    concept = full.catalogue.target(target)
    # the real images' FID features are computed once per runs folder: not charged to the first job
    from evaluators.classifiers import load_classifier
    from evaluators.fid import make_extractor

    real_features(settings, make_extractor(None, load_classifier(Path(settings.classifiers) / "style")))
    rows = []
    for method in methods:
        job = next(j for j in full.jobs if j.method == method)
        cfg = full.method_config(job)
        full_steps = cfg.optim.steps if trains(cfg) else 0
        if trains(cfg):
            cfg = apply_overrides(cfg, [f"optim.steps={steps}", *overrides])
        cfg = resolved_config(cfg, default_device().type)
        metrics = run_unlearning(method, target, cfg, settings)
        report = json.loads((run_dir(settings, method, concept.slug) / "report.json").read_text())
        cost = job_cost(metrics, report, steps if full_steps else 0)
        images = len(full.settings.sampling.seeds) * metrics["n_images"] // len(seeds)
        rows.append(
            {
                "config": config,
                "precision": settings.sampling.precision,
                "train precision": getattr(getattr(cfg, "optim", None), "precision", "-"),
                "fused": getattr(getattr(cfg, "optim", None), "fused", "-"),
                "method": method,
                **cost,
                "mini-full steps": full_steps,
                "mini-full job s": projected_job(cost, full_steps, images),
            }
        )
        projected = rows[-1]["mini-full job s"]
        print(f"  {config:5s} {method:6s} measured {cost['measured s']:6.1f} s -> mini-full job {projected:6.0f} s")
    return rows


def summarise(rows: list[dict], targets: int, base_images: int) -> dict:
    """Per configuration: the median projected job and the projected whole mini-full sweep."""
    out = {}
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        answers_per_image = statistics.mean(r["answers s"] / r["images"] for r in mine)
        sweep_s = targets * sum(r["mini-full job s"] for r in mine) + base_images * answers_per_image
        out[config] = {
            "median_job_s": statistics.median(r["mini-full job s"] for r in mine),
            "mini_full_hours": sweep_s / 3600,
        }
    if "fp32" in out:
        for s in out.values():
            s["median_speedup_vs_fp32"] = out["fp32"]["median_job_s"] / s["median_job_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="style:Ink_Outline")
    parser.add_argument("--steps", type=int, default=20, help="optimisation steps per method (the same for all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[188], help="answer seeds of the measured runs")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    methods = args.methods or list(method_names())
    rows = []
    with tempfile.TemporaryDirectory(prefix="sweep-cost-") as tmp:
        for config in args.configs:
            rows += measure(config, args.target, args.steps, tuple(args.seeds), Path(tmp) / config, methods)
    full = get_preset("mini-full")
    base_images = len(full.sampling.seeds) * 110
    summary = summarise(rows, targets=20, base_images=base_images)
    cpu = cpu_info()
    record = {
        "target": args.target,
        "steps": args.steps,
        "seeds": args.seeds,
        "cpu": cpu,
        "rows": rows,
        "summary": summary,
        "wall_s": time.perf_counter() - started,
        "provenance": provenance(),
    }
    out = Path(args.out)
    write_json(out / "sweep_cost.json", record)
    lines = [
        f"- {c}: median mini-full job {s['median_job_s']:.0f} s, mini-full {s['mini_full_hours']:.1f} h"
        + (f", median job {s['median_speedup_vs_fp32']:.2f}x fp32's speed" if "median_speedup_vs_fp32" in s else "")
        for c, s in summary.items()
    ]
    note = (
        f"CPU: {cpu['model']} ({cpu['capability']}, native bf16: {cpu['native_bf16']}), {cpu['threads']} threads. "
        f"`python -m benchmarks.sweep_cost --target {args.target} --steps {args.steps} --seeds "
        f"{' '.join(map(str, args.seeds))}`; projections to mini-full scale each method's measured set-up, "
        "seconds per step and seconds per answer image.\n\n" + "\n".join(lines)
    )
    write_table(pd.DataFrame(rows), out / "sweep_cost", "Sweep cost per method and stage", note)
    print("\n".join(lines))
    print(f"wrote {out / 'sweep_cost.md'} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
