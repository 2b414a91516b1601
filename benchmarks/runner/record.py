"""The sweep record beside the tables (``sweep.json``: the plan and every invocation's time) and
each finished run's config and metrics (``configs/``), from which a fresh clone restores."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from benchmarks.presets import Preset
from benchmarks.runner.plan import PATH_HELP, Job, Sweep
from benchmarks.wandb_mirror import WandbMirror
from spare.config import ConfigError, from_dict, hash_view, to_dict
from spare.io import config_hash, copy_atomic, write_json
from spare.run import (
    planned_base,
)


def _same_preset(stored: dict | None, preset: Preset) -> bool:
    """Whether a preset stored by an earlier version (``to_dict``) is ``preset``, up to options added since."""
    try:
        return stored is not None and hash_view(from_dict(Preset, stored)) == hash_view(preset)
    except (ConfigError, TypeError):  # keys this version does not know: not the same plan
        return False


def save_sweep_record(
    sweep: Sweep,
    jobs: list[Job],
    out: Path,
    wall: float,
    world: int,
    ran: int,
    interrupted: bool = False,
    started: str | None = None,
    unfinished: bool = False,
) -> None:
    """The resolved preset, the job list, every invocation's wall time and each run's config, beside the tables.

    Invocations of the same plan (preset and job list) accumulate: a resumed sweep or a
    tables-only pass adds its own entry, so the wall time of the invocation that did the work
    is never overwritten; an interrupted invocation is kept too, marked ``interrupted`` (its time,
    including the unfinished job's, was spent on the sweep). A changed plan starts a new
    history: its time is not the old one's.

    ``started`` names the invocation: its entry replaces the one it wrote before. The runner
    writes one marked ``unfinished`` after each finished job; an invocation killed without a
    chance to write its last entry (SIGKILL, a lost machine) keeps that one, its time up to
    its last finished job.
    """
    previous = out / "sweep.json"
    record = json.loads(previous.read_text()) if previous.exists() else {}
    job_list = [dataclasses.asdict(j) for j in jobs]
    # hash_view: a sampling or method option added later (HASH_IF_SET) does not change the plan
    plan = config_hash({"preset": hash_view(sweep.preset), "jobs": job_list})
    same_plan = _same_preset(record.get("preset"), sweep.preset) and record.get("jobs") == job_list  # no plan keys
    history = record.get("invocations", [])
    if "wall_time_s_this_time" in record:  # written before invocations were kept
        history = [{"wall_time_s": record["wall_time_s_this_time"], "jobs_run": record["jobs_run_this_time"]}]
    history = [h for h in history if h.get("plan", plan if same_plan else None) == plan]
    history = [h for h in history if started is None or h.get("started") != started]
    history.append(
        {
            **({"started": started} if started else {}),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "wall_time_s": wall,
            "jobs_run": ran,
            "processes": world,
            "plan": plan,
            **({"interrupted": True} if interrupted else {}),
            **({"unfinished": True} if unfinished else {}),
        }
    )
    write_json(
        out / "sweep.json",
        {
            "preset": to_dict(sweep.preset),
            "methods": list(sweep.methods),
            "targets": list(sweep.targets),
            "settings": to_dict(sweep.settings),
            "jobs": job_list,
            # the processes of the latest invocation that ran jobs (a tables-only pass runs none)
            "processes": next(
                (h["processes"] for h in reversed(history) if h.get("jobs_run") and "processes" in h), world
            ),
            "invocations": history,
            "total_wall_time_s": sum(h["wall_time_s"] for h in history),  # of this results folder's invocations
        },
    )
    kept = set()
    for planned, stored, names in stored_runs(sweep, jobs):  # beside the tables: see restore_finished
        kept.add(stored)
        if planned.done():
            for name in names:
                copy_atomic(planned.out / name, out / stored / name)
    if sweep.is_whole(jobs):
        drop_stale_stored(out, kept)


def drop_stale_stored(out: Path, kept: Collection[Path]) -> int:
    """Remove the stored runs under ``out/configs/`` that the preset's whole plan no longer has (an
    earlier plan's seeds, targets or variants), so that the folder holds what its tables show; git
    history keeps them. Only a whole plan's record calls this: a narrowed one (--methods, --targets,
    --limit) leaves what it does not plan alone. Returns how many were removed."""
    configs = out / "configs"
    stale = [f for f in sorted(configs.glob("*/*")) if f.is_dir() and f.relative_to(out) not in kept]
    for folder in stale:
        shutil.rmtree(folder)
    for method in configs.glob("*"):
        if method.is_dir() and not any(method.iterdir()):
            method.rmdir()
    if stale:
        print(f"removed {len(stale)} stored runs of an earlier plan from {configs} (git history keeps them)")
    return len(stale)


STORED = ("config.json", "metrics.json")  # metrics last: it is what marks a run done


def stored_runs(sweep: Sweep, jobs: list[Job]):
    """(planned run, its folder under a results folder, the files kept there) for the base model's
    rows of every target (``configs/base/``, metrics only), for every job and, when the preset
    attacks, for every job's attack (``configs/<method>/<run>/attack/``)."""
    for target in dict.fromkeys(j.target for j in jobs):
        planned = planned_base(target, sweep.base_settings)
        yield planned, Path("configs") / "base" / planned.out.name, ("metrics.json",)
    for job in jobs:
        planned = sweep.planned(job)
        yield planned, Path("configs") / job.method / planned.out.name, STORED
        attack = sweep.planned_attack(job)
        if attack is not None:
            yield attack, Path("configs") / job.method / planned.out.name / attack.out.name, STORED


