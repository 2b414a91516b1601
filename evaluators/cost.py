"""Cost meters: wall time, peak memory and storage of an unlearning run.

    with CostMeter() as cost:
        edit = method.unlearn(...)
    cost.wall_time_s, cost.peak_memory_gb  # then cost.metrics(storage_bytes=edit.size_bytes)

Wall time is what the tables report (as UnlearnCanvas does). Beside it the meter records the
process's CPU time (all its threads) and the machine's 1-minute load average at the end, so
a run that shared the machine with other work can be told apart (its wall time is inflated,
its CPU time much less so).

Peak memory is the accelerator's peak allocation (``torch.cuda.max_memory_allocated``) on
a GPU, and the process's peak resident memory during the block on the CPU (sampled by a
background thread, since the kernel's own high-water mark covers the whole process life).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import torch

from evaluators.accuracy import Metric

GB = 1024**3


class CostMeter:
    """Context manager measuring wall time and peak memory of the enclosed block."""

    def __init__(self, device: str | torch.device | None = None, interval_s: float = 0.02) -> None:
        self.device = torch.device(device) if device is not None else None
        self.interval_s = interval_s
        self.wall_time_s = 0.0
        self.cpu_time_s = 0.0
        self.load_1min = 0.0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def on_cuda(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    @property
    def memory_kind(self) -> str:
        return "cuda_max_allocated" if self.on_cuda else "cpu_peak_rss"

    @property
    def peak_memory_gb(self) -> float:
        return self.peak_bytes / GB

    def _sample_rss(self) -> None:
        proc = psutil.Process(os.getpid())
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> CostMeter:
        if self.on_cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_bytes = psutil.Process(os.getpid()).memory_info().rss
            self._thread = threading.Thread(target=self._sample_rss, daemon=True)
            self._thread.start()
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        if self.on_cuda:
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        self.wall_time_s = time.perf_counter() - self._start
        self.cpu_time_s = time.process_time() - self._cpu_start
        self.load_1min = os.getloadavg()[0]
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process(os.getpid()).memory_info().rss)

    def metrics(self, storage_bytes: int | None = None) -> dict[str, Metric]:
        out = {
            "time_s": Metric("time_s", self.wall_time_s, False),
            "memory_gb": Metric("memory_gb", self.peak_memory_gb, False),
        }
        if storage_bytes is not None:
            out["storage_gb"] = Metric("storage_gb", storage_bytes / GB, False)
        return out


class StageClock:
    """Wall and CPU seconds per named stage: ``with clock("answers"): ...``; a stage entered
    again adds to its total. ``as_dict()`` gives ``{"<stage>_s": wall, "<stage>_cpu_s": cpu}``."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - wall, time.process_time() - cpu)

    def add(self, stage: str, wall_s: float, cpu_s: float) -> None:
        self.wall[stage] = self.wall.get(stage, 0.0) + wall_s
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu_s

    @classmethod
    def from_dict(cls, stages: dict) -> StageClock:
        """The clock back from an ``as_dict()`` (a run's ``stages``): the stages with both seconds."""
        clock = cls()
        for key, cpu in stages.items():
            wall = stages.get(key.removesuffix("_cpu_s") + "_s") if key.endswith("_cpu_s") else None
            if isinstance(wall, (int, float)) and isinstance(cpu, (int, float)):
                clock.add(key.removesuffix("_cpu_s"), wall, cpu)
        return clock

    def as_dict(self) -> dict[str, float]:
        out = {}
        for stage, wall in self.wall.items():
            out[f"{stage}_s"] = wall
            out[f"{stage}_cpu_s"] = self.cpu[stage]
        return out


def storage_bytes(*paths: str | Path) -> int:
    """Bytes on disk of files and folders (recursively): what a method has to keep."""
    total = 0
    for p in map(Path, paths):
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return total
