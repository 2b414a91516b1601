"""ESD, Erased Stable Diffusion (Gandikota et al., ICCV 2023).

Fine-tune the UNet so that, on the target prompt, it predicts what the frozen original
predicts with negative guidance away from the concept (ESD paper, eq. 5, and its code):
    eps_theta(x_t, c, t) -> eps*(x_t, t) - eta (eps*(x_t, c, t) - eps*(x_t, t)),
where eps*(x_t, t) is the frozen model on the empty prompt and x_t comes from partially
sampling the model being trained with the target prompt (guidance 3, as in the ESD code).
(``../shared/UNLEARNCANVAS.md`` writes the target as eps*(c) - eta (eps*(c) - eps*(empty)),
which is eps*(empty) at eta 1; we follow the paper and its code.) ESD-x trains the
cross-attention (``variant="x"``, the UnlearnCanvas choice), ESD-u everything else.
Published on UnlearnCanvas: ESD-x, lr 1e-5, 1000 iterations, eta 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from spare.baselines import scaled_lr, scaled_steps
from spare.baselines.common import WeightTraining, eps, frozen_copy, partial_sample, scoped_parameters
from spare.data import TargetData
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.registry import register_method
from spare.methods.trainer import OptimConfig, default_optim, optimise, predict_many


@dataclass
class ESDConfig(MethodConfig):
    variant: Literal["x", "u"] = "x"
    eta: float = 1.0  # negative guidance
    batch_size: int = 4
    sample_steps: int = 25  # DDIM steps of the partial sampling that produces x_t
    sample_guidance: float = 3.0
    optim: OptimConfig = field(
        default_factory=lambda: default_optim(steps=scaled_steps(1000), lr=scaled_lr(1e-5), schedule="constant")
    )


@register_method("esd", ESDConfig, "ESD: negative-guidance fine-tuning of cross-attention (x) or the rest (u)")
def unlearn(pipe, data: TargetData, cfg: ESDConfig) -> Unlearned:
    if cfg.variant not in ("x", "u"):
        raise ValueError(f"ESD variant must be 'x' or 'u', got {cfg.variant!r}")
    names = scoped_parameters(pipe.unet, "xattn" if cfg.variant == "x" else "non_xattn")
    teacher = frozen_copy(pipe.unet)
    run = WeightTraining(pipe, "esd", names, data)
    prompts = sorted(set(data.forget["prompt"]))
    with torch.no_grad():
        emb_empty = pipe.encode_prompts([""])

    def loss_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(prompts), (cfg.batch_size,), generator=gen).tolist()
        with torch.no_grad():
            emb_c = pipe.encode_prompts([prompts[i] for i in idx])
            emb_u = emb_empty.expand_as(emb_c)
        stop = int(torch.randint(cfg.sample_steps, (1,), generator=gen))
        x_t, t = partial_sample(
            pipe, pipe.unet, emb_c, emb_u, cfg.sample_steps, stop, cfg.sample_guidance, gen, fused=cfg.optim.fused
        )
        tt = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
        with torch.no_grad():
            e_0, e_p = predict_many(teacher, [(x_t, tt, emb_u), (x_t, tt, emb_c)], cfg.optim.fused)
            target = e_0 - cfg.eta * (e_p - e_0)
        loss = F.mse_loss(eps(pipe.unet, x_t, tt, emb_c), target)
        return {"loss": loss}

    with run:
        run.log = optimise(run.params, loss_fn, cfg.optim, cfg.seed, desc=f"esd-{cfg.variant} {data.target}")
    run.result.edit.meta["variant"] = cfg.variant
    return run.result
