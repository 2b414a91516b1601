"""Check a run's inputs before any work: every problem found, listed at once, one line each.

A full-world sweep works for hours before it reads some of its inputs (the real FID images after the
base answer set, a surrogate's images at its target's job). :func:`validate_inputs` reads them first:

- the model folder: the parts a text-to-image folder needs, each config parseable (``model_index.json``
  too, where there is one), the weight files present and their safetensors headers readable;
- the classifiers: ``style/`` and ``object/`` folders whose class names are the catalogue's, in order;
- the data: it loads; every image decodes (file images are opened and verified, in-table images
  decoded); every target has images, and so does the concept it is steered to (its surrogate, for a
  style its object photos); the rows are counted once per data fingerprint and the result cached.

canvas-mini's data is rendered by the harness, so only its model and classifiers are read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from PIL import Image

from spare.catalogue import Catalogue, Concept
from spare.errors import UserError
from spare.io import cache_root, content_fingerprint, read_json_dict, write_json
from spare.progress import tqdm

MODEL_PARTS = {
    "unet": ("config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
    "text_encoder": ("config.json", ("model.safetensors", "pytorch_model.bin")),
    "scheduler": ("scheduler_config.json", ()),
    "tokenizer": (None, ()),
}


class InputProblems(UserError):
    """Problems with a run's inputs, found before any work."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) with the inputs, found before any work:\n{lines}")


def _json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path}: not readable JSON ({err.__class__.__name__}: {err})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
        size = path.stat().st_size
        with path.open("rb") as f:
            header = int.from_bytes(f.read(8), "little")
        if not keys or size < 8 + header:
            return f"{path}: truncated or empty safetensors file"
    except Exception as err:  # safetensors raises its own kinds
        return f"{path}: not a readable safetensors file ({err})"
    return None


def model_problems(model: str | Path) -> list[str]:
    root = Path(model)
    if not root.is_dir():
        return [f"model folder {str(root)!r} does not exist"]
    problems = []
    if (root / "model_index.json").exists() and (p := _json_problem(root / "model_index.json")):
        problems.append(p)
    parts = dict(
        MODEL_PARTS,
        **({"vae": ("config.json", ("diffusion_pytorch_model.safetensors",))} if (root / "vae").exists() else {}),
    )
    for part, (config, weights) in parts.items():
        folder = root / part
        if not folder.is_dir():
            problems.append(f"model folder {str(root)!r} lacks {part}/")
            continue
        if config and (p := _json_problem(folder / config)):
            problems.append(p)
        if weights:
            present = [folder / w for w in weights if (folder / w).exists()]
            if not present:
                problems.append(f"{folder}: no weights ({' or '.join(weights)})")
            elif present[0].suffix == ".safetensors" and (p := _safetensors_problem(present[0])):
                problems.append(p)
    return problems


def classifier_problems(classifiers: str | Path, catalogue: Catalogue) -> list[str]:
    from evaluators.classifiers import class_names

    problems = []
    for kind in ("style", "object"):
        folder = Path(classifiers) / kind
        meta = read_json_dict(folder / "classifier.json")
        if meta is None:
            problems.append(
                f"classifier {str(folder)!r}: no readable classifier.json (spare import-classifiers / make classifiers)"
            )
            continue
        if not (folder / "model.safetensors").exists():
            problems.append(f"classifier {str(folder)!r}: no model.safetensors")
        elif p := _safetensors_problem(folder / "model.safetensors"):
            problems.append(p)
        want, have = class_names(catalogue, kind), list(meta.get("classes", []))
        if have != want:
            extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
            detail = (
                f"missing {missing[:5]}, unknown {extra[:5]}" if missing or extra else "the same names in another order"
            )
            problems.append(
                f"classifier {str(folder)!r} has {len(have)} classes, catalogue {catalogue.name!r} needs "
                f"{len(want)}: {detail}"
            )
    return problems


def _image_problems(dataset) -> list[str]:
    """Every image that does not decode, as one line each (file paths verified, not decoded in full)."""
    import datasets

    raw = dataset.cast_column("image", datasets.Image(decode=False))
    problems = []
    for i, item in enumerate(tqdm(raw["image"], desc="checking images", unit="img")):
        where = item.get("path") or f"row {i}"
        try:
            if item.get("bytes") is not None:
                import io

                with Image.open(io.BytesIO(item["bytes"])) as img:
                    img.load()
            else:
                with Image.open(item["path"]) as img:
                    img.verify()
                with Image.open(item["path"]) as img:
                    img.load()  # verify() misses truncated data
        except Exception as err:  # PIL raises many kinds for a broken file
            problems.append(f"image {where}: cannot be decoded ({err.__class__.__name__}); replace or delete it")
    return problems


def data_problems(
    dataset, catalogue: Catalogue, targets: list[Concept], object_surrogate: str | None = None
) -> list[str]:
    """Targets and surrogates without images (counted from the style and object columns)."""
    pairs = Counter(zip(dataset["style"], dataset["object"], strict=True))
    problems = []

    def count(concept: Concept) -> int:
        return sum(n for (s, o), n in pairs.items() if concept.shows(s, o))

    for target in targets:
        if not count(target):
            problems.append(f"target {target}: the data has no images of it")
        surrogate = catalogue.surrogate(target, object_surrogate)
        if target.kind == "object" and not count(surrogate):
            problems.append(
                f"target {target}: its surrogate {surrogate} has no images (--surrogate OBJECT to choose another)"
            )
        if target.kind in ("style", "pair"):  # steered to the photo of each object it shows
            objects = {o for (s, o) in pairs if target.shows(s, o)}
            photo = {o for (s, o) in pairs if s == catalogue.photo}
            if lacking := sorted(objects - photo):
                problems.append(
                    f"target {target}: its surrogate ({catalogue.photo}) has no images of {', '.join(lacking[:5])}"
                )
    return problems


def validate_inputs(
    catalogue: Catalogue,
    model: str,
    classifiers: str,
    data: str | None,
    targets: list[Concept],
    object_surrogate: str | None = None,
) -> None:
    """Raise :class:`InputProblems` listing every problem at once; return quietly when there are none."""
    problems = model_problems(model) + classifier_problems(classifiers, catalogue)
    if catalogue.name != "mini":
        problems += _data_check(catalogue, data, targets, object_surrogate)
    if problems:
        raise InputProblems(problems)


def _data_check(
    catalogue: Catalogue, data: str | None, targets: list[Concept], object_surrogate: str | None
) -> list[str]:
    from spare.data import load_benchmark_data

    try:
        dataset = load_benchmark_data(catalogue.name, data)
    except UserError as err:
        return [str(err)]
    problems = data_problems(dataset, catalogue, targets, object_surrogate)
    stamp = cache_root() / "validated" / f"{content_fingerprint(data, contents=False)}.json"
    if (read_json_dict(stamp) or {}).get("images_ok"):
        return problems
    broken = _image_problems(dataset)
    if not broken:
        write_json(stamp, {"images_ok": True, "data": str(data), "rows": len(dataset)})
    return problems + broken
