"""The tiny canvas-mini pipeline built from scratch: its word-level tokenizer, text encoder,
pixel-space UNet and noise schedule (what ``make base-model`` trains, :mod:`spare.train_base`).

Everything else reads a pipeline through :class:`spare.pipeline.T2IPipeline`, tiny or Stable
Diffusion alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import (
    DDPMScheduler,
    UNet2DConditionModel,
)
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from spare.concepts import Catalogue
from spare.pipeline import T2IPipeline

SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[BOS]", "eos": "[EOS]"}


def build_tokenizer(catalogue: Catalogue, max_length: int = 16) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the catalogue's prompt vocabulary, built offline."""
    words = set(catalogue.template.replace("{object}", " ").replace("{style}", " ").lower().split())
    for name in catalogue.all_styles + catalogue.objects:
        words.update(catalogue.display(name).lower().split())
    words = {w.strip(".") for w in words} | {"."}
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for word in sorted(words - {""}):
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=max_length,
        pad_token=SPECIAL_TOKENS["pad"],
        unk_token=SPECIAL_TOKENS["unk"],
        bos_token=bos,
        eos_token=eos,
    )


@dataclass
class TinyModelConfig:
    """Architecture of the canvas-mini pixel-space model."""

    image_size: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (2,)  # cross-attention at these resolution levels (2 = 8x8)
    attention_head_dim: int = 32
    norm_num_groups: int = 16
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_prompt_length: int = 16
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"


def build_tiny_pipeline(catalogue: Catalogue, cfg: TinyModelConfig, seed: int = 0) -> T2IPipeline:
    """A freshly initialised pixel-space pipeline for ``catalogue``'s prompts."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(catalogue, cfg.max_prompt_length)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.text_hidden_size,
            intermediate_size=4 * cfg.text_hidden_size,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads,
            max_position_embeddings=cfg.max_prompt_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    n = len(cfg.block_out_channels)
    unet = UNet2DConditionModel(
        sample_size=cfg.image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=tuple(
            "CrossAttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in range(n)
        ),
        up_block_types=tuple(
            "CrossAttnUpBlock2D" if n - 1 - i in cfg.attention_levels else "UpBlock2D" for i in range(n)
        ),
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=cfg.text_hidden_size,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
    )
    scheduler = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule)
    return T2IPipeline(unet, text_encoder, tokenizer, scheduler, None, image_size=cfg.image_size)
