"""Which precision the network runs in: bf16 only where the machine runs it natively.

bf16 autocast is a trap on CPUs without native bf16 instructions: on an AMD EPYC with AVX2
only, a 512x512 bf16 matmul ran about 90x slower than fp32 and a bf16-autocast 3x3 conv about
40x slower, so a bf16 answer set took hours there. ``auto`` therefore resolves, once per
process and device type, by the capability: CUDA asks torch (``torch.cuda.is_bf16_supported``);
a CPU needs a native bf16 instruction set in ``/proc/cpuinfo`` (x86: ``avx512_bf16`` or
``amx_bf16``; Arm: ``bf16``). Where it holds, bf16 is faster: 1.8x on the canvas-mini UNet's
forward pass (Intel Xeon, AVX-512 + AMX, 2 threads: 416 against 227 samples/s), 1.6x on whole
answer sets. Otherwise fp32, said once in the log.

The decision rests on the capability only, never on a timing: a timed probe answered differently
under load and with another thread count, and since the precision is part of every run's key,
two processes of one machine would then have keyed the same runs apart. A resolved precision
enters the config (and so every stage key), so runs made in different precisions never mix.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from spare.errors import UserError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")  # what the network runs in: fp32, or bf16 autocast
REQUESTS = (*PRECISIONS, "auto")  # what a config may ask for; "auto" is resolved per machine
NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class Choice:
    """A resolved precision and why it was chosen."""

    precision: str
    native_bf16: bool
    reason: str


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty where /proc/cpuinfo is not readable."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16(device_type: str) -> tuple[bool, str]:
    """Whether ``device_type`` ("cpu" or "cuda") computes bf16 natively, and the evidence."""
    if device_type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, f"torch.cuda.is_bf16_supported() is {ok}"
    found = sorted(set(NATIVE_CPU_FLAGS) & cpu_flags())
    if found:
        return True, f"CPU flags {', '.join(found)}"
    return False, f"the CPU has none of the native bf16 flags {', '.join(NATIVE_CPU_FLAGS)}"


@functools.cache
def _auto(device_type: str) -> Choice:
    """Decided once per process and device type from the capability alone, and said once in the log."""
    native, evidence = native_bf16(device_type)
    choice = Choice("bf16" if native else "fp32", native, f"{'bf16' if native else 'fp32'}: {evidence}")
    log.info("precision auto on %s -> %s", device_type, choice.reason)
    return choice


def resolve_precision(requested: str, device_type: str) -> Choice:
    """``requested`` (one of REQUESTS) as this machine runs it; ``auto`` is decided once per process."""
    if requested not in REQUESTS:
        raise UserError(f"unknown precision {requested!r}; valid precisions: {', '.join(REQUESTS)}")
    return _auto(device_type) if requested == "auto" else _asked(requested, device_type)


@functools.cache
def _asked(requested: str, device_type: str) -> Choice:
    """An explicit request is kept; bf16 on a machine without it natively is warned about once."""
    native, evidence = native_bf16(device_type) if requested == "bf16" else (False, "")
    if requested == "bf16" and not native:
        log.warning("bf16 was asked for, but %s: it may run many times slower than fp32", evidence)
    return Choice(requested, native, f"{requested}: asked for")
