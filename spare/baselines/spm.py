"""SPM, one-dimensional adapters as semi-permeable membranes (Lyu et al., CVPR 2024).

Rank-1 LoRA "membranes" on every transformer linear of the UNet (self- and
cross-attention projections and feed-forward layers). Loss per step (the LECO / SPM
``erase_with_la`` action):
    erase:  eps_M(x_t, c_target) -> eps(x_t, "") - g (eps(x_t, c_target) - eps(x_t, ""))
    anchor: eps_M(x_t, c_anchor) -> eps(x_t, c_anchor)     (latent anchoring, weight la)
with eps the model without membranes and x_t from partially sampling the model with
membranes on the target prompt. SPM anchors on prompts sampled from CLIP's vocabulary;
canvas-mini's vocabulary is its catalogue, so anchors are retained prompts. Published
(SPM UnlearnCanvas config): rank 1, alpha 1, lr 1e-4, 3000 iterations, batch 1, guidance
1.0, la_strength 1000, 30 denoising steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from spare.baselines import scaled_lr, scaled_steps
from spare.baselines.common import partial_sample
from spare.data import TargetData
from spare.methods.adapters import AdapterEdit, adapters_disabled, lora_modules
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.registry import register_method
from spare.methods.trainer import OptimConfig, default_optim, optimise, predict_many

TRANSFORMER_LINEAR = re.compile(
    r"\.transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))$"
)


@dataclass
class SPMConfig(MethodConfig):
    rank: int = 1
    alpha: float = 1.0
    guidance: float = 1.0
    la_strength: float = 1000.0
    batch_size: int = 1
    sample_steps: int = 30
    sample_guidance: float = 3.0  # guidance of the partial sampling that produces x_t (as in ESD)
    optim: OptimConfig = field(default_factory=lambda: default_optim(steps=scaled_steps(3000), lr=scaled_lr(1e-4)))


@register_method("spm", SPMConfig, "SPM: rank-1 membranes with an erasing loss and latent anchoring")
def unlearn(pipe, data: TargetData, cfg: SPMConfig) -> Unlearned:
    names = sorted(n for n in lora_modules(pipe.unet) if TRANSFORMER_LINEAR.search(n))
    pipe.unet.requires_grad_(False)
    edit = AdapterEdit("spm", cfg.rank, cfg.alpha, names).apply(pipe.unet, init_seed=cfg.seed)
    params = edit.trainable_parameters(pipe.unet)
    for p in params:
        p.requires_grad_(True)
    targets, anchors = sorted(set(data.forget["prompt"])), sorted(set(data.retain["prompt"]))
    with torch.no_grad():
        emb_empty = pipe.encode_prompts([""])
    fused = cfg.optim.fused

    def loss_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(targets), (cfg.batch_size,), generator=gen).tolist()
        anchor = torch.randint(len(anchors), (cfg.batch_size,), generator=gen).tolist()
        with torch.no_grad():
            emb_c = pipe.encode_prompts([targets[i] for i in pick])
            emb_a = pipe.encode_prompts([anchors[i] for i in anchor])
            emb_u = emb_empty.expand_as(emb_c)
        stop = int(torch.randint(cfg.sample_steps, (1,), generator=gen))
        x_t, t = partial_sample(
            pipe, pipe.unet, emb_c, emb_u, cfg.sample_steps, stop, cfg.sample_guidance, gen, fused=fused
        )
        tt = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
        with torch.no_grad(), adapters_disabled(pipe.unet):
            e_u, e_c, e_a = predict_many(pipe.unet, [(x_t, tt, e) for e in (emb_u, emb_c, emb_a)], fused)
        s_c, s_a = predict_many(pipe.unet, [(x_t, tt, emb_c), (x_t, tt, emb_a)], fused)
        erase = F.mse_loss(s_c, e_u - cfg.guidance * (e_c - e_u))
        anchor_loss = F.mse_loss(s_a, e_a)
        loss = erase + cfg.la_strength * anchor_loss
        return {"loss": loss, "erase": erase.detach(), "anchor": anchor_loss.detach()}

    try:
        log = optimise(params, loss_fn, cfg.optim, cfg.seed, desc=f"spm {data.target}")
        edit.capture(pipe.unet)
    finally:
        edit.remove(pipe.unet)
    edit.meta["target"] = str(data.target)
    return Unlearned.of(edit, pipe.unet, log)
