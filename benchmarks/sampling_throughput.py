"""Answer-set sampling throughput against the bare UNet forward passes it needs, in fp32 and bf16.

    python -m benchmarks.sampling_throughput [--model DIR] [--batch 110] [--steps 25] [--unet-batches 32 64]

Times ``T2IPipeline.sample`` (text encoding, per-image seeded noise, scheduler steps,
guidance, decoding to uint8) and, for the same prompts, just the UNet calls it makes: one
per step per micro-batch, on the doubled (guided) micro-batch. Prints images/s of both and their ratio, and
writes ``results/benchmarks/sampling_throughput.json``. The harness overhead is ratio - 1.
Each precision (``SamplingConfig.precision``) is measured, and the bf16 images are compared
with the fp32 ones pixel by pixel (mean and max absolute difference, in grey levels).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import torch

from spare.answers import SamplingConfig
from spare.concepts import get_catalogue
from spare.io import write_json
from spare.pipeline import T2IPipeline
from spare.precision import PRECISIONS
from spare.provenance import provenance


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def measure(
    pipe: T2IPipeline,
    prompts: list[str],
    steps: int,
    guidance: float,
    sampler: str,
    micro_batch: int,
    precision: str = "fp32",
    repeats: int = 3,
) -> tuple[dict, np.ndarray]:
    """The timings of one precision, and the images it made."""
    seeds = list(range(len(prompts)))
    kwargs = {"steps": steps, "guidance": guidance, "sampler": sampler, "micro_batch": micro_batch}
    kwargs["precision"] = precision
    pipe.sample(prompts[:2], seeds[:2], **{**kwargs, "steps": 2})  # warm-up
    images = []
    harness = _best_of(lambda: images.append(pipe.sample(prompts, seeds, **kwargs)), repeats)
    rows = 2 if guidance != 1.0 else 1
    x = torch.randn((micro_batch * rows, *pipe.sample_shape), device=pipe.device)
    emb = pipe.encode_prompts((prompts * micro_batch)[:micro_batch] * rows)  # a full (padded) micro-batch
    ts = pipe.sampler(sampler)
    ts.set_timesteps(steps)
    chunks = -(-len(prompts) // micro_batch)

    def bare():  # the same network calls: one per step per micro-batch, nothing else
        with pipe.autocast(precision):  # the same context as pipe.sample's network calls
            for _ in range(chunks):
                for t in ts.timesteps:
                    pipe.unet(x, t.expand(len(x)).to(pipe.device), encoder_hidden_states=emb)

    unet_only = _best_of(bare, repeats)
    return {
        "precision": precision,
        "batch": len(prompts),
        "micro_batch": micro_batch,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "harness_s": harness,
        "unet_only_s": unet_only,
        "harness_images_per_s": len(prompts) / harness,
        "unet_only_images_per_s": len(prompts) / unet_only,
        "ratio": harness / unet_only,
        "overhead_pct": 100 * (harness / unet_only - 1),
    }, images[-1]


@torch.no_grad()
def unet_rates(pipe: T2IPipeline, batches: list[int], precision: str, repeats: int = 5) -> dict[int, float]:
    """The bare UNet's forward rate (samples/s) at each batch size: what a guided micro-batch of
    ``m`` images costs is one call on ``2 m``; the best of ``repeats`` calls after a warm-up."""
    rates = {}
    for batch in batches:
        x = torch.randn((batch, *pipe.sample_shape), device=pipe.device)
        t = torch.full((batch,), 500, device=pipe.device)
        emb = pipe.encode_prompts(["a painting"] * batch)
        with pipe.autocast(precision):
            pipe.unet(x, t, encoder_hidden_states=emb)  # warm-up
            call = functools.partial(pipe.unet, x, t, encoder_hidden_states=emb)
            rates[batch] = batch / _best_of(call, repeats)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/canvas-mini-base")
    parser.add_argument("--benchmark", default="mini")
    parser.add_argument("--batch", type=int, default=110, help="images (110: one canvas-mini answer grid)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=SamplingConfig.guidance)
    parser.add_argument("--sampler", default=SamplingConfig.sampler)
    parser.add_argument("--micro-batch", type=int, default=SamplingConfig.micro_batch)
    parser.add_argument(
        "--unet-batches",
        type=int,
        nargs="*",
        default=[32, 64, 110, 128],
        help="bare UNet forward rates at these batch sizes (a guided micro-batch of m images is a batch of 2 m)",
    )
    parser.add_argument("--out", default="results/benchmarks/sampling_throughput.json")
    args = parser.parse_args(argv)
    catalogue = get_catalogue(args.benchmark)
    pipe = T2IPipeline.from_pretrained(args.model)
    grid = [catalogue.prompt(s, o) for s in catalogue.style_classes for o in catalogue.objects]
    prompts = (grid * (args.batch // len(grid) + 1))[: args.batch]
    result, images = {}, {}
    for precision in PRECISIONS:
        result[precision], images[precision] = measure(
            pipe, prompts, args.steps, args.guidance, args.sampler, args.micro_batch, precision
        )
        r = result[precision]
        print(
            f"{precision}: batch {r['batch']}, {r['steps']} steps, guidance {r['guidance']}: "
            f"harness {r['harness_images_per_s']:.2f} img/s, bare UNet {r['unet_only_images_per_s']:.2f} img/s, "
            f"ratio {r['ratio']:.3f} (overhead {r['overhead_pct']:.1f}%)"
        )
        if args.unet_batches:
            r["unet_samples_per_s"] = unet_rates(pipe, args.unet_batches, precision)
            print(
                "  bare UNet samples/s by batch: "
                + ", ".join(f"{b}: {v:.0f}" for b, v in r["unet_samples_per_s"].items())
            )
    diff = np.abs(images["bf16"].astype(np.float64) - images["fp32"].astype(np.float64))
    result["bf16_vs_fp32"] = {
        "speedup": result["bf16"]["harness_images_per_s"] / result["fp32"]["harness_images_per_s"],
        "mean_abs_px": float(diff.mean()),
        "max_abs_px": float(diff.max()),
    }
    result.update(model=args.model, threads=torch.get_num_threads(), provenance=provenance())
    write_json(Path(args.out), result)
    cmp = result["bf16_vs_fp32"]
    print(
        f"bf16 vs fp32: {cmp['speedup']:.2f}x, mean |pixel difference| {cmp['mean_abs_px']:.2f} grey levels "
        f"(max {cmp['max_abs_px']:.0f}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
