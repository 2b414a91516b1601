"""The experiment runner: every target x method (x training seed) of a preset, resumable and sharded.

    spare benchmark --preset mini-quick [--methods ...] [--targets ...] [--dry-run] [--limit N]
    accelerate launch --multi_gpu --num_processes 2 -m spare benchmark --preset mini-full

Stages, each skipped when its output exists for the same resolved config (hash):
    1. the base model's answer set (once per model and sampling config, split across processes)
       and the real images' FID features (once per data and feature extractor);
    2. per job, :func:`spare.run.run_unlearning`: unlearn, generate the answer set, evaluate,
       ``runs/<benchmark>/<method>/<kind>-<Name>[@tag]/metrics.json``;
    3. the tables and the plot (:mod:`benchmarks.tables`) from the metrics files only,
       under ``results/benchmark/<preset>/``, with each finished run's config and metrics in
       ``configs/`` (``--restore`` takes them back into a fresh clone's runs folder), and the W&B mirror.
       The main process also writes them, and this invocation's entry in ``sweep.json``, after each
       job it finishes, so the results folder always holds every finished job.
Every file is written atomically, so a sweep killed at any point resumes without redoing
finished jobs, and even a killed one (SIGKILL, a lost machine) keeps its time up to its last job.
Processes take whole targets (target i goes to process i mod N); with the same thread count per
process, N processes write the same metrics files as one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import time
import traceback
from collections import Counter
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from benchmarks.presets import Preset
from benchmarks.tables import per_target_row, read_metrics, write_all
from benchmarks.wandb_mirror import WandbMirror
from spare.concepts import Catalogue, get_catalogue
from spare.config import ConfigError, apply_overrides, from_dict, hash_view, to_dict
from spare.errors import UserError
from spare.io import config_hash, copy_atomic, read_json_dict, write_json
from spare.methods import get_method, method_names
from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS, PROJECT_ROOT
from spare.progress import tqdm
from spare.run import (
    PATH_FIELDS,
    PlannedRun,
    RunSettings,
    base_answers,
    checkout_of,
    evaluate_base,
    plan_run,
    planned_base,
    real_features,
    relocate,
    run_dir,
    run_unlearning,
)
from spare.viz import answer_grid_png

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
DEFAULT_SEEDS = (0,)  # the methods' own seed: runs keep their plain folder names
PATH_HELP = {
    "model": "--model DIR (the base text-to-image model: a diffusers folder with unet/, text_encoder/, ...)",
    "classifiers": "--classifiers DIR (with style/ and object/ classifier folders)",
    "data": "--data DIR (the UnlearnCanvas images <Style>/<Object>/<n>.jpg, parquet shards or a saved dataset)",
}


@dataclass(frozen=True)
class Job:
    method: str
    target: str
    seed: int
    tag: str
    variant: str = ""  # an ablation variant's name (Preset.variants), "" for the method's own settings

    @property
    def label(self) -> str:
        return f"{self.method} {self.target}{self._at_tag}"

    @property
    def name_in_target(self) -> str:  # the label without the target
        return f"{self.method}{self._at_tag}"

    @property
    def _at_tag(self) -> str:
        return f" @{self.tag}" if self.tag else ""


@dataclass
class Sweep:
    """A preset resolved against the registries and the paths: the job list and its settings."""

    preset: Preset
    catalogue: Catalogue
    methods: tuple[str, ...]
    targets: tuple[str, ...]
    jobs: list[Job]
    settings: RunSettings  # shared by every job; only ``tag`` changes per job
    missing_paths: tuple[str, ...]
    narrowed: bool = False  # --methods / --targets chose fewer jobs than the preset's

    def results_folder(self, root: str | Path, jobs: list[Job]) -> Path:
        """The default tables folder: ``<root>/<preset>`` for the preset's whole plan. A narrowed plan
        (--methods, --targets, --limit) gets its own ``<root>/<preset>-subsets/<hash of its jobs>``, so
        that its tables and sweep record never replace those of the whole plan."""
        if not self.narrowed and len(jobs) == len(self.jobs):
            return Path(root) / self.preset.name
        return Path(root) / f"{self.preset.name}-subsets" / config_hash([dataclasses.asdict(j) for j in jobs], length=8)

    def job_settings(self, job: Job) -> RunSettings:
        return dataclasses.replace(self.settings, tag=job.tag)

    @property
    def base_settings(self) -> RunSettings:
        """The base model's runs sit under the preset's tag (its sampling may differ)."""
        return dataclasses.replace(self.settings, tag=self.preset.tag)

    def method_config(self, job: Job):
        """The method's defaults, the preset's budget and lr factors, its overrides, the training seed."""
        spec = get_method(job.method)
        cfg = spec.config_cls()
        if hasattr(cfg, "optim"):
            cfg.optim.steps = max(1, round(cfg.optim.steps * self.preset.budget))
            cfg.optim.lr = cfg.optim.lr * self.preset.lr_scale
        cfg = apply_overrides(cfg, self.preset.overrides.get(job.method, []))
        if job.variant:
            variant = self.preset.variants[job.variant]
            cfg = apply_overrides(cfg, variant.get("*", []) + variant.get(job.method, []))
        if hasattr(cfg, "seed") and self.preset.train_seeds != DEFAULT_SEEDS:
            cfg.seed = job.seed
        return cfg

    def planned(self, job: Job) -> PlannedRun:
        return plan_run(job.method, job.target, self.method_config(job), self.job_settings(job))

    def shard(self, jobs: list[Job], rank: int, world: int) -> list[Job]:
        """Whole targets per process: target i of the plan goes to process i mod world."""
        owner = {t: i % world for i, t in enumerate(dict.fromkeys(j.target for j in jobs))}
        return [j for j in jobs if owner[j.target] == rank]


def build_sweep(
    preset: Preset,
    *,
    methods: list[str] | None = None,
    targets: list[str] | None = None,
    model: str | None = None,
    classifiers: str | None = None,
    data: str | None = None,
    inception: str | None = None,
    runs_dir: str = "runs",
) -> Sweep:
    """Resolve names (unknown ones fail here, listing the valid ones) and build the job list."""
    catalogue = get_catalogue(preset.benchmark)
    whole = tuple(preset.methods or method_names())
    methods = tuple(methods or whole)
    for name in methods:
        get_method(name)
    for name in preset.overrides:
        get_method(name)
    if preset.targets:
        all_targets = tuple(str(catalogue.target(t)) for t in preset.targets)
    else:
        all_targets = tuple(f"style:{s}" for s in catalogue.styles) + tuple(f"object:{o}" for o in catalogue.objects)
    resolved = tuple(str(catalogue.target(t)) for t in targets) if targets else all_targets
    is_mini = catalogue.name == "mini"
    paths = {
        "model": model or preset.model or (str(MINI_BASE_MODEL) if is_mini else None),
        "classifiers": classifiers or preset.classifiers or (str(MINI_CLASSIFIERS) if is_mini else None),
        "data": data or preset.data,
    }
    needed = set(preset.requires) | {"model", "classifiers"}
    missing = tuple(k for k in ("model", "classifiers", "data") if k in needed and not paths[k])
    settings = RunSettings(
        benchmark=preset.benchmark,
        model=paths["model"] or "",
        classifiers=paths["classifiers"] or "",
        data=paths["data"],
        inception=inception or preset.inception,
        sampling=preset.sampling,
        runs_dir=runs_dir,
    )
    seeds = preset.train_seeds
    for variant in preset.variants.values():
        for name in variant:
            if name != "*":
                get_method(name)
    jobs = []
    for target in resolved:
        for method in methods:
            named = [v for v, o in preset.variants.items() if method in o or "*" in o] or [""]
            for variant in named:
                for seed in seeds:
                    parts = [preset.tag, variant] + ([f"seed{seed}"] if seeds != DEFAULT_SEEDS else [])
                    jobs.append(Job(method, target, seed, "-".join(p for p in parts if p), variant))
    narrowed = methods != whole or resolved != all_targets
    sweep = Sweep(preset, catalogue, methods, resolved, jobs, settings, missing, narrowed)
    for job in {(j.method, j.variant): j for j in jobs}.values():
        sweep.method_config(job)  # a bad override key fails now, not hours into the sweep
    return sweep


def check_paths(sweep: Sweep) -> None:
    """Fail before any work when a required path is missing or does not hold what it should."""
    name = sweep.preset.name
    if sweep.missing_paths:
        needs = "; ".join(PATH_HELP[k] for k in sweep.missing_paths)
        raise UserError(f"preset {name!r} needs local paths that were not given: {needs}")
    s = sweep.settings
    checks = [
        ("model", Path(s.model), Path(s.model) / "unet"),
        ("classifiers", Path(s.classifiers), Path(s.classifiers) / "style"),
    ]
    if s.data and not HUB_ID.fullmatch(s.data):  # a hub id is the loader's to resolve (it needs a network)
        checks.append(("data", Path(s.data), Path(s.data)))
    for key, root, inner in checks:
        if not inner.exists():
            raise UserError(f"preset {name!r}: {key} path {str(root)!r} not found or incomplete; {PATH_HELP[key]}")


class Processes:
    """Rank and world size under ``accelerate launch`` (or one process), with a barrier."""

    def __init__(self):
        self.rank, self.world, self._state = 0, 1, None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            # gloo on CPU; a long barrier timeout, since processes wait for each other's last target
            self._state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=72))
            self.rank, self.world = self._state.process_index, self._state.num_processes

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()


def print_plan(sweep: Sweep, jobs: list[Job], world: int, restorable: Collection[Path] = ()) -> None:
    """The job list, each job done, to restore (``restorable``: the run folders a ``--restore --dry-run``
    would fill from stored runs) or to run."""
    planned = {job: sweep.planned(job) for job in jobs}
    status = {
        job: "done" if run.done() else "restore" if run.out in restorable else "todo" for job, run in planned.items()
    }
    done, to_restore = (sum(s == kind for s in status.values()) for kind in ("done", "restore"))
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
        + f"{len(jobs) - done - to_restore} to run; steps x{p.budget:g}, lr x{p.lr_scale:g}; answer seeds "
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


def collect(sweep: Sweep, jobs: list[Job]) -> tuple[pd.DataFrame, pd.DataFrame, list[Job]]:
    """Per-target rows of every job, the base rows, and the jobs whose metrics are missing."""
    rows, base_rows, missing = [], [], []
    for target in dict.fromkeys(j.target for j in jobs):
        base = read_metrics(run_dir(sweep.base_settings, "base", target.replace(":", "-")) / "metrics.json")
        if base:
            base_rows.append(per_target_row(base, "base (no unlearning)", target))
    for job in jobs:
        planned = sweep.planned(job)
        result = read_metrics(planned.metrics_path) if planned.done() else None
        if result is None:
            missing.append(job)
            continue
        row = per_target_row(result, job.method, job.target)
        row["seed"] = job.seed
        if sweep.preset.variants:
            row["variant"] = job.variant or "default"
            cfg = to_dict(sweep.method_config(job))
            for key in dict.fromkeys(k for k in (sweep.preset.x, sweep.preset.series) if k):
                row[key] = config_value(cfg, key)
        rows.append(row)
    if sweep.catalogue.validation_targets:  # marked, so that the tables can leave them out
        for row in rows + base_rows:
            row["validation"] = row["target"] in sweep.catalogue.validation_targets
    return pd.DataFrame(rows), pd.DataFrame(base_rows), missing


def missing_runs(missing: list[Job], jobs: list[Job]) -> str:
    """The jobs without metrics, counted and grouped by target ("" when none), e.g.
    ``"5 of 6: style:A: fmn, uce; object:B: all 3"`` ("all" where a target has none of its jobs done)."""
    if not missing:
        return ""
    planned = Counter(j.target for j in jobs)
    by_target: dict[str, list[Job]] = {}
    for job in missing:
        by_target.setdefault(job.target, []).append(job)
    groups = []
    for target, gone in by_target.items():
        names = f"all {len(gone)}" if 1 < len(gone) == planned[target] else ", ".join(j.name_in_target for j in gone)
        groups.append(f"{target}: {names}")
    return f"{len(missing)} of {len(jobs)}: " + "; ".join(groups)


def config_value(cfg: dict, key: str):
    """``cfg["a"]["b"]`` for key "a.b"; None where the method has no such key (a baseline's point)."""
    for part in key.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def run_sweep(
    sweep: Sweep,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    tables_only: bool = False,
    wandb_mode: str = "offline",
    results_dir: str | Path | None = None,
    results_root: str | Path = Path("results") / "benchmark",
    report=None,
    restore: bool = False,
) -> int:
    """Run (or resume) the sweep; returns 0 when every job has metrics, 1 on failures or gaps.

    ``report(per_target, base, out, label, missing) -> {name: path}`` writes the tables (``missing``:
    the runs without metrics, as :func:`missing_runs` words them)
    (default: the benchmark tables of :func:`benchmarks.tables.write_all`; ablations pass theirs).
    ``tables_only`` skips stages 1 and 2: the tables of whatever is done, the rest listed as missing.
    ``restore`` first takes the finished runs stored beside the tables, or beside the whole preset's
    tables under ``results_root`` (:func:`restore_finished`).
    The tables go to ``results_dir``, by default to :meth:`Sweep.results_folder` under ``results_root``.
    """
    procs = Processes()
    jobs = sweep.jobs[:limit] if limit else sweep.jobs
    out = Path(results_dir) if results_dir else sweep.results_folder(results_root, jobs)
    if procs.main and not results_dir and out != Path(results_root) / sweep.preset.name:
        print(
            f"{len(jobs)} jobs, a subset of preset {sweep.preset.name!r}: tables in {out}, not in"
            f" {Path(results_root) / sweep.preset.name} (--results DIR to choose)"
        )
    restorable: set[Path] = set()
    if restore:
        if procs.main:  # the tables' own folder first, then the whole preset's (a subset reuses its runs)
            folders = list(dict.fromkeys([out, Path(results_root) / sweep.preset.name]))
            restorable, stale, moved = restore_finished(sweep, jobs, folders, dry_run=dry_run)
            print(
                f"{'would restore' if dry_run else 'restored'} {len(restorable)} finished runs from "
                + " and ".join(str(f / "configs") for f in folders)
                + "".join(f"; {n} of them made in the checkout at {o}" for o, n in moved.items())
                + (f"; {stale} stored runs have another config key and run again" if stale else "")
            )
        procs.barrier()  # no process looks at what is done before the restore
    if dry_run:
        if procs.main:
            print_plan(sweep, jobs, procs.world, restorable)
        return 0
    check_paths(sweep)
    preset = sweep.preset
    mirror = WandbMirror(
        wandb_mode, project="spare-unlearncanvas", group=preset.name, root=Path(sweep.settings.runs_dir)
    )
    start = time.perf_counter()
    mine = sweep.shard(jobs, procs.rank, procs.world)
    if procs.main:
        print_plan(sweep, jobs, procs.world)

    if tables_only:
        mine = []

    def done() -> int:  # finished jobs of the plan, every process's; the difference is what this invocation ran
        return sum(sweep.planned(job).done() for job in jobs)

    done_before = done() if procs.main else 0  # only the main process writes the record
    started = datetime.now().isoformat(timespec="milliseconds")  # names this invocation's entry in sweep.json

    def record(**state) -> None:
        ran = done() - done_before
        save_sweep_record(sweep, jobs, out, time.perf_counter() - start, procs.world, ran, started=started, **state)

    def tabulate():  # stage 3, from the metrics files: (per_target, base, missing, paths); no paths when empty
        per_target, base, missing = collect(sweep, jobs)
        missing = missing_runs(missing, jobs)
        paths = (report or write_all)(per_target, base, out, preset.name, missing) if len(per_target) else {}
        return per_target, base, missing, paths

    def checkpoint() -> None:  # after each job the main process finishes: tables and the time so far
        tabulate()
        record(interrupted=True, unfinished=True)

    try:
        with _sigterm_as_interrupt():
            _shared_work(sweep, jobs, mine, procs)
            failed = _run_jobs(sweep, mine, procs, mirror, checkpoint if procs.main else None)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from `timeout`, a scheduler or the launcher
        if procs.main:  # its time counts towards the sweep's; the finished jobs stay done
            record(interrupted=True)
            tabulate()  # with the jobs other processes finished since the last checkpoint (a second signal stops this)
        raise

    # Stage 3: tables from the metrics files, by the main process.
    if not procs.main:
        return 1 if failed else 0
    per_target, base, missing, paths = tabulate()
    wall = time.perf_counter() - start
    if not paths:
        print("no finished runs to tabulate")
        return 1
    record()
    mirror.log_sweep(
        preset.name,
        to_dict(preset),
        {name: pd.read_csv(path.with_suffix(".csv")) for name, path in paths.items() if path.suffix == ".md"},
        paths.get("plot"),
    )
    print_summary(per_target, base, paths, wall, missing, mirror)
    return 1 if failed or missing else 0


def _shared_work(sweep: Sweep, jobs: list[Job], mine: list[Job], procs: Processes) -> None:
    """Stage 1, once: base answers split across processes, the real FID features by the main one."""
    if mine and not all(planned_base(t, sweep.base_settings).done() for t in dict.fromkeys(j.target for j in jobs)):
        base_answers(sweep.settings, shard=(procs.rank, procs.world))
    if procs.main and mine:
        from evaluators.classifiers import load_classifier
        from evaluators.fid import make_extractor

        style_clf = load_classifier(Path(sweep.settings.classifiers) / "style")
        real_features(sweep.settings, make_extractor(sweep.settings.inception, style_clf))
    procs.barrier()
    for target in dict.fromkeys(j.target for j in mine):
        evaluate_base(target, sweep.base_settings)


def _run_jobs(sweep: Sweep, mine: list[Job], procs: Processes, mirror: WandbMirror, checkpoint=None) -> list[str]:
    """Stage 2: this process's jobs not yet done; returns the labels of those that failed.
    ``checkpoint()`` is called after each job that finishes."""
    failed = []
    desc = f"sweep {sweep.preset.name}" + (f" [{procs.rank}/{procs.world}]" if procs.world > 1 else "")
    bar = tqdm(mine, desc=desc, unit="job")
    for job in bar:
        _stop_if_signalled()
        bar.set_postfix_str(job.label)
        planned = sweep.planned(job)
        if planned.done():
            continue
        try:
            result = run_unlearning(job.method, job.target, sweep.method_config(job), sweep.job_settings(job))
        except (KeyboardInterrupt, UserError):
            raise
        except Exception:  # one broken job must not stop the sweep; it is reported at the end
            log.error("%s failed:\n%s", job.label, traceback.format_exc())
            failed.append(job.label)
            continue
        grid = answer_grid_png(
            planned.out / "answers", planned.out / "answers.png", f"{job.method}, {job.target} forgotten"
        )
        mirror.log_run(f"{job.method}/{job.target}" + (f"@{job.tag}" if job.tag else ""), planned.config, result, grid)
        if checkpoint:
            with _signals_deferred():  # a signal cutting it short (a half-done import) would break the tables
                checkpoint()
    bar.close()
    procs.barrier()
    return failed


@contextmanager
def _handlers(handlers: dict):
    """Signal handlers for the block, the previous ones back after it; off the main thread,
    where Python refuses them, the signals are left alone."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does, so that a sweep stopped
    by `timeout`, a scheduler or the launcher records its time. Files are atomic either way."""
    _SIGNALLED.clear()
    with _handlers({signal.SIGTERM: _raise_interrupt}):
        yield


_SIGNALLED: list[int] = []  # signals received by this sweep: SIGTERMs, and Ctrl-C while deferred


def _raise_interrupt(signum, frame):
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _signals_deferred():
    """Hold SIGTERM and Ctrl-C until the block has finished, then raise KeyboardInterrupt for them:
    the tables and the sweep record after a job are written whole. A signal that lands inside an
    import (matplotlib's, the first time the plot is drawn) would leave the module half-initialised
    and the tables written on the way out would then fail."""
    with _handlers({signal.SIGTERM: _note_signal, signal.SIGINT: _note_signal}):
        yield
    _stop_if_signalled()


def _note_signal(signum, frame):
    _SIGNALLED.append(signum)


def _stop_if_signalled() -> None:
    """Raise again, between jobs, a SIGTERM whose KeyboardInterrupt library code swallowed (raised
    inside a ``__del__`` or a C extension that drops the error, it would be lost): at most the job
    that was running when the signal came still finishes."""
    if _SIGNALLED:
        raise KeyboardInterrupt(f"signal {_SIGNALLED[0]}")


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
            "processes": world,
            "invocations": history,
            "total_wall_time_s": sum(h["wall_time_s"] for h in history),  # of this results folder's invocations
        },
    )
    for planned, stored, names in _stored_runs(sweep, jobs):  # beside the tables: see restore_finished
        if planned.done():
            for name in names:
                copy_atomic(planned.out / name, out / stored / name)


