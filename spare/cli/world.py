"""Commands about the world: concepts, data, classifiers, the base model, scoring a folder."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from spare.cli.common import _add_benchmark_arg, _add_config_args, at_least
from spare.concepts import get_catalogue
from spare.errors import UserError
from spare.paths import DEFAULT_PREVIEW, MINI_CLASSIFIERS


def cmd_concepts(args: argparse.Namespace) -> int:
    catalogue = get_catalogue(args.benchmark)
    counts = f"{len(catalogue.styles)} benchmark styles + {catalogue.photo}, {len(catalogue.objects)} objects"
    print(f"{catalogue.name}: {counts}")
    print("styles: ", ", ".join(catalogue.styles))
    if catalogue.extra_styles:
        print("outside the benchmark:", ", ".join(catalogue.extra_styles))
    print("objects:", ", ".join(catalogue.objects))
    print("prompt: ", catalogue.template, "e.g.", repr(catalogue.prompt(catalogue.styles[0], catalogue.objects[0])))
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from spare.data import load_benchmark_data

    options = {"n_per_pair": args.n_per_pair, "split": args.split} if args.data is None else {}
    dataset = load_benchmark_data(args.benchmark, args.data, **options)
    pairs = Counter(zip(dataset["style"], dataset["object"], strict=True))
    print(
        f"{len(dataset)} images, {len({s for s, _ in pairs})} styles x {len({o for _, o in pairs})} objects, "
        f"{min(pairs.values())}-{max(pairs.values())} per pair; columns: {', '.join(dataset.column_names)}"
    )
    if dataset.cache_files:
        print(f"cached at {Path(dataset.cache_files[0]['filename']).parent}")
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from spare.data import load_benchmark_data, split_for_target

    catalogue = get_catalogue(args.benchmark)
    target = catalogue.target(args.target)  # validate before rendering or reading anything
    data = split_for_target(
        load_benchmark_data(args.benchmark, args.data), target, catalogue, object_surrogate=args.surrogate
    )
    print(f"target {data.target}, surrogate {data.surrogate}")
    example = data.forget[0]
    print(f"forget: {len(data.forget)} images, e.g. {example['prompt']!r} -> {example['surrogate_prompt']!r}")
    print(f"retain: {len(data.retain)} images")
    return 0


def cmd_data_preview(args: argparse.Namespace) -> int:
    from spare.data.canvas_mini import preview_grid
    from spare.viz import save_png

    path = save_png(preview_grid(size=args.size, index=args.index, scale=args.scale), args.out)
    print(f"wrote {path}")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from spare.data.canvas_mini import canvas_mini_dataset
    from spare.io import atomic_path

    dataset = canvas_mini_dataset(args.n_per_pair, split=args.split)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        for row in dataset:
            folder = tmp / row["style"] / row["object"]
            folder.mkdir(parents=True, exist_ok=True)
            row["image"].save(folder / f"{row['index']}.png")
    print(f"wrote {len(dataset)} canvas-mini {args.split} images to {out}/<Style>/<Object>/<n>.png")
    return 0


def default_classifiers_dir(benchmark: str) -> Path | None:
    return MINI_CLASSIFIERS if get_catalogue(benchmark).name == "mini" else None


def cmd_classifiers(args: argparse.Namespace) -> int:
    from evaluators.classifier_training import ClassifiersConfig, train_benchmark_classifiers
    from spare.config import load_config

    cfg = load_config(ClassifiersConfig, args.config, args.overrides)
    start = time.perf_counter()
    reports = train_benchmark_classifiers(cfg)
    import pandas as pd

    for kind, r in reports.items():
        print(f"\n{kind} confusion matrix (rows: true, columns: predicted), held-out images:")
        short = [c[:6] for c in r["classes"]]
        print(pd.DataFrame(r["confusion"], index=r["classes"], columns=short).to_string())
    print()
    for kind, r in reports.items():
        worst = min(r["per_class_accuracy"].items(), key=lambda kv: kv[1])
        print(
            f"{kind:6s} classifier: held-out accuracy {100 * r['val_accuracy']:.2f}% on {r['val_images']} images "
            f"(worst class {worst[0]} {100 * worst[1]:.1f}%), trained in {r['train_wall_time_s']:.0f}s"
        )
    wall = time.perf_counter() - start
    print(f"total wall time {wall:.0f}s; models in {cfg.out_dir}, confusion matrices in {cfg.results_dir}")
    return 0


def cmd_import_classifiers(args: argparse.Namespace) -> int:
    from evaluators.classifiers import import_published, load_classifier

    written = import_published(
        get_catalogue(args.benchmark), args.style, args.object, args.out, arch=args.arch, input_size=args.input_size
    )
    for kind, path in written.items():
        clf = load_classifier(path)  # read back as every run will
        print(f"{kind}: {clf.meta['arch']}, {len(clf.classes)} classes, {clf.input_size} px -> {path}")
    print(f"use it with --classifiers {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evaluators.classifiers import load_classifier
    from evaluators.evaluate import evaluate_answers, load_images, read_answer_folder, real_reference
    from evaluators.fid import make_extractor
    from spare.data import load_fid_real_images
    from spare.io import write_json
    from spare.provenance import provenance

    catalogue = get_catalogue(args.benchmark)
    target = catalogue.target(args.target) if args.target else None
    clf_dir = Path(args.classifiers) if args.classifiers else default_classifiers_dir(args.benchmark)
    if clf_dir is None:
        raise UserError(f"benchmark {catalogue.name!r} needs --classifiers DIR (with style/ and object/ inside)")
    style_clf, object_clf = load_classifier(clf_dir / "style"), load_classifier(clf_dir / "object")
    answers = read_answer_folder(args.images, catalogue)
    images = load_images(list(answers["path"]))
    extractor = make_extractor(args.inception, style_clf)
    real = real_reference(load_fid_real_images(args.benchmark, args.data), extractor, catalogue)
    result = evaluate_answers(
        answers, images, catalogue, style_clf, object_clf, target=target, real=real, extractor=extractor
    )
    result.update(images_dir=str(args.images), classifiers=str(clf_dir), provenance=provenance())
    out = Path(args.out) if args.out else Path(args.images) / "metrics.json"
    write_json(out, result)
    print(f"{len(answers)} images, target {target or 'none'}")
    for name, m in result["metrics"].items():
        arrow = "higher is better" if m["higher_is_better"] else "lower is better"
        print(f"  {name:15s} {m['value']:8.2f}   ({arrow})")
    print("per style:  " + ", ".join(f"{k} {v:.0f}" for k, v in result["style_accuracy"].items()))
    print("per object: " + ", ".join(f"{k} {v:.0f}" for k, v in result["object_accuracy"].items()))
    print(f"wrote {out}")
    return 0


def cmd_base_model(args: argparse.Namespace) -> int:
    from spare.config import load_config
    from spare.train_base import BaseTrainConfig, train_base_model

    cfg = load_config(BaseTrainConfig, args.config, args.overrides)
    out = train_base_model(cfg)
    print(f"base model written to {out}")
    return 0


def cmd_base_quality(args: argparse.Namespace) -> int:
    from benchmarks import base_model_quality

    return base_model_quality.main(args.rest)


def register(sub) -> None:
    """Add this module's commands to the ``spare`` sub-parsers."""
    p = sub.add_parser("concepts", help="list the styles, objects and prompt template of a benchmark")
    _add_benchmark_arg(p)
    p.set_defaults(func=cmd_concepts)

    data = sub.add_parser("data", help="build, split or preview benchmark data").add_subparsers(
        dest="data_cmd", required=True
    )
    p = data.add_parser("build", help="render canvas-mini (cached) or load UnlearnCanvas, and summarise it")
    _add_benchmark_arg(p)
    p.add_argument("--n-per-pair", type=at_least(1), default=20)
    p.add_argument("--split", default="train", help="canvas-mini split: train, validation or test")
    p.set_defaults(func=cmd_data_build)
    p = data.add_parser("split", help="forget / retain sets and surrogate prompts of a target")
    _add_benchmark_arg(p)
    p.add_argument("--target", required=True, help="style:<Name> or object:<Name>")
    p.add_argument("--surrogate", default=None, help="surrogate object for an object target")
    p.set_defaults(func=cmd_data_split)
    p = data.add_parser("preview", help="canvas-mini preview grid PNG (styles x objects)")
    p.add_argument("--out", type=Path, default=DEFAULT_PREVIEW)
    p.add_argument("--size", type=at_least(1), default=32)
    p.add_argument("--index", type=int, default=0, help="which rendering of each pair")
    p.add_argument("--scale", type=at_least(1), default=3, help="pixel upscaling in the PNG")
    p.set_defaults(func=cmd_data_preview)

    p = data.add_parser("export", help="write canvas-mini renders as an answer-set folder <Style>/<Object>/<n>.png")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--n-per-pair", type=at_least(1), default=5)
    p.set_defaults(func=cmd_data_export)

    p = sub.add_parser("classifiers", help="train the style and object classifiers (make classifiers)")
    _add_config_args(p, "ClassifiersConfig", "style.epochs=2")
    p.set_defaults(func=cmd_classifiers)

    p = sub.add_parser(
        "import-classifiers", help="the published UnlearnCanvas .pth classifiers as a --classifiers folder"
    )
    p.add_argument("--style", required=True, help="style head checkpoint, e.g. style50.pth")
    p.add_argument("--object", required=True, help="object head checkpoint, e.g. style50_cls.pth")
    p.add_argument("--out", required=True, help="folder to write style/ and object/ into")
    p.add_argument("--benchmark", default="unlearncanvas", help="the catalogue whose class order the heads use")
    p.add_argument("--arch", default="vit_large_patch16_224.augreg_in21k", help="timm architecture of the heads")
    p.add_argument("--input-size", type=at_least(1), default=224)
    p.set_defaults(func=cmd_import_classifiers)

    p = sub.add_parser("evaluate", help="score a folder <Style>/<Object>/<seed>.png and write metrics.json")
    _add_benchmark_arg(p)
    p.add_argument("--images", required=True, help="answer-set folder")
    p.add_argument("--target", default=None, help="the unlearned concept (style:<Name> / object:<Name>), if any")
    p.add_argument("--classifiers", default=None, help="folder with style/ and object/ classifiers")
    p.add_argument("--inception", default=None, help="local Inception-v3 FID weights; without it FID(cls) is used")
    p.add_argument("--out", default=None, help="metrics file (default: <images>/metrics.json)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("base-model", help="train (or resume) the canvas-mini base text-to-image model")
    _add_config_args(p, "BaseTrainConfig", "steps=2000 model.layers_per_block=2")
    p.set_defaults(func=cmd_base_model)

    p = sub.add_parser("base-quality", help="answer set of the base model read by the classifiers", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of python -m benchmarks.base_model_quality")
    p.set_defaults(func=cmd_base_quality)
