"""Train the canvas-mini base text-to-image model (``make base-model``) with accelerate.

Plain denoising (epsilon prediction) on the benchmark's training images, with min-SNR-5
loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
Strategy", eq. 8), classifier-free-guidance prompt dropout, a cosine learning-rate
schedule with warm-up and an EMA of the weights, which is what gets exported.

Every batch (its images, timesteps and noise) is drawn from a generator seeded by
``(seed, step)``, so a run resumed from a checkpoint continues exactly as if it had never
stopped. Checkpoints (accelerate state + EMA) go to ``<work_dir>/checkpoints``; the EMA is
stored as safetensors and JSON (never a pickle: a checkpoint is read without running its code).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr

from spare.concepts import get_catalogue
from spare.config import to_dict
from spare.data import load_benchmark_data
from spare.io import atomic_path, write_json
from spare.pipeline import T2IPipeline
from spare.progress import tqdm
from spare.tiny_model import TinyModelConfig, build_tiny_pipeline

log = logging.getLogger(__name__)


@dataclass
class BaseTrainConfig:
    """``make base-model``: defaults are the committed canvas-mini recipe."""

    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    benchmark: str = "mini"
    n_per_pair: int = 200  # canvas-mini renderings per (style, object) pair
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 300
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    cond_dropout: float = 0.1  # share of prompts replaced by "" (for classifier-free guidance)
    grad_clip: float = 1.0
    # "auto": bf16 where the machine runs it natively (spare.precision), else "no"
    # (bf16 autocast runs 40-90x slower on a CPU without native bf16); or accelerate's "no" / "bf16"
    mixed_precision: str = "auto"
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    sample_every: int = 2000  # write a styles x objects grid of EMA samples (0: never)
    out_dir: str = "models/canvas-mini-base"
    work_dir: str = "runs/base-model"


def _latest_checkpoint(work_dir: Path) -> Path | None:
    found = sorted((work_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def train_base_model(cfg: BaseTrainConfig) -> Path:
    """Train (or resume) and export the EMA pipeline to ``cfg.out_dir``; returns that path."""
    work_dir, out_dir = Path(cfg.work_dir), Path(cfg.out_dir)
    accelerator = Accelerator(mixed_precision=_mixed_precision(cfg.mixed_precision))
    catalogue = get_catalogue(cfg.benchmark)
    dataset = load_benchmark_data(cfg.benchmark, n_per_pair=cfg.n_per_pair, size=cfg.model.image_size)
    pipe = build_tiny_pipeline(catalogue, cfg.model, seed=cfg.seed)
    unet, text_encoder = pipe.unet.train(), pipe.text_encoder.train()
    params = [p for m in (unet, text_encoder) for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    unet, text_encoder, optimizer, lr_schedule = accelerator.prepare(unet, text_encoder, optimizer, lr_schedule)
    # the loss goes through the prepared (possibly DDP-wrapped) modules; `pipe` keeps the plain ones
    train_pipe = dataclasses.replace(pipe, unet=unet, text_encoder=text_encoder)
    ema = EMAModel(params, decay=cfg.ema_decay)

    start = 0
    if (ckpt := _latest_checkpoint(work_dir)) is not None:
        accelerator.load_state(str(ckpt))
        load_ema(ema, ckpt)
        start = int(ckpt.name.split("-")[1])
        log.info("resumed from %s", ckpt)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    log_path = work_dir / "train_log.csv"
    rows = [r for r in _read_log(log_path) if int(r["step"]) <= start]

    per_process = cfg.batch_size // accelerator.num_processes
    t0, losses = time.perf_counter(), []
    elapsed_before = float(rows[-1]["elapsed_s"]) if rows else 0.0
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="base model", unit="step")
    for step in bar:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(dataset), (cfg.batch_size,), generator=gen)
        idx = idx[accelerator.process_index * per_process : (accelerator.process_index + 1) * per_process]
        batch = dataset[idx.tolist()]
        x0 = pipe.encode_pil(batch["image"]).to(accelerator.device)
        drop = torch.rand(len(idx), generator=gen) < cfg.cond_dropout
        prompts = ["" if d else p for d, p in zip(drop.tolist(), batch["prompt"], strict=True)]
        t = torch.randint(pipe.scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        t, noise = t.to(accelerator.device), noise.to(accelerator.device)
        with accelerator.autocast():
            eps = train_pipe.predict_noise(pipe.add_noise(x0, noise, t), t, train_pipe.encode_prompts(prompts))
        per_sample = F.mse_loss(eps.float(), noise, reduction="none").mean(dim=(1, 2, 3))
        snr = compute_snr(pipe.scheduler, t)
        weight = torch.clamp(snr, max=cfg.min_snr_gamma) / snr  # min-SNR-gamma for epsilon prediction
        loss = (weight * per_sample).mean()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        lr_schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(params)
        losses.append(per_sample.mean().item())
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            elapsed = elapsed_before + time.perf_counter() - t0
            rows.append(
                {"step": done, "loss": np.mean(losses), "lr": lr_schedule.get_last_lr()[0], "elapsed_s": elapsed}
            )
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
            losses = []
            _write_log(log_path, rows)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            _checkpoint(accelerator, ema, work_dir, done)
        if cfg.sample_every and (done % cfg.sample_every == 0 or done == cfg.steps) and accelerator.is_main_process:
            _sample_grid(pipe, ema, params, catalogue, work_dir / "samples" / f"step-{done:06d}.png")

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _export(pipe, ema, params, cfg, rows, out_dir)
    return out_dir


def _mixed_precision(requested: str) -> str:
    """accelerate's ``mixed_precision`` for a config value ("auto" resolved for this machine)."""
    if requested != "auto":
        return requested
    from spare.pipeline import default_device
    from spare.precision import resolve_precision

    return "bf16" if resolve_precision("auto", default_device().type).precision == "bf16" else "no"