STORED = ("config.json", "metrics.json")  # metrics last: it is what marks a run done


def _stored_runs(sweep: Sweep, jobs: list[Job]):
    """(planned run, its folder under a results folder, the files kept there) for the base model's
    rows of every target (``configs/base/``, metrics only) and for every job."""
    for target in dict.fromkeys(j.target for j in jobs):
        planned = planned_base(target, sweep.base_settings)
        yield planned, Path("configs") / "base" / planned.out.name, ("metrics.json",)
    for job in jobs:
        planned = sweep.planned(job)
        yield planned, Path("configs") / job.method / planned.out.name, STORED


def restore_finished(
    sweep: Sweep, jobs: list[Job], folders: list[Path], dry_run: bool = False, root: Path | None = None
) -> tuple[set[Path], int, dict[Path, int]]:
    """Copy the finished runs recorded beside the tables (``configs/<method>/<run>/`` and the base
    model's rows in ``configs/base/``, written by :func:`save_sweep_record`) into the runs folder where
    their config key is the job's: a sweep continued from a fresh clone or on another machine keeps
    the work already done and committed. ``folders`` are looked in in order; the first match counts.

    Config keys hash the model and classifier paths, which live in the checkout (``root``, by default
    this project's). A run stored by a checkout elsewhere counts when its key is the job's with this
    checkout's paths moved there (:func:`spare.run.relocate`); it is restored with this checkout's
    paths and key, so it is done here from then on.

    Returns (the run folders of the jobs restored, or that would be with ``dry_run``, the number of
    stale runs, {other checkout: runs restored from it}): a run stored only with another config (an
    older method version, other paths) is left alone, counted as stale, and its job runs again.
    """
    root = Path(root or PROJECT_ROOT)
    others = _other_checkouts(sweep, folders, root)
    moved_sweeps = [dataclasses.replace(sweep, settings=relocate(sweep.settings, root, o)) for o in others]
    restored: set[Path] = set()
    stale = 0
    moved: Counter[Path] = Counter()
    for (planned, stored, names), *elsewhere in zip(
        _stored_runs(sweep, jobs), *(_stored_runs(m, jobs) for m in moved_sweeps), strict=True
    ):
        if planned.done():
            continue
        is_job = names == STORED  # the base model's rows are restored too, but are not jobs
        keys = {planned.key: None} | {p.key: other for (p, _, _), other in zip(elsewhere, others, strict=True)}
        other_key = False
        for src in (folder / stored for folder in folders):
            if not (src / "metrics.json").is_file():
                continue
            key = _read_stored(src / "metrics.json").get("config_key")
            if key in keys and all((src / name).is_file() for name in names):
                if is_job:
                    restored.add(planned.out)
                if keys[key] is not None and is_job:
                    moved[keys[key]] += 1
                if not dry_run:
                    for name in names:
                        if keys[key] is None:
                            copy_atomic(src / name, planned.out / name)
                        else:
                            write_json(planned.out / name, _moved_here(_read_stored(src / name), planned))
                break
            other_key = True
        else:
            stale += is_job and other_key
    return restored, stale, moved


