"""Sweep presets: which world, targets, methods, seeds, sampling and budget a benchmark runs.

A preset is a plain dataclass, so a user preset is a YAML file with the same keys
(``spare benchmark --preset my_preset.yaml``); unknown keys are errors naming the valid ones.

Built in:
    mini-quick     the default of ``make benchmark``: one style and one object target, every
                   method, each method's steps x0.2 (one factor for all), one answer seed sampled
                   under bf16 autocast where the machine runs bf16 natively, else
                   fp32 (``precision: auto``, :mod:`spare.precision`). A smoke-scale table for a fresh clone on 2 cores.
    mini-full      every canvas-mini target (10 styles + 10 objects) x every method at the
                   methods' defaults x training seeds 0, 1, 2, and the five UnlearnCanvas
                   answer seeds.
    mini-robust    UnlearnCanvas "Rob.": every method on 2 styles + 2 objects, then the adversarial
                   prompt attack (:mod:`spare.attack`) on each run; tables of UA without -> with attack.
    mini-finer     finer-scale unlearning: 3 style-object pairs (``pair:<Style>+<Object>``) x every
                   method; FU and FR (same style, same object, the rest) under results/finer/.
    unlearncanvas  the protocol of UnlearnCanvas: 50 styles + 20 objects, seeds 188..888,
                   100 DDIM steps at guidance 9.0, every method at its published iterations and
                   learning rate; the SD-1.5 model, classifiers and dataset are local paths that
                   must be given (``--model``, ``--classifiers``, ``--data``).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from spare.answers import SamplingConfig
from spare.attack import AttackConfig
from spare.baselines import LR_FACTOR, STEP_FACTOR
from spare.config import ConfigError, from_dict
from spare.errors import UserError


@dataclass
class Preset:
    name: str = ""
    description: str = ""
    benchmark: str = "mini"  # the concept catalogue / data world
    targets: tuple[str, ...] = ()  # "style:<Name>" / "object:<Name>"; empty: every target, styles first
    methods: tuple[str, ...] = ()  # empty: every registered method
    train_seeds: tuple[int, ...] = (0,)  # each method's own ``seed``; more than one repeats every job
    budget: float = 1.0  # multiplies every trained method's ``optim.steps``, the same factor for all
    lr_scale: float = 1.0  # multiplies every trained method's ``optim.lr``, the same factor for all
    overrides: dict[str, list[str]] = field(default_factory=dict)  # method -> ["key=value", ...]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    tag: str = ""  # run folders <kind>-<Name>@<tag>, so presets never overwrite each other's runs
    model: str | None = None  # None: the committed canvas-mini model (mini only)
    classifiers: str | None = None
    data: str | None = None
    inception: str | None = None
    requires: tuple[str, ...] = ()  # paths the user must give: any of model, classifiers, data
    # Ablations: named variants, each {method or "*": ["key=value", ...]}. A method runs once per
    # variant that names it (run folder tag <tag>-<variant>), and once plainly if none does.
    variants: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # the adversarial prompt attack after each job's scoring (UnlearnCanvas "Rob.", spare.attack);
    # None: off. Its results sit in <run>/attack/ under their own key: turning it on never reruns a job.
    attack: AttackConfig | None = None
    results_root: str = "results/benchmark"  # tables in <results_root>/<name> (unless --results says otherwise)
    # a tuning choice (method -> overrides, written by `make tuning`) applied on top of
    # each method's default, before ``overrides``; "": none. Not there yet: every method at its default.
    tuned: str = ""
    x: str = ""  # ablation plots: the config key on the x axis, e.g. "q" or "optim.steps"
    series: str = ""  # ablation plots: the config key that separates curves, e.g. "timesteps.mode"


QUICK = Preset(
    name="mini-quick",
    description="canvas-mini smoke sweep: 1 style + 1 object target, every method, steps x0.2, 1 answer seed"
    " (precision auto)",
    targets=("style:Ink_Outline", "object:Star"),
    budget=0.2,
    sampling=SamplingConfig(seeds=(188,), precision="auto"),
    tag="quick",
)

TUNED = "results/tuning/chosen.yaml"  # the tuning protocol's choice (benchmarks/tuning.py)

FULL = Preset(
    name="mini-full",
    description="every canvas-mini target x every method at the methods' tuned defaults x training seeds 0, 1, 2;"
    " answer seeds 188..888",
    train_seeds=(0, 1, 2),
    tuned=TUNED,
)

UNLEARNCANVAS = Preset(
    name="unlearncanvas",
    description="UnlearnCanvas protocol: 50 styles + 20 objects, seeds 188..888, 100 DDIM steps, guidance 9.0",
    benchmark="unlearncanvas",
    sampling=SamplingConfig(steps=100, guidance=9.0, sampler="ddim", micro_batch=8),
    # the methods' defaults are canvas-mini's (published x STEP_FACTOR steps, x LR_FACTOR lr):
    # undoing both factors gives back every method's published iterations and learning rate
    budget=1 / STEP_FACTOR,
    lr_scale=1 / LR_FACTOR,
    requires=("model", "classifiers", "data"),
)

ROBUST = Preset(
    name="mini-robust",
    description="UnlearnCanvas Rob.: every method on 2 styles + 2 objects at the methods' defaults, answer seeds"
    " 188..888, then the adversarial prompt attack on every image of the target",
    # reported targets (not the validation ones), spread over the catalogue's order
    targets=("style:Ink_Outline", "style:Watercolor_Wash", "object:Star", "object:Arrow"),
    attack=AttackConfig(),
    results_root="results/robustness",
    tuned=TUNED,
    # the folders (and so the keys) of mini-full's training seed 0 (every method's default seed is 0):
    # the two sweeps share these runs, whichever runs first, and the attack is the only new work
    tag="seed0",
)

FINER = Preset(
    name="mini-finer",
    description="finer-scale unlearning: 3 style-object combinations, every method at its defaults, answer seeds"
    " 188..888; FU and FR",
    # reported styles and objects only (not the validation Pop_Halftone, Crescent), no two pairs sharing a part
    targets=("pair:Ink_Outline+Star", "pair:Watercolor_Wash+Arrow", "pair:Neon_Stripes+Heart"),
    results_root="results/finer",
    tuned=TUNED,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (QUICK, FULL, ROBUST, FINER, UNLEARNCANVAS)}
# the preset whose protocol (sampling) and per-method settings (budget and lr factors) a single
# run (`spare unlearn`) of each world follows: one place for sweeps and single runs alike
WORLD_PRESETS = {"mini": "mini-full", "unlearncanvas": "unlearncanvas"}


def world_preset(benchmark: str) -> Preset:
    """The preset a single run of ``benchmark``'s world follows (its name as the catalogue spells it)."""
    from spare.concepts import get_catalogue

    return get_preset(WORLD_PRESETS[get_catalogue(benchmark).name])


