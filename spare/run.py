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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluators.classifiers import load_classifier
from evaluators.cost import CostMeter
from evaluators.evaluate import evaluate_answers, load_images, real_reference
from evaluators.fid import make_extractor
from spare.answers import SamplingConfig, generate_answer_set
from spare.concepts import get_catalogue
from spare.config import to_dict
from spare.data import load_benchmark_data, load_fid_real_images, split_for_target
from spare.io import config_hash, write_json
from spare.methods import get_method
from spare.methods.edits import edit_size_bytes, load_edit
from spare.pipeline import T2IPipeline
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


def run_dir(settings: RunSettings, method: str, target_slug: str) -> Path:
    folder = f"{target_slug}@{settings.tag}" if settings.tag else target_slug
    return Path(settings.runs_dir) / get_catalogue(settings.benchmark).name / method / folder


def run_unlearning(method: str, target: str, method_cfg: Any, settings: RunSettings, evaluate: bool = True) -> dict:
    """Unlearn, generate and evaluate (each stage skipped when done); returns metrics.json's content."""
    catalogue = get_catalogue(settings.benchmark)
    concept = catalogue.target(target)
    spec = get_method(method)
    out = run_dir(settings, method, concept.slug)
    config = {
        "method": method,
        "target": str(concept),
        "method_config": to_dict(method_cfg),
        "settings": to_dict(settings),
    }
    key = config_hash(config)
    started = provenance()  # the code that ran, taken before it runs (the tree may change meanwhile)
    metrics_path = out / "metrics.json"
    if metrics_path.exists() and json.loads(metrics_path.read_text()).get("config_key") == key:
        log.info("%s %s: done already (%s)", method, concept, metrics_path)
        return json.loads(metrics_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {**config, "config_key": key})
    pipe = T2IPipeline.from_pretrained(settings.model)

    edit_dir, report_path = out / "edit", out / "report.json"
    if report_path.exists() and json.loads(report_path.read_text()).get("config_key") == key and edit_dir.is_dir():
        edit, report = load_edit(edit_dir), json.loads(report_path.read_text())
    else:
        data = split_for_target(
            load_benchmark_data(settings.benchmark, settings.data),
            concept,
            catalogue,
            object_surrogate=settings.object_surrogate,
        )
        with CostMeter(pipe.device) as cost:
            edit, report = spec.unlearn(pipe, data, method_cfg)
        edit.save(edit_dir)
        if report.get("saliency"):
            from spare.methods.saliency import plot_saliency

            plot_saliency(report["saliency"], out / "saliency.png", kept=report.get("adapted_modules"))
        report.update(
            config_key=key,
            time_s=cost.wall_time_s,
            memory_gb=cost.peak_memory_gb,
            memory_kind=cost.memory_kind,
            storage_bytes=edit_size_bytes(edit_dir),
        )
        write_json(report_path, report)
    if not evaluate:
        return report

    answers_dir = out / "answers"
    edit.apply(pipe.unet)
    try:
        grid = generate_answer_set(pipe, catalogue, settings.sampling, answers_dir, desc=f"{method} {concept} answers")
    finally:
        edit.remove(pipe.unet)
    result = _evaluate(grid, concept, settings)
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
        trainable_params=report.get("trainable_params"),
        trainable_share=report.get("trainable_share"),
        provenance=started,
    )
    write_json(metrics_path, result)
    return result


def _evaluate(grid, concept, settings: RunSettings) -> dict:
    catalogue = get_catalogue(settings.benchmark)
    clf_dir = Path(settings.classifiers)
    style_clf, object_clf = load_classifier(clf_dir / "style"), load_classifier(clf_dir / "object")
    extractor = make_extractor(settings.inception, style_clf)
    real = real_reference(load_fid_real_images(settings.benchmark, settings.data), extractor, catalogue)
    images = load_images(list(grid["path"]))
    return evaluate_answers(
        grid, images, catalogue, style_clf, object_clf, target=concept, real=real, extractor=extractor
    )


def evaluate_base(target: str, settings: RunSettings) -> dict:
    """The base model's metrics for ``target`` (what unlearning is compared with).

    The base answer set is generated once per sampling config and shared by every target.
    """
    catalogue = get_catalogue(settings.benchmark)
    concept = catalogue.target(target)
    key = config_hash(
        {"model": settings.model, "sampling": to_dict(settings.sampling), "classifiers": settings.classifiers}
    )
    base = Path(settings.runs_dir) / catalogue.name / "base"
    metrics_path = base / concept.slug / "metrics.json"
    if metrics_path.exists() and json.loads(metrics_path.read_text()).get("config_key") == key:
        return json.loads(metrics_path.read_text())
    pipe = T2IPipeline.from_pretrained(settings.model)
    grid = generate_answer_set(pipe, catalogue, settings.sampling, base / f"answers-{key}", desc="base answers")
    result = _evaluate(grid, concept, settings)
    result.update(method="base", config_key=key, provenance=provenance())
    write_json(metrics_path, result)
    return result
