"""Command line: ``spare <command>`` (also ``python -m spare <command>``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from spare.concepts import catalogue_names, get_catalogue
from spare.errors import UserError
from spare.paths import DEFAULT_PREVIEW, MINI_BASE_MODEL, MINI_CLASSIFIERS

log = logging.getLogger("spare")


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument answered in one line naming it (not a usage block)."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def at_least(minimum: float, kind: type = int):
    """An argparse type: a number of ``kind`` >= ``minimum``, else a one-line error with the range."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse


def _add_benchmark_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", default="mini", help=f"benchmark world: {', '.join(catalogue_names())} (default: mini)"
    )
    parser.add_argument("--data", default=None, help="UnlearnCanvas folder, parquet shards, saved dataset or hub id")


def _add_sweep_args(parser: argparse.ArgumentParser, results_help: str) -> None:
    """The options every sweep command shares (spare benchmark, spare ablation)."""
    parser.add_argument("--dry-run", action="store_true", help="print the job list (done / to run) and stop")
    parser.add_argument("--limit", type=at_least(1), default=None, help="run only the first N jobs of the plan")
    parser.add_argument("--tables-only", action="store_true", help="only render the tables of the finished jobs")
    parser.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    parser.add_argument("--results", default=None, help=results_help)
    parser.add_argument("--wandb", default="offline", help="W&B mirror: off, offline (default) or online")
    parser.add_argument(
        "--restore",
        action="store_true",
        help="first take the finished runs stored beside the tables (<results>/configs/, same config key), "
        "e.g. to continue a committed sweep from a fresh clone",
    )


def _sweep_options(args: argparse.Namespace, **results) -> dict:
    return {
        **results,
        "limit": args.limit,
        "dry_run": args.dry_run,
        "tables_only": args.tables_only,
        "wandb_mode": args.wandb,
        "restore": args.restore,
    }


def _add_config_args(parser: argparse.ArgumentParser, config_name: str, example: str) -> None:
    parser.add_argument("--config", default=None, help=f"YAML file with {config_name} fields")
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {example}")


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


def cmd_benchmark(args: argparse.Namespace) -> int:
    from benchmarks.presets import get_preset
    from benchmarks.runner import build_sweep, run_sweep

    preset = get_preset(args.preset)
    if args.benchmark:
        preset.benchmark = args.benchmark
    sweep = build_sweep(
        preset,
        methods=args.methods,
        targets=args.targets,
        model=args.model,
        classifiers=args.classifiers,
        data=args.data,
        inception=args.inception,
        runs_dir=args.runs,
    )
    is_mini = sweep.catalogue.name == "mini"
    if not args.dry_run and is_mini and Path(sweep.settings.classifiers) == MINI_CLASSIFIERS:
        if not (MINI_CLASSIFIERS / "style" / "model.safetensors").exists():
            print(f"{MINI_CLASSIFIERS} not found: training them (about 5 minutes on 2 cores)")
            cmd_classifiers(argparse.Namespace(config=None, overrides=[f"out_dir={MINI_CLASSIFIERS}"]))
    return run_sweep(sweep, **_sweep_options(args, results_dir=args.results, results_root=Path(preset.results_root)))


def cmd_ablation(args: argparse.Namespace) -> int:
    from benchmarks.ablations import get_ablation, reporter
    from benchmarks.runner import build_sweep, run_sweep

    preset = get_ablation(args.name)
    sweep = build_sweep(preset, targets=args.targets, runs_dir=args.runs)
    root = args.results or "results/ablations"
    return run_sweep(sweep, report=reporter(preset), **_sweep_options(args, results_root=root))


def cmd_base_quality(args: argparse.Namespace) -> int:
    from benchmarks import base_model_quality

    return base_model_quality.main(args.rest)


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


