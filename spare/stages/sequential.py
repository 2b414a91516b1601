"""Sequential unlearning (UnlearnCanvas SU / SR): targets removed one after another, each step
starting from the previous step's unlearned model.

    spare sequential --method esd --targets style:A style:B ... [--name NAME] [key=value ...]

Step k trains the method on target T_k, starting from the base model with the edits of steps
1..k-1 merged into its weights, in order. Every method's edit is merged the same way: a weight
edit writes its new values, an adapter (SPARE, SPM) is folded into the weights it adapts
(``Edit.merge``), and step k's new adapter is trained on top. Keeping the adapters side by side
instead (unmerged, the new one on top) computes the same function as merging them, so it would
change the results by rounding only, while merged steps keep one code path for every method;
side-by-side adapters (each step removable on its own) are not built.

Step k's retain set leaves out the targets removed before it (a method is never asked to keep
what an earlier request removed); its forget set and surrogate are T_k's as in a single run.

After each step, the answer set of the model with steps 1..k applied, scored:
    UA_j  for every target removed so far (1 - accuracy on T_j's images, %)
    RA    retain accuracy on everything not removed yet: the mean of (a) the mean accuracy over the
          benchmark concepts of the targets' kind not removed yet (as IRA) and (b) the mean
          accuracy over the other kind (as CRA); both parts are kept too
Folders ``runs/<world>/sequential/<method>/<name>[@tag]/<k>-<kind>-<Name>/`` hold each step's edit
(relative to the model before it), answers and metrics.json, keyed by the step's config and the
previous step's key: a killed sequence resumes at the step it was in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluators.cost import CostMeter
from evaluators.evaluate import evaluate_answers, load_images
from spare.answers import generate_answer_set
from spare.concepts import Catalogue, Concept, get_catalogue
from spare.config import hash_view, to_dict
from spare.data import load_benchmark_data, split_for_target
from spare.errors import UserError
from spare.io import config_hash, folder_lock, read_json_dict, write_json
from spare.methods import get_method
from spare.methods.contract import Unlearned, edited_part
from spare.methods.edits import edit_size_bytes, load_edit
from spare.methods.trainer import resolved_config
from spare.pipeline import T2IPipeline, default_device
from spare.provenance import provenance
from spare.run import PlannedRun, RunSettings, load_judges, real_features

log = logging.getLogger(__name__)

RULE = "merge"  # how step k's model is made from steps 1..k-1 (see the module docstring)


@dataclass(frozen=True)
class PlannedStep(PlannedRun):
    """One step of a sequence: its folder and key, its position (1-based) and target."""

    index: int = 0
    target: str = ""


def sequence_dir(settings: RunSettings, method: str, name: str) -> Path:
    folder = f"{name}@{settings.tag}" if settings.tag else name
    return Path(settings.runs_dir) / get_catalogue(settings.benchmark).name / "sequential" / method / folder


def plan_sequence(
    method: str, targets: list[str], method_cfg: Any, settings: RunSettings, name: str
) -> list[PlannedStep]:
    """The steps' folders and keys; step k's key hashes step k-1's, so a changed step redoes all after it."""
    catalogue = get_catalogue(settings.benchmark)
    get_method(method)
    concepts = [catalogue.target(t) for t in targets]
    if len(concepts) < 2:
        raise UserError("a sequence needs at least two targets")
    if len({str(c) for c in concepts}) != len(concepts):
        raise UserError(f"a sequence removes each target once; got {', '.join(map(str, concepts))}")
    method_cfg = resolved_config(method_cfg, default_device().type)
    root = sequence_dir(settings, method, name)
    steps, previous = [], "base"
    for k, concept in enumerate(concepts, 1):
        hashed = {
            "method": method,
            "target": str(concept),
            "step": k,
            "previous": previous,
            "rule": RULE,
            "method_config": hash_view(method_cfg),
            "settings": hash_view(settings),
        }
        previous = config_hash(hashed)
        steps.append(PlannedStep(root / f"{k}-{concept.slug}", hashed, previous, k, str(concept)))
    return steps


def sequence_metrics(result: dict, removed: list[Concept], catalogue: Catalogue) -> dict:
    """UA of every removed target and RA (with its two parts) from a scored answer set's accuracies."""
    acc = {"style": result["style_accuracy"], "object": result["object_accuracy"]}
    kind = removed[0].kind
    other = "object" if kind == "style" else "style"
    names = {"style": list(catalogue.styles), "object": list(catalogue.objects)}
    gone = {c.name for c in removed}
    kept_same = [acc[kind][n] for n in names[kind] if n not in gone]
    kept_other = [acc[other][n] for n in names[other]]
    ra_same = sum(kept_same) / len(kept_same) if kept_same else None
    ra_other = sum(kept_other) / len(kept_other)
    return {
        "UA": {str(c): 100 - acc[c.kind][c.name] for c in removed},
        "RA": (ra_same + ra_other) / 2 if ra_same is not None else ra_other,
        "RA_in_domain": ra_same,
        "RA_cross_domain": ra_other,
    }


