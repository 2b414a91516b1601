"""Training the style and object classifiers (``make classifiers``) for any catalogue.

One code path: small ResNets on 64x64-upsampled renders for canvas-mini,
``vit_large_patch16_224`` from a local pretrained file for the full world. Training images get
noise, blur and contrast jitter, because the classifiers must read generated images, which are
softer and noisier than renders. The trained folders are read by :mod:`evaluators.classifiers`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evaluators.classifiers import (
    KINDS,
    Classifier,
    ClassifierConfig,
    _normalise,
    arch_kwargs,
    build_model,
    class_names,
    to_tensor,
)
from spare.concepts import Catalogue
from spare.config import to_dict
from spare.errors import UserError
from spare.io import atomic_path
from spare.progress import tqdm

log = logging.getLogger(__name__)


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
    if len(train) < cfg.batch_size:
        raise UserError(
            f"{kind} classifier: {len(train)} training images, fewer than one batch of {cfg.batch_size}; "
            f"lower {kind}.batch_size (e.g. {kind}.batch_size={max(1, len(train) // 2)}) or give more data"
        )
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
        "arch_kwargs": arch_kwargs(cfg),
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
    if not any(held) or all(held):
        raise UserError(
            f"val_every_nth={cfg.val_every_nth} holds out {'no' if not any(held) else 'every'} image of "
            f"{cfg.data!r} (image numbers {min(full['index'])}..{max(full['index'])}): choose a val_every_nth "
            "that leaves both a training and a validation set"
        )
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
