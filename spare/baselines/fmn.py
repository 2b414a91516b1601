"""FMN, Forget-Me-Not (Zhang et al., 2023): attention re-steering.

On forget images noised at random timesteps, with the target prompt, minimise the
cross-attention probability mass that image positions put on the concept's own tokens,
summed over every cross-attention layer; no denoising loss. The concept's tokens are found
by tokenizing its display name inside each prompt. Cross-attention trains. Published
iteration count and lr are not recorded here: ESD's and CA's 1000 iterations and ESD's lr
1e-5 (``spare.baselines``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.models.attention_processor import AttnProcessor

from spare.baselines import scaled_lr, scaled_steps
from spare.baselines.common import WeightTraining, scoped_parameters
from spare.data import TargetData
from spare.errors import UserError
from spare.methods.batches import ImageBatches
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.registry import register_method
from spare.methods.trainer import OptimConfig, default_optim, optimise


@dataclass
class FMNConfig(MethodConfig):
    batch_size: int = 4
    optim: OptimConfig = field(
        default_factory=lambda: default_optim(steps=scaled_steps(1000), lr=scaled_lr(1e-5), schedule="constant")
    )


class ConceptAttention(AttnProcessor):
    """The stock attention, plus the probability mass on the concept tokens (``token_mask``)."""

    def __init__(self, sink: list) -> None:
        super().__init__()
        self.sink, self.token_mask = sink, None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        out = super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if self.token_mask is not None and encoder_hidden_states is not None:
            q = attn.head_to_batch_dim(attn.to_q(hidden_states))
            k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
            probs = attn.get_attention_scores(q, k, None)  # (B * heads, image positions, tokens)
            mask = self.token_mask.repeat_interleave(attn.heads, dim=0)[:, None, :].to(probs.device, probs.dtype)
            self.sink.append((probs * mask).sum(-1).mean())
        return out


def concept_token_mask(pipe, prompts: list[str], name: str) -> torch.Tensor:
    """``(B, L)`` booleans: where the concept's tokens sit in each padded prompt."""
    ids = pipe.tokenizer(
        prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True
    ).input_ids
    word = pipe.tokenizer(name, add_special_tokens=False).input_ids
    mask = torch.zeros(len(prompts), len(ids[0]), dtype=torch.bool)
    for i, row in enumerate(ids):
        for j in range(len(row) - len(word) + 1):
            if row[j : j + len(word)] == word:
                mask[i, j : j + len(word)] = True
        if not mask[i].any():
            raise UserError(f"the concept {name!r} does not appear among the tokens of prompt {prompts[i]!r}")
    return mask


@register_method("fmn", FMNConfig, "FMN: minimise cross-attention on the concept's tokens")
def unlearn(pipe, data: TargetData, cfg: FMNConfig) -> Unlearned:
    forget = ImageBatches(pipe, data.forget, "prompt")
    names = scoped_parameters(pipe.unet, "xattn")
    run = WeightTraining(pipe, "fmn", names, data)
    sink: list = []
    layers = {n: m for n, m in pipe.unet.attn_processors.items() if ".attn2." in n}
    processors = {n: ConceptAttention(sink) for n in layers}
    saved = pipe.unet.attn_processors
    pipe.unet.set_attn_processor({**saved, **processors})
    # the concept's words as the prompt template writes them (a pair's: its style, on the pair's prompts)
    name = (data.target.parts[0] if data.target.kind == "pair" else data.target.name).replace("_", " ")
    T = pipe.scheduler.config.num_train_timesteps

    def loss_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        x0, prompts, _ = forget.sample(cfg.batch_size, gen)
        mask = concept_token_mask(pipe, prompts, name)
        for p in processors.values():
            p.token_mask = mask
        t = torch.randint(T, (len(x0),), generator=gen)
        with torch.no_grad():
            emb = pipe.encode_prompts(prompts)
        sink.clear()
        pipe.predict_noise(pipe.add_noise(x0, torch.randn(x0.shape, generator=gen), t), t, emb)
        return {"loss": torch.stack(sink).sum()}

    run.on_exit(lambda: pipe.unet.set_attn_processor(saved))
    with run:
        run.log = optimise(run.params, loss_fn, cfg.optim, cfg.seed, desc=f"fmn {data.target}")
    return run.result
