"""SPARE stage 1, parameter localization: gradient saliency of the plain denoising loss.

One pass over the forget data accumulates, for every weight of every candidate module
(the attention projections, or every Linear / Conv2d of the UNet: ``candidates``),
|d MSE(eps_theta(x_t, t, c_forget), eps) / d w| (summed over batches). Two granularities,
both within the candidates:

- per module: score = mean saliency of the module's weight; keep the top fraction ``q``
  of modules (LoRA only on those);
- per weight: one global threshold keeps the top fraction ``q`` of all weights as a 0/1
  mask M (the LoRA update is then masked, Delta W = (B A) * M).

Saliency maps are cached per (model fingerprint, target, settings).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from spare.io import atomic_path, cache_root, config_hash
from spare.methods.adapters import lora_modules
from spare.methods.batches import ImageBatches
from spare.methods.trainer import denoising_loss
from spare.progress import tqdm


def model_fingerprint(module: torch.nn.Module) -> str:
    """Hash of every parameter's bytes: the saliency cache key of a model."""
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def compute_saliency(
    pipe, forget: ImageBatches, batches: int, batch_size: int, seed: int, candidates: str = "all"
) -> dict[str, torch.Tensor]:
    """Accumulated |grad| of the denoising loss on forget data, per candidate module's weight."""
    modules = lora_modules(pipe.unet, candidates)
    weights = {name: m.weight for name, m in modules.items()}
    sal = {name: torch.zeros_like(w, device="cpu") for name, w in weights.items()}
    before = {name: w.requires_grad for name, w in weights.items()}
    for w in weights.values():
        w.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    try:
        for _ in tqdm(range(batches), desc="saliency", unit="batch", leave=False):
            loss = denoising_loss(pipe, forget, batch_size, gen)
            grads = torch.autograd.grad(loss, list(weights.values()))
            for name, g in zip(weights, grads, strict=True):
                sal[name] += g.detach().abs().cpu()
    finally:
        for name, w in weights.items():
            w.requires_grad_(before[name])
    return sal


def cached_saliency(
    pipe, forget: ImageBatches, target: str, batches: int, batch_size: int, seed: int, candidates: str = "all"
) -> dict:
    key = config_hash(
        {
            "model": model_fingerprint(pipe.unet),
            "target": target,
            "batches": batches,
            "batch_size": batch_size,
            "seed": seed,
            **({"candidates": candidates} if candidates != "all" else {}),  # "all": the key it always had
        }
    )
    path = cache_root() / "saliency" / f"{key}.safetensors"
    if path.exists():
        return load_file(path)
    sal = compute_saliency(pipe, forget, batches, batch_size, seed, candidates)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in sal.items()}, tmp)
    return sal


def module_scores(saliency: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-module score: the mean saliency of its weight."""
    return {name: float(s.mean()) for name, s in saliency.items()}


def top_modules(saliency: dict[str, torch.Tensor], q: float) -> list[str]:
    """The top fraction ``q`` of modules by mean saliency (at least one), by exact name."""
    scores = module_scores(saliency)
    k = max(1, round(q * len(scores)))
    return sorted(sorted(scores, key=scores.get, reverse=True)[:k])


def weight_masks(saliency: dict[str, torch.Tensor], q: float) -> dict[str, torch.Tensor]:
    """0/1 masks keeping the top fraction ``q`` of all weights (one global threshold).

    Only modules with at least one kept weight get a mask (and an adapter).
    """
    flat = torch.cat([s.flatten() for s in saliency.values()])
    k = max(1, round(q * flat.numel()))
    threshold = torch.topk(flat, k).values.min()
    masks = {name: s >= threshold for name, s in saliency.items()}
    return {name: m for name, m in masks.items() if m.any()}


def plot_saliency(scores: dict[str, float], path: str | Path, kept: list[str] | None = None) -> Path:
    """Bar chart of mean saliency per module in network order (adapted modules in red), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    values = np.array([scores[n] for n in names])
    colours = ["tab:red" if kept and n in kept else "tab:gray" for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(names)), 4))
    ax.bar(range(len(names)), np.maximum(values, 1e-12), color=colours)
    ax.set_yscale("log")
    short = [n.replace("down_blocks", "d").replace("up_blocks", "u").replace("transformer_blocks", "tb") for n in names]
    ax.set_xticks(range(len(names)), short, rotation=90, fontsize=5)
    ax.set(ylabel="mean |grad| of the denoising loss", title="SPARE saliency per module (red: adapted)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
