"""An edit of the prompt's text embedding instead of the UNet: SEOT's soft-weighted regularization.

SEOT (Li et al., "Get What You Want, Not What You Don't", ICLR 2024) suppresses a concept
without training: in the text encoder's output for a prompt that names the concept, the
embeddings of the concept's tokens and of every end-of-text / padding position after the
prompt (which carry the whole prompt's content, the concept included) are stacked as the
columns of one matrix X = U diag(s) V^T. Its largest singular values hold what those
columns share, the concept; they are shrunk softly,

    s'_i = beta * exp(-alpha * s_i) * s_i,

and the columns of U diag(s') V^T replace the old ones. Every other position, and every
prompt that does not name the concept, is left as it was.

Which positions (``positions``): ``"eot"``, the paper's, the concept's tokens and every position
from the first end-of-text token after it; ``"after"``, the concept's tokens and every position
after them. The two differ by the words between the concept and the end of the prompt
("... in Ink Outline style."): a causal text encoder writes the concept into each of them, and
the paper's argument for the end-of-text tokens (they have seen the whole prompt) holds for them
too. Stable Diffusion's cross-attention leans on the concept and end-of-text tokens; in
canvas-mini's small encoder "style" and "." vary with the style as much as the end-of-text token
does.

The edit is a forward hook on the text encoder: no weight of any model changes, the stored
edit is the concept's token ids and the two constants, and removing the hook gives back the
original model bit for bit. A prompt edit acts per prompt at inference, so it cannot be
folded into weights: ``merge`` keeps the hook on for the pipeline's lifetime (what a sequence
of unlearning steps needs), and exporting a merged model refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from spare.errors import UserError
from spare.io import read_edit_folder, write_edit_folder

POSITIONS = ("eot", "after")  # the paper's concept + end-of-text columns; the concept + every position after it


def soft_weighted(columns: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """SEOT's soft-weighted regularization of ``columns`` ``(D, n)``: singular values s become
    ``beta * exp(-alpha * s) * s`` (computed in float64, returned in the input's dtype)."""
    u, s, vh = torch.linalg.svd(columns.double(), full_matrices=False)
    s = beta * torch.exp(-alpha * s) * s
    return (u @ torch.diag(s) @ vh).to(columns.dtype)


def find(ids: list[int], sequence: list[int]) -> list[int]:
    """Positions of every occurrence of ``sequence`` in ``ids`` (all its tokens, in order)."""
    n = len(sequence)
    hits = []
    for start in range(len(ids) - n + 1):
        if ids[start : start + n] == sequence:
            hits.extend(range(start, start + n))
    return hits


@dataclass
class PromptEdit:
    """Suppress a concept in every prompt that names all of ``concept_ids`` (token id sequences:
    one for a style or an object, two for a style-object pair)."""

    method: str
    concept_ids: list[list[int]]
    eot_id: int
    alpha: float = 1.0
    beta: float = 1.0
    meta: dict = field(default_factory=dict)
    positions: str = "eot"  # one of POSITIONS
    component: ClassVar[str] = "text_encoder"  # the pipeline part it changes (the others: "unet")
    _handles: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise UserError(f"unknown SEOT positions {self.positions!r}; valid: {', '.join(POSITIONS)}")

    def columns(self, ids: list[int]) -> list[int]:
        """The positions SEOT regularizes in one prompt: the concept's tokens and every position from
        the first end-of-text token on (``positions="eot"``) or right after the concept (``"after"``);
        empty when the prompt does not name every part."""
        hits = [find(ids, seq) for seq in self.concept_ids]
        if not all(hits):
            return []
        concept = sorted(set(sum(hits, [])))
        if self.positions == "after":
            return concept + [i for i in range(concept[0], len(ids)) if i not in concept]
        # the end-of-text token after the concept: where a tokenizer pads with it (Stable Diffusion's
        # CLIP does), padding put in front of the prompt (the attack's prefix slots) is not the tail
        after = [i for i in range(concept[-1] + 1, len(ids)) if ids[i] == self.eot_id]
        if not after:
            return []
        return concept + list(range(after[0], len(ids)))

    def edit_hidden(self, input_ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        out = hidden.clone()
        for row, ids in enumerate(input_ids.tolist()):
            cols = self.columns(ids)
            if cols:
                index = torch.tensor(cols, device=hidden.device)
                out[row, index] = soft_weighted(hidden[row, index].T, self.alpha, self.beta).T
        return out

    def _hook(self, _module, args, kwargs, output):
        input_ids = args[0] if args else kwargs["input_ids"]
        if isinstance(output, tuple):
            return (self.edit_hidden(input_ids, output[0]), *output[1:])
        output.last_hidden_state = self.edit_hidden(input_ids, output.last_hidden_state)
        return output

    # --- the Edit protocol ----------------------------------------------------------------
    def apply(self, text_encoder: torch.nn.Module) -> PromptEdit:
        if self._handles:
            raise RuntimeError("this edit is applied already; remove it first")
        self._handles.append(text_encoder.register_forward_hook(self._hook, with_kwargs=True))
        return self

    def remove(self, text_encoder: torch.nn.Module) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def merge(self, text_encoder: torch.nn.Module) -> None:
        """Keep the edit on for good: the hook stays for the lifetime of this text encoder."""
        if not self._handles:
            self.apply(text_encoder)
        self._handles = []

    @property
    def num_parameters(self) -> int:
        return 0

    def save(self, path: str | Path) -> Path:
        record = {"kind": "prompt", "method": self.method, "meta": self.meta}
        record |= {"concept_ids": self.concept_ids, "eot_id": self.eot_id, "alpha": self.alpha, "beta": self.beta}
        record["positions"] = self.positions
        return write_edit_folder(path, record)

    @classmethod
    def load(cls, path: str | Path) -> PromptEdit:
        r, _ = read_edit_folder(path)
        try:
            positions = r.get("positions", "eot")  # edits saved before the option: the paper's
            return cls(r["method"], r["concept_ids"], r["eot_id"], r["alpha"], r["beta"], r.get("meta", {}), positions)
        except (KeyError, TypeError) as err:
            raise UserError(f"edit folder {str(path)!r} is corrupt or incomplete: {err}") from err
