"""The one table layout every world's data is normalised into."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import datasets

# image: RGB picture; style / object: canonical catalogue names; prompt: the benchmark
# template filled in; index: the image's number inside its (style, object) pair.
COLUMNS = ("image", "style", "object", "prompt", "index")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # image files the folder readers accept

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "style": datasets.Value("string"),
        "object": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "index": datasets.Value("int32"),
    }
)


def rows_to_dataset(rows: Iterable[Mapping[str, Any]]) -> datasets.Dataset:
    """Build a Dataset with exactly :data:`FEATURES` from row dicts."""
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for row in rows:
        for c in COLUMNS:
            columns[c].append(row[c])
    return datasets.Dataset.from_dict(columns, features=FEATURES)
