"""How well the base model renders every concept: its answer set read by the classifiers.

    python -m benchmarks.base_model_quality [--model DIR] [--classifiers DIR] [--seeds 188 288]
    (also: spare base-quality ...)

Generates the base model's answer set (every style incl. photo x every object x seeds),
scores it with the evaluators, and writes under ``results/base_model/``: ``quality.json``
(all metrics), ``per_concept_accuracy.csv`` / ``.md`` (style and object accuracy of every
concept) and ``answer_grid.png`` (styles x objects, first seed). The bar the base model must
pass: mean style and object accuracy >= 90%, no single concept below 70%.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from evaluators.classifiers import load_classifier
from evaluators.evaluate import evaluate_answers, load_images, real_reference
from evaluators.fid import make_extractor
from spare.answers import UNLEARNCANVAS_SEEDS, SamplingConfig, generate_answer_set
from spare.concepts import get_catalogue
from spare.config import to_dict
from spare.data import load_fid_real_images
from spare.io import atomic_path, write_json
from spare.pipeline import T2IPipeline
from spare.provenance import provenance
from spare.viz import image_grid, save_png

BAR_MEAN, BAR_MIN = 90.0, 70.0


def per_concept_table(result: dict) -> pd.DataFrame:
    rows = [{"kind": "style", "concept": k, "accuracy": v} for k, v in result["style_accuracy"].items()]
    rows += [{"kind": "object", "concept": k, "accuracy": v} for k, v in result["object_accuracy"].items()]
    return pd.DataFrame(rows)


def run(
    model: str, classifiers: str, benchmark: str, sampling: SamplingConfig, work_dir: str, results_dir: str
) -> dict:
    catalogue = get_catalogue(benchmark)
    pipe = T2IPipeline.from_pretrained(model)
    style_clf, object_clf = load_classifier(Path(classifiers) / "style"), load_classifier(Path(classifiers) / "object")
    start = time.perf_counter()
    grid = generate_answer_set(pipe, catalogue, sampling, work_dir, desc="base answer set")
    gen_time = time.perf_counter() - start
    images = load_images(list(grid["path"]))
    extractor = make_extractor(None, style_clf)
    real = real_reference(load_fid_real_images(benchmark), extractor, catalogue)
    result = evaluate_answers(grid, images, catalogue, style_clf, object_clf, real=real, extractor=extractor)
    m = {k: v["value"] for k, v in result["metrics"].items()}
    means_ok = m["style_acc"] >= BAR_MEAN and m["object_acc"] >= BAR_MEAN
    passed = means_ok and min(m["min_style_acc"], m["min_object_acc"]) >= BAR_MIN
    result.update(
        model=model, sampling=to_dict(sampling), generation_time_s=gen_time, passes_bar=passed, provenance=provenance()
    )
    out = Path(results_dir)
    write_json(out / "quality.json", result)
    table = per_concept_table(result)
    with atomic_path(out / "per_concept_accuracy.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "per_concept_accuracy.md") as tmp:
        tmp.write_text(table.to_markdown(index=False, floatfmt=".1f") + "\n")
    first = grid[grid["seed"] == sampling.seeds[0]]
    cells = [[images[i] for i in first.index[first["style"] == s]] for s in catalogue.style_classes]
    title = f"base model answer set, seed {sampling.seeds[0]}"
    save_png(image_grid(cells, catalogue.style_classes, list(catalogue.objects), title=title), out / "answer_grid.png")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/canvas-mini-base")
    parser.add_argument("--classifiers", default="models/canvas-mini-classifiers")
    parser.add_argument("--benchmark", default="mini")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(UNLEARNCANVAS_SEEDS))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=SamplingConfig.guidance)
    parser.add_argument("--sampler", default=SamplingConfig.sampler, help="ddim or dpm")
    parser.add_argument("--work-dir", default="runs/mini/base/answers")
    parser.add_argument("--results-dir", default="results/base_model")
    args = parser.parse_args(argv)
    sampling = SamplingConfig(seeds=tuple(args.seeds), steps=args.steps, guidance=args.guidance, sampler=args.sampler)
    result = run(args.model, args.classifiers, args.benchmark, sampling, args.work_dir, args.results_dir)
    m = {k: v["value"] for k, v in result["metrics"].items()}
    print(
        f"base model {args.model}: style accuracy {m['style_acc']:.1f}% (worst {m['min_style_acc']:.1f}%), "
        f"object accuracy {m['object_acc']:.1f}% (worst {m['min_object_acc']:.1f}%), "
        f"FID(cls) {m['FID(cls)']:.2f} on {result['n_images']} images; "
        f"bar (mean >= {BAR_MEAN:.0f}, min >= {BAR_MIN:.0f}): {'PASSED' if result['passes_bar'] else 'NOT MET'}"
    )
    print(f"wrote {args.results_dir}/quality.json, per_concept_accuracy.md, answer_grid.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
