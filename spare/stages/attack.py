"""The attack stage of a finished run: UnlearnCanvas "Rob." (:mod:`spare.attack`).

    spare attack --run runs/mini/esd/style-Ink_Outline [attack.iterations=40 ...]

Reads the run's config, edit and answer set, never changes them, and writes under ``<run>/attack/``
(settings other than the defaults: ``<run>/attack-<hash>/``, :func:`attack_folder`):
    chunks/<i>.json, chunks/<i>.safetensors  each batch of attacked rows: results and embeddings
    images/<Style>/<Object>/<seed>.png       the attacked prompt's image of every attacked row
    rows.csv                                 per row: forgotten before, iteration of success, label
    grid.png                                 base image, unattacked answer, attacked image per row
    metrics.json                             Rob., ASR, UA before, cost; keyed by its config hash
The key hashes the run's key, the attack config and the base answers' key, so a rerun of the
unlearning (a new key) makes the attack run again in the same folder; batches already done are kept
(resumable).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image
from safetensors.torch import load_file, save_file

from evaluators.classifiers import load_classifier
from evaluators.cost import CostMeter
from evaluators.evaluate import load_images
from spare.answers import image_path
from spare.attack import AttackConfig, Row, RowResult, attack_rows, summarise
from spare.concepts import get_catalogue
from spare.config import from_dict, hash_view, to_dict
from spare.errors import UserError
from spare.io import atomic_path, config_hash, folder_lock, read_json_dict, write_json
from spare.methods.contract import edited_part
from spare.methods.edits import load_edit
from spare.pipeline import T2IPipeline, default_device
from spare.provenance import provenance
from spare.run import PlannedRun, RunSettings, base_answers, base_key
from spare.validate import InputProblems, classifier_problems, model_problems
from spare.viz import image_grid, save_png

log = logging.getLogger(__name__)

ATTACK = "attack"
CONTROL = "attack-control"  # the control (random prefixes, no optimisation) sits beside the attack


@dataclass(frozen=True)
class PlannedAttack(PlannedRun):
    """Where a run's attack lives (``<run>/attack``) and its key."""

    @property
    def run(self) -> Path:
        return self.out.parent


def attack_folder(cfg: AttackConfig) -> str:
    """``attack`` (the control: ``attack-control``) at the default settings, ``attack-<hash>`` (or
    ``attack-control-<hash>``) at any other: trying other settings on a run never replaces the attack a
    sweep stored there."""
    name = CONTROL if cfg.control else ATTACK
    return name if cfg == AttackConfig(control=cfg.control) else f"{name}-{config_hash(hash_view(cfg), 8)}"


def plan_attack(run: Path, run_key: str, cfg: AttackConfig, settings: RunSettings) -> PlannedAttack:
    key = config_hash({"run": run_key, "attack": hash_view(cfg), "base": base_key(settings)})
    return PlannedAttack(Path(run) / attack_folder(cfg), {}, key)


def finished_run(run: str | Path, answers: bool = True) -> tuple[dict, dict, RunSettings]:
    """A finished run's config, metrics and settings; a folder that is not one is a one-line error
    (``answers``: the answer set is needed too)."""
    run = Path(run)
    config, metrics = read_json_dict(run / "config.json"), read_json_dict(run / "metrics.json")
    needs = ["config.json", "metrics.json", "edit/"] + (["answers/"] if answers else [])
    present = config is not None and metrics is not None and (run / "edit").is_dir()
    if not present or (answers and not (run / "answers").is_dir()):
        raise UserError(
            f"{str(run)!r} is not a finished run (it needs {', '.join(needs)}): "
            "run `spare unlearn` or `spare benchmark` first"
        )
    if metrics.get("config_key") != config.get("config_key"):
        raise UserError(f"{str(run)!r}: metrics.json belongs to another config than config.json; rerun it")
    return config, metrics, from_dict(RunSettings, config["settings"])


