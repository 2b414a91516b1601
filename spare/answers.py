"""Answer-set generation: one image per (style, object, seed) of the benchmark grid.

As in UnlearnCanvas, an image's starting noise depends only on its seed (the evaluation
seeds 188, 288, ...), never on its batch, its position or the number of processes, so an
answer set can be generated in any order, resumed, or split across workers. Images are
written as ``<out>/<Style>/<Object>/<seed>.png``, each atomically, and existing images are
kept, so an interrupted generation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from spare.concepts import Catalogue
from spare.config import HASH_IF_SET, ConfigError, check_ranges, hash_view, to_dict
from spare.io import atomic_path, config_hash, write_json
from spare.pipeline import SAMPLERS, T2IPipeline
from spare.precision import REQUESTS, resolve_precision
from spare.progress import tqdm

UNLEARNCANVAS_SEEDS = (188, 288, 588, 688, 888)


@dataclass
class SamplingConfig:
    """How answer-set images are sampled (UnlearnCanvas: 100 DDIM steps, guidance 9.0, 5 seeds).

    canvas-mini defaults: 25 DPM-Solver++ steps (with thresholding) at guidance 9.0. Chosen on
    validation seeds 1000.. (never the answer-set seeds): DDIM with x0 clipping lost styles and
    objects as guidance grew (guidance 3: style 42% / object 91%; 9: 22% / 39%), DPM-Solver++
    gained (3: 42% / 100%; 9: 64% / 100%).
    """

    seeds: tuple[int, ...] = UNLEARNCANVAS_SEEDS
    steps: int = 25
    guidance: float = 9.0
    sampler: str = "dpm"
    batch_size: int = 128  # images handed to the pipeline at once (progress granularity), in whole micro-batches
    # images per network call; fixed so images never depend on batching. 55 (with batch_size 110)
    # would split canvas-mini's grid of 110 prompts into whole micro-batches (32 pads 110 images to
    # 128: 14% of the network's work thrown away); it changes images by rounding, so it waits for
    # the side-by-side of benchmarks.speed_agreement like the other speed settings.
    micro_batch: int = 32
    styles: tuple[str, ...] = field(default_factory=tuple)  # empty: every style class (benchmark + photo)
    objects: tuple[str, ...] = field(default_factory=tuple)  # empty: every object
    # "bf16": the UNet runs under bf16 autocast (1.6x faster on CPUs with native bf16; images a mean
    # of about 4 grey levels from fp32's, a few pixels far more); the sampler's own arithmetic stays
    # fp32. "auto": bf16 only where the machine runs it natively (spare.precision),
    # resolved before any key is computed (:meth:`resolved`). Hashed only when set.
    precision: str = field(default="fp32", metadata=HASH_IF_SET)

    def __post_init__(self) -> None:
        # checked when a preset or config is read, not after the training it follows
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
        if self.precision not in REQUESTS:
            raise ConfigError(f"unknown sampling precision {self.precision!r}; valid: {', '.join(REQUESTS)}")
        check_ranges(self)  # steps, guidance, batch sizes, seeds

    def resolved(self, device_type: str) -> SamplingConfig:
        """This config with ``precision="auto"`` replaced by what ``device_type`` runs (fp32 or bf16)."""
        if self.precision != "auto":
            return self
        return dataclasses.replace(self, precision=resolve_precision("auto", device_type).precision)


def answer_grid(catalogue: Catalogue, cfg: SamplingConfig) -> pd.DataFrame:
    """The rows (style, object, seed, prompt) an answer set must contain, in a fixed order."""
    styles = [catalogue.style(s) for s in cfg.styles] or list(catalogue.style_classes)
    objects = [catalogue.object(o) for o in cfg.objects] or list(catalogue.objects)
    rows = [
        {"style": s, "object": o, "seed": seed, "prompt": catalogue.prompt(s, o)}
        for seed in cfg.seeds
        for s in styles
        for o in objects
    ]
    return pd.DataFrame(rows)


def image_path(root: Path, style: str, obj: str, seed: int) -> Path:
    return root / style / obj / f"{seed}.png"


def generate_answer_set(
    pipe: T2IPipeline | Callable[[], T2IPipeline],
    catalogue: Catalogue,
    cfg: SamplingConfig,
    out_dir: str | Path,
    *,
    desc: str = "answer set",
    shard: tuple[int, int] = (0, 1),
) -> pd.DataFrame:
    """Generate (or complete) the answer set under ``out_dir``; returns the grid with image paths
    (``grid.attrs["generated"]``: how many images this call made).

    ``shard=(rank, world)`` generates only every world-th block of ``micro_batch`` rows (the
    other processes make the rest). Blocks keep each network call's batch the same as in one
    process, so a sharded answer set is bit-identical to an unsharded one. The returned grid
    is always the whole one. ``pipe`` may be a function that loads the pipeline: it is called only
    when an image is missing (loading a model only to find every image made is wasted).
    """
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard rank {rank} is outside 0..{world - 1}")
    out_dir = Path(out_dir)
    grid = answer_grid(catalogue, cfg)
    grid["path"] = [str(image_path(out_dir, r.style, r.object, r.seed)) for r in grid.itertuples()]
    mine = grid[(grid.index // cfg.micro_batch) % world == rank]
    todo = mine[[not Path(p).exists() for p in mine["path"]]]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc=desc, unit="img")
    if len(todo) and not hasattr(pipe, "sample"):  # a loader, and an image to make
        pipe = pipe()
    step = max(1, cfg.batch_size // cfg.micro_batch) * cfg.micro_batch  # no chunk ends in a padded micro-batch
    for start in range(0, len(todo), step):
        chunk = todo.iloc[start : start + step]
        images = pipe.sample(
            list(chunk["prompt"]),
            list(chunk["seed"]),
            steps=cfg.steps,
            guidance=cfg.guidance,
            sampler=cfg.sampler,
            micro_batch=cfg.micro_batch,
            precision=cfg.precision,
        )
        for path, img in zip(chunk["path"], images, strict=True):
            with atomic_path(path) as tmp:
                Image.fromarray(img).save(tmp, format="PNG")
        bar.update(len(chunk))
    bar.close()
    write_json(
        out_dir / "answer_set.json", {"sampling": to_dict(cfg), "key": config_hash(hash_view(cfg)), "images": len(grid)}
    )
    grid.attrs["generated"] = len(todo)
    return grid
