"""One unlearning run: unlearn a target with a method, generate its answer set, evaluate it.

Run folder ``runs/<benchmark>/<method>/<kind>-<Name>/``:
    config.json      the resolved method config and run settings
    report.json      training log, adapted modules, trainable share, timestep profile
    edit/            the saved edit (adapter weights, masks)
    answers/         the answer set, <Style>/<Object>/<seed>.png
    metrics.json     UA / IRA / CRA / FID(cls) / time / memory / storage, with provenance
Each stage is skipped when its output exists for the same config hash, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluators.classifiers import load_classifier
from evaluators.cost import CostMeter, StageClock
from evaluators.evaluate import (
    RealReference,
    ScoredAnswers,
    answer_metrics,
    load_images,
    real_reference,
    score_answers,
)
from evaluators.fid import make_extractor
from spare.answers import SamplingConfig, generate_answer_set
from spare.concepts import get_catalogue
from spare.config import hash_view, to_dict
from spare.data import load_benchmark_data, load_fid_real_images, split_for_target
from spare.io import atomic_path, config_hash, content_fingerprint, folder_lock, read_json_dict, write_json
from spare.methods import get_method
from spare.methods.contract import Unlearned, edited_part
from spare.methods.edits import edit_size_bytes, load_edit
from spare.methods.trainer import resolved_config
from spare.pipeline import T2IPipeline, default_device
from spare.provenance import provenance

log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    """Everything about a run that is not the method's own config."""

    benchmark: str = "mini"
    model: str = ""
    classifiers: str = ""
    data: str | None = None
    object_surrogate: str | None = None
    inception: str | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    runs_dir: str = "runs"
    tag: str = ""  # a variant's name (e.g. an ablation setting): folder <kind>-<Name>@<tag>
    # What the model, classifier, data and Inception paths hold (spare.io.content_fingerprint),
    # filled in when the settings are made: every stage key hashes them, so a folder replaced at
    # the same path is never taken for the old one.
    fingerprints: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # "auto" precision becomes this machine's answer before any key hashes it
        self.sampling = self.sampling.resolved(default_device().type)
        if not self.fingerprints:
            self.fingerprints = {
                "model": content_fingerprint(self.model),
                "classifiers": content_fingerprint(self.classifiers),
                "data": content_fingerprint(self.data, contents=False),  # names and sizes: tens of GB
                "inception": content_fingerprint(self.inception),
            }


def run_dir(settings: RunSettings, method: str, target_slug: str) -> Path:
    folder = f"{target_slug}@{settings.tag}" if settings.tag else target_slug
    return Path(settings.runs_dir) / get_catalogue(settings.benchmark).name / method / folder


@dataclass(frozen=True)
class PlannedRun:
    """Where a run lives and the hash of its resolved config (its cache key)."""

    out: Path
    config: dict
    key: str

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.json"

    def done(self) -> bool:
        """True when metrics.json exists for exactly this config."""
        return (read_json_dict(self.metrics_path) or {}).get("config_key") == self.key


def plan_run(method: str, target: str, method_cfg: Any, settings: RunSettings) -> PlannedRun:
    concept = get_catalogue(settings.benchmark).target(target)
    get_method(method)  # an unknown method fails here, naming the valid ones
    method_cfg = resolved_config(method_cfg, default_device().type)  # "auto" precision: this machine's
    config = {
        "method": method,
        "target": str(concept),
        "method_config": to_dict(method_cfg),
        "settings": to_dict(settings),
    }
    hashed = {**config, "method_config": hash_view(method_cfg), "settings": hash_view(settings)}
    return PlannedRun(run_dir(settings, method, concept.slug), config, config_hash(hashed))


REPLACED = ".replaced"  # finished runs of another config, moved aside: <method>/.replaced/<folder>~<their key>/


def keep_other_config(planned: PlannedRun) -> Path | None:
    """A finished run of another config in ``planned``'s folder (a single run and a sweep share
    folders; a method's defaults change) is never silently replaced: it is moved to
    ``<method>/.replaced/<folder>~<its key>/``, said in the log, and returned."""
    stored = read_json_dict(planned.metrics_path)
    if not stored or stored.get("config_key") in (None, planned.key):
        return None
    kept = planned.out.parent / REPLACED / f"{planned.out.name}~{stored['config_key']}"
    if kept.exists():
        shutil.rmtree(kept)
    kept.parent.mkdir(parents=True, exist_ok=True)
    try:
        planned.out.rename(kept)
    except FileNotFoundError:  # another process of the same config moved it first
        return None
    log.warning(
        "%s held a finished run of another config (key %s): kept at %s", planned.out, stored["config_key"], kept
    )
    return kept


