"""Sequential unlearning sweeps (UnlearnCanvas SU / SR) and their tables.

    spare sequential --preset mini-sequential [--methods esd uce ...] [--dry-run | --tables-only]
    spare sequential --method esd --targets style:A style:B ... [--name NAME]
    accelerate launch --multi_gpu --num_processes 2 -m spare sequential --preset mini-sequential

A sequence preset names the targets in their order; every method runs the whole sequence at
its world defaults (:func:`benchmarks.presets.method_defaults`) and the preset's own tuning
choice (``tuned``: none for mini-sequential, so every method at the one rule, x0.4 published
steps and x30 published lr, whatever ``make tuning`` later picks for mini-full), each step starting from the
previous step's model (:mod:`spare.stages.sequential`). Tables, under ``results/sequential/<preset>/``:
    steps.{md,csv}      per method and step: UA of every target removed so far, RA and its parts
    published.{md,csv}  T1's UA and RA per step beside the published UnlearnCanvas rows
    rebound.png         T1's UA and RA against the step, one line per method, ours and published
A sequence's steps depend on each other, so processes take whole methods: of the methods whose
sequence is not finished, method i goes to process i mod N (:func:`shard_methods`); a process that has
finished its own takes the others' unstarted ones, from the ends of their lists, each method claimed
first so no two processes run it (:func:`benchmarks.runner.processes.work_order`). Each process
rewrites the tables after each sequence it finishes; the main one writes them last, after all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.presets import Preset, method_defaults, world_preset
from benchmarks.runner.processes import Processes, work_order
from benchmarks.runner.record import STORED
from benchmarks.runner.restore import checkout_of, moved_here, relocate
from benchmarks.tables import machine, write_table
from benchmarks.wandb_mirror import WandbMirror
from spare.answers import SamplingConfig
from spare.concepts import get_catalogue
from spare.config import apply_overrides, to_dict
from spare.errors import UserError
from spare.io import claim, copy_atomic, read_json_dict, write_json
from spare.methods import method_names
from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS, PROJECT_ROOT
from spare.progress import tqdm
from spare.run import RunSettings
from spare.stages.sequential import plan_sequence, run_sequence
from spare.viz import save_figure

# UnlearnCanvas, T1's UA after steps 1..6 and RA after steps 1..6 (%), styles (../shared/UNLEARNCANVAS.md, section 7)
PUBLISHED_SEQUENCE = {
    "esd": ((100, 99, 95, 87, 81, 75), (77.46, 52.94, 35.99, 24.86, 18.69, 12.95)),
    "fmn": ((88, 99, 99, 98, 99, 99), (82.39, 14.56, 13.34, 10.42, 9.83, 8.76)),
    "uce": ((93, 95, 98, 96, 97, 98), (81.42, 29.38, 18.72, 15.34, 13.32, 11.31)),
    "ca": ((58, 55, 59, 45, 44, 40), (97.24, 93.39, 84.46, 79.32, 71.40, 60.53)),
    "salun": ((84, 79, 78, 65, 67, 64), (85.43, 80.32, 71.42, 65.41, 63.24, 60.19)),
    "spm": ((55, 59, 50, 49, 47, 48), (72.39, 70.42, 67.89, 60.45, 55.32, 51.12)),
    "ediff": ((97, 93, 91, 93, 85, 90), (92.34, 89.37, 14.35, 12.31, 12.82, 7.42)),
    "shs": ((81, 73, 74, 93, 94, 97), (88.41, 84.32, 73.98, 69.19, 10.76, 10.11)),
}


@dataclass
class SequencePreset:
    """A sequence sweep: its ordered targets, methods, world and sampling (the world's by default)."""

    name: str
    description: str
    targets: tuple[str, ...]
    methods: tuple[str, ...] = ()  # empty: every registered method
    benchmark: str = "mini"
    overrides: dict[str, list[str]] = field(default_factory=dict)
    sampling: SamplingConfig | None = None  # None: the world preset's
    # the tuning choice applied on top of the defaults (a chosen.yaml, as in Preset.tuned); "": none,
    # every method at the world's rule. Not the world's: a sequence's keys must not move when a
    # tuning grid (for the main table) finishes, which would make every stored sequence stale.
    tuned: str = ""


SEQUENCE_PRESETS = {
    "mini-sequential": SequencePreset(
        name="mini-sequential",
        description="six canvas-mini styles removed one after another, in the catalogue's order "
        "(the first six; the validation style Pop_Halftone is not among them), every method",
        targets=tuple(
            f"style:{s}"
            for s in ("Ink_Outline", "Pencil_Hatch", "Neon_Outline", "Neon_Stripes", "Pastel_Flat", "Watercolor_Wash")
        ),
    ),
}


def get_sequence_preset(name: str) -> SequencePreset:
    if name not in SEQUENCE_PRESETS:
        raise UserError(f"unknown sequence preset {name!r}; valid: {', '.join(SEQUENCE_PRESETS)}")
    return dataclasses.replace(SEQUENCE_PRESETS[name])


def method_config(preset: SequencePreset, method: str):
    """``method``'s config in every step of ``preset``'s sequences: the world's defaults (budget and
    lr factors), the preset's tuning choice (``tuned``, none for mini-sequential) and its overrides."""
    world = dataclasses.replace(world_preset(preset.benchmark), tuned=preset.tuned)
    return apply_overrides(method_defaults(world, method), preset.overrides.get(method, []))


def settings_for(preset: SequencePreset, world: Preset, runs_dir: str) -> RunSettings:
    is_mini = get_catalogue(preset.benchmark).name == "mini"
    if not is_mini:
        raise UserError("sequence presets run on canvas-mini; the full world takes --model/--classifiers/--data")
    return RunSettings(
        benchmark=preset.benchmark,
        model=str(MINI_BASE_MODEL),
        classifiers=str(MINI_CLASSIFIERS),
        sampling=preset.sampling or world.sampling,
        runs_dir=runs_dir,
    )


def step_rows(results: list[dict], targets: list[str]) -> list[dict]:
    rows = []
    for r in results:
        row = {"method": r["method"], "step": r["step"], "removed": r["target"]}
        row.update({f"UA T{j + 1}": r["UA"].get(t) for j, t in enumerate(targets)})
        row.update(RA=r["RA"], **{"RA in-domain": r["RA_in_domain"], "RA cross-domain": r["RA_cross_domain"]})
        row.update(FID=r["FID"], **{"unlearning s": r["time_s"], "machine": machine(r.get("provenance") or {})})
        rows.append(row)
    return rows


def published_rows(steps: pd.DataFrame) -> pd.DataFrame:
    """T1's UA and RA per step: ours beside the published row of the same method."""
    rows = []
    for method, part in steps.groupby("method", sort=False):
        part = part.sort_values("step")
        ours = {"method": method, "source": "ours"}
        ours.update({f"T1 UA @{s}": v for s, v in zip(part["step"], part["UA T1"], strict=True)})
        ours.update({f"RA @{s}": v for s, v in zip(part["step"], part["RA"], strict=True)})
        rows.append(ours)
        if method in PUBLISHED_SEQUENCE:
            ua, ra = PUBLISHED_SEQUENCE[method]
            pub = {"method": method, "source": "published (UnlearnCanvas, SD-1.5)"}
            pub.update({f"T1 UA @{s + 1}": v for s, v in enumerate(ua)})
            pub.update({f"RA @{s + 1}": v for s, v in enumerate(ra)})
            rows.append(pub)
    return pd.DataFrame(rows)


def rebound_plot(steps: pd.DataFrame, path: Path, title: str) -> Path:
    """T1's UA and RA against the step: one line per method, ours solid, published dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4))
    colours = plt.get_cmap("tab10")
    for i, (method, part) in enumerate(steps.groupby("method", sort=False)):
        part = part.sort_values("step")
        for ax, col, pub in ((axes[0], "UA T1", 0), (axes[1], "RA", 1)):
            ax.plot(part["step"], part[col], "-o", color=colours(i % 10), label=method, markersize=4)
            if method in PUBLISHED_SEQUENCE:
                values = PUBLISHED_SEQUENCE[method][pub]
                ax.plot(range(1, len(values) + 1), values, "--", color=colours(i % 10), alpha=0.5)
    for ax, label in ((axes[0], "UA of T1, %"), (axes[1], "RA (retain accuracy), %")):
        ax.set_xlabel("step (targets removed)")
        ax.set_ylabel(label)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # beside the plots, where it hides no line
    fig.legend(
        handles, labels, loc="center right", fontsize=8, title="solid: ours\ndashed: published", title_fontsize=8
    )
    fig.suptitle(title)
    return save_figure(fig, path, rect=(0, 0, 0.89, 1))


def store_sequences(plans: dict, out: Path) -> None:
    """Each finished step's config and metrics beside the tables (``configs/<method>/<k>-<kind>-<Name>/``),
    from which :func:`restore_sequences` takes them back on a fresh clone or another machine."""
    for method, steps in plans.items():
        for step in steps:
            if step.done():
                for name in STORED:
                    copy_atomic(step.out / name, out / "configs" / method / step.out.name / name)


def restore_sequences(plans: dict, out: Path, dry_run: bool = False, elsewhere: dict | None = None) -> list[str]:
    """The methods whose whole sequence is stored beside the tables under this plan's keys, copied back
    into the runs folder (config and metrics: the tables, no edits; ``dry_run``: only named). A sequence
    stored only in part is not restored: its next step needs the edits of the steps before it, so it
    runs again whole. ``elsewhere`` ({checkout: plans}, from :func:`plans_elsewhere`): the same plans
    as a checkout at another path keyed them; a sequence stored there is restored with this
    checkout's paths and keys, so it is done here from then on."""
    restored = []
    for method, steps in plans.items():
        if all(s.done() for s in steps):
            continue
        stored = [out / "configs" / method / s.out.name for s in steps]
        keys = [  # each stored step's key, read once for every checkout's plan it is compared with
            (read_json_dict(src / "metrics.json") or {}).get("config_key") if (src / "config.json").is_file() else None
            for src in stored
        ]
        for theirs in [steps, *(other[method] for other in (elsewhere or {}).values())]:
            if [t.key for t in theirs] == keys:
                break
        else:
            continue
        for step, src in zip(steps, stored, strict=True):
            for name in STORED if not dry_run else ():
                if theirs is steps:
                    copy_atomic(src / name, step.out / name)
                else:
                    write_json(step.out / name, moved_here(read_json_dict(src / name) or {}, step))
        restored.append(method)
    return restored


def plans_elsewhere(chosen: list[str], targets: list[str], configs: dict, settings: RunSettings, name: str, out: Path):
    """{checkout: plans} for each other checkout whose sequences are stored in ``out/configs`` (read from
    the stored steps' settings): this sweep's plans as that checkout keyed them, its paths moved there."""
    found: dict[Path, dict] = {}
    for path in sorted((out / "configs").glob("*/*/config.json")):
        stored = (read_json_dict(path) or {}).get("settings")
        other = checkout_of(stored, settings, PROJECT_ROOT) if isinstance(stored, dict) else None
        if other is not None and other not in found:
            moved = relocate(settings, PROJECT_ROOT, other)
            found[other] = {m: plan_sequence(m, targets, configs[m], moved, name) for m in chosen}
    return found


def run_sequences(
    preset: SequencePreset,
    methods: list[str] | None = None,
    runs_dir: str = "runs",
    results: str | Path = "results/sequential",
    dry_run: bool = False,
    wandb_mode: str = "offline",
    restore: bool = False,
    tables_only: bool = False,
) -> int:
    """Every method's sequence (resumable), then the tables from the steps' metrics files, rewritten
    after each method's sequence (so a stopped sweep leaves the tables of what it finished).
    ``restore``: first take the whole sequences stored beside the tables (:func:`restore_sequences`);
    ``tables_only``: run nothing, only rewrite the tables from the steps already finished."""
    world = world_preset(preset.benchmark)
    chosen = list(methods or preset.methods or method_names())
    settings = settings_for(preset, world, runs_dir)
    configs = {m: method_config(preset, m) for m in chosen}
    plans = {m: plan_sequence(m, list(preset.targets), configs[m], settings, preset.name) for m in chosen}
    out = Path(results) / preset.name
    procs = Processes()
    if restore:
        restored = []
        if procs.main:
            elsewhere = plans_elsewhere(chosen, list(preset.targets), configs, settings, preset.name, out)
            restored = restore_sequences(plans, out, dry_run, elsewhere)
        procs.barrier()  # no process looks at what is done before the restore
        if procs.main:
            said = "would restore" if dry_run else "restored"
            print(
                f"{said} {len(restored)} finished sequences from {out / 'configs'}"
                + (f": {', '.join(restored)}" if restored else "")
            )
    todo = [m for m in chosen if not all(s.done() for s in plans[m])]
    mine, others = work_order([shard_methods(todo, r, procs.world) for r in range(procs.world)], procs.rank)
    if procs.main:
        owner = {m: r for r in range(procs.world) for m in shard_methods(todo, r, procs.world)}
        print(f"sequence preset {preset.name}: {preset.description}")
        print(f"  {len(chosen)} methods x {len(preset.targets)} steps: " + " -> ".join(preset.targets))
        for m, steps in plans.items():
            shard = f"  process {owner[m]}" if procs.world > 1 and m in owner else ""
            marks = " ".join("[done]" if s.done() else "[todo]" for s in steps)
            print(f"    {m:8s} {marks}  {steps[0].out.parent}{shard}")
    if dry_run:
        return 0
    if tables_only:
        return write_sequence_tables(preset, plans, out, wandb_mode) if procs.main else 0
    failed = []
    desc = f"sequences {preset.name}" + (f" [{procs.rank}/{procs.world}]" if procs.world > 1 else "")
    for m in tqdm([*mine, *others], desc=desc, unit="method"):  # its own, then helping (work_order)
        with claim(plans[m][0].out.parent) as claimed:
            if not claimed or all(s.done() for s in plans[m]):  # another process has it, or had it
                continue
            try:
                run_sequence(m, list(preset.targets), configs[m], settings, preset.name)
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as err:  # one broken method must not stop the others
                print(f"{m}: failed ({err.__class__.__name__}: {err})")
                failed.append(m)
            else:  # what is finished is on disk beside the tables before the next method starts
                write_sequence_tables(preset, plans, out, "off")
    procs.barrier()  # the last tables wait for every process's sequences
    if not procs.main:
        return 1 if failed else 0
    return write_sequence_tables(preset, plans, out, wandb_mode) or (1 if failed else 0)


def shard_methods(todo: list[str], rank: int, world: int) -> list[str]:
    """This process's methods: of the unfinished ones, in order, every world-th from ``rank``."""
    return todo[rank::world]


def write_sequence_tables(preset: SequencePreset, plans: dict, out: Path, wandb_mode: str = "off") -> int:
    import json

    results, missing = [], []
    for m, steps in plans.items():
        for s in steps:
            if s.done():
                results.append(json.loads(s.metrics_path.read_text()))
            else:
                missing.append(f"{m} step {s.index}")
    if not results:
        print("no finished steps to tabulate")
        return 1
    steps = pd.DataFrame(step_rows(results, list(preset.targets)))
    gaps = f"Missing steps (not filled in): {', '.join(missing)}." if missing else ""
    order = " -> ".join(f"T{i + 1} {t}" for i, t in enumerate(preset.targets))
    note = (
        f"Order: {order}. UA Tj: 1 - accuracy on Tj's images after the step (blank before Tj is removed); RA: the "
        "mean of the in-domain part (styles not removed yet) and the cross-domain part (objects). Each step starts "
        "from the previous step's model (edits merged). unlearning s: the step's training alone (not its answer set "
        "or scoring), measured on the machine in its row: "
        f"compare times only within one machine. {gaps}"
    )
    write_table(steps, out / "steps", f"{preset.name}: every method, step by step", note)
    table = published_rows(steps)
    write_table(
        table,
        out / "published",
        f"{preset.name}: T1's UA and RA per step beside UnlearnCanvas",
        "Published rows: Stable Diffusion v1.5 on UnlearnCanvas, six styles whose names and order were not "
        "published; ours: canvas-mini. Compare the shapes (rebound, collapse), not the values.",
    )
    plot = rebound_plot(steps, out / "rebound.png", f"{preset.name}: rebound and retention")
    write_json(out / "preset.json", to_dict(preset) | {"missing": missing})
    store_sequences(plans, out)
    mirror = WandbMirror(wandb_mode, project="spare-unlearncanvas", group=preset.name, root=Path("runs"))
    mirror.log_sweep(preset.name, to_dict(preset), {"steps": steps, "published": table}, plot)
    print(steps.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"tables: {out / 'steps.md'}, {out / 'published.md'}, {plot}")
    return 1 if missing else 0
