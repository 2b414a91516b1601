"""One text-to-image interface for the tiny pixel-space canvas-mini model and Stable Diffusion.

A :class:`T2IPipeline` holds a diffusers ``UNet2DConditionModel``, a transformers
``CLIPTextModel`` with its tokenizer, the training noise scheduler and, for latent
models, an ``AutoencoderKL``. Methods and evaluators use only this interface (encode
prompts, add noise, predict noise, sample), so they never know which kind they hold.

Both kinds load from a diffusers-format folder (``unet/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/`` and, for SD, ``vae/``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    UNet2DConditionModel,
)
from transformers import AutoTokenizer, CLIPTextModel, PreTrainedTokenizerFast

from spare.errors import UserError
from spare.precision import resolve_precision
from spare.progress import quiet_library_bars

SAMPLERS = ("ddim", "dpm")


class ModelPathError(UserError):
    """A model folder that is missing or is not a diffusers text-to-image folder."""


def default_device() -> torch.device:
    """This process's accelerator: ``cuda:<LOCAL_RANK>`` under ``accelerate launch`` on GPUs, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@dataclass
class T2IPipeline:
    """A text-to-image diffusion model behind one small interface (pixel or latent space)."""

    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: PreTrainedTokenizerFast
    scheduler: DDPMScheduler
    vae: AutoencoderKL | None = None
    image_size: int = 32

    # --- where things live --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def is_latent(self) -> bool:
        return self.vae is not None

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """Shape of one x_t: pixels (3, H, W) or latents (C, H/8, W/8)."""
        c = self.unet.config.in_channels
        s = self.image_size // (2 ** (len(self.vae.config.block_out_channels) - 1)) if self.vae else self.image_size
        return (c, s, s)

    def to(self, device: str | torch.device) -> T2IPipeline:
        for module in (self.unet, self.text_encoder, self.vae):
            if module is not None:
                module.to(device)
        return self

    # --- the interface methods use ------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings ``(B, L, D)`` for the UNet's cross-attention."""
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def encode_prompts_with_prefix(self, prompts: Sequence[str], prefix: torch.Tensor) -> torch.Tensor:
        """Text embeddings of ``prompts`` with ``prefix`` ``(B, K, D)`` token embeddings put in front
        of each prompt's tokens, right after the start token (UnlearnDiffAtk's adversarial prompt).
        Gradients flow to ``prefix``; the text encoder's own weights are untouched."""
        k = prefix.shape[1]
        length = self.tokenizer.model_max_length
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        )
        used = int(tokens.attention_mask.sum(1).max())
        if used + k > length:
            raise UserError(
                f"{k} prefix tokens do not fit before a prompt of {used} tokens: the text encoder takes {length}"
            )
        ids = tokens.input_ids
        filler = torch.full((len(ids), k), self.tokenizer.pad_token_id or 0, dtype=ids.dtype)
        ids = torch.cat([ids[:, :1], filler, ids[:, 1 : length - k]], dim=1).to(self.device)
        table = self.text_encoder.get_input_embeddings()

        def put_prefix(_module, _args, output: torch.Tensor) -> torch.Tensor:
            return torch.cat([output[:, :1], prefix.to(output.device, output.dtype), output[:, 1 + k :]], dim=1)

        handle = table.register_forward_hook(put_prefix)
        try:
            return self.text_encoder(ids)[0]
        finally:
            handle.remove()

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t, c); ``t`` may sit on the CPU (the methods draw it from a CPU generator)."""
        return self.unet(x_t, t.to(x_t.device), encoder_hidden_states=text_emb).sample

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (the forward process), on x0's device: noise
        and t are drawn from CPU generators, so a seed gives the same draws on every device."""
        return self.scheduler.add_noise(x0, noise.to(x0.device), t.to(x0.device))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] ``(B, 3, H, W)`` to the space the UNet denoises (x0)."""
        if self.vae is None:
            return images
        latents = self.vae.encode(images.to(self.vae.dtype)).latent_dist.sample()
        return latents * self.vae.config.scaling_factor

    @torch.no_grad()
    def encode_pil(self, images: Sequence) -> torch.Tensor:
        """PIL images (any size) to x0 on the model's device: resized, scaled to [-1, 1], encoded."""
        size = self.image_size
        arr = np.stack([np.asarray(im.convert("RGB").resize((size, size))) for im in images])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.encode_images(x.to(self.device))

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Denoised samples to images in [-1, 1]."""
        if self.vae is None:
            return x0.clamp(-1, 1)
        return self.vae.decode(x0 / self.vae.config.scaling_factor).sample.clamp(-1, 1)

    def sampler(self, name: str = "ddim"):
        """A fresh inference scheduler sharing the training noise schedule."""
        config = dict(self.scheduler.config)
        if name == "ddim":
            # clipping x0 to the image range keeps an imperfect pixel model on the data manifold
            return DDIMScheduler.from_config(config, clip_sample=not self.is_latent, set_alpha_to_one=True)
        if name == "dpm":
            return DPMSolverMultistepScheduler.from_config(
                config, algorithm_type="dpmsolver++", thresholding=not self.is_latent, sample_max_value=1.0
            )
        raise UserError(f"unknown sampler {name!r}; valid samplers: {', '.join(SAMPLERS)}")

    def autocast(self, precision: str):
        """The context the UNet runs in for a sampling ``precision`` (one of spare.precision.PRECISIONS)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        steps: int = 25,
        guidance: float = 3.0,
        sampler: str = "ddim",
        eta: float = 0.0,
        micro_batch: int = 32,
        precision: str = "fp32",
        text_emb: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Generate one image per prompt as ``(B, H, W, 3)`` uint8.

        Each image's starting noise comes from its own seed, and the network always runs on
        micro-batches of exactly ``micro_batch`` images (the last one padded), because matrix
        kernels round differently for different batch sizes: so an image is bit-identical
        whatever batch it was requested in. Classifier-free guidance when ``guidance`` != 1.
        ``precision="bf16"`` runs the network under bf16 autocast; noise, guidance and the
        sampler's steps stay fp32; ``"auto"`` is bf16 where this machine runs it natively.
        ``text_emb`` ``(B, L, D)``: conditional embeddings used instead of encoding ``prompts``
        (an attack's adversarial prompts, :mod:`spare.attack`); the unconditional side stays "".
        """
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        if text_emb is not None and len(text_emb) != len(prompts):
            raise ValueError("one text embedding per prompt")
        precision = resolve_precision(precision, self.device.type).precision
        out = []
        for i in range(0, len(prompts), micro_batch):
            chunk_p, chunk_s = list(prompts[i : i + micro_batch]), list(seeds[i : i + micro_batch])
            n = len(chunk_p)
            chunk_p += [chunk_p[-1]] * (micro_batch - n)
            chunk_s += [chunk_s[-1]] * (micro_batch - n)
            cond = None
            if text_emb is not None:
                cond = text_emb[i : i + micro_batch]
                cond = torch.cat([cond, cond[-1:].expand(micro_batch - n, *cond.shape[1:])])
            out.append(self._sample_batch(chunk_p, chunk_s, steps, guidance, sampler, eta, precision, cond)[:n])
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)

    def _sample_batch(
        self,
        prompts: list[str],
        seeds: list[int],
        steps: int,
        guidance: float,
        sampler: str,
        eta: float,
        precision: str,
        cond: torch.Tensor | None = None,
    ) -> np.ndarray:
        scheduler = self.sampler(sampler)
        scheduler.set_timesteps(steps)
        x = torch.stack(
            [torch.randn(self.sample_shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        ).to(self.device)
        x = x * scheduler.init_noise_sigma
        guided = guidance != 1.0
        if cond is None:  # the prompts' own path: encoded in one call, as every answer set was
            emb = self.encode_prompts([""] * len(prompts) + prompts if guided else prompts)
        else:
            cond = cond.to(self.device)
            emb = torch.cat([self.encode_prompts([""] * len(prompts)), cond]) if guided else cond
        extra = {"eta": eta} if sampler == "ddim" else {}
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(torch.cat([x, x]) if guided else x, t)
            with self.autocast(precision):
                eps = self.predict_noise(x_in, t.expand(x_in.shape[0]).to(self.device), emb)
            eps = eps.float()
            if guided:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
            x = scheduler.step(eps, t, x, **extra).prev_sample
        images = (self.decode(x) + 1) * 127.5
        return images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    # --- persistence --------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.unet.save_pretrained(path / "unet")
        self.text_encoder.save_pretrained(path / "text_encoder")
        self.tokenizer.save_pretrained(path / "tokenizer")
        self.scheduler.save_pretrained(path / "scheduler")
        if self.vae is not None:
            self.vae.save_pretrained(path / "vae")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> T2IPipeline:
        """Load a diffusers-format folder: canvas-mini (pixel space) or Stable Diffusion (with vae/)."""
        quiet_library_bars()
        path = Path(path).expanduser()
        needed = ("unet", "text_encoder", "tokenizer", "scheduler")
        missing = [p for p in needed if not (path / p).is_dir()]
        if missing:
            where = "does not exist" if not path.exists() else f"lacks {', '.join(m + '/' for m in missing)}"
            raise ModelPathError(
                f"model folder {str(path)!r} {where}; expected a diffusers text-to-image folder with "
                "unet/, text_encoder/, tokenizer/, scheduler/ (and vae/ for Stable Diffusion). "
                "For canvas-mini run `make base-model`."
            )
        try:
            unet = UNet2DConditionModel.from_pretrained(path / "unet")
            text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder")
            tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
            scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
            vae = AutoencoderKL.from_pretrained(path / "vae") if (path / "vae").is_dir() else None
        except Exception as err:  # diffusers, transformers and safetensors raise many kinds; one message
            raise ModelPathError(
                f"model folder {str(path)!r} could not be loaded (corrupt or partial?): {err}"
            ) from err
        size = unet.config.sample_size * (2 ** (len(vae.config.block_out_channels) - 1) if vae else 1)
        pipe = cls(unet, text_encoder, tokenizer, scheduler, vae, image_size=size)
        for module in (unet, text_encoder, vae):
            if module is not None:
                module.eval().requires_grad_(False)
        return pipe.to(device)
