"""The method contract: what an edit does and what ``unlearn(pipe, data, cfg)`` returns.

Every method returns an :class:`Unlearned`: its :class:`Edit` (how the UNet changes) and what
the run records about the training (``report.json``). The run applies, saves, measures and
removes the edit through the protocol alone, never asking which kind it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch


@runtime_checkable
class Edit(Protocol):
    """A reversible change of one part of the pipeline (LoRA adapters or new weight values of the
    UNet; a hook on the text encoder's output): applied for sampling, removed after, merged for
    good, saved to and loaded from a folder. ``apply`` / ``remove`` / ``merge`` take the part the
    edit changes, which :func:`edited_part` finds (``component``; the UNet when an edit names none)."""

    method: str
    meta: dict

    @property
    def num_parameters(self) -> int: ...

    def apply(self, unet: torch.nn.Module) -> Edit: ...

    def remove(self, unet: torch.nn.Module) -> None: ...

    def merge(self, unet: torch.nn.Module) -> None: ...

    def save(self, path: str | Path) -> Path: ...


def edited_part(pipe: Any, edit: Edit) -> torch.nn.Module:
    """The module of ``pipe`` that ``edit`` changes: ``pipe.unet`` unless the edit's class says
    otherwise with a ``component`` attribute (a prompt edit: ``"text_encoder"``)."""
    return getattr(pipe, getattr(edit, "component", "unet"))


@dataclass
class Unlearned:
    """What a method returns: the edit, the training log (the trainer's rows), the trainable
    parameter count and share of the UNet, and method-specific ``details`` (adapted modules,
    saliency, timestep profile, ...), all of which go to the run's ``report.json``."""

    edit: Edit
    log: list[dict] = field(default_factory=list)
    trainable_params: int = 0
    trainable_share: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.edit, Edit):
            raise TypeError(f"a method must return an Edit (apply/remove/merge/save), got {type(self.edit).__name__}")

    @classmethod
    def of(cls, edit: Edit, unet: torch.nn.Module, log: list[dict] | None = None, **details: Any) -> Unlearned:
        """The result for ``edit`` of ``unet``, its trainable share worked out from the UNet's size."""
        n_unet = sum(p.numel() for p in unet.parameters())
        n = edit.num_parameters
        return cls(edit, list(log or []), n, n / n_unet, details)

    def report(self) -> dict[str, Any]:
        """The training report as ``report.json`` holds it."""
        return {
            "log": self.log,
            "trainable_params": self.trainable_params,
            "trainable_share": self.trainable_share,
            **self.details,
        }


@dataclass
class MethodConfig:
    """What every method's config has: the seed of its own randomness (the runner's training seed).
    A method's config subclasses it and adds its fields; a trained method adds ``optim``
    (:class:`spare.methods.trainer.OptimConfig`), which the step budget and lr factors scale.
    A method whose result does not depend on the seed (a closed-form or training-free edit) says
    ``seeded = False``: a sweep over training seeds then runs it once, at the first seed."""

    seed: int = 0
    seeded: ClassVar[bool] = True


def seeded(config_cls: type) -> bool:
    """Whether a method's result depends on its training seed (see :class:`MethodConfig`)."""
    return getattr(config_cls, "seeded", True)


def trains(cfg: Any) -> bool:
    """Whether a method config trains with the shared optimiser (has an ``optim`` OptimConfig); a
    plugin's config that does not subclass :class:`MethodConfig` is read the same way."""
    from spare.methods.trainer import OptimConfig

    return isinstance(getattr(cfg, "optim", None), OptimConfig)
