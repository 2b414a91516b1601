"""The method registry: every unlearning method registers itself here, next to its definition.

A method is a config dataclass plus ``unlearn(pipe, data, cfg) -> Edit``. The CLI, the
runner and the tables read this registry, never a hand-kept list.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spare.errors import UserError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type
    unlearn: Callable[..., Any]
    summary: str


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, config_cls: type, summary: str = ""):
    """Decorator: ``@register_method("spare", SPAREConfig)`` on the method's unlearn function."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = MethodSpec(name, config_cls, fn, summary or (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return wrap


def _load_builtin() -> None:
    # SPARE first, then the baselines: this order is the registry's and the tables' order
    import spare.methods.spare_method  # noqa: F401, I001  (each module registers its method)
    import spare.baselines.ca  # noqa: F401
    import spare.baselines.ediff  # noqa: F401
    import spare.baselines.esd  # noqa: F401
    import spare.baselines.salun  # noqa: F401
    import spare.baselines.fmn  # noqa: F401
    import spare.baselines.shs  # noqa: F401
    import spare.baselines.spm  # noqa: F401
    import spare.baselines.uce  # noqa: F401


def method_names() -> tuple[str, ...]:
    _load_builtin()
    return tuple(_METHODS)


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name lists the valid ones."""
    _load_builtin()
    if name in _METHODS:
        return _METHODS[name]
    near = difflib.get_close_matches(name.lower(), list(_METHODS), n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise UserError(f"unknown method {name!r}.{hint} Valid methods: {', '.join(_METHODS)}")
