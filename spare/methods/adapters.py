"""Low-rank adapters on the UNet (peft), optionally masked per weight, as a reversible Edit.

Per module: plain LoRA (peft) on an exact list of Linear / Conv2d modules,
Delta W = (alpha / r) B A. Per weight (SPARE's fine-grained variant): the same peft
adapters, but the update is masked, Delta W = (alpha / r) (B A) * M with a 0/1 mask M.
peft is not forked: on a masked module the adapter's own contribution is scaled to zero
and a forward hook adds the masked product instead, so peft still owns the parameters,
their state dict, and enabling / disabling. Disabled adapters give exactly the original
model (the teacher of self-distillation).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from spare.errors import UserError
from spare.io import read_edit_folder, write_edit_folder

ADAPTER = "unlearn"
# Every attention projection, self- (attn1) and cross-attention (attn2): where the SPARE authors'
# UnlearnCanvas scripts put LoRA (to_q, to_k, to_v, to_out.0).
ATTENTION = re.compile(r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$")
CANDIDATES = ("attention", "all")


def lora_modules(unet: torch.nn.Module, candidates: str = "all") -> dict[str, torch.nn.Module]:
    """The modules an adapter can sit on, by exact name: every Linear and Conv2d of the UNet
    (``"all"``), or only the attention projections (``"attention"``)."""
    if candidates not in CANDIDATES:
        raise UserError(f"unknown candidate set {candidates!r}; valid candidate sets: {', '.join(CANDIDATES)}")
    modules = {n: m for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)}
    if candidates == "attention":
        return {n: m for n, m in modules.items() if ATTENTION.search(n)}
    return modules


def exact_names_regex(names: list[str]) -> str:
    """A peft ``target_modules`` regex that matches exactly these module names, nothing else."""
    return "^(" + "|".join(re.escape(n) for n in sorted(names)) + ")$"


def _delta(layer: BaseTunerLayer, scaling: float) -> torch.Tensor:
    """(alpha / r) B A, shaped like the base weight (Linear or Conv2d LoRA)."""
    a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
    base = layer.get_base_layer().weight
    return (b.flatten(1) @ a.flatten(1)).view(base.shape) * scaling


@contextmanager
def adapters_disabled(unet: torch.nn.Module):
    """The original model: every adapter (and every masked hook) off inside the block."""
    unet.disable_adapters()
    try:
        yield unet
    finally:
        unet.enable_adapters()


@dataclass
class AdapterEdit:
    """A trained (optionally masked) LoRA adapter: apply, remove, merge, save, load, size."""

    method: str
    rank: int
    alpha: float
    target_modules: list[str]
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # peft state dict (lora_A / lora_B)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # module name -> bool mask (per-weight)
    meta: dict = field(default_factory=dict)
    dropout: float = 0.0  # peft's LoRA dropout: active only while the UNet is in train mode
    _hooks: list = field(default_factory=list, repr=False)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    # --- attaching to a UNet ------------------------------------------------------------
    def apply(self, unet: torch.nn.Module, *, init_seed: int | None = None) -> AdapterEdit:
        """Add the adapter to ``unet`` (with its trained weights, or freshly initialised when empty)."""
        if init_seed is not None:
            torch.manual_seed(init_seed)
        config = LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=exact_names_regex(self.target_modules),
            init_lora_weights=True,
        )
        unet.add_adapter(config, adapter_name=ADAPTER)
        # peft makes the new layers (their dropout) in train mode whatever the UNet's mode: match
        # it, so that an adapter applied for sampling never drops anything
        unet.train(unet.training)
        if self.state:
            result = set_peft_model_state_dict(unet, self.state, adapter_name=ADAPTER)
            if getattr(result, "unexpected_keys", None):
                raise UserError(f"adapter does not fit this model: unexpected keys {result.unexpected_keys[:3]}")
        for name, module in unet.named_modules():
            if isinstance(module, BaseTunerLayer) and name in self.masks:
                module.scaling[ADAPTER] = 0.0  # peft's own (unmasked) update is off; the hook adds the masked one
                self._hooks.append(module.register_forward_hook(self._masked_hook(self.masks[name])))
        return self

    def _masked_hook(self, mask: torch.Tensor):
        scaling = self.scaling

        def hook(module: BaseTunerLayer, inputs, output):
            if module.disable_adapters or ADAPTER not in module.active_adapters:
                return output
            x = inputs[0]
            base = module.get_base_layer()
            delta = _delta(module, scaling) * mask.to(dtype=x.dtype, device=x.device)
            if isinstance(base, torch.nn.Linear):
                return output + F.linear(x, delta.to(x.dtype))
            return output + F.conv2d(x, delta.to(x.dtype), None, base.stride, base.padding, base.dilation, base.groups)

        return hook

    def trainable_parameters(self, unet: torch.nn.Module) -> list[torch.nn.Parameter]:
        return [p for n, p in unet.named_parameters() if "lora_" in n and f".{ADAPTER}." in n]

    def capture(self, unet: torch.nn.Module) -> AdapterEdit:
        """Copy the adapter's current (trained) weights out of ``unet``."""
        self.state = {
            k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()
        }
        return self

    def remove(self, unet: torch.nn.Module) -> None:
        """Take the adapter off: ``unet`` computes exactly what it did before ``apply``."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        unet.unload_lora()  # unwraps every peft layer: the module tree (and state dict keys) as before

    @torch.no_grad()
    def merge(self, unet: torch.nn.Module) -> None:
        """Fold Delta W (masked where masks exist) into the base weights and drop the adapter
        (applied first when it is not on ``unet``: merging an edit loaded from disk works too)."""
        if not any(isinstance(m, BaseTunerLayer) and ADAPTER in m.lora_A for m in unet.modules()):
            self.apply(unet)
        deltas = {}
        for name, module in unet.named_modules():
            if isinstance(module, BaseTunerLayer) and ADAPTER in module.lora_A:
                delta = _delta(module, self.scaling)
                if name in self.masks:
                    delta = delta * self.masks[name].to(delta.dtype)
                deltas[name] = delta
        self.remove(unet)
        for name, delta in deltas.items():
            weight = unet.get_submodule(name).weight
            weight += delta.to(weight.dtype)

    # --- accounting and persistence -----------------------------------------------------
    @property
    def num_parameters(self) -> int:
        return sum(v.numel() for v in self.state.values())

    def save(self, path: str | Path) -> Path:
        """``adapter.safetensors`` (LoRA A/B, masks bit-packed) + ``edit.json``; returns the folder."""
        tensors = {f"lora::{k}": v for k, v in self.state.items()}
        for name, mask in self.masks.items():
            tensors[f"mask::{name}"] = torch.from_numpy(np.packbits(mask.cpu().numpy().ravel()))
        meta = {
            "kind": "adapter",
            "method": self.method,
            "rank": self.rank,
            "alpha": self.alpha,
            "target_modules": self.target_modules,
            "mask_shapes": {n: list(m.shape) for n, m in self.masks.items()},
            "dropout": self.dropout,
            "meta": self.meta,
        }
        return write_edit_folder(path, meta, tensors, "adapter.safetensors")

    @classmethod
    def load(cls, path: str | Path) -> AdapterEdit:
        meta, tensors = read_edit_folder(path, "adapter.safetensors")
        state = {k.removeprefix("lora::"): v for k, v in tensors.items() if k.startswith("lora::")}
        masks = {}
        for name, shape in meta["mask_shapes"].items():
            bits = np.unpackbits(tensors[f"mask::{name}"].numpy())[: int(np.prod(shape))]
            masks[name] = torch.from_numpy(bits.astype(bool)).view(*shape)
        return cls(
            meta["method"],
            meta["rank"],
            meta["alpha"],
            meta["target_modules"],
            state,
            masks,
            meta["meta"],
            dropout=meta.get("dropout", 0.0),
        )
