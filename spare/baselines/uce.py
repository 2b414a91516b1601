"""UCE, Unified Concept Editing (Gandikota et al., WACV 2024): a closed-form edit.

For every cross-attention key and value projection W (text dim -> inner dim):
    W' = (lam W + sum_i W g_i c_i^T + sum_j W c_j c_j^T) (lam I + sum_i c_i c_i^T + sum_j c_j c_j^T)^-1
maps each text-embedding vector c_i of the erased concept's prompts to what W made of
the guide vector g_i (the same position of the surrogate prompt), while the retained
prompts' vectors c_j keep their outputs. Vectors are the text encoder's outputs per token
position; target and surrogate prompts are paired position by position over the longer
of their two token lengths. Defaults from the UCE code: lam 0.1, erase and preserve
scale 1. No training, so no step or learning-rate scaling; only the edited matrices are
stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from spare.baselines.common import scoped_parameters
from spare.data import TargetData
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.edits import WeightEdit
from spare.methods.registry import register_method


@dataclass
class UCEConfig(MethodConfig):
    lam: float = 0.1
    erase_scale: float = 1.0
    preserve_scale: float = 1.0
    max_preserve_prompts: int = 200
    # closed form: the seed only picks which retained prompts to keep when there are more than
    # max_preserve_prompts, and a sweep runs it once (at its first training seed)
    seeded: ClassVar[bool] = False


def _token_vectors(pipe, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Text-encoder outputs ``(B, L, D)`` and how many positions of each prompt are real tokens."""
    tokens = pipe.tokenizer(
        prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        return pipe.encode_prompts(prompts).double().cpu(), tokens.attention_mask.sum(1)


@register_method("uce", UCEConfig, "UCE: closed-form edit of cross-attention keys and values")
def unlearn(pipe, data: TargetData, cfg: UCEConfig) -> Unlearned:
    start = time.perf_counter()
    pairs = sorted(set(zip(data.forget["prompt"], data.forget["surrogate_prompt"], strict=True)))
    c_f, len_f = _token_vectors(pipe, [p for p, _ in pairs])
    g_f, len_g = _token_vectors(pipe, [s for _, s in pairs])
    erase_c, erase_g = [], []
    for i in range(len(pairs)):
        n = int(max(len_f[i], len_g[i]))
        erase_c.append(c_f[i, :n])
        erase_g.append(g_f[i, :n])
    erase_c, erase_g = torch.cat(erase_c), torch.cat(erase_g)  # (N, D)
    retain_prompts = sorted(set(data.retain["prompt"]))
    gen = torch.Generator().manual_seed(cfg.seed)
    keep = torch.randperm(len(retain_prompts), generator=gen)[: cfg.max_preserve_prompts].tolist()
    c_r, len_r = _token_vectors(pipe, [retain_prompts[i] for i in sorted(keep)])
    preserve = torch.cat([c_r[i, : int(len_r[i])] for i in range(len(c_r))])

    dim = erase_c.shape[1]
    right = cfg.lam * torch.eye(dim, dtype=torch.float64)
    right += cfg.erase_scale * erase_c.T @ erase_c + cfg.preserve_scale * preserve.T @ preserve
    right_inv = torch.linalg.inv(right)
    names = scoped_parameters(pipe.unet, "xattn_kv")
    params = dict(pipe.unet.named_parameters())
    weights = {}
    for n in names:
        w = params[n].detach().double().cpu()
        left = cfg.lam * w
        left += cfg.erase_scale * (w @ erase_g.T) @ erase_c + cfg.preserve_scale * (w @ preserve.T) @ preserve
        weights[n] = (left @ right_inv).to(params[n].dtype)
    edit = WeightEdit("uce", weights, {"target": str(data.target)})
    log = [{"elapsed_s": time.perf_counter() - start, "erase_vectors": len(erase_c), "preserve": len(preserve)}]
    return Unlearned.of(edit, pipe.unet, log)
