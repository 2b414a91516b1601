"""CA, Concept Ablation, model-based variant (Kumari et al., ICCV 2023).

On images of the anchor concept (here the surrogate: the photo style with the same object
for a style target, the surrogate object for an object target), the model on the target
prompt is pulled to its own detached prediction on the anchor prompt:
    L = MSE(eps_theta(x_t, c_target, t), sg eps_theta(x_t, c_anchor, t)),   x_t from anchor images.
Only the cross-attention key and value projections train (``freeze_model: crossattn-kv``).
Published on UnlearnCanvas (its CA config): base lr 2e-6 scaled by batch size 4 (8e-6),
1000 steps, batch 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from spare.baselines import scaled_lr, scaled_steps
from spare.baselines.common import WeightTraining, anchor_batches, scoped_parameters
from spare.data import TargetData
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.registry import register_method
from spare.methods.trainer import OptimConfig, default_optim, optimise


@dataclass
class CAConfig(MethodConfig):
    batch_size: int = 4
    optim: OptimConfig = field(
        default_factory=lambda: default_optim(steps=scaled_steps(1000), lr=scaled_lr(8e-6), schedule="constant")
    )


@register_method("ca", CAConfig, "CA: target prompt distilled to the anchor prompt on anchor images (k/v only)")
def unlearn(pipe, data: TargetData, cfg: CAConfig) -> Unlearned:
    names = scoped_parameters(pipe.unet, "xattn_kv")
    run = WeightTraining(pipe, "ca", names, data)
    anchors = anchor_batches(pipe, data)
    T = pipe.scheduler.config.num_train_timesteps

    def loss_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        x0, target_prompts, anchor_prompts = anchors.sample(cfg.batch_size, gen)
        t = torch.randint(T, (len(x0),), generator=gen)
        x_t = pipe.add_noise(x0, torch.randn(x0.shape, generator=gen), t)
        with torch.no_grad():
            emb_t, emb_a = pipe.encode_prompts(target_prompts), pipe.encode_prompts(anchor_prompts)
            target = pipe.predict_noise(x_t, t, emb_a)
        return {"loss": F.mse_loss(pipe.predict_noise(x_t, t, emb_t), target)}

    with run:
        run.log = optimise(run.params, loss_fn, cfg.optim, cfg.seed, desc=f"ca {data.target}")
    return run.result
