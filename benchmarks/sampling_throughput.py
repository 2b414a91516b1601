"""Answer-set sampling throughput against the bare UNet forward passes it needs.

    python -m benchmarks.sampling_throughput [--model DIR] [--batch 64] [--steps 25] [--guidance 3]

Times ``T2IPipeline.sample`` (text encoding, per-image seeded noise, scheduler steps,
guidance, decoding to uint8) and, for the same prompts, just the UNet calls it makes: one
per step per micro-batch, on the doubled (guided) micro-batch. Prints images/s of both and their ratio, and
writes ``results/benchmarks/sampling_throughput.json``. The harness overhead is ratio - 1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from spare.answers import SamplingConfig
from spare.concepts import get_catalogue
from spare.io import write_json
from spare.pipeline import T2IPipeline
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
    pipe: T2IPipeline, prompts: list[str], steps: int, guidance: float, sampler: str, micro_batch: int, repeats: int = 3
) -> dict:
    seeds = list(range(len(prompts)))
    kwargs = {"steps": steps, "guidance": guidance, "sampler": sampler, "micro_batch": micro_batch}
    pipe.sample(prompts[:2], seeds[:2], **{**kwargs, "steps": 2})  # warm-up
    harness = _best_of(lambda: pipe.sample(prompts, seeds, **kwargs), repeats)
    rows = 2 if guidance != 1.0 else 1
    x = torch.randn((micro_batch * rows, *pipe.sample_shape), device=pipe.device)
    emb = pipe.encode_prompts(prompts[:micro_batch] * rows)
    ts = pipe.sampler(sampler)
    ts.set_timesteps(steps)
    chunks = -(-len(prompts) // micro_batch)

    def bare():  # the same network calls: one per step per micro-batch, nothing else
        for _ in range(chunks):
            for t in ts.timesteps:
                pipe.unet(x, t.expand(len(x)).to(pipe.device), encoder_hidden_states=emb)

    unet_only = _best_of(bare, repeats)
    return {
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
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/canvas-mini-base")
    parser.add_argument("--benchmark", default="mini")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=SamplingConfig.guidance)
    parser.add_argument("--sampler", default=SamplingConfig.sampler)
    parser.add_argument("--micro-batch", type=int, default=SamplingConfig.micro_batch)
    parser.add_argument("--out", default="results/benchmarks/sampling_throughput.json")
    args = parser.parse_args(argv)
    catalogue = get_catalogue(args.benchmark)
    pipe = T2IPipeline.from_pretrained(args.model)
    grid = [catalogue.prompt(s, o) for s in catalogue.style_classes for o in catalogue.objects]
    prompts = (grid * (args.batch // len(grid) + 1))[: args.batch]
    result = measure(pipe, prompts, args.steps, args.guidance, args.sampler, args.micro_batch)
    result.update(model=args.model, threads=torch.get_num_threads(), provenance=provenance())
    write_json(Path(args.out), result)
    print(
        f"batch {result['batch']}, {result['steps']} steps, guidance {result['guidance']}: "
        f"harness {result['harness_images_per_s']:.2f} img/s, bare UNet {result['unet_only_images_per_s']:.2f} img/s, "
        f"ratio {result['ratio']:.3f} (overhead {result['overhead_pct']:.1f}%) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
