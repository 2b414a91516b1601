"""Agreement before adoption: the harness's fp32 configuration and its faster settings, side by side.

    python -m benchmarks.speed_agreement [--budget 1.0] [--methods spare esd ...]

The faster settings (``optim.precision=auto``, ``optim.fused=true``, answer sets in
``precision: auto`` and micro-batches of 55) change images by rounding, so they may become
canvas-mini's defaults only where the metrics agree with the harness as it was
(``optim.precision=fp32 optim.fused=false``, answer sets in fp32 in micro-batches of 32) within
the answer set's resolution: UA within one of the target's images (100 / their number), IRA and
CRA within 1 point. This runs both as sweeps of every method on the catalogue's validation
targets with the validation answer seeds (never a reported target, never the answer seeds
188..888), through the runner (resumable; run folders tagged ``agree-fp32`` and ``agree-auto``),
and writes ``results/benchmarks/speed_agreement.{md,csv,json}`` (each sweep's own tables beside
it, under ``speed_agreement/<config>/``, or ``speed_agreement/<config>-subsets/<methods>/`` when
``--methods`` narrows them).

``--against threads`` measures the floor under that bar: the fp32 configuration again, unchanged,
in one thread instead of the machine's threads (run folders ``agree-fp32-t1``). The forward pass is
bit-identical across thread counts, but a backward pass sums its gradients in another order, so
training takes another path by rounding alone; what that moves is what any arithmetic change can
be expected to move. A sharded sweep (one single-thread process per core) trains in one thread.

The floor rule (written before the floor's runs): where the floor itself misses the bar, the bar
cannot tell a setting from rounding, so a faster setting is compared with the floor instead, on
the (method, target) rows both have: it is *within the floor* when it misses the bar on no more
rows than the floor does, and for each of UA, IRA and CRA its mean absolute difference from fp32
exceeds the floor's by no more than the bar (one target image of UA, one point of IRA or CRA).
``--against threads`` writes that verdict for every side already compared
(``speed_agreement_floor.{md,csv}``). ``--against rounding`` compares the settings that only
reorder fp32 arithmetic (fused calls, micro-batches of 55, no bf16), which the floor suggests
may agree where bf16 did not.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.presets import Preset
from benchmarks.runner import build_sweep, collect, run_sweep
from benchmarks.tables import with_base, write_table
from spare.answers import SamplingConfig
from spare.concepts import get_catalogue
from spare.io import write_json
from spare.methods import get_method, method_names
from spare.methods.contract import trains
from spare.provenance import cpu_info, provenance

SEEDS = (1000, 1001)  # validation answer seeds
FP32 = ["optim.precision=fp32", "optim.fused=false"]  # the harness as it was
FAST = ["optim.precision=auto", "optim.fused=true"]  # the faster settings, to be adopted if they agree
FAST_SAMPLING = {"precision": "auto", "micro_batch": 55, "batch_size": 110}
# the settings that change only the order of fp32 arithmetic: fused calls, micro-batches of 55
ROUNDING = ["optim.precision=fp32", "optim.fused=true"]
ROUNDING_SAMPLING = {"precision": "fp32", "micro_batch": 55, "batch_size": 110}
METRICS = ("UA", "IRA", "CRA", "FID")
# the validation style and object the side-by-side ran on (the catalogue's first two validation
# targets; the tuning grid's two later ones were added after it)
TARGETS = ("style:Pop_Halftone", "object:Crescent")


def presets(budget: float, methods: tuple[str, ...]) -> dict[str, Preset]:
    """The configurations as presets: each differs from fp32 in training overrides, sampling or
    (``threads``) nothing but its folders, and the thread count main() gives it."""
    trained = [m for m in methods if trains(get_method(m).config_cls())]
    fp32_sampling = {"precision": "fp32", "micro_batch": 32, "batch_size": 128}
    sides = {  # name: (trained methods' overrides, sampling settings, run folder tag, preset name)
        "fp32": (FP32, fp32_sampling, "agree-fp32", "speed-agreement-fp32"),
        "auto": (FAST, FAST_SAMPLING, "agree-auto", "speed-agreement-auto"),
        # the fp32 configuration, unchanged, trained and sampled in one thread: the floor
        "threads": (FP32, fp32_sampling, "agree-fp32-t1", "speed-agreement-fp32-1thread"),
        # the answer sets' settings alone: training as in fp32, sampling as in auto (which side moves the metrics)
        "answers": (FP32, FAST_SAMPLING, "agree-answers", "speed-agreement-answers"),
        # fused calls and micro-batches of 55 without bf16: fp32 in another order, as the floor is
        "rounding": (ROUNDING, ROUNDING_SAMPLING, "agree-rounding", "speed-agreement-rounding"),
    }
    return {
        side: Preset(
            name=name,
            description="fp32 against the faster settings on the validation targets and seeds",
            targets=TARGETS,
            methods=methods,
            budget=budget,
            overrides={m: list(overrides) for m in trained},
            sampling=SamplingConfig(seeds=SEEDS, **sampling),
            tag=tag,
        )
        for side, (overrides, sampling, tag, name) in sides.items()
    }


def target_images(target: str, seeds: int) -> int:
    """How many answer images show ``target`` (UA's denominator): every style class with an
    object target, every object with a style target, once per seed."""
    catalogue = get_catalogue("mini")
    kind = target.split(":", 1)[0]
    return (len(catalogue.style_classes) if kind == "object" else len(catalogue.objects)) * seeds


def compare(frames: dict[str, pd.DataFrame], seeds: int, against: str = "auto") -> pd.DataFrame:
    """One row per (method, target): each metric under fp32 and ``against``, the difference and
    whether they agree (UA within one target image, IRA and CRA within 1 point)."""
    keys = ["method", "target"]
    fp32, auto = (frames[c].set_index(keys)[list(METRICS)] for c in ("fp32", against))
    rows = []
    for key in fp32.index.intersection(auto.index):
        row = dict(zip(keys, key, strict=True))
        for metric in METRICS:
            a, b = float(fp32.loc[key, metric]), float(auto.loc[key, metric])
            row.update({f"{metric} fp32": a, f"{metric} {against}": b, f"d{metric}": b - a})
        one_image = 100 / target_images(row["target"], seeds)
        row["one image"] = one_image
        row["agree"] = bool(
            abs(row["dUA"]) <= one_image + 1e-9 and abs(row["dIRA"]) <= 1 + 1e-9 and abs(row["dCRA"]) <= 1 + 1e-9
        )
        rows.append(row)
    return pd.DataFrame(rows)


def floor_verdict(side: pd.DataFrame, floor: pd.DataFrame, name: str) -> dict:
    """``side`` (a compare() table of a faster setting) against ``floor`` (of ``threads``) on the
    rows both have: misses of the bar, mean |difference| per metric, and whether it is within the
    floor (the rule in the module docstring)."""
    keys = ["method", "target"]
    shared = side.merge(floor[keys], on=keys)
    base = floor.merge(side[keys], on=keys)
    row = {"setting": name, "rows": len(shared), "misses": int((~shared["agree"]).sum())}
    row["floor misses"] = int((~base["agree"]).sum())
    within = row["misses"] <= row["floor misses"]
    for metric in ("UA", "IRA", "CRA"):
        mine, theirs = shared[f"d{metric}"].abs().mean(), base[f"d{metric}"].abs().mean()
        bar = shared["one image"].mean() if metric == "UA" else 1.0
        row |= {f"mean |d{metric}|": mine, f"floor mean |d{metric}|": theirs}
        within = within and mine <= theirs + bar + 1e-9
    row["within the floor"] = bool(within) and len(shared) > 0
    return row


def side_dir(out: Path, config: str, methods: tuple[str, ...]) -> Path:
    """Where a side's own sweep tables go: ``speed_agreement/<config>`` for every method, and a
    folder of their own when ``--methods`` narrows them (as the runner keeps narrowed sweeps apart),
    so a side compared on a few methods never overwrites the record of all of them."""
    if set(methods) == set(method_names()):
        return out / "speed_agreement" / config
    return out / "speed_agreement" / f"{config}-subsets" / "+".join(sorted(methods))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.0, help="every trained method's steps x this (both sides)")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument(
        "--against",
        choices=("auto", "answers", "threads", "rounding"),
        default="auto",
        help="auto: every faster setting (default); answers: only the answer sets' (training as in fp32); "
        "threads: fp32 unchanged, in one thread (the floor: what reduction order alone moves); "
        "rounding: fused calls and micro-batches of 55, all in fp32",
    )
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args(argv)
    methods = tuple(args.methods or method_names())
    out = Path(args.out)
    started = time.perf_counter()
    frames, settings = {}, {}
    default_threads = torch.get_num_threads()
    for config, preset in presets(args.budget, methods).items():
        if config not in ("fp32", args.against):
            continue
        # the other side's runs are made (or found) with the machine's threads; "threads" in one
        threads = 1 if config == "threads" else default_threads
        torch.set_num_threads(threads)
        sweep = build_sweep(preset, runs_dir=args.runs)
        print(f"{config}: {len(sweep.jobs)} jobs, answer sets in {sweep.settings.sampling.precision}")
        rc = run_sweep(sweep, results_dir=side_dir(out, config, methods))
        if rc:
            print(f"{config}: the sweep did not finish (exit {rc}); the comparison covers what is done")
        per_target, base, _ = collect(sweep, sweep.jobs)
        frames[config] = with_base(per_target, base)
        settings[config] = {
            "sampling": dataclasses.asdict(sweep.settings.sampling),
            "overrides": preset.overrides,
            "threads": threads,
        }
    torch.set_num_threads(default_threads)
    table = compare(frames, len(SEEDS), args.against)
    name = "speed_agreement" if args.against == "auto" else f"speed_agreement_{args.against}"
    cpu = cpu_info()
    agreed = int(table["agree"].sum())
    what = {
        "auto": "auto: `optim.precision=auto optim.fused=true`, answer sets in precision auto in micro-batches of 55",
        "answers": "answers: training as in fp32, answer sets in precision auto in micro-batches of 55",
        "threads": f"threads: the fp32 configuration unchanged, in 1 thread instead of {default_threads}",
        "rounding": "rounding: `optim.precision=fp32 optim.fused=true`, answer sets in fp32 in micro-batches of 55",
    }[args.against]
    flag = "" if args.against == "auto" else f" --against {args.against}"
    note = (
        f"`python -m benchmarks.speed_agreement --budget {args.budget}{flag}` on {cpu['model']} ({cpu['capability']}, "
        f"native bf16: {cpu['native_bf16']}): validation targets, validation answer seeds "
        f"{', '.join(map(str, SEEDS))}. "
        "fp32: `optim.precision=fp32 optim.fused=false`, answer sets in fp32 in micro-batches of 32 (the harness "
        f"as it was); {what} "
        f"(this machine: answer sets in {settings[args.against]['sampling']['precision']}). Agreement: UA within one "
        f"target image, IRA and CRA within 1 point. **{agreed} of {len(table)} rows agree.**"
    )
    write_table(table, out / name, f"fp32 against {args.against}, side by side", note)
    write_json(
        out / f"{name}.json",
        {
            "budget": args.budget,
            "seeds": SEEDS,
            "cpu": cpu,
            "configs": settings,
            "rows": table.to_dict("records"),
            "agree": agreed,
            "rows_total": len(table),
            "wall_s": time.perf_counter() - started,
            "provenance": provenance(),
        },
    )
    print(note)
    print(f"wrote {out / name}.md")
    if args.against == "threads":
        verdicts = [
            floor_verdict(pd.read_csv(out / f"{other}.csv"), table, label)
            for label, other in (
                ("auto", "speed_agreement"),
                ("answers", "speed_agreement_answers"),
                ("rounding", "speed_agreement_rounding"),
            )
            if (out / f"{other}.csv").is_file()
        ]
        if verdicts:
            write_table(
                pd.DataFrame(verdicts),
                out / "speed_agreement_floor",
                "the faster settings against the floor (fp32 in one thread)",
                f"`python -m benchmarks.speed_agreement --budget {args.budget} --against threads` on {cpu['model']}. "
                "Rows: the (method, target) pairs the floor covers. Within the floor: no more misses of the bar "
                "than the floor, and each metric's mean |difference| from fp32 at most the floor's plus the bar "
                "(one target image of UA, 1 point of IRA / CRA); the rule was written before the floor's runs.",
            )
            print(f"wrote {out / 'speed_agreement_floor'}.md")
    return 0 if agreed == len(table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
