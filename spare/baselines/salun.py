"""SalUn, saliency unlearning (Fan et al., ICLR 2024), its diffusion variant.

1. Weight saliency: |grad| of the forgetting data's denoising loss for every Linear / Conv2d
   weight of the UNet (the same accumulation as SPARE's stage 1); the mask keeps the TOP
   ``keep`` (one half) of all weights by one global threshold. (A widely copied
   implementation keeps the lowest gradients by mistake; this is the paper's rule.)
2. Fine-tune only the masked weights (gradients multiplied by the mask) on
       MSE(eps(x_t^f, c_f), sg eps(x_t^f, c_pseudo)) + alpha * denoising loss on retain data,
   the pseudo prompt being our surrogate.
Published: lr 1e-5 (SD experiments); alpha 1.0 is our reading; the UnlearnCanvas iteration count is
not recorded here, so it gets ESD's and CA's published 1000 (``spare.baselines``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spare.baselines import scaled_lr, scaled_steps
from spare.baselines.common import WeightTraining, forget_towards_pseudo
from spare.data import TargetData
from spare.methods.batches import ImageBatches
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.registry import register_method
from spare.methods.saliency import compute_saliency, weight_masks
from spare.methods.trainer import OptimConfig, default_optim, denoising_loss, optimise


@dataclass
class SalUnConfig(MethodConfig):
    keep: float = 0.5  # share of weights the saliency mask keeps (the top ones)
    alpha: float = 1.0
    batch_size: int = 4
    saliency_batches: int = 8
    saliency_batch_size: int = 16
    optim: OptimConfig = field(
        default_factory=lambda: default_optim(steps=scaled_steps(1000), lr=scaled_lr(1e-5), schedule="constant")
    )


@register_method("salun", SalUnConfig, "SalUn: top-half gradient-saliency mask, then masked forgetting fine-tune")
def unlearn(pipe, data: TargetData, cfg: SalUnConfig) -> Unlearned:
    forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
    retain = ImageBatches(pipe, data.retain)
    saliency = compute_saliency(pipe, forget, cfg.saliency_batches, cfg.saliency_batch_size, cfg.seed)
    masks = weight_masks(saliency, cfg.keep)  # module -> bool mask of its weight (top ``keep`` globally)
    names = [f"{m}.weight" for m in sorted(masks)]  # the same order as ``modules`` below
    run = WeightTraining(pipe, "salun", names, data)

    def masked(mask: torch.Tensor):
        mask = mask.to(pipe.device)  # saliency is kept on the CPU
        return lambda grad: grad * mask.to(grad.dtype)

    modules = sorted(masks)
    hooks = [p.register_hook(masked(masks[m])) for m, p in zip(modules, run.params, strict=True)]
    T = pipe.scheduler.config.num_train_timesteps

    def loss_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        l_f = forget_towards_pseudo(pipe, forget, cfg.batch_size, gen, T)
        l_r = denoising_loss(pipe, retain, cfg.batch_size, gen, T)
        return {"loss": l_f + cfg.alpha * l_r, "forget": l_f.detach(), "retain": l_r.detach()}

    run.on_exit(lambda: [h.remove() for h in hooks])
    with run:
        run.log = optimise(run.params, loss_fn, cfg.optim, cfg.seed, desc=f"salun {data.target}")
    kept = sum(int(m.sum()) for m in masks.values())
    run.result.details["masked_weights"] = kept
    return run.result
