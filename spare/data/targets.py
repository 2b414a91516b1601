"""Forget / retain data and surrogate prompts for one unlearning target."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import datasets

from spare.concepts import Catalogue, Concept, get_catalogue
from spare.errors import UserError


@dataclass(frozen=True)
class TargetData:
    """What a method may train on to unlearn ``target``.

    ``forget``: every image of the target concept, with a ``surrogate_prompt`` column (the
    same image's prompt with the target swapped for the surrogate concept).
    ``retain``: every other image of the evaluated classes (benchmark styles and photo).
    """

    target: Concept
    surrogate: Concept | None  # None: the empty prompt (see with_surrogate)
    forget: datasets.Dataset
    retain: datasets.Dataset
    catalogue: str = ""  # the catalogue the names belong to


def split_for_target(
    dataset: datasets.Dataset,
    target: str | Concept,
    catalogue: Catalogue,
    *,
    object_surrogate: str | None = None,
) -> TargetData:
    """Split a normalised dataset into forget and retain sets for ``target`` (``style:X`` / ``object:Y``)."""
    concept = catalogue.target(target)
    surrogate = catalogue.surrogate(concept, object_surrogate)
    evaluated = set(catalogue.style_classes)

    def is_forget(styles: list[str], objects: list[str]) -> list[bool]:
        return [concept.shows(s, o) for s, o in zip(styles, objects, strict=True)]

    def is_retain(styles: list[str], objects: list[str]) -> list[bool]:
        return [s in evaluated and not concept.shows(s, o) for s, o in zip(styles, objects, strict=True)]

    columns = ["style", "object"]
    forget = dataset.filter(is_forget, input_columns=columns, batched=True, keep_in_memory=True)
    if len(forget) == 0:
        raise UserError(f"the dataset has no images of {concept}; it holds {len(dataset)} rows of other concepts")
    retain = dataset.filter(is_retain, input_columns=columns, batched=True, keep_in_memory=True)

    forget = _with_surrogate_prompts(forget, catalogue, concept, surrogate)
    return TargetData(target=concept, surrogate=surrogate, forget=forget, retain=retain, catalogue=catalogue.name)


def _with_surrogate_prompts(
    forget: datasets.Dataset, catalogue: Catalogue, target: Concept, surrogate: Concept | None
) -> datasets.Dataset:
    """Each forget image's prompt with the target swapped for ``surrogate`` (None: the empty prompt)."""

    def surrogate_prompts(styles: list[str], objects: list[str]) -> dict[str, list[str]]:
        if surrogate is None:
            return {"surrogate_prompt": [""] * len(styles)}
        if target.kind in ("style", "pair"):  # a pair keeps its object, in the surrogate's style
            return {"surrogate_prompt": [catalogue.prompt(surrogate.parts[0], o) for o in objects]}
        return {"surrogate_prompt": [catalogue.prompt(s, surrogate.name) for s in styles]}

    forget = forget.remove_columns([c for c in ("surrogate_prompt",) if c in forget.column_names])
    return forget.map(surrogate_prompts, input_columns=["style", "object"], batched=True, keep_in_memory=True)


def with_surrogate(data: TargetData, surrogate: str) -> TargetData:
    """The same split steered towards another surrogate.

    ``surrogate``: ``"empty"`` (the empty prompt), ``"next"`` (the next benchmark concept of
    the target's kind in catalogue order, skipping the default surrogate: one spec that works
    for style and object targets alike), or a concept of the target's kind (``style:<Name>``
    for a style target, ``object:<Name>`` for an object target).
    """
    catalogue = get_catalogue(data.catalogue)
    if data.target.kind == "pair" and surrogate != "empty":
        raise UserError(f"a pair target's surrogate is its object in the photo style, or 'empty'; got {surrogate!r}")
    if surrogate == "empty":
        concept = None
    elif surrogate == "next":
        names = catalogue.styles if data.target.kind == "style" else catalogue.objects
        start = names.index(data.target.name)
        skip = {data.target, data.surrogate}
        following = [Concept(data.target.kind, names[(start + i) % len(names)]) for i in range(1, len(names))]
        concept = next(c for c in following if c not in skip)
    else:
        kind, _, name = surrogate.rpartition(":")
        kind = kind or data.target.kind
        if kind not in ("style", "object"):
            raise UserError(f"surrogate {surrogate!r}: write style:<Name>, object:<Name> or 'empty'")
        concept = Concept(kind, catalogue.style(name) if kind == "style" else catalogue.object(name))
        if concept.kind != data.target.kind or concept == data.target:
            raise UserError(
                f"surrogate {surrogate!r} for {data.target}: give another {data.target.kind} of the catalogue "
                f"or 'empty' (the empty prompt)"
            )
    forget = _with_surrogate_prompts(data.forget, catalogue, data.target, concept)
    return dataclasses.replace(data, surrogate=concept, forget=forget)
