"""The process group of a sharded sweep (``accelerate launch``): rank, world size and a barrier."""

from __future__ import annotations

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