def attack_run(run: str | Path, cfg: AttackConfig | None = None) -> dict:
    """Attack the finished run in ``run`` (each batch of rows skipped when done); its attack metrics."""
    cfg = cfg or AttackConfig()
    config, _, settings = finished_run(run)
    catalogue = get_catalogue(settings.benchmark)
    catalogue.target(config["target"])  # an unknown target: one line, before anything is read
    planned = plan_attack(Path(run), config["config_key"], cfg, settings)
    if planned.done():
        return json.loads(planned.metrics_path.read_text())
    if problems := model_problems(settings.model) + classifier_problems(settings.classifiers, catalogue):
        raise InputProblems(problems)
    with folder_lock(planned.out):
        if planned.done():
            return json.loads(planned.metrics_path.read_text())
        return _attack(planned, cfg, config, settings)


def _attack(planned: PlannedAttack, cfg: AttackConfig, config: dict, settings: RunSettings) -> dict:
    out = planned.out
    stored = read_json_dict(out / "config.json")
    if stored is not None and stored.get("config_key") != planned.key:
        log.info("%s: an attack of another config is there; starting afresh", out)
        for part in ("chunks", "images", "rows.csv", "grid.png", "cost.json", "metrics.json"):
            target = out / part
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    write_json(
        out / "config.json", {"attack": to_dict(cfg), "run_key": config["config_key"], "config_key": planned.key}
    )
    catalogue = get_catalogue(settings.benchmark)
    concept = catalogue.target(config["target"])
    started = provenance()
    base = base_answers(settings)  # the concept's images: the base model's answers of the same rows
    shown = [concept.shows(s, o) for s, o in zip(base["style"], base["object"], strict=True)]
    rows_df = base[shown].reset_index(drop=True)
    rows = [Row(r.style, r.object, int(r.seed), r.prompt) for r in rows_df.itertuples()]
    paths = {row.name: path for row, path in zip(rows, rows_df["path"], strict=True)}  # the base images
    judge = Judge(settings.classifiers, concept)
    answered = [str(image_path(planned.run / "answers", r.style, r.object, r.seed)) for r in rows]
    before = judge.predict(load_images(answered))

    pipe = T2IPipeline.from_pretrained(settings.model, device=default_device())
    edit = load_edit(planned.run / "edit")
    s = settings.sampling
    sample_kw = dict(
        steps=s.steps, guidance=s.guidance, sampler=s.sampler, micro_batch=s.micro_batch, precision=s.precision
    )
    results: list[RowResult] = []
    todo = [i for i, label in enumerate(before) if label != judge.label]
    for i, label in enumerate(before):
        if label == judge.label:  # not forgotten: shown without an attack
            results.append(RowResult(rows[i], False, 0, label, None, None))
    edit.apply(edited_part(pipe, edit))
    try:
        for c, start in enumerate(range(0, len(todo), cfg.batch_size)):
            chunk = [rows[i] for i in todo[start : start + cfg.batch_size]]
            results += _chunk(planned, c, chunk, paths, pipe, judge, concept, cfg, sample_kw)
    finally:
        edit.remove(edited_part(pipe, edit))
    cost = read_json_dict(out / "cost.json") or {
        "time_s": 0.0,
        "cpu_time_s": 0.0,
        "memory_gb": 0.0,
    }  # nothing to attack
    order = {r.name: i for i, r in enumerate(rows)}
    results.sort(key=lambda r: order[r.row.name])
    table = pd.DataFrame(
        [
            {
                "style": r.row.style,
                "object": r.row.object,
                "seed": r.row.seed,
                "forgotten_before": r.forgotten_before,
                "success_at": r.success_at,
                "label_after": r.label,
            }
            for r in results
        ]
    )
    with atomic_path(out / "rows.csv") as tmp:
        table.to_csv(tmp, index=False)
    _grid(planned, results, paths, concept)
    summary = summarise(results)
    metrics = {
        "method": config["method"],
        "target": str(concept),
        "config_key": planned.key,
        "run_key": config["config_key"],
        "attack": to_dict(cfg),
        "metrics": {
            "Rob": {"value": summary["Rob"], "higher_is_better": True},
            "ASR": {"value": summary["ASR"], "higher_is_better": False},
        },
        **summary,
        "cost": cost,
        "provenance": started,
    }
    write_json(planned.metrics_path, metrics)
    return metrics