def run_unlearning(method: str, target: str, method_cfg: Any, settings: RunSettings, evaluate: bool = True) -> dict:
    """Unlearn, generate and evaluate (each stage skipped when done); returns metrics.json's content."""
    catalogue = get_catalogue(settings.benchmark)
    concept = catalogue.target(target)
    spec = get_method(method)
    method_cfg = resolved_config(method_cfg, default_device().type)
    planned = plan_run(method, target, method_cfg, settings)
    out = planned.out
    started = provenance()  # the code that ran, taken before it runs (the tree may change meanwhile)
    metrics_path = planned.metrics_path
    if planned.done():
        log.info("%s %s: done already (%s)", method, concept, metrics_path)
        return json.loads(metrics_path.read_text())
    keep_other_config(planned)
    fresh = not out.exists()
    with folder_lock(out):
        if planned.done():  # another process made it while this one waited
            return json.loads(metrics_path.read_text())
        try:
            return _run_stages(planned, spec, concept, catalogue, method_cfg, settings, evaluate, started)
        except BaseException:
            # a folder this call created and that holds nothing of value yet is not left half-made
            if fresh and {p.name for p in out.iterdir()} <= {"config.json", ".lock"}:
                shutil.rmtree(out, ignore_errors=True)
            raise


def _run_stages(planned, spec, concept, catalogue, method_cfg, settings: RunSettings, evaluate: bool, started):
    """The stages of :func:`run_unlearning`, each skipped when its output is there for this config."""
    out, config, key, method = planned.out, planned.config, planned.key, spec.name
    metrics_path = planned.metrics_path
    write_json(out / "config.json", {**config, "config_key": key})
    clock = StageClock()
    with clock("load"):
        pipe = T2IPipeline.from_pretrained(settings.model, device=default_device())
        judges = load_judges(settings) if evaluate else None  # a missing classifier fails before any work

    edit_dir, report_path = out / "edit", out / "report.json"
    report = read_json_dict(report_path)
    if report is not None and report.get("config_key") == key and edit_dir.is_dir():
        edit = load_edit(edit_dir)
    else:
        with clock("data"):
            data = split_for_target(
                load_benchmark_data(settings.benchmark, settings.data),
                concept,
                catalogue,
                object_surrogate=settings.object_surrogate,
            )
        # a new edit makes any answers already in the folder (another config's) stale
        shutil.rmtree(out / "answers", ignore_errors=True)
        with CostMeter(pipe.device) as cost:
            unlearned = spec.unlearn(pipe, data, method_cfg)
        if not isinstance(unlearned, Unlearned):
            raise TypeError(
                f"method {method!r} returned {type(unlearned).__name__}; a method returns an "
                "Unlearned (spare.methods.contract): its edit, log and trainable parameters"
            )
        edit, report = unlearned.edit, unlearned.report()
        edit.save(edit_dir)
        if report.get("saliency"):
            from spare.methods.saliency import plot_saliency

            plot_saliency(report["saliency"], out / "saliency.png", kept=report.get("adapted_modules"))
        report.update(
            config_key=key,
            time_s=cost.wall_time_s,
            cpu_time_s=cost.cpu_time_s,
            load_1min=cost.load_1min,
            cpu_count=os.cpu_count(),
            device=str(pipe.device),
            memory_gb=cost.peak_memory_gb,
            memory_kind=cost.memory_kind,
            storage_bytes=edit_size_bytes(edit_dir),
        )
        write_json(report_path, report)
    if not evaluate:
        return report

    answers_dir = out / "answers"
    edit.apply(edited_part(pipe, edit))
    try:
        with clock("answers"):
            grid = generate_answer_set(
                pipe, catalogue, settings.sampling, answers_dir, desc=f"{method} {concept} answers"
            )
    finally:
        edit.remove(edited_part(pipe, edit))
    with clock("score"):
        result = _evaluate(grid, concept, settings, judges)
    gb = 1024**3
    result["metrics"].update(
        time_s={"value": report["time_s"], "higher_is_better": False},
        memory_gb={"value": report["memory_gb"], "higher_is_better": False},
        storage_gb={"value": report["storage_bytes"] / gb, "higher_is_better": False},
    )
    result.update(
        method=method,
        tag=settings.tag,
        config_key=key,
        storage_bytes=report["storage_bytes"],
        memory_kind=report["memory_kind"],
        cost={k: report.get(k) for k in ("time_s", "cpu_time_s", "load_1min", "cpu_count", "device")},
        trainable_params=report.get("trainable_params"),
        trainable_share=report.get("trainable_share"),
        stages=_stages(clock, report, result.pop("stages"), generated=grid.attrs["generated"]),
        provenance=started,
    )
    write_json(metrics_path, result)
    return result


def _stages(clock: StageClock, report: dict, scoring: dict, generated: int) -> dict:
    """Seconds per stage of this run (wall and CPU): loading, data, unlearning (as the cost meter
    measured it, also when the edit was reused from an earlier, interrupted invocation), the
    answer set with its images/s over the images made now, scoring with its classify and FID parts."""
    stages = clock.as_dict()
    stages.update(unlearn_s=report["time_s"], unlearn_cpu_s=report.get("cpu_time_s"), **scoring)
    stages["answers_generated"] = generated
    if generated:
        stages["answers_img_per_s"] = generated / stages["answers_s"]
    return stages