def method_defaults(preset: Preset, method: str):
    """``method``'s config under ``preset``: its defaults, every step count x ``budget`` and every
    learning rate x ``lr_scale`` (the same factors for all methods), then the preset's tuning
    choice for it (``tuned``, when made)."""
    from spare.config import apply_overrides
    from spare.methods import get_method
    from spare.methods.contract import trains

    cfg = get_method(method).config_cls()
    if trains(cfg):
        cfg.optim.steps = max(1, round(cfg.optim.steps * preset.budget))
        cfg.optim.lr = cfg.optim.lr * preset.lr_scale
    tuned = load_tuned(preset.tuned) if preset.tuned else None
    return apply_overrides(cfg, tuned.get(method, [])) if tuned else cfg


def tuned_path(path: str | Path) -> Path:
    """A preset's ``tuned`` file: as given when it exists there, else under the repository (the
    built-in presets name ``results/tuning/chosen.yaml``, which a sweep started elsewhere still finds)."""
    path = Path(path)
    repo = Path(__file__).resolve().parents[1] / path
    return path if path.is_absolute() or path.exists() or not repo.exists() else repo


def load_tuned(path: str | Path) -> dict[str, list[str]] | None:
    """A tuning choice (``chosen.yaml`` of :mod:`benchmarks.tuning`) as method -> overrides, or None
    when it is not there yet."""
    path = tuned_path(path)
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise UserError(f"{str(path)!r} is not a tuning choice (method: [overrides]); rerun make tuning")
    return {str(k): [str(x) for x in v] for k, v in data.items()}


def get_preset(name: str) -> Preset:
    """A built-in preset by name, or a YAML preset file; anything else lists the valid names."""
    if name in PRESETS:
        return dataclasses.replace(PRESETS[name])
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"preset file {name!r} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"preset file {name!r} must hold a mapping of Preset keys")
        preset = from_dict(Preset, {"name": path.stem, **data})
        check_overrides(preset)
        return preset
    near = difflib.get_close_matches(name, list(PRESETS), n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise UserError(f"unknown preset {name!r}.{hint} Valid presets: {', '.join(PRESETS)} (or a .yaml preset file)")


def check_overrides(preset: Preset) -> None:
    """Override lists must be lists of 'key=value' strings (the keys are checked against each method)."""
    groups = [("overrides", preset.overrides)] + [(f"variants.{v}", o) for v, o in preset.variants.items()]
    for where, mapping in groups:
        if not isinstance(mapping, dict):
            raise ConfigError(f"{where} must map method names to lists of 'key=value' strings, got {mapping!r}")
        for method, items in mapping.items():
            if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
                raise ConfigError(f"{where}.{method} must be a list of 'key=value' strings, got {items!r}")
