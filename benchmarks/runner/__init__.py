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
Processes take whole targets (target i goes to process i mod N), then help with each other's
unstarted jobs (``processes.work_order``, each job claimed first); with the same thread count per
process, N processes write the same metrics files as one.
"""

from benchmarks.runner.execute import collect, run_sweep
from benchmarks.runner.plan import (
    DEFAULT_SEEDS,
    PATH_HELP,
    Job,
    Sweep,
    build_sweep,
    check_paths,
    config_value,
    missing_runs,
)
from benchmarks.runner.processes import Processes
from benchmarks.runner.record import print_plan, print_summary, save_sweep_record
from benchmarks.runner.restore import restore_finished

__all__ = [
    "DEFAULT_SEEDS",
    "PATH_HELP",
    "Job",
    "Processes",
    "Sweep",
    "build_sweep",
    "check_paths",
    "collect",
    "config_value",
    "missing_runs",
    "print_plan",
    "print_summary",
    "restore_finished",
    "run_sweep",
    "save_sweep_record",
]
