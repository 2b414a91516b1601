"""Planning a sweep: a preset resolved into its jobs, each job's config, settings and run folder
worked out once, the required paths checked, and the plan printed."""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.presets import Preset, method_defaults, tuned_path
from spare.concepts import Catalogue, get_catalogue
from spare.config import apply_overrides
from spare.errors import UserError
from spare.io import config_hash
from spare.methods import get_method, method_names
from spare.methods.contract import seeded
from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS
from spare.run import (
    PlannedRun,
    RunSettings,
    plan_run,
)
from spare.stages.attack import PlannedAttack, plan_attack

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
    # each job's config and planned run (key, folder), worked out once; a replaced sweep starts empty
    _configs: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _plans: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def is_whole(self, jobs: list[Job]) -> bool:
        """Whether ``jobs`` is the preset's whole plan, not one narrowed by --methods, --targets or --limit."""
        return not self.narrowed and len(jobs) == len(self.jobs)

    def results_folder(self, root: str | Path, jobs: list[Job]) -> Path:
        """The default tables folder: ``<root>/<preset>`` for the preset's whole plan. A narrowed plan
        (--methods, --targets, --limit) gets its own ``<root>/<preset>-subsets/<hash of its jobs>``, so
        that its tables and sweep record never replace those of the whole plan."""
        if self.is_whole(jobs):
            return Path(root) / self.preset.name
        return Path(root) / f"{self.preset.name}-subsets" / config_hash([dataclasses.asdict(j) for j in jobs], length=8)

    def job_settings(self, job: Job) -> RunSettings:
        return dataclasses.replace(self.settings, tag=job.tag)

    @property
    def base_settings(self) -> RunSettings:
        """The base model's runs sit under the preset's tag (its sampling may differ)."""
        return dataclasses.replace(self.settings, tag=self.preset.tag)

    def method_config(self, job: Job):
        """The method's defaults, the preset's budget and lr factors, its overrides, the training seed
        (worked out once per job; each call returns a copy of its own)."""
        if job not in self._configs:
            self._configs[job] = self._method_config(job)
        return copy.deepcopy(self._configs[job])

    def _method_config(self, job: Job):
        cfg = method_defaults(self.preset, job.method)
        cfg = apply_overrides(cfg, self.preset.overrides.get(job.method, []))
        if job.variant:
            variant = self.preset.variants[job.variant]
            cfg = apply_overrides(cfg, variant.get("*", []) + variant.get(job.method, []))
        if hasattr(cfg, "seed") and self.preset.train_seeds != DEFAULT_SEEDS:
            cfg.seed = job.seed
        return cfg

    def planned(self, job: Job) -> PlannedRun:
        """The job's run (config key, folder), planned once: ``done()`` over a plan only reads files."""
        if job not in self._plans:
            self._plans[job] = plan_run(job.method, job.target, self.method_config(job), self.job_settings(job))
        return self._plans[job]

    def planned_attack(self, job: Job) -> PlannedAttack | None:
        """The job's attack stage (folder, key) when the preset attacks, else None."""
        if self.preset.attack is None:
            return None
        run = self.planned(job)
        return plan_attack(run.out, run.key, self.preset.attack, self.job_settings(job))

    def remakes(self, job: Job) -> bool:
        """The run is done but restored from a results folder (config and metrics only), and the preset
        attacks it: the attack needs its edit and answer set, so the run is made again first."""
        run = self.planned(job)
        return (
            self.preset.attack is not None
            and run.done()
            and not self.planned_attack(job).done()
            and not ((run.out / "edit").is_dir() and (run.out / "answers").is_dir())
        )

    def job_done(self, job: Job) -> bool:
        """The run has metrics for its config, and its attack (when the preset attacks) for its own."""
        attack = self.planned_attack(job)
        return self.planned(job).done() and (attack is None or attack.done())

    def shard(self, jobs: list[Job], rank: int, world: int) -> list[Job]:
        """Whole targets per process (target i of the plan goes to process i mod world), in the order
        they run: every target and method at the first training seed, then all at the next seed, so
        that a sweep stopped part-way holds whole tables of its first seeds, not all seeds of a few
        targets; the catalogue's validation targets, which the reported summary leaves out, after
        the others (a plan of validation targets only, the tuning grid, keeps its order). The plan
        (``jobs``, the tables' rows) stays target by target."""
        owner = {t: i % world for i, t in enumerate(dict.fromkeys(j.target for j in jobs))}
        turn = {s: i for i, s in enumerate(dict.fromkeys(j.seed for j in jobs))}  # the plan's seed order
        validation = set(self.catalogue.validation_targets)
        mine = (j for j in jobs if owner[j.target] == rank)
        return sorted(mine, key=lambda j: (j.target in validation, turn[j.seed]))


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
    if preset.tuned and not tuned_path(preset.tuned).is_file():
        log.warning(
            "preset %s: no tuning choice yet (%s; make tuning): every method at its rule default",
            preset.name,
            preset.tuned,
        )
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
                for seed in seeds if seeded(get_method(method).config_cls) else seeds[:1]:
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


def missing_runs(missing: list[Job], jobs: list[Job]) -> str:
    """The jobs without metrics, counted and grouped by target ("" when none), e.g.
    ``"5 of 6: style:A: fmn, uce; object:B: all 3"`` ("all" where a target has none of its jobs done).
    Targets that miss the same runs share one group (``"style:A, object:B: fmn @seed1"``), so a sweep
    that has only whole seeds left reads in a line, not in one group per target."""
    if not missing:
        return ""
    planned = Counter(j.target for j in jobs)
    by_target: dict[str, list[Job]] = {}
    for job in missing:
        by_target.setdefault(job.target, []).append(job)
    by_names: dict[str, list[str]] = {}
    for target, gone in by_target.items():
        names = f"all {len(gone)}" if 1 < len(gone) == planned[target] else ", ".join(j.name_in_target for j in gone)
        by_names.setdefault(names, []).append(target)
    groups = [f"{', '.join(targets)}: {names}" for names, targets in by_names.items()]
    return f"{len(missing)} of {len(jobs)}: " + "; ".join(groups)


def config_value(cfg: dict, key: str):
    """``cfg["a"]["b"]`` for key "a.b"; None where the method has no such key (a baseline's point)."""
    for part in key.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg
