"""Edits that replace UNet weights, and loading any saved edit by its kind.

Three edit kinds share one interface (``apply`` / ``remove`` / ``merge`` / ``save`` /
``load`` / ``num_parameters``), so the runner never asks which one a method returned:

- ``adapter`` (:class:`spare.methods.adapters.AdapterEdit`): LoRA, optionally masked
  per weight (SPARE, SPM).
- ``weights`` (:class:`WeightEdit`): the new values of the parameters a method changed,
  stored whole (ESD, CA, SalUn, FMN, EDiff, SHS fine-tune whole tensors; UCE stores only
  the cross-attention matrices it rewrote). The saved size is what the method must keep.
- ``prompt`` (:class:`spare.methods.prompt_edit.PromptEdit`): a hook on the text encoder's
  output that changes no weight (SEOT); it acts on ``pipe.text_encoder``
  (:func:`spare.methods.contract.edited_part`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spare.errors import UserError
from spare.io import read_edit_folder, write_edit_folder
from spare.methods.adapters import AdapterEdit
from spare.methods.prompt_edit import PromptEdit

EDIT_KINDS = ("adapter", "weights", "prompt")


@dataclass
class WeightEdit:
    """New values for some UNet parameters (by exact name); reversible until merged."""

    method: str
    weights: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    _saved: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def capture(cls, method: str, unet: torch.nn.Module, names: list[str], original: dict) -> WeightEdit:
        """The current values of ``names`` in ``unet``; ``original`` (the same names, before
        training) is copied back, so ``unet`` leaves as it came and the edit holds the change."""
        params = dict(unet.named_parameters())
        edit = cls(method, {n: params[n].detach().cpu().clone() for n in names})
        with torch.no_grad():
            for n in names:
                params[n].copy_(original[n])
        return edit

    def _params(self, unet: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        params = dict(unet.named_parameters())
        missing = [n for n in self.weights if n not in params]
        if missing:
            raise UserError(f"edit does not fit this model: no parameter {missing[0]!r}")
        for n, w in self.weights.items():
            if params[n].shape != w.shape:
                raise UserError(f"edit does not fit this model: {n} is {tuple(params[n].shape)}, edit {tuple(w.shape)}")
        return params

    @torch.no_grad()
    def apply(self, unet: torch.nn.Module) -> WeightEdit:
        if self._saved:
            raise RuntimeError("this edit is applied already; remove it first")
        params = self._params(unet)
        self._saved = {n: params[n].detach().clone() for n in self.weights}
        for n, w in self.weights.items():
            params[n].copy_(w.to(params[n].device, params[n].dtype))
        return self

    @torch.no_grad()
    def remove(self, unet: torch.nn.Module) -> None:
        """Put the original values back (bit for bit)."""
        params = dict(unet.named_parameters())
        for n, w in self._saved.items():
            params[n].copy_(w)
        self._saved = {}

    def merge(self, unet: torch.nn.Module) -> None:
        """Write the new values for good (applied or not before)."""
        if not self._saved:
            self.apply(unet)
        self._saved = {}

    @property
    def num_parameters(self) -> int:
        return sum(w.numel() for w in self.weights.values())

    def save(self, path: str | Path) -> Path:
        record = {"kind": "weights", "method": self.method, "meta": self.meta}
        return write_edit_folder(path, record, self.weights, "weights.safetensors")

    @classmethod
    def load(cls, path: str | Path) -> WeightEdit:
        record, weights = read_edit_folder(path, "weights.safetensors")
        return cls(record["method"], weights, record.get("meta", {}))


def load_edit(path: str | Path) -> AdapterEdit | WeightEdit | PromptEdit:
    """Any saved edit, by the ``kind`` its ``edit.json`` records."""
    path = Path(path)
    meta_file = path / "edit.json"
    if not meta_file.is_file():
        raise UserError(f"{str(path)!r} is not a saved edit (no edit.json)")
    try:
        kind = json.loads(meta_file.read_text()).get("kind", "adapter")
    except json.JSONDecodeError as err:
        raise UserError(f"edit folder {str(path)!r} is corrupt: {err}") from err
    if kind == "adapter":
        return AdapterEdit.load(path)
    if kind == "weights":
        return WeightEdit.load(path)
    if kind == "prompt":
        return PromptEdit.load(path)
    raise UserError(f"edit folder {str(path)!r} has unknown kind {kind!r}; valid kinds: {', '.join(EDIT_KINDS)}")


def edit_size_bytes(path: str | Path) -> int:
    """Bytes on disk of a saved edit: what the method has to keep."""
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())
