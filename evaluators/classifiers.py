"""Style and object classifiers (timm), trained by our own code, and loaders for checkpoints.

UnlearnCanvas reads its answer sets with two separate ViT-L/16 classifiers: a 51-way style
head (50 styles + photo) and a 20-way object head; their training script was never
published. This module trains the same pair for any catalogue with one code path: small
ResNets on 64x64-upsampled renders for canvas-mini, ``vit_large_patch16_224`` from a local
pretrained file for the full world. Training images get noise, blur and contrast jitter,
because the classifiers must read generated images, which are softer and noisier than
renders.

A trained classifier is a folder: ``classifier.json`` (architecture, class names, input
size, held-out accuracy, training config) and ``model.safetensors``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from spare.concepts import Catalogue
from spare.config import to_dict
from spare.errors import UserError
from spare.io import atomic_path
from spare.progress import tqdm

log = logging.getLogger(__name__)

KINDS = ("style", "object")


class ClassifierLoadError(UserError):
    """A classifier folder that is missing, incomplete or corrupt."""


@dataclass
class ClassifierConfig:
    """How one classifier is built and trained; defaults are the canvas-mini recipe."""

    arch: str = "resnet18"
    arch_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"channels": [32, 64, 128, 256], "layers": [1, 1, 1, 1]}
    )
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


def _tone_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random global tone shift per image: contrast towards the mean, saturation, brightness, tint."""
    if strength <= 0:
        return x

    def u(*shape: int) -> torch.Tensor:  # uniform in [-1, 1]
        return torch.rand(*shape, generator=gen) * 2 - 1

    b = x.shape[0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + strength * u(b, 1, 1, 1))
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * (1 + strength * u(b, 1, 1, 1))
    x = x + 0.4 * strength * u(b, 1, 1, 1) + 0.2 * strength * u(b, 3, 1, 1)
    return x.clamp(0, 1)


def _augment(x: torch.Tensor, cfg: ClassifierConfig, gen: torch.Generator) -> torch.Tensor:
    """Make renders look more like samples: blur some, add noise, shift the tone."""
    x = _tone_jitter(x, cfg.tone_jitter, gen)
    b = x.shape[0]
    blur = torch.rand(b, generator=gen) < cfg.blur_prob
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
        k2 = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    contrast = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    std = torch.rand(b, 1, 1, 1, generator=gen) * cfg.noise_std
    return (x + torch.randn(x.shape, generator=gen) * std).clamp(0, 1)


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


