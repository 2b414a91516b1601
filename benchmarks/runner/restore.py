"""Restoring finished runs from a results folder into the runs folder: a sweep continued from a
fresh clone or another machine keeps the work already done and committed."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from benchmarks.runner.plan import Job, Sweep
from benchmarks.runner.record import STORED, stored_runs
from spare.io import copy_atomic, read_json_dict, write_json
from spare.paths import PROJECT_ROOT
from spare.run import PlannedRun, RunSettings
from spare.stages.attack import PlannedAttack

PATH_FIELDS = ("model", "classifiers", "data", "inception", "runs_dir")  # RunSettings' paths: hashed as given


def relocate(settings: RunSettings, root: str | Path, to: str | Path) -> RunSettings:
    """``settings`` as a checkout at ``to`` resolves them: each absolute path under ``root`` moved under
    ``to`` (paths elsewhere, relative paths and hub ids stay). Config keys hash the paths, so this is
    how a run stored by a checkout elsewhere is recognised (see :func:`checkout_of`)."""

    def move(value: str | None) -> str | None:
        if not value or not Path(value).is_absolute() or not Path(value).is_relative_to(root):
            return value
        return str(Path(to) / Path(value).relative_to(root))

    return dataclasses.replace(settings, **{f: move(getattr(settings, f)) for f in PATH_FIELDS})


def checkout_of(stored: dict, settings: RunSettings, root: str | Path) -> Path | None:
    """The other checkout whose runs ``stored`` (a run's saved settings) belongs to, if any: where one of
    ``settings``' paths under ``root`` sits in ``stored`` with the part below ``root`` unchanged
    (``/work/main/models/canvas-mini-base`` there, ``<root>/models/canvas-mini-base`` here)."""
    for name in PATH_FIELDS:
        ours, theirs = getattr(settings, name), stored.get(name)
        if not ours or not isinstance(theirs, str) or not Path(ours).is_absolute():
            continue
        if not Path(ours).is_relative_to(root) or Path(ours) == Path(root):
            continue
        below, parts = Path(ours).relative_to(root).parts, Path(theirs).parts
        if len(parts) > len(below) and parts[-len(below) :] == below and Path(*parts[: -len(below)]) != Path(root):
            return Path(*parts[: -len(below)])
    return None


def restore_finished(
    sweep: Sweep, jobs: list[Job], folders: list[Path], dry_run: bool = False, root: Path | None = None
) -> tuple[set[Path], int, dict[Path, int]]:
    """Copy the finished runs recorded beside the tables (``configs/<method>/<run>/``, the base
    model's rows in ``configs/base/`` and an attacked sweep's attacks in ``configs/<method>/<run>/attack/``,
    written by :func:`save_sweep_record`) into the runs folder where
    their config key is the job's: a sweep continued from a fresh clone or on another machine keeps
    the work already done and committed. ``folders`` are looked in in order; the first match counts.

    Config keys hash the model and classifier paths, which live in the checkout (``root``, by default
    this project's). A run stored by a checkout elsewhere counts when its key is the job's with this
    checkout's paths moved there (:func:`relocate`); it is restored with this checkout's
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
        stored_runs(sweep, jobs), *(stored_runs(m, jobs) for m in moved_sweeps), strict=True
    ):
        if planned.done():
            continue
        # the base model's rows and the jobs' attacks are restored too, but are not jobs
        is_job = names == STORED and not isinstance(planned, PlannedAttack)
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
                            write_json(planned.out / name, moved_here(_read_stored(src / name), planned))
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


def moved_here(data: dict, planned: PlannedRun) -> dict:
    """A stored run's (or sequence step's) config.json or metrics.json with this checkout's key (and
    paths, in a config)."""
    if isinstance(data.get("settings"), dict):
        data["settings"] = {**data["settings"], **{f: planned.config["settings"][f] for f in PATH_FIELDS}}
    return {**data, "config_key": planned.key}
