"""Style and object classifiers (timm): the model, its folder format, loading and reading images.

UnlearnCanvas reads its answer sets with two separate ViT-L/16 classifiers: a 51-way style
head (50 styles + photo) and a 20-way object head; their training script was never
published. :mod:`evaluators.classifier_training` trains the same pair for any catalogue with
one code path (small ResNets on 64x64-upsampled renders for canvas-mini,
``vit_large_patch16_224`` from a local pretrained file for the full world); this module is
what scoring needs.

A trained classifier is a folder: ``classifier.json`` (architecture, class names, input
size, held-out accuracy, training config) and ``model.safetensors``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from spare.concepts import Catalogue
from spare.errors import UserError
from spare.io import atomic_path

log = logging.getLogger(__name__)

KINDS = ("style", "object")


class ClassifierLoadError(UserError):
    """A classifier folder that is missing, incomplete or corrupt."""


@dataclass
class ClassifierConfig:
    """How one classifier is built and trained; defaults are the canvas-mini recipe."""

    arch: str = "resnet18"
    # None: the architecture family's defaults (ARCH_DEFAULTS: canvas-mini's small ResNet for
    # resnet*, timm's own for anything else, e.g. the ViT recipe); a dict is passed to timm as is
    arch_kwargs: dict[str, Any] | None = None
    input_size: int = 64
    pretrained_path: str | None = None  # local timm weights (e.g. ViT-L/16); never downloaded
    train_per_pair: int = 100
    val_per_pair: int = 10
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    noise_std: float = 0.06  # max std of added Gaussian noise, images in [0, 1]
    blur_prob: float = 0.3
    # Global tone shifts (brightness, contrast, saturation, per-channel tint) of up to this
    # strength: generated images drift in overall tone while keeping their texture, so the
    # heads must read a style from its texture and palette relations, not its exact tone.
    tone_jitter: float = 0.5
    seed: int = 0


def to_tensor(images: np.ndarray | list, input_size: int) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` images (or PIL images) to normalised ``(B, 3, S, S)`` floats."""
    arr = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)
    return x


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


class Classifier:
    """A trained classifier: a timm model, its class names and input size."""

    def __init__(self, model: torch.nn.Module, classes: list[str], input_size: int, meta: dict[str, Any]) -> None:
        self.model, self.classes, self.input_size, self.meta = model.eval(), list(classes), input_size, meta

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "?")

    @torch.no_grad()
    def logits(self, images, batch_size: int = 256) -> torch.Tensor:
        out = [
            self.model(_normalise(to_tensor(images[i : i + batch_size], self.input_size)))
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(out)

    def predict(self, images, batch_size: int = 256) -> list[str]:
        """Predicted class names for uint8 ``(B, H, W, 3)`` images or PIL images."""
        return [self.classes[i] for i in self.logits(images, batch_size).argmax(1).tolist()]

    @torch.no_grad()
    def features(self, images, batch_size: int = 256) -> torch.Tensor:
        """Penultimate (pooled, pre-logit) features: what ``FID(cls)`` compares."""
        out = []
        for i in range(0, len(images), batch_size):
            x = _normalise(to_tensor(images[i : i + batch_size], self.input_size))
            out.append(self.model.forward_head(self.model.forward_features(x), pre_logits=True))
        return torch.cat(out).double()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.mkdir()
            save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, tmp / "model.safetensors")
            meta = {**self.meta, "classes": self.classes, "input_size": self.input_size}
            (tmp / "classifier.json").write_text(json.dumps(meta, indent=2))
        return path


# timm keyword arguments per architecture family when a config gives none: ResNet-only keys
# (channels, layers) never reach a ViT
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {"resnet": {"channels": [32, 64, 128, 256], "layers": [1, 1, 1, 1]}}


def arch_kwargs(cfg: ClassifierConfig) -> dict[str, Any]:
    """The timm keyword arguments ``cfg`` builds its model with."""
    if cfg.arch_kwargs is not None:
        return dict(cfg.arch_kwargs)
    family = next((f for f in ARCH_DEFAULTS if cfg.arch.startswith(f)), None)
    return dict(ARCH_DEFAULTS[family]) if family else {}