class Judge:
    """Reads whether an image shows the target: the target kind's classifier (a style or an
    object), or both for a pair, whose label is ``Style+Object``."""

    def __init__(self, classifiers: str, concept) -> None:
        kinds = ("style", "object") if concept.kind == "pair" else (concept.kind,)
        self.classifiers = [load_classifier(Path(classifiers) / kind) for kind in kinds]
        self.label = concept.name

    def predict(self, images) -> list[str]:
        labels = [clf.predict(images) for clf in self.classifiers]
        return ["+".join(parts) for parts in zip(*labels, strict=True)]


def _add_cost(out: Path, meter: CostMeter) -> None:
    """Add one batch's cost to ``cost.json``: an attack resumed over several invocations adds up."""
    cost = read_json_dict(out / "cost.json") or {"time_s": 0.0, "cpu_time_s": 0.0, "memory_gb": 0.0}
    cost.update(
        time_s=cost["time_s"] + meter.wall_time_s,
        cpu_time_s=cost["cpu_time_s"] + meter.cpu_time_s,
        memory_gb=max(cost["memory_gb"], meter.peak_memory_gb),
        memory_kind=meter.memory_kind,
    )
    write_json(out / "cost.json", cost)


def _chunk(planned, c, chunk, paths, pipe, judge, concept, cfg, sample_kw) -> list[RowResult]:
    """One batch of rows: loaded when done for this key, else attacked and saved."""
    out = planned.out
    record, tensors = out / "chunks" / f"{c}.json", out / "chunks" / f"{c}.safetensors"
    names = [r.name for r in chunk]
    saved = read_json_dict(record)
    if saved and saved.get("config_key") == planned.key and saved.get("rows") == names and tensors.exists():
        prefixes = load_file(str(tensors))
        return [
            RowResult(r, True, int(s), label, None, prefixes[r.name])
            for r, s, label in zip(chunk, saved["success_at"], saved["labels"], strict=True)
        ]
    with CostMeter(pipe.device) as meter:
        x0 = pipe.encode_pil([_open(paths[r.name]) for r in chunk])
        results = attack_rows(
            pipe, chunk, x0, judge.predict, judge.label, cfg, sample_kw, desc=f"attack {concept} batch {c}"
        )
    for r in results:
        with atomic_path(image_path(out / "images", r.row.style, r.row.object, r.row.seed)) as tmp:
            Image.fromarray(r.image).save(tmp, format="PNG")
    with atomic_path(tensors) as tmp:
        save_file({r.row.name: r.prefix.contiguous() for r in results}, str(tmp))
    write_json(
        record,
        {
            "config_key": planned.key,
            "rows": names,
            "success_at": [r.success_at for r in results],
            "labels": [r.label for r in results],
        },
    )
    _add_cost(out, meter)
    return results


def _open(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def _grid(planned: PlannedAttack, results: list[RowResult], paths: dict[str, str], concept) -> None:
    """Per attacked row of the first seed: the base model's image, the unlearned model's answer and
    the attacked prompt's image (labelled with the iteration of success)."""
    attacked = [r for r in results if r.forgotten_before]
    if not attacked:
        return
    first = min(r.row.seed for r in attacked)
    shown = [r for r in attacked if r.row.seed == first][:12]
    cells, labels = [], []
    for r in shown:
        answer = image_path(planned.run / "answers", r.row.style, r.row.object, r.row.seed)
        after = image_path(planned.out / "images", r.row.style, r.row.object, r.row.seed)
        cells.append([_open(paths[r.row.name]), _open(str(answer)), _open(str(after))])
        outcome = f"broken at {r.success_at}" if r.success else "held"
        where = {"style": r.row.object, "object": r.row.style}.get(concept.kind, f"seed {r.row.seed}")
        labels.append(f"{where}: {outcome}")
    title = f"{planned.run.parent.name} {concept}: attack, seed {first}"
    save_png(image_grid(cells, labels, ["base", "unlearned", "attacked"], title=title), planned.out / "grid.png")
