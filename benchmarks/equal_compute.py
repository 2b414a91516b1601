"""Equal compute: every trained method gets SPARE's training wall time, then the same sweep and tables.

    python -m benchmarks.equal_compute [--targets style:Ink_Outline ...] [--calib-steps 30]

1. Calibrate: each trained method runs ``--calib-steps`` optimisation steps on the first
   target (no evaluation), one after another on the same machine. Its report gives the
   seconds per steady step (from the step log, after the first step) and the set-up time
   (masks, saliency, frozen copies, warm-up: ``time_s`` minus steps x s/step).
2. Budget: SPARE's wall time at its default step count, ``setup + steps x s/step`` from the
   same calibration. Every method gets ``(budget - its setup) / its s/step`` steps; its
   learning rate and everything else stay at the budget-rule defaults (UCE is closed form
   and has nothing to scale).
3. Run the ``mini-full`` preset on the targets with those step counts under the tag
   ``equal-compute`` (resumable, like any sweep) and write the tables to
   ``results/baselines/equal_compute/``, with ``calibration.md`` and the preset beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
import yaml

from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep, check_paths, run_sweep
from benchmarks.tables import write_table
from spare.config import apply_overrides, to_dict
from spare.methods import get_method
from spare.methods.contract import trains
from spare.run import run_unlearning

REFERENCE = "spare"


@dataclasses.dataclass
class Calibration:
    method: str
    setup_s: float
    s_per_step: float
    default_steps: int


def calibrate(sweep, method: str, target: str, steps: int) -> Calibration:
    """Run ``steps`` optimisation steps of ``method`` (no evaluation) and read its timing."""
    job = next(j for j in sweep.jobs if j.method == method and j.target == target)
    default = sweep.method_config(job)
    cfg = apply_overrides(default, [f"optim.steps={steps}"])
    settings = dataclasses.replace(sweep.settings, tag=f"calib-{steps}")
    report = run_unlearning(method, target, cfg, settings, evaluate=False)
    first, last = report["log"][0], report["log"][-1]  # logged after steps 0 and steps - 1
    s_per_step = (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])
    # everything that is not a steady step (masks, saliency, copies, the first step's warm-up) is set-up
    return Calibration(method, report["time_s"] - steps * s_per_step, s_per_step, default.optim.steps)


def reference_budget(calibrations: list[Calibration], reference: str = REFERENCE) -> float:
    """The reference method's wall time at its default steps: setup + steps x s/step."""
    ref = next(c for c in calibrations if c.method == reference)
    return ref.setup_s + ref.default_steps * ref.s_per_step


def equal_steps(calibrations: list[Calibration], reference: str = REFERENCE) -> dict[str, int]:
    """Steps that give each method the reference method's wall time at its default steps."""
    budget = reference_budget(calibrations, reference)
    return {c.method: max(1, round((budget - c.setup_s) / c.s_per_step)) for c in calibrations}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["style:Ink_Outline", "object:Star"])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--calib-steps", type=int, default=30)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--results", default="results/baselines/equal_compute")
    parser.add_argument("--wandb", default="offline")
    parser.add_argument("--tables-only", action="store_true", help="only the tables of the finished runs")
    args = parser.parse_args(argv)
    out = Path(args.results)

    preset = get_preset("mini-full")
    sweep = build_sweep(preset, methods=args.methods, targets=args.targets, runs_dir=args.runs)
    check_paths(sweep)
    trained = [m for m in sweep.methods if trains(get_method(m).config_cls())]
    if REFERENCE not in trained:
        raise SystemExit(f"equal compute is measured against {REFERENCE!r}: include it in --methods")
    calibrations = [calibrate(sweep, m, sweep.targets[0], args.calib_steps) for m in trained]
    steps = equal_steps(calibrations)
    budget = reference_budget(calibrations)
    table = pd.DataFrame(
        [
            {
                "method": c.method,
                "setup s": c.setup_s,
                "s per step": c.s_per_step,
                "budget-rule steps": c.default_steps,
                "budget-rule time s (estimate)": c.setup_s + c.default_steps * c.s_per_step,
                "equal-compute steps": steps[c.method],
            }
            for c in calibrations
        ]
    )
    note = (
        f"Calibrated with {args.calib_steps} steps of each method on {sweep.targets[0]}, one after another on "
        f"this machine. Budget: SPARE's setup + its default steps = {budget:.0f} s. UCE is closed form and keeps "
        "its single solve."
    )
    write_table(table, out / "calibration", "Equal compute: every method given SPARE's training wall time", note)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))

    equal = dataclasses.replace(
        preset,
        name="mini-equal-compute",
        description=f"every method given SPARE's training wall time ({budget:.0f} s on this machine)",
        tag="equal-compute",
        overrides={m: [f"optim.steps={n}"] for m, n in steps.items()},
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "preset.yaml").write_text(yaml.safe_dump(to_dict(equal), sort_keys=False))
    sweep = build_sweep(equal, methods=args.methods, targets=args.targets, runs_dir=args.runs)
    return run_sweep(sweep, wandb_mode=args.wandb, results_dir=out, tables_only=args.tables_only)


if __name__ == "__main__":
    raise SystemExit(main())
