"""Data of every world, in one table layout (see :mod:`spare.data.schema`)."""

from __future__ import annotations

from pathlib import Path

import datasets

from spare.concepts import get_catalogue
from spare.data.canvas_mini import canvas_mini_dataset
from spare.data.targets import TargetData, split_for_target
from spare.data.unlearncanvas import DatasetSourceError, load_unlearncanvas
from spare.progress import quiet_library_bars

__all__ = ["TargetData", "load_benchmark_data", "load_fid_real_images", "split_for_target"]


def load_benchmark_data(benchmark: str, source: str | Path | None = None, **mini_options) -> datasets.Dataset:
    """The training images of a benchmark world: rendered for ``mini``, read from ``source`` otherwise."""
    quiet_library_bars()
    catalogue = get_catalogue(benchmark)
    if catalogue.name == "mini":
        if source is not None:
            raise DatasetSourceError("canvas-mini is rendered by the harness; it takes no --data path")
        return canvas_mini_dataset(**mini_options)
    if source is None:
        raise DatasetSourceError(
            f"benchmark {catalogue.name!r} needs its dataset: pass --data PATH "
            "(a local UnlearnCanvas folder, parquet shards or saved dataset) or a hub id"
        )
    return load_unlearncanvas(source, catalogue)


FID_REAL_PER_PAIR = 5  # UnlearnCanvas: images 1..5 of every pair are the real side of FID


def load_fid_real_images(benchmark: str, source: str | Path | None = None) -> datasets.Dataset:
    """The real images FID compares against: held-out renders (mini) or images 1..5 of each pair."""
    catalogue = get_catalogue(benchmark)
    if catalogue.name == "mini":
        return canvas_mini_dataset(FID_REAL_PER_PAIR, split="test")
    full = load_benchmark_data(benchmark, source)
    return full.filter(lambda i: 1 <= i <= FID_REAL_PER_PAIR, input_columns=["index"])
