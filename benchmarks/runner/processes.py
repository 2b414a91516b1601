"""The process group of a sharded sweep (``accelerate launch``): rank, world size and a barrier."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta


class Processes:
    """Rank and world size under ``accelerate launch`` (or one process), with a barrier."""

    def __init__(self):
        self.rank, self.world, self._state = 0, 1, None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            # gloo on CPU; a long barrier timeout, since processes wait for each other's last target
            self._state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=72))
            self.rank, self.world = self._state.process_index, self._state.num_processes

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()


def work_order(shards: list[list], rank: int) -> tuple[list, list]:
    """This process's own items, and then the other processes' items in the order it should help with
    them once its own are done: one of each other process's lists in turn, from their ends backwards,
    so a helper meets each owner as late as possible. Each item is claimed before it is worked on
    (:func:`spare.io.claim`), so owner and helper never make the same one."""
    others = [s for r, s in enumerate(shards) if r != rank]
    turns = [item for turn in itertools.zip_longest(*others) for item in turn if item is not None]
    return list(shards[rank]), turns[::-1]
