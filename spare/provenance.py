"""What every result file carries: package versions, git commit, device."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from spare.precision import native_bf16

PACKAGES = ("torch", "diffusers", "transformers", "peft", "accelerate", "timm", "torchmetrics", "datasets")


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD's hash, with ``-dirty`` when the work tree has changes; None outside a repository."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=cwd
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_info() -> dict:
    """The CPU's model name, the vector kernels torch picked on it and its thread count: two
    machines that differ here may round differently, and their runs need not agree to the bit."""
    model = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), model)
    except OSError:  # not Linux
        pass
    return {
        "model": model,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "native_bf16": native_bf16("cpu")[0],  # where bf16 ("auto" precision) may be chosen
    }


def provenance() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({platform.processor() or platform.machine()})"
    )
    return {
        "versions": versions,
        "git": git_commit(),
        "device": device,
        "cpu": cpu_info(),
        "python": platform.python_version(),
    }
