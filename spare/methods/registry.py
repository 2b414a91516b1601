"""The method registry: a method registers itself next to its definition.

A method is a config dataclass plus ``unlearn(pipe, data, cfg) -> (edit, report)``; this module
only records them. It knows no method: the built-in ones are listed in :mod:`spare.methods`,
a user's method registers from its own file (``spare --plugin my_method.py ...``).
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


def registered(order: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The registered names: those of ``order`` first, in its order, then the rest as registered."""
    return tuple(n for n in order if n in _METHODS) + tuple(n for n in _METHODS if n not in order)


def lookup(name: str, order: tuple[str, ...] = ()) -> MethodSpec:
    """The registered method ``name``; an unknown name lists the valid ones (``order``'s first)."""
    if name in _METHODS:
        return _METHODS[name]
    near = difflib.get_close_matches(name.lower(), list(_METHODS), n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise UserError(f"unknown method {name!r}.{hint} Valid methods: {', '.join(registered(order))}")