def real_features(settings: RunSettings, extractor) -> RealReference:
    """The real side of FID, computed once per (data, feature extractor) and cached under runs/."""
    catalogue = get_catalogue(settings.benchmark)
    key = config_hash(
        {
            "benchmark": catalogue.name,
            "data": settings.data,
            "inception": settings.inception,
            "classifiers": settings.classifiers,
            "extractor": extractor.name,
            "fingerprints": {k: settings.fingerprints.get(k) for k in ("data", "inception", "classifiers")},
        }
    )
    path = Path(settings.runs_dir) / catalogue.name / "fid_real" / f"{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            table = pd.DataFrame({"style": cached["style"], "object": cached["object"]})
            return RealReference(table, cached["features"], str(cached["extractor"]))
    real = real_reference(load_fid_real_images(settings.benchmark, settings.data), extractor, catalogue)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                style=real.table["style"].to_numpy(str),
                object=real.table["object"].to_numpy(str),
                features=real.features,
                extractor=np.array(real.extractor_name),
            )
    return real


def load_judges(settings: RunSettings) -> tuple:
    """The style and object classifiers and the FID feature extractor of ``settings``."""
    clf_dir = Path(settings.classifiers)
    style_clf, object_clf = load_classifier(clf_dir / "style"), load_classifier(clf_dir / "object")
    return style_clf, object_clf, make_extractor(settings.inception, style_clf)


def _score(grid, settings: RunSettings, judges: tuple | None = None) -> tuple[ScoredAnswers, RealReference]:
    """What the judges say of every image of an answer set, and the real side of its FID."""
    style_clf, object_clf, extractor = judges or load_judges(settings)
    real = real_features(settings, extractor)
    return score_answers(grid, load_images(list(grid["path"])), style_clf, object_clf, extractor), real


def _evaluate(grid, concept, settings: RunSettings, judges: tuple | None = None) -> dict:
    scored, real = _score(grid, settings, judges)
    return answer_metrics(scored, get_catalogue(settings.benchmark), target=concept, real=real)


def base_key(settings: RunSettings) -> str:
    model = {"model": settings.model, "fingerprint": settings.fingerprints.get("model")}
    return config_hash({**model, "sampling": hash_view(settings.sampling)})


def base_answers(settings: RunSettings, shard: tuple[int, int] = (0, 1)) -> pd.DataFrame:
    """The base model's answer set, generated once per (model, sampling) and shared by every target.

    ``shard=(rank, world)``: this process generates only its share of the missing images
    (answer images depend on their seed only, so the shares add up to the same set).
    """
    catalogue = get_catalogue(settings.benchmark)
    folder = Path(settings.runs_dir) / catalogue.name / "base" / f"answers-{base_key(settings)}"

    def load() -> T2IPipeline:
        return T2IPipeline.from_pretrained(settings.model, device=default_device())

    return generate_answer_set(load, catalogue, settings.sampling, folder, desc="base answers", shard=shard)


def planned_base(target: str, settings: RunSettings) -> PlannedRun:
    """Where the base model's metrics for ``target`` live, and their key."""
    concept = get_catalogue(settings.benchmark).target(target)
    config = {
        "model": settings.model,
        "sampling": hash_view(settings.sampling),
        "classifiers": settings.classifiers,
        "fingerprints": {k: settings.fingerprints.get(k) for k in ("model", "classifiers")},
    }
    return PlannedRun(run_dir(settings, "base", concept.slug), config, config_hash(config))


def evaluate_base(target: str, settings: RunSettings) -> dict:
    """The base model's metrics for ``target`` (what unlearning is compared with)."""
    return evaluate_bases([target], settings)[target]


def evaluate_bases(targets: list[str], settings: RunSettings) -> dict[str, dict]:
    """The base model's metrics for each of ``targets``. Those not yet on disk share one scoring of
    the base answer set (the judges and the images are loaded, and every image is classified and
    its FID features extracted, once), since only the target-dependent tables differ between them."""
    catalogue = get_catalogue(settings.benchmark)
    planned = {t: planned_base(t, settings) for t in dict.fromkeys(targets)}
    results = {t: json.loads(p.metrics_path.read_text()) for t, p in planned.items() if p.done()}
    todo = [t for t in planned if t not in results]
    if not todo:
        return results
    scored, real = _score(base_answers(settings), settings)
    for t in todo:
        result = answer_metrics(scored, catalogue, target=catalogue.target(t), real=real)
        result.update(method="base", config_key=planned[t].key, provenance=provenance())
        write_json(planned[t].metrics_path, result)
        results[t] = result
    return results
