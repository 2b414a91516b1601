"""Signals during a sweep: SIGTERM stops it as Ctrl-C does, and neither cuts the tables short."""

from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def _handlers(handlers: dict):
    """Signal handlers for the block, the previous ones back after it; off the main thread,
    where Python refuses them, the signals are left alone."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does, so that a sweep stopped
    by `timeout`, a scheduler or the launcher records its time. Files are atomic either way."""
    _SIGNALLED.clear()
    with _handlers({signal.SIGTERM: raise_interrupt}):
        yield


_SIGNALLED: list[int] = []  # signals received by this sweep: SIGTERMs, and Ctrl-C while deferred


def raise_interrupt(signum, frame):
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def signals_deferred():
    """Hold SIGTERM and Ctrl-C until the block has finished, then raise KeyboardInterrupt for them:
    the tables and the sweep record after a job are written whole. A signal that lands inside an
    import (matplotlib's, the first time the plot is drawn) would leave the module half-initialised
    and the tables written on the way out would then fail."""
    with _handlers({signal.SIGTERM: _note_signal, signal.SIGINT: _note_signal}):
        yield
    stop_if_signalled()


def _note_signal(signum, frame):
    _SIGNALLED.append(signum)


def stop_if_signalled() -> None:
    """Raise again, between jobs, a SIGTERM whose KeyboardInterrupt library code swallowed (raised
    inside a ``__del__`` or a C extension that drops the error, it would be lost): at most the job
    that was running when the signal came still finishes."""
    if _SIGNALLED:
        raise KeyboardInterrupt(f"signal {_SIGNALLED[0]}")