EMA_TENSORS, EMA_SETTINGS = "ema.safetensors", "ema.json"


def save_ema(ema: EMAModel, folder: Path) -> None:
    """The EMA's shadow weights as safetensors, its counters and settings as JSON."""
    from safetensors.torch import save_file

    state = ema.state_dict()
    shadow = state.pop("shadow_params")
    save_file({f"shadow.{i:04d}": p.detach().cpu().contiguous() for i, p in enumerate(shadow)}, folder / EMA_TENSORS)
    write_json(folder / EMA_SETTINGS, state)


def load_ema(ema: EMAModel, folder: Path) -> None:
    """Restore what :func:`save_ema` wrote; a checkpoint without it (or a damaged one) is an error
    that names the folder, never a silent restart of the average."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from spare.errors import UserError

    try:
        tensors = load_file(folder / EMA_TENSORS)
        state = json.loads((folder / EMA_SETTINGS).read_text())
    except (OSError, ValueError, SafetensorError) as err:  # missing, truncated, not safetensors / JSON
        raise UserError(
            f"checkpoint {folder} has no readable EMA ({EMA_TENSORS}, {EMA_SETTINGS}): {err}; "
            "delete the folder to resume from the one before it"
        ) from err
    shadow = [tensors[k].to(p.device) for k, p in zip(sorted(tensors), ema.shadow_params, strict=False)]
    if len(tensors) != len(ema.shadow_params) or any(
        a.shape != b.shape for a, b in zip(shadow, ema.shadow_params, strict=False)
    ):
        raise UserError(f"checkpoint {folder}: its EMA does not match this model's parameters")
    ema.load_state_dict({**state, "shadow_params": shadow})


def _checkpoint(accelerator: Accelerator, ema: EMAModel, work_dir: Path, step: int, keep: int = 2) -> None:
    target = work_dir / "checkpoints" / f"step-{step:06d}"
    with atomic_path(target) as tmp:
        accelerator.save_state(str(tmp))
        save_ema(ema, tmp)
    for old in sorted((work_dir / "checkpoints").glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "elapsed_s"])
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def _with_ema(pipe: T2IPipeline, ema: EMAModel, params: list[torch.nn.Parameter]):
    """The pipeline temporarily carries the EMA weights (in eval mode)."""
    ema.store(params)
    ema.copy_to(params)
    pipe.unet.eval(), pipe.text_encoder.eval()
    try:
        yield pipe
    finally:
        ema.restore(params)
        pipe.unet.train(), pipe.text_encoder.train()


def _sample_grid(pipe, ema, params, catalogue, path: Path) -> None:
    from spare.viz import image_grid, save_png

    with _with_ema(pipe, ema, params):
        prompts = [catalogue.prompt(s, o) for s in catalogue.style_classes for o in catalogue.objects]
        images = pipe.sample(prompts, list(range(len(prompts))), steps=25, guidance=3.0)
    n = len(catalogue.objects)
    cells = [list(images[i * n : (i + 1) * n]) for i in range(len(catalogue.style_classes))]
    save_png(image_grid(cells, catalogue.style_classes, catalogue.objects, title=path.stem), path)


def _export(pipe, ema, params, cfg: BaseTrainConfig, rows: list[dict], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with _with_ema(pipe, ema, params), atomic_path(out_dir) as tmp:
        pipe.save_pretrained(tmp)
        (tmp / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        shutil.copy(Path(cfg.work_dir) / "train_log.csv", tmp / "train_log.csv")
        summary = {
            "steps": cfg.steps,
            "final_loss": float(np.mean([float(r["loss"]) for r in rows[-5:]])),
            "wall_time_s": float(rows[-1]["elapsed_s"]),
            "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
            "text_encoder_params": sum(p.numel() for p in pipe.text_encoder.parameters()),
        }
        write_json(tmp / "train_summary.json", summary)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows])
        ax.set(xlabel="step", ylabel="denoising MSE (unweighted)", yscale="log", title="canvas-mini base model")
        fig.tight_layout()
        fig.savefig(tmp / "loss_curve.png", dpi=100)
        plt.close(fig)
    log.info("exported %s: %s", out_dir, summary)
