"""Mirror runs and sweep tables to Weights & Biases: off, offline (default) or online.

Offline needs no network and no account: W&B writes ``<dir>/wandb/offline-run-*`` folders
that ``wandb sync <folder>`` uploads later. ``WANDB_MODE=disabled`` in the environment
turns the mirror off whatever the config says (the tests and CI set it).

Each unlearning run becomes one W&B run (job_type "unlearn": its config, its metrics and its
answer-set grid); the sweep becomes one more (job_type "sweep": the per-target and summary
tables as W&B Tables, and the trade-off plot). All runs of a sweep share the group name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from spare.errors import UserError

MODES = ("off", "offline", "online")
log = logging.getLogger(__name__)


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as W&B should see it: numbers stay numbers (so the dashboard sorts and charts
    them; nullable integers become floats), everything else becomes text."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_bool_dtype(out[col]):
            continue
        if pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(float)
        else:
            out[col] = out[col].astype(str)
    return out


class WandbMirror:
    def __init__(self, mode: str, project: str, group: str, root: Path):
        if mode not in MODES:
            raise UserError(f"unknown W&B mode {mode!r}. Valid modes: {', '.join(MODES)}")
        if os.environ.get("WANDB_MODE") == "disabled":
            mode = "off"
        self.mode, self.project, self.group, self.root = mode, project, group, Path(root)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def _init(self, **kwargs):
        import wandb

        self.root.mkdir(parents=True, exist_ok=True)
        return wandb.init(
            project=self.project,
            group=self.group,
            mode=self.mode,
            dir=str(self.root),
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
            **kwargs,
        )

    def log_run(self, name: str, config: dict, result: dict, grid: Path | None) -> None:
        if not self.enabled:
            return
        import wandb

        with self._init(name=name, job_type="unlearn", config=config) as run:
            values = {k: m["value"] for k, m in result["metrics"].items()}
            if grid is not None and grid.exists():
                values["answer_set"] = wandb.Image(str(grid))
            run.log(values)
            run.summary.update({k: v for k, v in values.items() if k != "answer_set"})

    def log_sweep(self, name: str, config: dict, tables: dict[str, pd.DataFrame], plot: Path | None) -> None:
        if not self.enabled:
            return
        import wandb

        with self._init(name=name, job_type="sweep", config=config) as run:
            logged = {key: wandb.Table(dataframe=typed(frame)) for key, frame in tables.items()}
            if plot is not None and plot.exists():
                logged["tradeoff"] = wandb.Image(str(plot))
            run.log(logged)
        log.info("W&B %s files under %s", self.mode, self.root / "wandb")
