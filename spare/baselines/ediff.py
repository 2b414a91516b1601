"""EraseDiff (Wu et al., 2024): unlearning as a bi-level problem.

Inner: K SGD steps on the forgetting term from the current weights (phi_K). Outer step on
    L_retain(theta) + alpha (L_forget(theta) - L_forget(phi_K)),
with a first-order hypergradient (:func:`spare.baselines.common.erasediff_loss`). The
forgetting term pulls the target prompt's prediction on forget images to the pseudo
prompt's (our surrogate); L_retain is the denoising loss on retained data. Cross-attention
trains (``train_method: xattn``). Published (UnlearnCanvas code): lr 5e-5, K 2, alpha 0.1,
one epoch; its iteration count is not recorded here, so it gets ESD's and CA's 1000.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spare.baselines import scaled_lr, scaled_steps
from spare.baselines.common import WeightTraining, erasediff_objective, scoped_parameters
from spare.data import TargetData
from spare.methods.batches import ImageBatches
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.registry import register_method
from spare.methods.trainer import OptimConfig, default_optim, optimise


@dataclass
class EDiffConfig(MethodConfig):
    inner_steps: int = 2
    alpha: float = 0.1
    batch_size: int = 4
    scope: str = "xattn"
    optim: OptimConfig = field(
        default_factory=lambda: default_optim(steps=scaled_steps(1000), lr=scaled_lr(5e-5), schedule="constant")
    )


@register_method("ediff", EDiffConfig, "EraseDiff: bi-level forgetting with a retain objective")
def unlearn(pipe, data: TargetData, cfg: EDiffConfig) -> Unlearned:
    forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
    retain = ImageBatches(pipe, data.retain)
    names = scoped_parameters(pipe.unet, cfg.scope)
    run = WeightTraining(pipe, "ediff", names, data)
    loss_fn = erasediff_objective(pipe, run.params, forget, retain, cfg)

    with run:
        run.log = optimise(run.params, loss_fn, cfg.optim, cfg.seed, desc=f"ediff {data.target}")
    return run.result