def print_summary(per_target, base, paths: dict, wall: float, missing: str, mirror: WandbMirror) -> None:
    shown = pd.concat([base, per_target], ignore_index=True) if len(base) else per_target
    cols = ["method", *(["variant"] if "variant" in shown else []), "target", "UA", "IRA", "CRA", "FID", "time s"]
    cols.append("storage MB")
    cols += [c for c in ("Rob", "ASR") if c in shown]  # an attacked sweep's
    print("\n" + shown[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\nsweep wall time {wall:.0f}s")
    if missing:
        print("missing runs, " + missing)
    print("tables: " + ", ".join(str(p) for p in paths.values()))
    if mirror.enabled:
        print(
            f"W&B ({mirror.mode}) files under {mirror.root / 'wandb'}"
            + ("; upload with `wandb sync <folder>`" if mirror.mode == "offline" else "")
        )
    else:
        print("W&B mirror off")


def print_plan(sweep: Sweep, jobs: list[Job], world: int, restorable: Collection[Path] = ()) -> None:
    """The job list, each job done, to restore (``restorable``: the run folders a ``--restore --dry-run``
    would fill from stored runs) or to run."""
    planned = {job: sweep.planned(job) for job in jobs}
    status = {
        job: "done"
        if sweep.job_done(job)
        else "remake"
        if sweep.remakes(job)
        else "attack"
        if run.done()
        else "restore"
        if run.out in restorable
        else "todo"
        for job, run in planned.items()
    }
    done, to_restore, to_attack, to_remake = (
        sum(s == kind for s in status.values()) for kind in ("done", "restore", "attack", "remake")
    )
    p = sweep.preset
    print(f"preset {p.name}: {p.description}")
    print(
        f"  {len(sweep.targets)} targets x {len(sweep.methods)} methods x {len(p.train_seeds)} seeds"
        + (f" (with {len(p.variants)} variants)" if p.variants else "")
        + " = "
        f"{len(sweep.jobs)} jobs"
        + (f", this slice {len(jobs)}" if len(jobs) != len(sweep.jobs) else "")
        + f"; {done} done, "
        + (f"{to_restore} to restore, " if to_restore else "")
        + (f"{to_attack} to attack, " if to_attack else "")
        + (f"{to_remake} to make again for the attack (restored without answers), " if to_remake else "")
        + f"{len(jobs) - done - to_restore - to_attack - to_remake} to run; "
        + f"steps x{p.budget:g}, lr x{p.lr_scale:g}; answer seeds "
        + " ".join(map(str, p.sampling.seeds))
    )
    for rank in range(world):
        mine = sweep.shard(jobs, rank, world)
        if world > 1:
            print(f"  process {rank}: {len(mine)} jobs")
        for job in mine:
            steps = getattr(getattr(sweep.method_config(job), "optim", None), "steps", "-")
            print(f"    {'[' + status[job] + ']':9s} {job.label:45s} steps {steps!s:>5s}  {planned[job].out}")
    if sweep.missing_paths:
        print("  cannot run yet: " + "; ".join(PATH_HELP[k] for k in sweep.missing_paths))