def cmd_unlearn(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmarks.presets import method_defaults, world_preset
    from spare.config import apply_overrides
    from spare.run import RunSettings, evaluate_base, run_dir, run_unlearning

    catalogue = get_catalogue(args.benchmark)
    concept = catalogue.target(args.target)
    world = world_preset(catalogue.name)  # the world's protocol and per-method settings, as its sweeps use them
    cfg = apply_overrides(method_defaults(world, args.method), args.overrides)
    is_mini = catalogue.name == "mini"
    model = args.model or (str(MINI_BASE_MODEL) if is_mini else None)
    classifiers = args.classifiers or (str(MINI_CLASSIFIERS) if is_mini else None)
    if model is None or classifiers is None:
        raise UserError(f"benchmark {catalogue.name!r} needs --model DIR and --classifiers DIR")
    given = {
        "seeds": tuple(args.seeds) if args.seeds else None,
        "steps": args.sample_steps,
        "guidance": args.guidance,
        "sampler": args.sampler,
        "precision": args.precision,
    }
    sampling = dataclasses.replace(world.sampling, **{k: v for k, v in given.items() if v is not None})
    settings = RunSettings(
        args.benchmark, model, classifiers, args.data, args.surrogate, args.inception, sampling, tag=args.tag
    )
    from spare.validate import validate_inputs

    validate_inputs(catalogue, model, classifiers, args.data, [concept], args.surrogate)  # all problems, before work
    result = run_unlearning(args.method, str(concept), cfg, settings, evaluate=not args.no_eval)
    out = run_dir(settings, args.method, concept.slug)
    if args.no_eval:
        print(f"{args.method} {concept}: edit in {out}/edit, {result['time_s']:.0f}s, {result['storage_bytes']} bytes")
        return 0
    base = evaluate_base(str(concept), settings)
    print(f"{args.method} {concept}  (run folder {out})")
    print(f"  {'metric':12s} {'base':>9s} {args.method:>9s}")
    for name, m in result["metrics"].items():
        b = base["metrics"].get(name, {}).get("value")
        print(f"  {name:12s} {'' if b is None else f'{b:9.2f}':>9s} {m['value']:9.2f}")
    print(
        f"  trainable parameters {result['trainable_params']} ({100 * result['trainable_share']:.2f}% of the UNet), "
        f"edit {result['storage_bytes']} bytes"
    )
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from spare.attack import AttackConfig
    from spare.config import load_config
    from spare.stages.attack import attack_run

    result = attack_run(args.run, load_config(AttackConfig, args.config, args.overrides))
    before = "-" if result["UA_before"] is None else f"{result['UA_before']:.2f}"
    asr = "-" if result["ASR"] is None else f"{result['ASR']:.2f}"
    print(
        f"{result['method']} {result['target']}: UA {before} -> Rob. {result['Rob']:.2f} under attack "
        f"(ASR {asr}%: {result['broken']} of {result['forgotten_before']} forgotten images brought back; "
        f"{result['rows']} images), {result['cost']['time_s']:.0f}s; in {Path(args.run) / 'attack'}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from spare.stages.export import export_run

    record = export_run(args.run, args.out)
    print(f"{record['method']} {record['target']}: wrote {', '.join(record['written'])} under {args.out}")
    if record["lora_skipped"]:
        print(f"  no LoRA: {record['lora_skipped']}")
    return 0


def cmd_sequential(args: argparse.Namespace) -> int:
    from benchmarks.sequential import SequencePreset, get_sequence_preset, run_sequences

    if args.targets:
        method = args.method or "spare"
        preset = SequencePreset(
            name=args.name, description="a sequence from the command line", targets=tuple(args.targets),
            methods=(method,), overrides={method: list(args.overrides)},
        )  # fmt: skip
    else:
        preset = get_sequence_preset(args.preset)
        if args.overrides:
            raise UserError("key=value overrides go with --method and --targets (a preset has its own)")
    methods = args.methods or ([args.method] if args.method else None)
    return run_sequences(
        preset, methods, runs_dir=args.runs, results=args.results, dry_run=args.dry_run, wandb_mode=args.wandb
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="spare", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="a Python file that registers a method of your own (repeatable; also $SPARE_PLUGINS)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("unlearn", help="unlearn one target with one method, then evaluate it")
    _add_benchmark_arg(p)
    p.add_argument("--method", default="spare", help="a registered method (default: spare)")
    p.add_argument("--target", required=True, help="style:<Name> or object:<Name>")
    p.add_argument("--model", default=None, help="base model folder (canvas-mini: the committed one)")
    p.add_argument("--classifiers", default=None, help="classifiers folder (canvas-mini: the committed ones)")
    p.add_argument("--surrogate", default=None, help="surrogate object for an object target")
    p.add_argument("--inception", default=None, help="local Inception-v3 weights for FID")
    # sampling and the method's budget default to the world's protocol (benchmarks.presets.world_preset):
    # canvas-mini mini-full's (seeds 188..888, 25 DPM++ steps, guidance 9, precision auto),
    # UnlearnCanvas's (100 DDIM steps, guidance 9, every method at its published steps and lr)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="answer seeds (default: the world's)")
    p.add_argument("--sample-steps", type=at_least(1), default=None, help="default: the world's")
    p.add_argument("--guidance", type=at_least(0.0, float), default=None, help="default: the world's")
    p.add_argument("--sampler", default=None, help="ddim or dpm (default: the world's)")
    p.add_argument(
        "--precision",
        default=None,
        help="answer-set sampling: fp32, bf16 (autocast) or auto (bf16 where native); default: the world's",
    )
    p.add_argument("--no-eval", action="store_true", help="only unlearn and save the edit")
    p.add_argument("--tag", default="", help="name of this variant; its run folder is <kind>-<Name>@<tag>")
    p.add_argument("overrides", nargs="*", help="method config overrides, e.g. optim.steps=200 q=0.25")
    p.set_defaults(func=cmd_unlearn)

    p = sub.add_parser("attack", help="adversarial prompt attack (UnlearnDiffAtk) on a finished run: Rob. and ASR")
    p.add_argument("--run", required=True, help="a finished run folder, e.g. runs/mini/esd/style-Ink_Outline")
    _add_config_args(p, "AttackConfig", "iterations=40 tokens=3")
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("export", help="a finished run's model for plain diffusers: merged pipeline (+ LoRA)")
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--out", required=True, help="an empty or new folder (or an earlier export, replaced)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sequential", help="sequential unlearning (SU / SR): targets removed one after another")
    p.add_argument("--preset", default="mini-sequential", help="a sequence preset (default: mini-sequential)")
    p.add_argument("--methods", nargs="+", default=None, help="only these methods (default: the preset's, or all)")
    p.add_argument("--method", default=None, help="with --targets: the one method of an ad hoc sequence")
    p.add_argument("--targets", nargs="+", default=None, help="an ad hoc sequence, in order: style:A style:B ...")
    p.add_argument("--name", default="custom", help="an ad hoc sequence's folder name (default: custom)")
    p.add_argument("--dry-run", action="store_true", help="print the steps (done / to do) and stop")
    p.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    p.add_argument("--results", default="results/sequential", help="tables folder (default: results/sequential)")
    p.add_argument("--wandb", default="offline", help="W&B mirror: off, offline (default) or online")
    p.add_argument("overrides", nargs="*", help="with --targets: method config overrides, e.g. optim.steps=100")
    p.set_defaults(func=cmd_sequential)

    p = sub.add_parser("base-quality", help="answer set of the base model read by the classifiers", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of python -m benchmarks.base_model_quality")
    p.set_defaults(func=cmd_base_quality)

    p = sub.add_parser("benchmark", help="run (or resume) a sweep: every target x method of a preset, then tables")
    p.add_argument("--preset", default="mini-quick", help="mini-quick (default), mini-full, unlearncanvas or a .yaml")
    p.add_argument("--methods", nargs="+", default=None, help="only these registered methods")
    p.add_argument("--targets", nargs="+", default=None, help="only these targets (style:<Name> / object:<Name>)")
    _add_sweep_args(
        p,
        "tables folder (default: results/benchmark/<preset>, or results/benchmark/<preset>-subsets/<hash> "
        "when --methods, --targets or --limit narrow the plan)",
    )
    p.add_argument("--benchmark", default=None, help="override the preset's world (mini, unlearncanvas)")
    p.add_argument("--model", default=None, help="base model folder (canvas-mini: the committed one)")
    p.add_argument("--classifiers", default=None, help="classifiers folder (canvas-mini: the committed ones)")
    p.add_argument("--data", default=None, help="UnlearnCanvas folder, parquet shards or saved dataset")
    p.add_argument("--inception", default=None, help="local Inception-v3 FID weights (else FID on classifier features)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("ablation", help="run (or resume) one ablation (ablations/<name>.yaml), then its table and plot")
    p.add_argument("name", help="an ablation: a file ablations/<name>.yaml (an unknown name lists them)")
    p.add_argument("--targets", nargs="+", default=None, help="override the ablation's validation targets")
    _add_sweep_args(
        p,
        "parent folder of the tables: they go to <results>/<name>, or to <results>/<name>-subsets/<hash> "
        "when --targets or --limit narrow the plan (default: results/ablations)",
    )
    p.set_defaults(func=cmd_ablation)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    import datasets

    datasets.disable_progress_bars()  # the harness shows its own bars; per-filter bars are noise (also on a terminal)
    try:
        from spare.methods import load_plugin

        for path in args.plugin:
            load_plugin(path)
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as why:  # Ctrl-C or SIGTERM (sweeps turn it into this)
        print(f"\ninterrupted ({why or 'Ctrl-C'}); finished work is kept: run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
