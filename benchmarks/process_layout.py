"""How to spend the cores: one sweep process with every thread, or one single-thread process per core.

    python -m benchmarks.process_layout [--units 4] [--steps 40] [--images 110]

A sweep's job is training steps then an answer set; a sharded sweep (``make benchmark-sharded``)
gives whole targets to each process and makes exactly the same images (checked by
``tests/test_runner.py`` with one thread per process), so the layout is a pure speed choice.
This measures it on the real work: a *unit* is SPARE's training for ``--steps`` steps on the
validation target plus the answer images of ``--images`` prompts (the canvas-mini base model,
fp32). Layout A: one process with ``os.cpu_count()`` threads does every unit; layout B: one
single-thread process per core, the units split between them, all at once. Both are fresh
processes with the same warm-up. Prints and writes ``results/benchmarks/process_layout.json``:
each layout's wall time and units per hour, and B's speed-up over A. Nothing else may run
beside it (the figures are the machine's, named in the file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET = "style:Pop_Halftone"  # a validation target: no reported figure comes from this


def worker(units: int, steps: int, images: int) -> None:
    """Run ``units`` units in this process (its thread count comes from OMP_NUM_THREADS)."""
    import torch

    from spare.config import apply_overrides
    from spare.data import load_benchmark_data, split_for_target
    from spare.data.canvas_mini import CANVAS_MINI
    from spare.methods import get_method
    from spare.paths import MINI_BASE_MODEL
    from spare.pipeline import T2IPipeline

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    pipe = T2IPipeline.from_pretrained(MINI_BASE_MODEL)
    pipe.unet.requires_grad_(False)
    data = split_for_target(load_benchmark_data("mini"), TARGET, CANVAS_MINI)
    spec = get_method("spare")
    cfg = apply_overrides(spec.config_cls(), [f"optim.steps={steps}"])
    prompts = [CANVAS_MINI.prompt(s, o) for s in CANVAS_MINI.style_classes for o in CANVAS_MINI.objects][:images]
    pipe.sample(prompts[:2], [0, 1], steps=2)  # warm-up, not timed
    start = time.perf_counter()
    for _ in range(units):
        spec.unlearn(pipe, data, cfg)
        with torch.no_grad():
            pipe.sample(prompts, list(range(len(prompts))))
    print(json.dumps({"wall_s": time.perf_counter() - start, "threads": torch.get_num_threads()}))


def _launch(units: int, threads: int, args) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "benchmarks.process_layout", "--worker", str(units)]
    cmd += ["--steps", str(args.steps), "--images", str(args.images)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _run(layout: list[tuple[int, int]], args) -> float:
    """Start every (units, threads) worker at once; the wall time until the last one ends."""
    start = time.perf_counter()
    procs = [_launch(units, threads, args) for units, threads in layout]
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode})")
        json.loads(out.strip().splitlines()[-1])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from spare.io import write_json
    from spare.provenance import provenance

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=4, help="units of work per layout (a multiple of the cores)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=110)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="results/benchmarks/process_layout.json")
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.steps, args.images)
        return 0
    cores = os.cpu_count() or 1
    if args.units % cores:
        raise SystemExit(f"--units must be a multiple of the {cores} cores")
    a = _run([(args.units, cores)], args)
    b = _run([(args.units // cores, 1)] * cores, args)
    result = {
        "unit": f"SPARE {args.steps} steps on {TARGET} + {args.images} answer images (fp32)",
        "units": args.units,
        "A: 1 process x all threads": {
            "processes": 1,
            "threads": cores,
            "wall_s": a,
            "units_per_h": 3600 * args.units / a,
        },
        "B: 1 single-thread process per core": {
            "processes": cores,
            "threads": 1,
            "wall_s": b,
            "units_per_h": 3600 * args.units / b,
        },
        "speedup_B_over_A": a / b,
        "command": "python -m benchmarks.process_layout " + " ".join(argv if argv is not None else sys.argv[1:]),
        "provenance": provenance(),
    }
    write_json(Path(args.out), result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
