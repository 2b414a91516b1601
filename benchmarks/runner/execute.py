"""Running a sweep: the shared stage (base answers, real FID features), the jobs of this process,
the tables after each finished job, and the summary."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from benchmarks.finer import write_finer
from benchmarks.robustness import attack_columns, write_robustness
from benchmarks.runner.plan import Job, Sweep, check_paths, config_value, missing_runs
from benchmarks.runner.processes import Processes, work_order
from benchmarks.runner.record import print_plan, print_summary, save_sweep_record
from benchmarks.runner.restore import restore_finished
from benchmarks.runner.signals import signals_deferred, sigterm_as_interrupt, stop_if_signalled
from benchmarks.tables import BASE_METHOD, gaps_note, per_target_row, read_metrics, write_all
from benchmarks.uncertainty import image_counts
from benchmarks.wandb_mirror import WandbMirror
from spare.config import to_dict
from spare.errors import UserError
from spare.io import claim
from spare.progress import tqdm
from spare.run import (
    base_answers,
    evaluate_bases,
    planned_base,
    real_features,
    run_dir,
    run_unlearning,
)
from spare.stages.attack import attack_run
from spare.validate import validate_inputs
from spare.viz import answer_grid_png

log = logging.getLogger(__name__)


def collect(sweep: Sweep, jobs: list[Job]) -> tuple[pd.DataFrame, pd.DataFrame, list[Job]]:
    """Per-target rows of every job, the base rows, and the jobs whose metrics are missing."""
    rows, base_rows, missing = [], [], []
    for target in dict.fromkeys(j.target for j in jobs):
        base = read_metrics(run_dir(sweep.base_settings, "base", target.replace(":", "-")) / "metrics.json")
        if base:
            base_rows.append(per_target_row(base, BASE_METHOD, target))
    for job in jobs:
        planned = sweep.planned(job)
        result = read_metrics(planned.metrics_path) if sweep.job_done(job) else None
        if result is None:
            missing.append(job)
            continue
        row = per_target_row(result, job.method, job.target)
        row.update(image_counts(result, job.target, len(sweep.catalogue.styles)))
        row["seed"] = job.seed
        attack = sweep.planned_attack(job)
        if attack is not None:
            row.update(attack_columns(read_metrics(attack.metrics_path) or {}))
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


def _check_restore_folders(folders) -> None:
    """A folder to restore from that has no stored runs is a typo, not an empty sweep: one line."""
    bad = [str(f) for f in folders if not (Path(f) / "configs").is_dir()]
    if bad:
        raise UserError(f"--restore: no stored runs (no configs/ folder) in {', '.join(bad)}")


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
    restore_from: Sequence[Path] = (),
) -> int:
    """Run (or resume) the sweep; returns 0 when every job has metrics, 1 on failures or gaps.

    ``report(per_target, base, out, label, missing) -> {name: path}`` writes the tables (``missing``:
    the runs without metrics, as :func:`missing_runs` words them)
    (default: the benchmark tables of :func:`benchmarks.tables.write_all`; ablations pass theirs).
    ``tables_only`` skips stages 1 and 2: the tables of whatever is done, the rest listed as missing.
    ``restore`` first takes the finished runs stored beside the tables, or beside the whole preset's
    tables under ``results_root``, then beside the tables in ``restore_from`` (another sweep's results
    folder whose runs share this one's keys) (:func:`restore_finished`).
    The tables go to ``results_dir``, by default to :meth:`Sweep.results_folder` under ``results_root``.
    """
    _check_restore_folders(restore_from)
    procs = Processes()
    jobs = sweep.jobs[:limit] if limit else sweep.jobs
    out = Path(results_dir) if results_dir else sweep.results_folder(results_root, jobs)
    if procs.main and not results_dir and out != Path(results_root) / sweep.preset.name:
        print(
            f"{len(jobs)} jobs, a subset of preset {sweep.preset.name!r}: tables in {out}, not in"
            f" {Path(results_root) / sweep.preset.name} (--results DIR to choose)"
        )
    restorable: set[Path] = set()
    if restore or restore_from:
        if procs.main:  # the tables' own folder first, then the whole preset's (a subset reuses its runs)
            folders = list(dict.fromkeys([out, Path(results_root) / sweep.preset.name, *map(Path, restore_from)]))
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
            if not sweep.missing_paths:  # what a real run would refuse, said now
                check_paths(sweep)
                validate_sweep(sweep, jobs)
        return 0
    check_paths(sweep)
    if procs.main and not tables_only:
        validate_sweep(sweep, jobs)  # every problem with the inputs at once, before any work
    procs.barrier()
    preset = sweep.preset
    mirror = WandbMirror(
        wandb_mode, project="spare-unlearncanvas", group=preset.name, root=Path(sweep.settings.runs_dir)
    )
    start = time.perf_counter()
    mine, others = work_order([sweep.shard(jobs, r, procs.world) for r in range(procs.world)], procs.rank)
    if not mine:  # a process with no targets of its own made no share of the base answers: it stays out
        others = []
    if procs.main:
        print_plan(sweep, jobs, procs.world)

    if tables_only:
        mine, others = [], []

    def done() -> int:  # finished jobs of the plan, every process's; the difference is what this invocation ran
        return sum(sweep.job_done(job) for job in jobs)

    done_before = done() if procs.main else 0  # only the main process writes the record
    started = datetime.now().isoformat(timespec="milliseconds")  # names this invocation's entry in sweep.json

    def record(**state) -> None:
        ran = done() - done_before
        save_sweep_record(sweep, jobs, out, time.perf_counter() - start, procs.world, ran, started=started, **state)

    failed: list[str] = []

    def tabulate():  # stage 3, from the metrics files: (per_target, base, missing, paths); no paths when empty
        per_target, base, missing = collect(sweep, jobs)
        missing = missing_runs(missing, jobs)
        if failed:  # jobs that raised in this invocation: their tracebacks are in the log
            missing += f" (failed in this invocation: {', '.join(failed)}; see the log)"
        paths = (report or write_all)(per_target, base, out, preset.name, missing) if len(per_target) else {}
        if len(per_target) and preset.attack is not None:
            paths.update(write_robustness(per_target, out, preset.name, gaps_note(missing)))
        if len(per_target):  # pair targets (finer-scale)
            paths.update(write_finer(per_target, out, preset.name, gaps_note(missing), base))
        return per_target, base, missing, paths

    def checkpoint() -> None:  # after each job the main process finishes: tables and the time so far
        tabulate()
        record(interrupted=True, unfinished=True)

    try:
        with sigterm_as_interrupt():
            _shared_work(sweep, jobs, mine, procs)
            _run_jobs(sweep, mine, procs, mirror, checkpoint if procs.main else None, failed, others)
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


def validate_sweep(sweep: Sweep, jobs: list[Job]) -> None:
    """The inputs of every job, checked once (spare.validate): all problems at once, or nothing."""
    s = sweep.settings
    targets = [sweep.catalogue.target(t) for t in dict.fromkeys(j.target for j in jobs)]
    validate_inputs(sweep.catalogue, s.model, s.classifiers, s.data, targets, s.object_surrogate)


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
    evaluate_bases(list(dict.fromkeys(j.target for j in mine)), sweep.base_settings)


def _run_jobs(
    sweep: Sweep,
    mine: list[Job],
    procs: Processes,
    mirror: WandbMirror,
    checkpoint=None,
    failed=None,
    others: Sequence[Job] = (),
) -> list[str]:
    """Stage 2: this process's jobs not yet done, then the other processes' unstarted ones in
    :func:`work_order` (a process that runs out of its own work helps instead of waiting at the
    barrier); each job is claimed first (:func:`spare.io.claim`), so no two processes make the same
    one. Returns the labels of those that failed; ``checkpoint()`` is called after each job that finishes."""
    failed = [] if failed is None else failed  # the caller's list, filled as jobs fail (the tables read it)
    desc = f"sweep {sweep.preset.name}" + (f" [{procs.rank}/{procs.world}]" if procs.world > 1 else "")
    queue = [*mine, *others]
    done_before = {i for i, job in enumerate(queue) if sweep.job_done(job)}
    # the bar starts at the jobs done before this invocation, so skipping them makes no rate; the
    # rate is this invocation's mean (smoothing 0), so a job another process finished meanwhile,
    # skipped here in no time, adds to the processes' joint rate instead of faking a fast job
    bar = tqdm(total=len(queue), initial=len(done_before), smoothing=0, desc=desc, unit="job")
    for i, job in enumerate(queue):
        if i in done_before:
            continue
        stop_if_signalled()
        bar.set_postfix_str(job.label + (" (helping)" if i >= len(mine) else ""))
        if not sweep.job_done(job):
            with claim(sweep.planned(job).out) as mine_now:
                if mine_now and not sweep.job_done(job):  # done by another process since the first look
                    _run_job(sweep, job, mirror, checkpoint, failed)
        bar.update()
    bar.close()
    procs.barrier()
    return failed


def _run_job(sweep: Sweep, job: Job, mirror: WandbMirror, checkpoint, failed: list[str]) -> None:
    """One job: the unlearning run (and its attack when the preset attacks), its answer grid and W&B
    entry, then the checkpoint; a job that raises is added to ``failed`` and the sweep goes on."""
    planned = sweep.planned(job)
    try:
        if sweep.remakes(job):  # its restored metrics kept beside, as metrics.restored.json
            log.warning("%s: restored without its edit and answer set; made again for the attack", planned.out)
            planned.metrics_path.replace(planned.out / "metrics.restored.json")
        result = run_unlearning(job.method, job.target, sweep.method_config(job), sweep.job_settings(job))
        if sweep.preset.attack is not None:
            attack_run(planned.out, sweep.preset.attack)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # one broken job must not stop the sweep; it is reported at the end
        if isinstance(err, UserError):  # the inputs were validated: this is the job's own problem
            log.error("%s failed: %s", job.label, err)
        else:
            log.error("%s failed:\n%s", job.label, traceback.format_exc())
        failed.append(job.label)
        if checkpoint:
            with signals_deferred():
                checkpoint()
        return
    grid = answer_grid_png(
        planned.out / "answers", planned.out / "answers.png", f"{job.method}, {job.target} forgotten"
    )
    mirror.log_run(f"{job.method}/{job.target}" + (f"@{job.tag}" if job.tag else ""), planned.config, result, grid)
    if checkpoint:
        with signals_deferred():  # a signal cutting it short (a half-done import) would break the tables
            checkpoint()
