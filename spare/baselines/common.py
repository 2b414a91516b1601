"""Parts several baselines share: parameter scopes, a frozen copy, partial sampling."""

from __future__ import annotations

import copy
import re

import torch

from spare.errors import UserError
from spare.methods.contract import Unlearned
from spare.methods.trainer import denoising_loss, predict_many

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
    pipe,
    unet,
    emb_c: torch.Tensor,
    emb_u: torch.Tensor,
    n_steps: int,
    stop: int,
    guidance: float,
    gen,
    fused: bool = False,
) -> tuple[torch.Tensor, int]:
    """Run ``stop`` of ``n_steps`` guided DDIM steps from pure noise; returns x_t and its t.

    This is how ESD (and SPM) obtain x_t: from the model itself, not from data. ``fused``: the
    unconditional and conditional predictions of a step in one call (``predict_many``)."""
    sched = pipe.sampler("ddim")
    sched.set_timesteps(n_steps)
    x = torch.randn((len(emb_c), *pipe.sample_shape), generator=gen).to(pipe.device) * sched.init_noise_sigma
    for t in sched.timesteps[:stop]:
        tt = t.expand(len(x)).to(pipe.device)
        e_u, e_c = predict_many(unet, [(x, tt, emb_u), (x, tt, emb_c)], fused)
        x = sched.step(e_u + guidance * (e_c - e_u), t, x).prev_sample
    return x, int(sched.timesteps[stop])


def start_training(pipe, names: list[str]) -> tuple[dict[str, torch.Tensor], list[torch.nn.Parameter]]:
    """Snapshot ``names`` and make exactly them trainable."""
    original = snapshot(pipe.unet, names)
    params = dict(pipe.unet.named_parameters())
    pipe.unet.requires_grad_(False)
    return original, [params[n].requires_grad_(True) for n in names]


def finish(pipe, method: str, names: list[str], original: dict, data) -> Unlearned:
    """Freeze the UNet and move the trained values into a WeightEdit (restoring the UNet)."""
    from spare.methods.edits import WeightEdit

    pipe.unet.requires_grad_(False)
    edit = WeightEdit.capture(method, pipe.unet, names, original)
    edit.meta["target"] = str(data.target)
    return Unlearned.of(edit, pipe.unet)


class WeightTraining:
    """The skeleton every weight-training baseline shares. Made, it snapshots the parameters
    ``names`` and makes exactly them trainable (``params``); the ``with`` block around the
    training ends, also after a failure, with the clean-ups (:meth:`on_exit`), the UNet frozen and
    restored and the trained values in the result's WeightEdit (``result``), with ``log``::

        run = WeightTraining(pipe, "ca", names, data)
        ...  # the loss, from run.params
        with run:
            run.log = optimise(run.params, loss_fn, cfg.optim, cfg.seed, desc=...)
        return run.result
    """

    def __init__(self, pipe, method: str, names: list[str], data) -> None:
        self.pipe, self.method, self.names, self.data = pipe, method, names, data
        self.log: list[dict] = []
        self.result: Unlearned | None = None
        self._cleanups: list = []
        self.original, self.params = start_training(pipe, names)

    def on_exit(self, cleanup) -> None:
        """``cleanup()`` runs on exit, before the UNet is restored (hooks, attention processors)."""
        self._cleanups.append(cleanup)

    def __enter__(self) -> WeightTraining:
        return self

    def __exit__(self, *exc) -> None:
        for cleanup in self._cleanups:
            cleanup()
        self.result = finish(self.pipe, self.method, self.names, self.original, self.data)
        self.result.log = self.log


class AnchorBatches:
    """Images of the anchor (surrogate) concept, each with the target prompt it stands in for."""

    def __init__(self, pipe, dataset, target_prompts: list[str], anchor_prompts: list[str]) -> None:
        self.pipe, self.dataset = pipe, dataset
        self.target_prompts, self.anchor_prompts = target_prompts, anchor_prompts

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, list[str], list[str]]:
        idx = torch.randint(len(self.dataset), (n,), generator=gen).tolist()
        x0 = self.pipe.encode_pil(self.dataset[idx]["image"])
        return x0, [self.target_prompts[i] for i in idx], [self.anchor_prompts[i] for i in idx]


def anchor_batches(pipe, data) -> AnchorBatches:
    """Retained images whose prompt is a surrogate prompt of the forget set (photo images of
    the same objects for a style target; the surrogate object for an object target)."""
    to_target = dict(zip(data.forget["surrogate_prompt"], data.forget["prompt"], strict=True))
    prompts = data.retain["prompt"]
    keep = [i for i, p in enumerate(prompts) if p in to_target]
    if not keep:
        raise UserError(f"no images of the surrogate {data.surrogate} among the retained data")
    anchors = data.retain.select(keep)
    anchor_prompts = [prompts[i] for i in keep]
    return AnchorBatches(pipe, anchors, [to_target[p] for p in anchor_prompts], anchor_prompts)


def forget_towards_pseudo(pipe, forget, n: int, gen, T: int) -> torch.Tensor:
    """SalUn / EraseDiff / Scissorhands forgetting term: on forget images, the target prompt's
    prediction is pulled to the (detached) prediction for the pseudo prompt (our surrogate)."""
    x0, prompts, pseudo = forget.sample(n, gen)
    t = torch.randint(T, (len(x0),), generator=gen)
    x_t = pipe.add_noise(x0, torch.randn(x0.shape, generator=gen), t)
    with torch.no_grad():
        emb_f, emb_p = pipe.encode_prompts(prompts), pipe.encode_prompts(pseudo)
        target = pipe.predict_noise(x_t, t, emb_p)
    return torch.nn.functional.mse_loss(pipe.predict_noise(x_t, t, emb_f), target)


def erasediff_loss(pipe, params, forget, retain, n: int, gen, T: int, inner_steps: int, inner_lr: float, alpha):
    """EraseDiff's bi-level objective with a first-order hypergradient:
    L_r(theta) + alpha (L_f(theta) - L_f(phi_K)), phi_K = K SGD steps on L_f from theta;
    the gradient of L_f(phi_K) is taken at phi_K (as in first-order meta-learning)."""
    saved = [p.detach().clone() for p in params]
    for _ in range(inner_steps):
        grads = torch.autograd.grad(forget_towards_pseudo(pipe, forget, n, gen, T), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= inner_lr * g
    l_phi = forget_towards_pseudo(pipe, forget, n, gen, T)
    g_phi = torch.autograd.grad(l_phi, params)
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    l_f = forget_towards_pseudo(pipe, forget, n, gen, T)
    l_r = denoising_loss(pipe, retain, n, gen, T)
    # sum <g_phi, theta> is a constant-gradient term: its gradient is g_phi, subtracted below
    linear = sum((g.detach() * p).sum() for g, p in zip(g_phi, params, strict=True))
    loss = l_r + alpha * (l_f - linear)
    return loss, {"forget": l_f.detach(), "retain": l_r.detach(), "forget_inner": l_phi.detach()}


def erasediff_objective(pipe, params, forget, retain, cfg):
    """The optimiser's loss function for EraseDiff's objective; ``cfg`` has ``batch_size``,
    ``inner_steps``, ``alpha`` and ``optim.lr`` (EraseDiff and Scissorhands share it)."""
    T = pipe.scheduler.config.num_train_timesteps

    def loss_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        loss, terms = erasediff_loss(
            pipe, params, forget, retain, cfg.batch_size, gen, T, cfg.inner_steps, cfg.optim.lr, cfg.alpha
        )
        return {"loss": loss, **terms}

    return loss_fn
