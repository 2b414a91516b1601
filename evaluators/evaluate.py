"""Score an answer set: classifier accuracies (UA / IRA / CRA), FID, and per-concept tables.

An answer-set folder holds one image per (style, object, seed) as
``<root>/<Style>/<Object>/<seed>.png``; names are resolved through the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from evaluators.accuracy import Metric, base_metrics, object_accuracy, pair_accuracy, style_accuracy, unlearning_metrics
from evaluators.classifiers import Classifier
from evaluators.cost import StageClock
from evaluators.fid import FeatureExtractor, protocol_fid
from spare.concepts import Catalogue, Concept
from spare.data.schema import IMAGE_SUFFIXES
from spare.errors import UserError


def read_answer_folder(root: str | Path, catalogue: Catalogue) -> pd.DataFrame:
    """Rows (style, object, seed, path) of ``<root>/<Style>/<Object>/<seed>.png``."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"answer-set folder {str(root)!r} does not exist; expected <root>/<Style>/<Object>/<seed>.png")
    rows = []
    for style_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        style = catalogue.style(style_dir.name)
        for object_dir in sorted(p for p in style_dir.iterdir() if p.is_dir()):
            obj = catalogue.object(object_dir.name)
            for f in sorted(object_dir.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    if not f.stem.lstrip("-").isdigit():
                        raise UserError(f"{f}: answer-set images are named by their integer seed (<seed>.png)")
                    rows.append({"style": style, "object": obj, "seed": int(f.stem), "path": str(f)})
    if not rows:
        raise UserError(f"no images under {str(root)!r}; expected <root>/<Style>/<Object>/<seed>.png")
    return pd.DataFrame(rows)


def load_images(paths: list[str]) -> list[np.ndarray]:
    """The images as RGB arrays; an unreadable one (truncated, not an image) is named in one line."""
    images = []
    for p in paths:
        try:
            with Image.open(p) as img:
                images.append(np.asarray(img.convert("RGB")))
        except (OSError, SyntaxError) as err:  # PIL: UnidentifiedImageError is an OSError; broken PNG chunks too
            raise UserError(
                f"answer image {str(p)!r} cannot be read ({err.__class__.__name__}): delete it to "
                "regenerate it, or replace it"
            ) from err
    return images


@dataclass
class RealReference:
    """The real side of FID: labels and features of real images, computed once and reused."""

    table: pd.DataFrame  # style, object
    features: np.ndarray
    extractor_name: str


def real_reference(dataset, extractor: FeatureExtractor, catalogue: Catalogue) -> RealReference:
    """Features of real images of every evaluated pair (benchmark styles + photo)."""
    keep = [i for i, s in enumerate(dataset["style"]) if s in catalogue.style_classes]
    dataset = dataset.select(keep)
    table = pd.DataFrame({"style": dataset["style"], "object": dataset["object"]})
    return RealReference(table, extractor(dataset["image"]), extractor.name)


@dataclass
class ScoredAnswers:
    """An answer set with what the judges said of each image: the classifiers' predictions
    (``pred_style``, ``pred_object`` columns) and the FID features, row-aligned. Computed once per
    answer set, it serves every target scored on that set (the base model's answers are shared by
    all targets)."""

    answers: pd.DataFrame
    features: np.ndarray | None
    extractor_name: str | None
    stages: dict[str, float]


def score_answers(
    answers: pd.DataFrame,
    images: list[np.ndarray],
    style_clf: Classifier,
    object_clf: Classifier,
    extractor: FeatureExtractor | None = None,
) -> ScoredAnswers:
    """Classify every image (and extract its FID features when ``extractor`` is given)."""
    clock = StageClock()
    answers = answers.copy()
    with clock("classify"):
        answers["pred_style"] = style_clf.predict(images)
        answers["pred_object"] = object_clf.predict(images)
    features = None
    if extractor is not None:
        with clock("fid"):
            features = extractor(images)
    return ScoredAnswers(answers, features, extractor.name if extractor else None, clock.as_dict())


def answer_metrics(
    scored: ScoredAnswers,
    catalogue: Catalogue,
    *,
    target: Concept | None = None,
    real: RealReference | None = None,
) -> dict[str, Any]:
    """Every metric of one scored answer set for ``target`` (None: the base model's own metrics),
    as a JSON-able dict (``metrics`` hold value + direction; ``stages``: the seconds spent scoring)."""
    answers = scored.answers
    metrics: dict[str, Metric] = (
        unlearning_metrics(answers, target, catalogue) if target is not None else base_metrics(answers, catalogue)
    )
    if real is not None and scored.features is not None:
        if scored.extractor_name != real.extractor_name:
            raise UserError(f"real features were made for {real.extractor_name}, not {scored.extractor_name}")
        fid = protocol_fid(real.table, real.features, answers, scored.features, target)
        metrics[scored.extractor_name] = Metric(scored.extractor_name, fid, False)
    pairs = pair_accuracy(answers)
    return {
        "target": str(target) if target else None,
        "benchmark": catalogue.name,
        "n_images": len(answers),
        "seeds": sorted(int(s) for s in answers["seed"].unique()),
        "metrics": {name: m.as_dict() for name, m in metrics.items()},
        "style_accuracy": style_accuracy(answers).round(4).to_dict(),
        "object_accuracy": object_accuracy(answers).round(4).to_dict(),
        "pair_accuracy": {k: v.round(4).to_dict(orient="index") for k, v in pairs.items()},
        "fid_features": scored.extractor_name if real is not None else None,
        "stages": dict(scored.stages),
    }


def evaluate_answers(
    answers: pd.DataFrame,
    images: list[np.ndarray],
    catalogue: Catalogue,
    style_clf: Classifier,
    object_clf: Classifier,
    *,
    target: Concept | None = None,
    real: RealReference | None = None,
    extractor: FeatureExtractor | None = None,
) -> dict[str, Any]:
    """Every metric of one answer set for one target: :func:`score_answers` then :func:`answer_metrics`."""
    scored = score_answers(answers, images, style_clf, object_clf, extractor if real is not None else None)
    return answer_metrics(scored, catalogue, target=target, real=real)
