"""Frechet distance between real images and an answer set, UnlearnCanvas protocol.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) over feature vectors (Heusel et al.
2017, eq. 6). Features come from torchmetrics' Inception-v3 (2048-d pool, 299x299) when
its weights are given as a local file, and are then reported as ``FID``; otherwise from
the benchmark's own style classifier (penultimate layer), reported as ``FID(cls)``. The
two are different rulers and are never mixed in one column.

Protocol: real images of every pair against the answer set, the forgotten concept dropped
from both sides. Features are computed once per image, so the real side can be cached and
every target reuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import linalg

from spare.concepts import Concept
from spare.errors import UserError

INCEPTION = "FID"
CLASSIFIER = "FID(cls)"


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID between two feature matrices ``(N, D)``, computed in float64."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    if len(f1) < 2 or len(f2) < 2:
        raise UserError("FID needs at least two images on each side")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as the reference code does
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    fid = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return max(fid, 0.0)  # identical sets can come out at -1e-10 from rounding


@dataclass
class FeatureExtractor:
    """Images (uint8 ``(B, H, W, 3)`` or PIL) to feature vectors, with the metric name they define."""

    name: str
    extract: Callable[[list], torch.Tensor]

    def __call__(self, images) -> np.ndarray:
        return self.extract(images).double().cpu().numpy()


def inception_extractor(weights: str | Path, batch_size: int = 64) -> FeatureExtractor:
    """torchmetrics' FID Inception-v3 (2048-d pool features) from a local weights file."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"Inception weights {str(weights)!r} not found; they are never downloaded implicitly")
    net = NoTrainInceptionV3(
        name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(weights)
    )
    net.eval()

    @torch.no_grad()
    def extract(images) -> torch.Tensor:
        out = []
        for i in range(0, len(images), batch_size):
            arr = np.stack(
                [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images[i : i + batch_size]]
            )
            out.append(net(torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()))  # uint8 in, resized inside
        return torch.cat(out)

    return FeatureExtractor(INCEPTION, extract)


def classifier_extractor(classifier) -> FeatureExtractor:
    """The benchmark classifier's penultimate features: the fallback ruler, labelled FID(cls)."""
    return FeatureExtractor(CLASSIFIER, classifier.features)


def make_extractor(inception_weights: str | Path | None, classifier) -> FeatureExtractor:
    """Inception when its weights are given, else the classifier (and the metric says so)."""
    return inception_extractor(inception_weights) if inception_weights else classifier_extractor(classifier)


def protocol_fid(
    real: pd.DataFrame,
    real_features: np.ndarray,
    answers: pd.DataFrame,
    answer_features: np.ndarray,
    target: Concept | None,
) -> float:
    """FID of answer set vs real images, both without the forgotten concept's images.

    ``real`` / ``answers`` carry ``style`` and ``object`` columns row-aligned with their features.
    """

    def keep(table: pd.DataFrame) -> np.ndarray:
        if target is None:
            return np.ones(len(table), dtype=bool)
        return np.array([not target.shows(s, o) for s, o in zip(table["style"], table["object"], strict=True)], bool)

    return frechet_distance(real_features[keep(real)], answer_features[keep(answers)])
