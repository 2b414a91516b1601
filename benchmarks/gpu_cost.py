"""What the full UnlearnCanvas world costs on a GPU: every method's step, the answer set, the judges.

    python -m benchmarks.gpu_cost [--scale full|tiny] [--precision bf16] [--out results/gpu]

Builds Stable Diffusion v1.5 at full size from its published architecture (UNet 860M,
VAE 84M, CLIP ViT-L/14 text encoder 123M) with random weights, so nothing is downloaded
(random weights cost the same as trained ones), wraps it in the harness's own
:class:`spare.pipeline.T2IPipeline`, and measures with the harness's own code:

- every registered method's ``unlearn`` for a few steps on synthetic 512 x 512 forget /
  retain images (the UnlearnCanvas prompts; the preset's method configs, steps cut), under
  ``optim.precision`` (bf16 autocast by default): set-up seconds (saliency, frozen copies, ...),
  seconds per step, peak memory; SPARE also at the authors' batch (2 forget + 2 retain);
- answer-set sampling at 512 x 512, 100 DDIM steps, guidance 9 (the UnlearnCanvas protocol)
  under bf16 autocast with SDPA attention, at several micro-batches: images/s at the best;
- the judges: a ViT-L/16 (timm, random weights) images/s at batch 64.

It then projects the GPU-hours of the ``unlearncanvas`` preset (every job of its plan: set-up +
preset steps x seconds per step + 5,100 answer images + two classifier passes; plus the base
model's answer set) and of one SPARE target. FID's Inception pass is not included (it needs
its weights). ``--scale tiny`` builds a small latent model of the same layout, so the script
runs on a CPU in seconds (the test does this).
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel

from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep
from benchmarks.tables import write_table
from evaluators.cost import CostMeter
from spare.concepts import get_catalogue
from spare.config import apply_overrides
from spare.data import split_for_target
from spare.data.schema import FEATURES
from spare.io import write_json
from spare.methods import get_method, method_names
from spare.methods.contract import trains
from spare.methods.trainer import seconds_per_step
from spare.pipeline import T2IPipeline, default_device
from spare.provenance import cpu_info, provenance
from spare.tiny_model import build_tokenizer

TARGET = "style:Van_Gogh"
ANSWER_IMAGES = 51 * 20 * 5  # every style class x object x seed of the protocol
SCALES = {
    # Stable Diffusion v1.5 (its model_index / unet / vae / text_encoder configs)
    "full": {
        "image": 512,
        "unet": dict(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
        ),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512),
        "text": dict(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12
        ),
        "batches": (8, 32, 64),
        "classifier": "vit_large_patch16_224",
        "steps": 12,
    },
    # the same layout, small: for a CPU smoke run and the test
    "tiny": {
        "image": 64,
        "unet": dict(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64, 64, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=16,
        ),
        "vae": dict(
            block_out_channels=(16, 16, 16, 16),
            layers_per_block=1,
            latent_channels=4,
            sample_size=64,
            norm_num_groups=8,
        ),
        "text": dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        "batches": (2, 4),
        "classifier": "vit_tiny_patch16_224",
        "steps": 4,
    },
}


def build_pipeline(scale: str, device: torch.device) -> T2IPipeline:
    """SD-1.5's architecture (or the tiny one) with random weights, in the harness's pipeline."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    spec = SCALES[scale]
    torch.manual_seed(0)
    tokenizer = build_tokenizer(get_catalogue("unlearncanvas"), max_length=77)
    text = CLIPTextModel(
        CLIPTextConfig(
            **spec["text"],
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    unet = UNet2DConditionModel(**spec["unet"])
    down = ("DownEncoderBlock2D",) * len(spec["vae"]["block_out_channels"])
    up = ("UpDecoderBlock2D",) * len(spec["vae"]["block_out_channels"])
    vae = AutoencoderKL(down_block_types=down, up_block_types=up, **spec["vae"])
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    for module in (unet, text, vae):
        module.eval().requires_grad_(False)
    return T2IPipeline(unet, text, tokenizer, scheduler, vae, image_size=spec["image"]).to(device)


def synthetic_data(size: int, per_pair: int = 2):
    """Random-noise images under UnlearnCanvas names: the target style, the photo surrogate, one
    other style, two objects; split by the harness's own ``split_for_target``."""
    catalogue = get_catalogue("unlearncanvas")
    rng = np.random.default_rng(0)
    rows = {c: [] for c in FEATURES}
    for style in ("Van_Gogh", catalogue.photo, "Monet"):
        for obj in ("Dogs", "Cats"):
            for i in range(1, per_pair + 1):
                image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
                for key, value in zip(FEATURES, (image, style, obj, catalogue.prompt(style, obj), i), strict=True):
                    rows[key].append(value)
    dataset = datasets.Dataset.from_dict(rows, features=FEATURES)
    return split_for_target(dataset, TARGET, catalogue)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_method(pipe, name: str, cfg, data, steps: int) -> dict:
    """Set-up seconds, seconds per step and peak memory of one method's ``unlearn``."""
    spec = get_method(name)
    has_optim = trains(cfg)
    if has_optim:
        cfg = apply_overrides(cfg, [f"optim.steps={steps}"])
    with CostMeter(pipe.device) as cost:
        report = spec.unlearn(pipe, data, cfg).report()
    per_step = seconds_per_step(report.get("log") or []) if has_optim else 0.0  # closed form (UCE): all set-up
    row = {"method": name, "total s": cost.wall_time_s, "peak GB": cost.peak_memory_gb, "s/step": per_step}
    row["set-up s"] = max(0.0, cost.wall_time_s - (steps if has_optim else 0) * per_step)
    row["batch"] = ", ".join(
        f"{k}={getattr(cfg, k)}" for k in ("batch_size", "forget_batch", "retain_batch") if hasattr(cfg, k)
    )
    return row


@torch.no_grad()
def measure_sampling(pipe, batches, steps: int, precision: str) -> list[dict]:
    """Answer-set images/s at the protocol's 100 DDIM steps, guidance 9, for each micro-batch.

    One batch of images is sampled at 2 and at ``steps`` steps (after a warm-up): the difference
    gives the seconds per sampler step, the rest the fixed part (text encoding, VAE decoding),
    so a 100-step image costs fixed + 100 x per-step without sampling 100 steps."""
    catalogue = get_catalogue("unlearncanvas")
    prompts = [catalogue.prompt(s, o) for s in catalogue.style_classes for o in catalogue.objects]
    rows = []
    for batch in batches:
        kwargs = dict(guidance=9.0, sampler="ddim", micro_batch=batch, precision=precision)

        def timed(n: int, batch: int = batch, kwargs: dict = kwargs) -> float:
            sync(pipe.device)
            start = time.perf_counter()
            pipe.sample(prompts[:batch], list(range(batch)), steps=n, **kwargs)
            sync(pipe.device)
            return time.perf_counter() - start

        try:
            timed(2)  # warm-up
            short, long = timed(2), timed(steps)
        except torch.OutOfMemoryError:
            rows.append({"micro-batch": batch, "img/s": float("nan"), "note": "out of memory"})
            torch.cuda.empty_cache()
            continue
        per_step = (long - short) / (steps - 2)
        fixed = max(0.0, short - 2 * per_step)
        rows.append(
            {
                "micro-batch": batch,
                "s/step": per_step,
                "fixed s": fixed,
                "img/s": batch / (fixed + 100 * per_step),
                "note": f"timed at 2 and {steps} steps",
            }
        )
    return rows


@torch.no_grad()
def measure_classifier(arch: str, device: torch.device, batch: int, precision: str) -> float:
    """Images/s of a timm classifier (random weights) on 224 x 224 inputs."""
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=51).to(device).eval()
    x = torch.randn(batch, 3, 224, 224, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        model(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(3):
            model(x)
        sync(device)
    return 3 * batch / (time.perf_counter() - start)


def project(methods: list[dict], img_s: float, clf_img_s: float) -> tuple[list[dict], dict]:
    """GPU-hours of the ``unlearncanvas`` preset's plan from the measured per-method figures."""
    sweep = build_sweep(get_preset("unlearncanvas"), runs_dir="runs")
    by_name = {m["method"]: m for m in methods}
    answers_s = ANSWER_IMAGES / img_s + 2 * ANSWER_IMAGES / clf_img_s  # sample, then two classifiers read them
    rows, total = [], ANSWER_IMAGES / img_s  # the base model's answer set, once
    for name in sweep.methods:
        jobs = [j for j in sweep.jobs if j.method == name]
        cfg = sweep.method_config(jobs[0])
        steps = cfg.optim.steps if trains(cfg) else 0
        m = by_name[name]
        job_s = m["set-up s"] + steps * m["s/step"] + answers_s
        rows.append(
            {
                "method": name,
                "preset steps": steps,
                "unlearn s": m["set-up s"] + steps * m["s/step"],
                "answers + judges s": answers_s,
                "job s": job_s,
                "jobs": len(jobs),
                "GPU-hours": len(jobs) * job_s / 3600,
            }
        )
        total += len(jobs) * job_s
    spare = next(r for r in rows if r["method"] == "spare")
    return rows, {"preset_gpu_hours": total / 3600, "one_spare_target_gpu_hours": spare["job s"] / 3600}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=sorted(SCALES))
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--steps", type=int, default=6, help="optimisation steps timed per method")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--out", default="results/gpu")
    args = parser.parse_args(argv)
    device = default_device()
    spec = SCALES[args.scale]
    out = Path(args.out)
    started = time.perf_counter()

    pipe = build_pipeline(args.scale, device)
    sizes = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("unet", "vae", "text_encoder")}
    print(f"{args.scale} model on {device}: " + ", ".join(f"{n} {v / 1e6:.1f}M" for n, v in sizes.items()))
    data = synthetic_data(spec["image"])
    sweep = build_sweep(get_preset("unlearncanvas"), runs_dir="runs")
    methods = []
    for name in args.methods or method_names():
        job = next(j for j in sweep.jobs if j.method == name)
        cfg = sweep.method_config(job)
        if trains(cfg):
            cfg = apply_overrides(cfg, [f"optim.precision={args.precision}"])
        variants = [(name, cfg)]
        if name == "spare":  # the authors' UnlearnCanvas batch: 2 forget + 2 retain
            variants.append(("spare (batch 2+2)", apply_overrides(cfg, ["forget_batch=2", "retain_batch=2"])))
        for label, c in variants:
            try:
                row = measure_method(pipe, name, c, data, args.steps)
            except Exception as err:  # one method's failure is reported, the others are still measured
                traceback.print_exc()
                methods.append({"method": label, "error": f"{type(err).__name__}: {err}"})
                continue
            row["method"] = label
            methods.append(row)
            print(f"  {label:18s} set-up {row['set-up s']:7.2f} s  {row['s/step']:.3f} s/step  {row['peak GB']:.1f} GB")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    sampling = measure_sampling(pipe, spec["batches"], spec["steps"], args.precision)
    for row in sampling:
        print(f"  sampling micro-batch {row['micro-batch']:3d}: {row['img/s']:.3f} img/s at 100 steps ({row['note']})")
    best = max((r for r in sampling if np.isfinite(r["img/s"])), key=lambda r: r["img/s"])
    img_s = best["img/s"]
    del pipe
    clf_img_s = measure_classifier(spec["classifier"], device, 64 if args.scale == "full" else 4, args.precision)
    print(f"  {spec['classifier']}: {clf_img_s:.1f} img/s")
    plan = [m for m in methods if m["method"] in method_names() and "error" not in m]
    rows, totals = project(plan, img_s, clf_img_s) if len(plan) == len(method_names()) else ([], {})
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({cpu_info()['model']})"
    record = {
        "scale": args.scale,
        "precision": args.precision,
        "device": gpu,
        "parameters": sizes,
        "methods": methods,
        "sampling": sampling,
        "best_sampling": best,
        "classifier": {"arch": spec["classifier"], "img/s": clf_img_s},
        "projection": rows,
        **totals,
        "wall_s": time.perf_counter() - started,
        "provenance": provenance(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gpu_cost.json", record)
    import pandas as pd

    note = f"{gpu}, {args.scale} scale, {args.precision}; from `python -m benchmarks.gpu_cost --scale {args.scale}`"
    write_table(pd.DataFrame(methods), out / "methods", "Seconds per unlearning step and set-up, per method", note)
    if rows:
        summary = (
            f"Projection: the unlearncanvas preset {totals['preset_gpu_hours']:.1f} GPU-hours, "
            f"one SPARE target {totals['one_spare_target_gpu_hours']:.2f} GPU-hours"
        )
        write_table(
            pd.DataFrame(rows), out / "projection", "GPU-hours of the unlearncanvas preset", note + "\n\n" + summary
        )
        print(summary)
    print(f"wrote {out}/gpu_cost.json, methods.md" + (", projection.md" if rows else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
