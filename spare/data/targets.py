"""Forget / retain data and surrogate prompts for one unlearning target."""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from spare.concepts import Catalogue, Concept
from spare.errors import UserError


@dataclass(frozen=True)
class TargetData:
    """What a method may train on to unlearn ``target``.

    ``forget``: every image of the target concept, with a ``surrogate_prompt`` column (the
    same image's prompt with the target swapped for the surrogate concept).
    ``retain``: every other image of the evaluated classes (benchmark styles and photo).
    """

    target: Concept
    surrogate: Concept
    forget: datasets.Dataset
    retain: datasets.Dataset


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
    column = concept.kind  # "style" or "object": the column that names the concept

    def is_forget(values: list[str]) -> list[bool]:
        return [v == concept.name for v in values]

    def is_retain(styles: list[str], values: list[str]) -> list[bool]:
        return [s in evaluated and v != concept.name for s, v in zip(styles, values, strict=True)]

    forget = dataset.filter(is_forget, input_columns=[column], batched=True, keep_in_memory=True)
    if len(forget) == 0:
        raise UserError(f"the dataset has no images of {concept}; it holds {len(dataset)} rows of other concepts")
    retain_columns = ["style"] if column == "style" else ["style", "object"]
    retain = dataset.filter(
        (lambda s: is_retain(s, s)) if column == "style" else is_retain,
        input_columns=retain_columns,
        batched=True,
        keep_in_memory=True,
    )

    def surrogate_prompts(styles: list[str], objects: list[str]) -> dict[str, list[str]]:
        if concept.kind == "style":
            return {"surrogate_prompt": [catalogue.prompt(surrogate.name, o) for o in objects]}
        return {"surrogate_prompt": [catalogue.prompt(s, surrogate.name) for s in styles]}

    forget = forget.map(surrogate_prompts, input_columns=["style", "object"], batched=True, keep_in_memory=True)
    return TargetData(target=concept, surrogate=surrogate, forget=forget, retain=retain)
