"""Typed configs: dataclasses filled from YAML, then overridden by ``key.sub=value`` arguments.

Precedence, lowest first: dataclass defaults < YAML file < command-line overrides.
Unknown keys are errors that list the valid keys and suggest the nearest one.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from spare.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A bad config key or value."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(key: str, valid: Sequence[str], where: str) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return ConfigError(f"unknown config key {where + key!r}.{hint} Valid keys: {', '.join(valid)}")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, where) for v in value)
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{where} must be one of {typing.get_args(annotation)}, got {value!r}")
        return value
    if annotation is float and not isinstance(value, bool):
        try:
            return float(value)  # YAML reads 1e-4 (no dot) as a string
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if annotation in (int, str, bool) and not isinstance(value, annotation):
        raise ConfigError(f"{where} must be {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys and values out of range
    (:func:`check_ranges`) raise ConfigError naming the key."""
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types_:
            raise _unknown_key(key, list(types_), prefix)
        kwargs[key] = _coerce(value, types_[key], f"{prefix}{key}")
    try:
        cfg = cls(**kwargs)
    except ConfigError as err:  # a check in the class itself: name the key as the user wrote it
        raise ConfigError(f"{prefix}{err}") from None
    check_ranges(cfg, prefix)
    return cfg


# Ranges of config values, by field name, for every config class alike (a count of zero steps or a
# negative guidance would otherwise give plausible numbers with exit 0). (name pattern, test, valid).
_RANGES: list[tuple[re.Pattern, Any, str]] = [
    (re.compile(r"^warmup_steps$"), lambda v: v >= 0, ">= 0"),
    (
        re.compile(r"(^|_)(steps|epochs|rank|grid|batches|batch|batch_size|n_per_pair|size|seeds_per_pair)$"),
        lambda v: v >= 1,
        ">= 1",
    ),
    (re.compile(r"^(lr|alpha|budget|lr_scale)$"), lambda v: v > 0, "> 0"),
    (
        re.compile(r"^(guidance|weight_decay|grad_clip|w_forget|w_retain|eta|tone_jitter|lam|\w+_scale)$"),
        lambda v: v >= 0,
        ">= 0",
    ),
    (re.compile(r"^(q|keep|mass)$"), lambda v: 0 < v <= 1, "in (0, 1]"),
    (re.compile(r"^focus$"), lambda v: 0 <= v <= 1, "in [0, 1]"),
    (re.compile(r"^dropout$"), lambda v: 0 <= v < 1, "in [0, 1)"),
]


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Every numeric field of ``cfg`` whose name has a range (:data:`_RANGES`) inside it, and every
    ``seeds`` list non-empty; the first one out of range raises ConfigError naming key, value, range."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "seeds" and isinstance(value, tuple | list) and not value:
            raise ConfigError(f"{prefix}{f.name} must list at least one seed, got none")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        for pattern, ok, valid in _RANGES:
            if pattern.search(f.name):
                if not ok(value):
                    raise ConfigError(f"{prefix}{f.name} must be {valid}, got {value!r}")
                break


# Field metadata for an option added after runs were made: it enters the config hash only when
# it is not at its default, so every earlier run keeps its key (and is not redone).
HASH_IF_SET = {"hash": "if_set"}


def hash_view(cfg: Any) -> dict[str, Any]:
    """What a stage's cache key hashes: ``to_dict(cfg)`` minus HASH_IF_SET fields at their default."""
    return yaml.safe_load(yaml.safe_dump(_hashed(cfg)))


def _hashed(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {
            f.name: _hashed(getattr(value, f.name))
            for f in fields
            if not (f.metadata.get("hash") == "if_set" and getattr(value, f.name) == _default(f))
        }
    if isinstance(value, dict):
        return {k: _hashed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hashed(v) for v in value]
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON/YAML-able dict of a config (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with ``a.b=value`` overrides applied (values parsed as YAML);
    ``a.b*=factor`` multiplies a number instead (an integer stays one: rounded, at least 1), so a
    grid can scale every method's own default (``optim.lr*=3``)."""
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value (nested keys with dots)")
        scale = key.endswith("*")
        node, parts = data, key.rstrip("*").strip().split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                valid = list(node) if isinstance(node, dict) else []
                raise _unknown_key(part, valid, ".".join(parts[:i]) + "." if i else "")
            if i == len(parts) - 1:
                node[part] = _scaled(item, node[part], raw) if scale else yaml.safe_load(raw)
            else:
                node = node[part]
    return from_dict(type(cfg), data)


def _scaled(item: str, value: Any, raw: str) -> int | float:
    factor = yaml.safe_load(raw)
    if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(factor, int | float):
        raise ConfigError(f"override {item!r}: key*=factor needs a number at the key and a number as factor")
    return max(1, round(value * factor)) if isinstance(value, int) else value * factor


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``."""
    cfg = cls()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            where = getattr(err, "problem_mark", None)
            at = f" (line {where.line + 1})" if where is not None else ""
            raise ConfigError(f"config file {str(path)!r} is not valid YAML{at}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, not a {type(data).__name__}")
        cfg = from_dict(cls, data)
    return apply_overrides(cfg, overrides)
