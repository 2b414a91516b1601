"""SEOT (Li et al., "Get What You Want, Not What You Don't", ICLR 2024): training-free suppression
of a concept in the prompt's text embedding.

For every prompt that names the target (a style's words, an object's word, or both for a
style-object pair), the text encoder's outputs at the concept's tokens and at the end-of-text
and padding positions are stacked as columns and their singular values reweighted,
s' = beta * exp(-alpha * s) * s (the paper's soft-weighted regularization; see
:mod:`spare.methods.prompt_edit`). No weight of the UNet or the text encoder changes; the
stored edit is the concept's token ids and the two constants. Defaults: alpha = beta = 1.

Not built: the paper's second, optional part, inference-time optimisation of the embedding
against attention maps during sampling, which UnlearnCanvas's SEOT row may include (its
95 s of cost suggests so). The published row is compared with this soft-weighted part alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from spare.concepts import get_catalogue
from spare.config import HASH_IF_SET, ConfigError
from spare.data import TargetData
from spare.methods.contract import MethodConfig, Unlearned
from spare.methods.prompt_edit import POSITIONS, PromptEdit
from spare.methods.registry import register_method


@dataclass
class SEOTConfig(MethodConfig):
    alpha: float = 1.0
    beta: float = 1.0
    # which text positions are regularized (spare.methods.prompt_edit.POSITIONS): "eot", the paper's
    # concept + end-of-text tokens, or "after", the concept + every position after it
    positions: str = field(default="eot", metadata=HASH_IF_SET)
    seeded: ClassVar[bool] = False  # nothing random: a sweep runs it once

    def __post_init__(self) -> None:  # checked when the config is read, not when the edit is made
        if self.positions not in POSITIONS:
            raise ConfigError(f"unknown SEOT positions {self.positions!r}; valid: {', '.join(POSITIONS)}")


def concept_token_ids(pipe, data: TargetData) -> list[list[int]]:
    """The token ids of each part the target fixes (its style's words, its object's), as the
    prompt writes them."""
    catalogue = get_catalogue(data.catalogue)
    parts = [p for p in data.target.parts if p is not None]
    return [pipe.tokenizer(catalogue.display(p), add_special_tokens=False).input_ids for p in parts]


@register_method("seot", SEOTConfig, "SEOT: training-free singular-value suppression in the text embedding")
def unlearn(pipe, data: TargetData, cfg: SEOTConfig) -> Unlearned:
    start = time.perf_counter()
    ids = concept_token_ids(pipe, data)
    meta = {"target": str(data.target)}
    edit = PromptEdit("seot", ids, pipe.tokenizer.eos_token_id, cfg.alpha, cfg.beta, meta, cfg.positions)
    log = [{"elapsed_s": time.perf_counter() - start, "concept_tokens": sum(len(i) for i in ids)}]
    return Unlearned.of(edit, pipe.unet, log)