def build_model(cfg: ClassifierConfig, num_classes: int) -> torch.nn.Module:
    kwargs = arch_kwargs(cfg)
    if cfg.pretrained_path:
        if not Path(cfg.pretrained_path).is_file():
            raise ClassifierLoadError(
                f"pretrained weights {cfg.pretrained_path!r} not found (they are never downloaded)"
            )
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(cfg.pretrained_path)})
    try:
        return timm.create_model(cfg.arch, num_classes=num_classes, **kwargs)
    except (RuntimeError, TypeError) as err:  # TypeError: a keyword the architecture does not take
        raise ClassifierLoadError(f"cannot build timm model {cfg.arch!r} with {kwargs}: {err}") from err


def load_classifier(path: str | Path) -> Classifier:
    """Load a classifier folder written by :meth:`Classifier.save`."""
    path = Path(path)
    meta_file, weights = path / "classifier.json", path / "model.safetensors"
    if not meta_file.is_file() or not weights.is_file():
        raise ClassifierLoadError(
            f"classifier folder {str(path)!r} needs classifier.json and model.safetensors; "
            "train them with `make classifiers` or convert an external checkpoint with load_external_classifier"
        )
    try:
        meta = json.loads(meta_file.read_text())
        cfg = ClassifierConfig(
            arch=meta["arch"], arch_kwargs=meta.get("arch_kwargs", {}), input_size=meta["input_size"]
        )
        model = build_model(cfg, len(meta["classes"]))
        model.load_state_dict(load_file(weights))
    except Exception as err:  # json, safetensors and torch each raise their own kinds; one message for the user
        raise ClassifierLoadError(f"classifier folder {str(path)!r} is corrupt or incomplete: {err}") from err
    return Classifier(model, meta["classes"], meta["input_size"], meta)


def load_external_classifier(
    arch: str, weights: str | Path, classes: list[str], kind: Literal["style", "object"], input_size: int = 224
) -> Classifier:
    """Wrap an externally trained timm checkpoint (e.g. the authors' ViT-L/16 heads).

    ``weights``: a state dict (``.safetensors``, ``.pt`` or ``.pth``) for ``timm`` model ``arch``
    with ``len(classes)`` outputs, ordered as ``classes``.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ClassifierLoadError(f"classifier weights {str(weights)!r} not found")
    model = timm.create_model(arch, num_classes=len(classes))
    try:
        if weights.suffix == ".safetensors":
            state = load_file(weights)
        else:  # tensors only: a pickle's code is never run
            state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict):  # the published UnlearnCanvas heads keep theirs under model_state_dict
            state = state.get("model_state_dict", state.get("state_dict", state))
        model.load_state_dict(state)
    except Exception as err:  # torch.load / load_state_dict raise many kinds; one message for the user
        raise ClassifierLoadError(
            f"{str(weights)!r} is not a {arch} checkpoint with {len(classes)} classes: {err}"
        ) from err
    return Classifier(model, classes, input_size, {"kind": kind, "arch": arch, "external": str(weights)})


PUBLISHED_ARCH = "vit_large_patch16_224.augreg_in21k"  # UnlearnCanvas's heads: ViT-L/16, 224 px, Normalize(0.5, 0.5)


def import_published(
    catalogue: Catalogue, style: str | Path, obj: str | Path, out: str | Path, *, arch: str = PUBLISHED_ARCH,
    input_size: int = 224,
) -> dict[str, Path]:  # fmt: skip
    """The published UnlearnCanvas classifier checkpoints (``style50.pth``: head Linear(1024, 51) over the
    benchmark styles and the photo class; ``style50_cls.pth``: Linear(1024, 20) over the objects, both
    in catalogue order, weights under ``model_state_dict``) as the harness's classifier folders
    ``<out>/style`` and ``<out>/object`` (``--classifiers <out>``). Loaded with ``weights_only=True``."""
    written = {}
    for kind, weights in (("style", style), ("object", obj)):
        clf = load_external_classifier(arch, weights, class_names(catalogue, kind), kind, input_size)
        clf.meta.update(arch_kwargs={}, imported_from=str(weights))
        written[kind] = clf.save(Path(out) / kind)
    return written


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def class_names(catalogue: Catalogue, kind: str) -> list[str]:
    """Labels of the style head (benchmark styles + photo) or the object head."""
    if kind not in KINDS:
        raise UserError(f"unknown classifier kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return list(catalogue.style_classes if kind == "style" else catalogue.objects)