def run_sequence(
    method: str, targets: list[str], method_cfg: Any, settings: RunSettings, name: str = "sequence"
) -> list[dict]:
    """Run (or resume) the sequence; returns every step's metrics."""
    catalogue = get_catalogue(settings.benchmark)
    concepts = [catalogue.target(t) for t in targets]
    kinds = {c.kind for c in concepts}
    if len(kinds) != 1:
        raise UserError("a sequence removes targets of one kind (all styles or all objects)")
    method_cfg = resolved_config(method_cfg, default_device().type)
    steps = plan_sequence(method, targets, method_cfg, settings, name)
    if all(s.done() for s in steps):
        return [json.loads(s.metrics_path.read_text()) for s in steps]
    spec = get_method(method)
    pipe = T2IPipeline.from_pretrained(settings.model, device=default_device())
    judges = load_judges(settings)
    real = real_features(settings, judges[2])
    dataset = load_benchmark_data(settings.benchmark, settings.data)
    results = []
    for step in steps:
        removed = concepts[: step.index]
        with folder_lock(step.out):
            if step.done():
                result = json.loads(step.metrics_path.read_text())
            else:
                result = _step(step, spec, pipe, dataset, removed, catalogue, method_cfg, settings, judges, real)
        earlier = load_edit(step.out / "edit")
        earlier.merge(edited_part(pipe, earlier))  # the next step starts from this model
        results.append(result)
    return results


def _step(step: PlannedStep, spec, pipe, dataset, removed, catalogue, method_cfg, settings, judges, real) -> dict:
    """Train step k on the model of steps 1..k-1 (skipped when its edit is there), then score it."""
    out, concept = step.out, removed[-1]
    started = provenance()
    config = {"method": spec.name, "target": str(concept), "step": step.index, "rule": RULE}
    config |= {"method_config": to_dict(method_cfg), "settings": to_dict(settings), "config_key": step.key}
    write_json(out / "config.json", config)
    report = read_json_dict(out / "report.json")
    if report is not None and report.get("config_key") == step.key and (out / "edit").is_dir():
        edit = load_edit(out / "edit")
    else:
        shutil.rmtree(out / "answers", ignore_errors=True)
        data = split_for_target(dataset, concept, catalogue, object_surrogate=settings.object_surrogate)
        earlier = {c.name for c in removed[:-1]}
        if earlier:  # never ask a method to keep what an earlier step removed
            column = concept.kind
            data = dataclasses.replace(
                data,
                retain=data.retain.filter(
                    lambda v: [x not in earlier for x in v], input_columns=[column], batched=True, keep_in_memory=True
                ),
            )
        with CostMeter(pipe.device) as cost:
            unlearned = spec.unlearn(pipe, data, method_cfg)
        if not isinstance(unlearned, Unlearned):
            raise TypeError(f"method {spec.name!r} returned {type(unlearned).__name__}, not an Unlearned")
        edit = unlearned.edit
        edit.save(out / "edit")
        report = unlearned.report() | {
            "config_key": step.key,
            "time_s": cost.wall_time_s,
            "cpu_time_s": cost.cpu_time_s,
            "memory_gb": cost.peak_memory_gb,
            "storage_bytes": edit_size_bytes(out / "edit"),
        }
        write_json(out / "report.json", report)
    edit.apply(edited_part(pipe, edit))
    try:
        grid = generate_answer_set(
            pipe, catalogue, settings.sampling, out / "answers", desc=f"{spec.name} step {step.index} answers"
        )
    finally:
        edit.remove(edited_part(pipe, edit))
    style_clf, object_clf, extractor = judges
    scored = evaluate_answers(
        grid, load_images(list(grid["path"])), catalogue, style_clf, object_clf, real=real, extractor=extractor
    )
    result = {
        "method": spec.name,
        "step": step.index,
        "target": str(concept),
        "removed": [str(c) for c in removed],
        "config_key": step.key,
        **sequence_metrics(scored, removed, catalogue),
        "FID": next((m["value"] for k, m in scored["metrics"].items() if k.startswith("FID")), None),
        "style_accuracy": scored["style_accuracy"],
        "object_accuracy": scored["object_accuracy"],
        "time_s": report["time_s"],
        "storage_bytes": report["storage_bytes"],
        "provenance": started,
    }
    write_json(step.metrics_path, result)
    return result