def _other_checkouts(sweep: Sweep, folders: list[Path], root: Path) -> list[Path]:
    """The checkouts other than ``root`` that the runs stored in ``folders`` were made in, read from the
    settings in their ``sweep.json`` and stored ``config.json`` files."""
    found: dict[Path, None] = {}
    for folder in folders:
        for path in [folder / "sweep.json", *sorted(folder.glob("configs/*/*/config.json"))]:
            try:
                settings = json.loads(path.read_text()).get("settings")
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue  # no record, or a broken one: its metrics decide (and a corrupt one is an error)
            other = checkout_of(settings, sweep.settings, root) if isinstance(settings, dict) else None
            if other is not None:
                found[other] = None
    return list(found)


def _read_stored(path: Path) -> dict:
    """A stored run's file; a damaged one is named in a warning and restores nothing (its job runs again)."""
    return read_json_dict(path) or {}


def _moved_here(data: dict, planned: PlannedRun) -> dict:
    """A stored run's config.json or metrics.json with this checkout's key (and paths, in a config)."""
    if isinstance(data.get("settings"), dict):
        data["settings"] = {**data["settings"], **{f: planned.config["settings"][f] for f in PATH_FIELDS}}
    return {**data, "config_key": planned.key}


def print_summary(per_target, base, paths: dict, wall: float, missing: str, mirror: WandbMirror) -> None:
    shown = pd.concat([base, per_target], ignore_index=True) if len(base) else per_target
    cols = ["method", *(["variant"] if "variant" in shown else []), "target", "UA", "IRA", "CRA", "FID", "time s"]
    cols.append("storage MB")
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
