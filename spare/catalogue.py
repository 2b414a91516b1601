"""Concept catalogues: the styles, objects, photo class and prompt template of a benchmark world,
and the registry that finds a catalogue by name.

A catalogue is the single source of truth for concept names. Every other part of the
harness (data loaders, samplers, evaluators, the runner) asks the catalogue to resolve a
user-typed name, so spelling variants (``Van_Gogh``, ``Van Gogh``, ``van gogh``) are
accepted everywhere and an unknown name always fails the same way: with the valid
choices and the nearest match.

Targets are written ``style:<Name>``, ``object:<Name>`` or, for finer-scale unlearning (one
style-object combination), ``pair:<Style>+<Object>``. The built-in worlds are defined
elsewhere (UnlearnCanvas in :mod:`spare.concepts`, canvas-mini in :mod:`spare.data.canvas_mini`)
and register here; this module imports neither.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from spare.errors import UserError

Kind = Literal["style", "object", "pair"]
KINDS: tuple[Kind, ...] = ("style", "object")  # the classifiers' kinds; a pair is one of each
PAIR = "pair"

PROMPT_TEMPLATE = "A {object} image in {style} style."


class UnknownConceptError(UserError):
    """A concept name that the catalogue does not know; the message lists the valid names."""


def normalise(name: str) -> str:
    """Spelling-insensitive key: case, spaces, underscores and hyphens do not matter."""
    return re.sub(r"[\s_\-]+", "_", name.strip()).strip("_").lower()


def _unknown(kind: str, name: str, valid: tuple[str, ...], catalogue: str) -> UnknownConceptError:
    keys = {normalise(v): v for v in valid}
    near = difflib.get_close_matches(normalise(name), list(keys), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(keys[k]) for k in near)}?" if near else ""
    return UnknownConceptError(
        f"unknown {kind} {name!r} in catalogue {catalogue!r}.{hint} Valid {kind}s: {', '.join(valid)}"
    )


@dataclass(frozen=True, order=True)
class Concept:
    """One unlearning target: a style or an object of a catalogue, written ``kind:Name``."""

    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def slug(self) -> str:
        """File-system friendly form, used for run folders (``style-Van_Gogh``, ``pair-Van_Gogh+Dogs``)."""
        return f"{self.kind}-{self.name}"

    @property
    def parts(self) -> tuple[str | None, str | None]:
        """``(style, object)`` the concept fixes: one of them for a style or object, both for a pair."""
        if self.kind == PAIR:
            style, obj = self.name.split("+", 1)
            return style, obj
        return (self.name, None) if self.kind == "style" else (None, self.name)

    def shows(self, style: str, obj: str) -> bool:
        """Whether an image of ``style`` and ``obj`` is an image of this concept."""
        want_style, want_object = self.parts
        return (want_style is None or style == want_style) and (want_object is None or obj == want_object)


@dataclass(frozen=True)
class Catalogue:
    """The concepts of one world and how prompts are written for them.

    ``styles`` are the benchmark styles (each one is a target); ``photo`` is the extra,
    photo-realistic style class that is evaluated but never a target (UnlearnCanvas's
    ``Seed_Images``); ``extra_styles`` exist in the data but are outside the benchmark.
    """

    name: str
    styles: tuple[str, ...]
    objects: tuple[str, ...]
    photo: str = "Photo"
    extra_styles: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    template: str = PROMPT_TEMPLATE
    object_surrogates: dict[str, str] = field(default_factory=dict)
    # Targets the shipped method defaults (steps, lr) were chosen on: still reported, but the
    # tables also give every mean without them.
    validation_targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = self.styles + self.extra_styles + (self.photo,)
        for group in (names, self.objects):
            keys = [normalise(n) for n in group]
            if len(set(keys)) != len(keys):
                raise ValueError(f"catalogue {self.name!r} has names that collide after normalisation")
        known = {f"style:{s}" for s in self.styles} | {f"object:{o}" for o in self.objects}
        if unknown := [t for t in self.validation_targets if t not in known]:
            raise ValueError(f"catalogue {self.name!r}: validation targets {unknown} are not its targets")

    # --- the classes the evaluators see -------------------------------------------------
    @property
    def style_classes(self) -> tuple[str, ...]:
        """Benchmark styles plus the photo class: the style classifier's labels, in order."""
        return self.styles + (self.photo,)

    @property
    def all_styles(self) -> tuple[str, ...]:
        return self.styles + self.extra_styles + (self.photo,)

    @property
    def targets(self) -> tuple[Concept, ...]:
        return tuple(Concept("style", s) for s in self.styles) + tuple(Concept("object", o) for o in self.objects)

    # --- lookups ------------------------------------------------------------------------
    def style(self, name: str, *, benchmark_only: bool = False) -> str:
        """Canonical style name for ``name``; ``benchmark_only`` refuses photo and extra styles."""
        valid = self.styles if benchmark_only else self.all_styles
        key = normalise(name)
        key = normalise(self.aliases.get(key, key))
        for v in valid:
            if normalise(v) == key:
                return v
        raise _unknown("style", name, valid, self.name)

    def object(self, name: str) -> str:
        """Canonical object name for ``name``."""
        key = normalise(name)
        for v in self.objects:
            if normalise(v) == key:
                return v
        raise _unknown("object", name, self.objects, self.name)

    def target(self, spec: str | Concept) -> Concept:
        """Parse ``style:<Name>`` / ``object:<Name>`` into a Concept of this catalogue."""
        if isinstance(spec, Concept):
            spec = str(spec)
        kind, sep, name = spec.partition(":")
        kind = kind.strip().lower()
        pair_example = f"pair:{self.styles[0]}+{self.objects[0]}"
        if not sep or kind not in (*KINDS, PAIR):
            raise UnknownConceptError(
                f"target {spec!r} must be written 'style:<Name>', 'object:<Name>' or 'pair:<Style>+<Object>', "
                f"for example 'style:{self.styles[0]}', 'object:{self.objects[0]}' or '{pair_example}'"
            )
        if kind == PAIR:
            style, plus, obj = name.partition("+")
            if not plus:
                raise UnknownConceptError(
                    f"pair target {spec!r} must be written 'pair:<Style>+<Object>', e.g. {pair_example!r}"
                )
            return Concept(PAIR, f"{self.style(style, benchmark_only=True)}+{self.object(obj)}")
        if kind == "style":
            return Concept("style", self.style(name, benchmark_only=True))
        return Concept("object", self.object(name))

    # --- prompts ------------------------------------------------------------------------
    def display(self, name: str) -> str:
        """How a concept name appears in a prompt: underscores become spaces."""
        return name.replace("_", " ")

    def prompt(self, style: str, object: str) -> str:  # noqa: A002 - the benchmark's own word
        return self.template.format(object=self.display(object), style=self.display(style))

    def parse_prompt(self, prompt: str) -> tuple[str, str]:
        """Inverse of :meth:`prompt`: ``(style, object)`` canonical names, or UnknownConceptError."""
        pattern = re.escape(self.template).replace(r"\{object\}", "(?P<object>.+?)")
        pattern = pattern.replace(r"\{style\}", "(?P<style>.+?)")
        match = re.fullmatch(pattern, prompt.strip())
        if match is None:
            raise UnknownConceptError(f"prompt {prompt!r} does not follow the template {self.template!r}")
        return self.style(match["style"]), self.object(match["object"])

    def surrogate(self, target: Concept, object_surrogate: str | None = None) -> Concept:
        """The concept a target is steered towards.

        A style's surrogate is the photo style (same object word, as SPARE does on
        UnlearnCanvas); a pair's is the photo style of the same object. An object's
        surrogate is ``object_surrogate`` when given, else the catalogue's documented
        default (``object_surrogates``), else the next object in catalogue order.
        """
        if target.kind == "style":
            return Concept("style", self.photo)
        if target.kind == PAIR:  # the pair's object without the style: its photo
            return Concept(PAIR, f"{self.photo}+{target.parts[1]}")
        if object_surrogate is not None:
            chosen = self.object(object_surrogate)
        else:
            chosen = (
                self.object_surrogates.get(target.name)
                or self.objects[(self.objects.index(target.name) + 1) % len(self.objects)]
            )
        if chosen == target.name:
            raise UnknownConceptError(f"the surrogate of {target} cannot be the target itself")
        return Concept("object", chosen)


_CATALOGUES: dict[str, Catalogue] = {}


def register_catalogue(catalogue: Catalogue) -> Catalogue:
    """Make a catalogue reachable by name (``--benchmark <name>``); duplicates are refused."""
    if catalogue.name in _CATALOGUES:
        raise ValueError(f"catalogue {catalogue.name!r} is already registered")
    _CATALOGUES[catalogue.name] = catalogue
    return catalogue


def registered_catalogue(name: str) -> Catalogue:
    """The registered catalogue called ``name`` (spelling variants accepted); else the valid names."""
    key = normalise(name)
    for registered, catalogue in _CATALOGUES.items():
        if normalise(registered) == key:
            return catalogue
    raise _unknown("catalogue", name, tuple(_CATALOGUES), "registry")


def registered_names() -> tuple[str, ...]:
    return tuple(_CATALOGUES)
