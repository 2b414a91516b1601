"""Commands that unlearn and measure: single runs, sweeps, ablations, attacks, sequences, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from spare.cli import world
from spare.cli.common import _add_benchmark_arg, _add_config_args, _add_sweep_args, _sweep_options, at_least
from spare.concepts import get_catalogue
from spare.errors import UserError
from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS


def _seeds_and_overrides(raw: list[str] | None, overrides: list[str]) -> tuple[tuple[int, ...] | None, list[str]]:
    """``--seeds`` takes every word after it, so ``--seeds 188 q=0.5`` hands it the override too:
    its integers are the seeds, a ``key=value`` after them goes back to the overrides."""
    if not raw:
        return None, overrides
    seeds, moved = [], []
    for word in raw:
        if "=" in word:
            moved.append(word)
        elif word.lstrip("-").isdigit() and not moved:
            seeds.append(int(word))
        else:
            raise UserError(f"--seeds takes integers (answer seeds), got {word!r}")
    if not seeds:
        raise UserError("--seeds needs at least one integer answer seed")
    return tuple(seeds), moved + list(overrides)


def cmd_unlearn(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmarks.presets import method_defaults, world_preset
    from spare.config import apply_overrides
    from spare.run import RunSettings, evaluate_base, run_dir, run_unlearning

    seeds, args.overrides = _seeds_and_overrides(args.seeds, args.overrides)
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
        "seeds": seeds,
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
            world.cmd_classifiers(argparse.Namespace(config=None, overrides=[f"out_dir={MINI_CLASSIFIERS}"]))
    return run_sweep(sweep, **_sweep_options(args, results_dir=args.results, results_root=Path(preset.results_root)))


def cmd_ablation(args: argparse.Namespace) -> int:
    from benchmarks.ablations import get_ablation, reporter
    from benchmarks.runner import build_sweep, run_sweep
    from benchmarks.tuning import GRID, RESULTS, tuning_reporter

    preset = get_ablation(args.name)
    sweep = build_sweep(preset, targets=args.targets, runs_dir=args.runs)
    if args.name == GRID and not args.targets:  # the tuning grid: its tables and the choice in results/tuning
        options = _sweep_options(args, results_dir=args.results or RESULTS)
        return run_sweep(sweep, report=tuning_reporter(preset), **options)
    root = args.results or "results/ablations"
    return run_sweep(sweep, report=reporter(preset), **_sweep_options(args, results_root=root))


def cmd_attack(args: argparse.Namespace) -> int:
    from spare.attack import AttackConfig
    from spare.config import load_config
    from spare.stages.attack import attack_folder, attack_run

    cfg = load_config(AttackConfig, args.config, args.overrides)
    result = attack_run(args.run, cfg)
    before = "-" if result["UA_before"] is None else f"{result['UA_before']:.2f}"
    asr = "-" if result["ASR"] is None else f"{result['ASR']:.2f}"
    what = "the control (random prefixes)" if cfg.control else "attack"
    print(
        f"{result['method']} {result['target']}: UA {before} -> Rob. {result['Rob']:.2f} under {what} "
        f"(ASR {asr}%: {result['broken']} of {result['forgotten_before']} forgotten images brought back; "
        f"{result['rows']} images), {result['cost']['time_s']:.0f}s; in {Path(args.run) / attack_folder(cfg)}"
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
        preset,
        methods,
        runs_dir=args.runs,
        results=args.results,
        dry_run=args.dry_run,
        wandb_mode=args.wandb,
        restore=args.restore,
        tables_only=args.tables_only,
    )


def register(sub) -> None:
    """Add this module's commands to the ``spare`` sub-parsers."""
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
    p.add_argument("--seeds", nargs="+", default=None, help="answer seeds (default: the world's)")
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
    p.add_argument("--tables-only", action="store_true", help="only rewrite the tables of the finished steps")
    p.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    p.add_argument("--results", default="results/sequential", help="tables folder (default: results/sequential)")
    p.add_argument("--wandb", default="offline", help="W&B mirror: off, offline (default) or online")
    p.add_argument(
        "--restore",
        action="store_true",
        help="first take the whole sequences stored beside the tables (<results>/<preset>/configs/, same keys),"
        " e.g. to continue a committed sweep from a fresh clone",
    )
    p.add_argument("overrides", nargs="*", help="with --targets: method config overrides, e.g. optim.steps=100")
    p.set_defaults(func=cmd_sequential)
