"""The one optimisation loop every trained method shares: it only supplies the loss."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from spare.config import HASH_IF_SET
from spare.precision import resolve_precision
from spare.progress import tqdm


@dataclass
class OptimConfig:
    """Optimiser settings shared by all methods (each method sets its own defaults)."""

    steps: int = 300
    lr: float = 1e-4
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # "bf16": the loss function (every network call in it) runs under bf16 autocast; the noise,
    # the losses (autocast keeps MSE in fp32), the gradients' clipping and the optimiser stay fp32.
    # "auto": bf16 only where the machine runs it natively (spare.precision), resolved
    # before any key is computed (:func:`resolved_config`). Hashed only when not fp32.
    precision: Literal["fp32", "bf16", "auto"] = field(default="fp32", metadata=HASH_IF_SET)
    # True: the network calls of one step that share a model run as one batched call
    # (:func:`predict_many`): the same maths, fewer and larger calls. Hashed only when set.
    fused: bool = field(default=False, metadata=HASH_IF_SET)


# The faster settings every trained method takes by default once the side-by-side
# (``python -m benchmarks.speed_agreement``) shows its metrics agree with fp32's: then
# {"precision": "auto", "fused": True}. Until then none: they are options, keyed apart. The
# dataclass defaults (fp32, unfused) stay the hash baseline either way, so runs made before keep
# their keys and an explicit ``optim.precision=fp32 optim.fused=false`` finds them.
ADOPTED: dict[str, Any] = {}


def default_optim(**kw: Any) -> OptimConfig:
    """A method's default optimiser settings: ``kw`` over the adopted speed settings (ADOPTED)."""
    return OptimConfig(**{**ADOPTED, **kw})


def resolved_config(cfg: Any, device_type: str) -> Any:
    """``cfg`` (a method config) with ``optim.precision="auto"`` replaced by what ``device_type``
    runs (fp32 or bf16); any other config is returned unchanged."""
    optim = getattr(cfg, "optim", None)
    if not isinstance(optim, OptimConfig) or optim.precision != "auto":
        return cfg
    choice = resolve_precision("auto", device_type).precision
    return dataclasses.replace(cfg, optim=dataclasses.replace(optim, precision=choice))


def predict_many(
    unet: torch.nn.Module, calls: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], fused: bool
) -> list[torch.Tensor]:
    """``unet(x, t, encoder_hidden_states=emb).sample`` for each ``(x, t, emb)`` of ``calls``.

    ``fused``: one call on the inputs stacked along the batch, split back (the UNet treats every
    sample on its own, so only the floating-point rounding of the larger batch differs);
    otherwise one call each."""
    if not fused or len(calls) == 1:
        return [unet(x, t.to(x.device), encoder_hidden_states=e).sample for x, t, e in calls]
    xs, ts, es = zip(*calls, strict=True)
    out = unet(torch.cat(xs), torch.cat(ts).to(xs[0].device), encoder_hidden_states=torch.cat(es)).sample
    return list(out.split([len(x) for x in xs]))


def seconds_per_step(log: list[dict]) -> float:
    """Seconds per optimisation step from :func:`optimise`'s log (between its first and last
    rows, so the set-up before the first step is left out); 0 for a log without steps."""
    if len(log) < 2 or "step" not in log[-1] or log[-1]["step"] == log[0]["step"]:
        return 0.0
    return (log[-1]["elapsed_s"] - log[0]["elapsed_s"]) / (log[-1]["step"] - log[0]["step"])


# OptimConfig.schedule -> diffusers' scheduler name (diffusers.optimization.get_scheduler); its
# "constant" ignores warmup, "constant_with_warmup" is constant once warmed up
DIFFUSERS_SCHEDULES = {"cosine": "cosine", "constant": "constant_with_warmup"}


def lr_schedule(opt: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """diffusers' schedule for ``cfg``: linear warmup from 0 over ``warmup_steps``, then constant or
    a half cosine to 0 at ``steps``."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        DIFFUSERS_SCHEDULES[cfg.schedule], opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps
    )


def optimise(
    params: list[torch.nn.Parameter],
    loss_fn: Callable[[int, torch.Generator], dict[str, torch.Tensor]],
    cfg: OptimConfig,
    seed: int,
    desc: str = "unlearn",
    log_every: int = 10,
) -> list[dict]:
    """AdamW on ``params`` for ``cfg.steps`` steps of ``loss_fn(step, gen)["loss"]``; returns the log."""
    if not params:
        raise ValueError("nothing to train: the method selected no parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = lr_schedule(opt, cfg)
    gen = torch.Generator().manual_seed(seed)
    log, start = [], time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=desc, unit="step", leave=False)
    device_type = params[0].device.type
    bf16 = resolve_precision(cfg.precision, device_type).precision == "bf16"  # "auto" when called directly
    for step in bar:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            terms = loss_fn(step, gen)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            row = {k: float(v.detach()) for k, v in terms.items()}
            row.update(step=step, lr=sched.get_last_lr()[0], elapsed_s=time.perf_counter() - start)
            log.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
    return log


def denoising_loss(pipe, batches, n: int, gen: torch.Generator, T: int | None = None) -> torch.Tensor:
    """The plain denoising loss E || eps_theta(x_t, t, c) - eps ||^2 on ``n`` images and their prompts
    drawn from ``batches`` (``sample(n, gen) -> (x0, prompts, ...)``), at timesteps below ``T``
    (default: every training timestep). The draws, in order: the batch, t, the noise."""
    x0, prompts, _ = batches.sample(n, gen)
    t = torch.randint(T or pipe.scheduler.config.num_train_timesteps, (len(x0),), generator=gen)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    with torch.no_grad():
        emb = pipe.encode_prompts(prompts)
    return torch.nn.functional.mse_loss(pipe.predict_noise(pipe.add_noise(x0, noise, t), t, emb), noise)