def build_model(cfg: ClassifierConfig, num_classes: int) -> torch.nn.Module:
    kwargs = dict(cfg.arch_kwargs)
    if cfg.pretrained_path:
        if not Path(cfg.pretrained_path).is_file():
            raise ClassifierLoadError(
                f"pretrained weights {cfg.pretrained_path!r} not found (they are never downloaded)"
            )
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(cfg.pretrained_path)})
    try:
        return timm.create_model(cfg.arch, num_classes=num_classes, **kwargs)
    except RuntimeError as err:
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


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def class_names(catalogue: Catalogue, kind: str) -> list[str]:
    """Labels of the style head (benchmark styles + photo) or the object head."""
    if kind not in KINDS:
        raise UserError(f"unknown classifier kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return list(catalogue.style_classes if kind == "style" else catalogue.objects)


def _labelled(dataset, catalogue: Catalogue, kind: str):
    classes = class_names(catalogue, kind)
    keep = [i for i, s in enumerate(dataset["style"]) if s in catalogue.style_classes]
    dataset = dataset.select(keep)
    labels = torch.tensor([classes.index(v) for v in dataset[kind]])
    return dataset, labels


def confusion_matrix(true: list[str], pred: list[str], classes: list[str]) -> np.ndarray:
    """Rows: true class, columns: predicted class, counts."""
    index = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(true, pred, strict=True):
        m[index[t], index[p]] += 1
    return m


def train_classifier(train, val, catalogue: Catalogue, kind: str, cfg: ClassifierConfig) -> tuple[Classifier, dict]:
    """Train one head on ``train`` (a normalised dataset), report accuracy on ``val``."""
    torch.manual_seed(cfg.seed)
    classes = class_names(catalogue, kind)
    train, labels = _labelled(train, catalogue, kind)
    model = build_model(cfg, len(classes))
    steps_per_epoch = len(train) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    model.train()
    bar = tqdm(total=total, desc=f"{kind} classifier", unit="step")
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train), generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = _augment(to_tensor(train[idx.tolist()]["image"], cfg.input_size), cfg, gen)
            loss = F.cross_entropy(model(_normalise(x)), labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    wall = time.perf_counter() - start
    meta = {
        "kind": kind,
        "arch": cfg.arch,
        "arch_kwargs": cfg.arch_kwargs,
        "config": to_dict(cfg),
        "train_images": len(train),
    }
    clf = Classifier(model, classes, cfg.input_size, meta)
    val, _ = _labelled(val, catalogue, kind)
    true, pred = list(val[kind]), clf.predict(val["image"])
    cm = confusion_matrix(true, pred, classes)
    report = {
        "kind": kind,
        "val_accuracy": float(np.trace(cm) / cm.sum()),
        "val_images": int(cm.sum()),
        "per_class_accuracy": {c: float(cm[i, i] / max(cm[i].sum(), 1)) for i, c in enumerate(classes)},
        "train_wall_time_s": wall,
        "confusion": cm.tolist(),
        "classes": classes,
    }
    clf.meta.update(val_accuracy=report["val_accuracy"], train_wall_time_s=wall)
    return clf, report


@dataclass
class ClassifiersConfig:
    """``make classifiers``: both heads of one benchmark world."""

    benchmark: str = "mini"
    data: str | None = None  # UnlearnCanvas source for the full world
    style: ClassifierConfig = field(default_factory=ClassifierConfig)
    object: ClassifierConfig = field(default_factory=ClassifierConfig)
    out_dir: str = "models/canvas-mini-classifiers"
    results_dir: str = "results/classifiers"
    val_every_nth: int = 10  # full world: every n-th image of a pair is held out (split by image, not pair)


def classifier_splits(cfg: ClassifiersConfig, kind: str):
    """Train and validation data: disjoint render seeds (mini) or held-out image numbers (full)."""
    from spare.data import load_benchmark_data

    head: ClassifierConfig = getattr(cfg, kind)
    if cfg.data is None:
        train = load_benchmark_data(cfg.benchmark, n_per_pair=head.train_per_pair, split="train")
        val = load_benchmark_data(cfg.benchmark, n_per_pair=head.val_per_pair, split="validation")
        return train, val
    full = load_benchmark_data(cfg.benchmark, cfg.data)
    held = [i % cfg.val_every_nth == 0 for i in full["index"]]
    return (
        full.select([i for i, h in enumerate(held) if not h]),
        full.select([i for i, h in enumerate(held) if h]),
    )


def write_confusion(report: dict, results_dir: Path) -> None:
    """Confusion matrix of the held-out set as CSV and PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    kind, classes, cm = report["kind"], report["classes"], np.asarray(report["confusion"])
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(results_dir / f"{kind}_confusion.csv") as tmp:
        pd.DataFrame(cm, index=classes, columns=classes).to_csv(tmp)
    fig, ax = plt.subplots(figsize=(0.45 * len(classes) + 2.5, 0.45 * len(classes) + 2))
    ax.imshow(cm / cm.sum(1, keepdims=True).clip(1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=6, color="white" if i == j else "red")
    ax.set(
        xlabel="predicted", ylabel="true", title=f"{kind} classifier, held-out accuracy {report['val_accuracy']:.2%}"
    )
    fig.tight_layout()
    with atomic_path(results_dir / f"{kind}_confusion.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def train_benchmark_classifiers(cfg: ClassifiersConfig) -> dict[str, dict]:
    """Train the style and the object head, save them and their confusion matrices; return the reports."""
    from spare.concepts import get_catalogue
    from spare.io import write_json

    catalogue = get_catalogue(cfg.benchmark)
    reports = {}
    for kind in KINDS:
        train, val = classifier_splits(cfg, kind)
        clf, report = train_classifier(train, val, catalogue, kind, getattr(cfg, kind))
        clf.save(Path(cfg.out_dir) / kind)
        write_confusion(report, Path(cfg.results_dir))
        reports[kind] = report
        log.info(
            "%s classifier: held-out accuracy %.2f%% in %.0fs",
            kind,
            100 * report["val_accuracy"],
            report["train_wall_time_s"],
        )
    summary = {
        k: {x: r[x] for x in ("val_accuracy", "val_images", "train_wall_time_s", "per_class_accuracy")}
        for k, r in reports.items()
    }
    write_json(Path(cfg.results_dir) / "classifiers.json", {"config": to_dict(cfg), "results": summary})
    return reports
