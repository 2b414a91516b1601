"""Parts several baselines share: parameter scopes, a frozen copy, partial sampling."""

from __future__ import annotations

import copy
import re

import torch

from spare.errors import UserError

SCOPES = ("xattn", "xattn_kv", "non_xattn", "all")
_XATTN = re.compile(r"\.attn2\.")
_XATTN_KV = re.compile(r"\.attn2\.to_[kv]\.weight$")


def scoped_parameters(unet: torch.nn.Module, scope: str) -> list[str]:
    """Parameter names of a scope: cross-attention (``xattn``), its key/value projections
    (``xattn_kv``), everything but cross-attention (``non_xattn``, ESD-u), or ``all``."""
    if scope not in SCOPES:
        raise UserError(f"unknown parameter scope {scope!r}; valid scopes: {', '.join(SCOPES)}")
    names = [n for n, _ in unet.named_parameters()]
    if scope == "xattn":
        return [n for n in names if _XATTN.search(n)]
    if scope == "xattn_kv":
        return [n for n in names if _XATTN_KV.search(n)]
    if scope == "non_xattn":
        return [n for n in names if not _XATTN.search(n)]
    return names


def snapshot(unet: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(unet.named_parameters())
    return {n: params[n].detach().clone() for n in names}


def frozen_copy(unet: torch.nn.Module) -> torch.nn.Module:
    """The original model as a separate, gradient-free module (the methods' eps*)."""
    teacher = copy.deepcopy(unet).eval()
    teacher.requires_grad_(False)
    return teacher


def eps(unet: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    return unet(x_t, t, encoder_hidden_states=emb).sample


@torch.no_grad()
def partial_sample(
    pipe, unet, emb_c: torch.Tensor, emb_u: torch.Tensor, n_steps: int, stop: int, guidance: float, gen
) -> tuple[torch.Tensor, int]:
    """Run ``stop`` of ``n_steps`` guided DDIM steps from pure noise; returns x_t and its t.

    This is how ESD (and SPM) obtain x_t: from the model itself, not from data."""
    sched = pipe.sampler("ddim")
    sched.set_timesteps(n_steps)
    x = torch.randn((len(emb_c), *pipe.sample_shape), generator=gen).to(pipe.device) * sched.init_noise_sigma
    for t in sched.timesteps[:stop]:
        tt = t.expand(len(x)).to(pipe.device)
        e_u, e_c = eps(unet, x, tt, emb_u), eps(unet, x, tt, emb_c)
        x = sched.step(e_u + guidance * (e_c - e_u), t, x).prev_sample
    return x, int(sched.timesteps[stop])
