"""Progress bars that stay readable in a log: tqdm's redrawn bar on a terminal, plain periodic
lines anywhere else (a file, a pipe, CI), one line every ``SPARE_PROGRESS_INTERVAL`` seconds
(default 30) and one when the bar closes, without carriage returns or cursor codes."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm as _tqdm

LINE_INTERVAL_S = float(os.environ.get("SPARE_PROGRESS_INTERVAL", "30"))


class tqdm(_tqdm):  # noqa: N801  (a drop-in for tqdm's own name)
    """``tqdm`` on a terminal; periodic whole lines when its output is not one."""

    def __init__(self, *args, **kwargs):
        fp = kwargs.get("file") or sys.stderr
        self._lines = not (hasattr(fp, "isatty") and fp.isatty())
        self._shown = None
        if self._lines:
            kwargs.update(mininterval=LINE_INTERVAL_S, maxinterval=LINE_INTERVAL_S, ascii=True, leave=False)
            kwargs.update(dynamic_ncols=False, ncols=kwargs.get("ncols") or 100)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if not self._lines:
            return super().display(msg, pos)
        if msg == "":  # tqdm clearing its bar: nothing to clear in a log (and no carriage return)
            return False
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        self._shown = self.n
        return True

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=refresh and not self._lines, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=refresh and not self._lines)

    def close(self):
        if self._lines and not self.disable and self._shown != self.n:
            self.display()  # the final count, once
        super().close()


def quiet_library_bars() -> None:
    """Turn off the bars of datasets (map / filter), transformers and diffusers (weight loading)
    when stderr is not a terminal: they redraw with carriage returns and cursor codes, and the
    harness shows its own. Called where those libraries are already loaded (model and data
    loading), so that ``--help`` never pays their import."""
    if sys.stderr.isatty():
        return
    import importlib

    for module, off in (
        ("datasets", "disable_progress_bars"),
        ("transformers.utils.logging", "disable_progress_bar"),
        ("diffusers.utils.logging", "disable_progress_bar"),
    ):
        try:
            getattr(importlib.import_module(module), off)()
        except (ImportError, AttributeError):  # a version without the switch keeps its bars
            pass
