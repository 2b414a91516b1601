"""Loader for the real UnlearnCanvas dataset, normalised into the canvas-mini columns.

Accepted sources, tried in this order:

1. the folder layout ``<root>/<Style>/<Object>/<n>.jpg`` with photos under ``Seed_Images/``;
2. a folder saved by ``datasets.Dataset.save_to_disk``, or local parquet shards (a
   ``.parquet`` file or a folder holding them, searched recursively);
3. a Hugging Face hub id such as ``OPTML-Group/UnlearnCanvas``, only when the user names it
   and the hub is reachable (never under ``HF_HUB_OFFLINE=1``).

Table sources may carry ``style`` / ``object`` columns, or only a ``text`` (or ``prompt`` /
``caption``) column written with the benchmark template, which is parsed back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import datasets

from spare.concepts import UNLEARNCANVAS, Catalogue, UnknownConceptError
from spare.data.schema import COLUMNS, FEATURES, IMAGE_SUFFIXES, rows_to_dataset
from spare.errors import UserError

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "prompt", "caption")
IMAGE_COLUMNS = ("image", "img", "jpg", "png")


class DatasetSourceError(UserError):
    """A dataset path or id that cannot be read as UnlearnCanvas; the message says what was expected."""


EXPECTED = (
    "expected one of: a folder laid out as <root>/<Style>/<Object>/<n>.jpg (photos in Seed_Images/), "
    "a folder written by datasets' save_to_disk, a .parquet file or a folder of parquet shards "
    "with an image column and either style/object columns or a text column "
    "('A {object} image in {style} style.'), or a hub id such as OPTML-Group/UnlearnCanvas"
)


def load_unlearncanvas(source: str | Path, catalogue: Catalogue = UNLEARNCANVAS) -> datasets.Dataset:
    """Read UnlearnCanvas from ``source`` into the columns image, style, object, prompt, index."""
    path = Path(source).expanduser()
    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        return _normalise_table(_load_saved(path), catalogue, str(path))
    if path.is_dir() and _style_dirs(path, catalogue):
        return _load_folder(path, catalogue)
    if (path.is_file() and path.suffix == ".parquet") or (path.is_dir() and any(path.rglob("*.parquet"))):
        files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
        table = datasets.load_dataset("parquet", data_files=files, split="train")
        return _normalise_table(table, catalogue, str(path))
    if path.exists():
        raise DatasetSourceError(f"cannot read {str(path)!r} as UnlearnCanvas: {EXPECTED}")
    if _looks_like_hub_id(str(source)):
        return _load_hub(str(source), catalogue)
    raise DatasetSourceError(f"{str(source)!r} does not exist; {EXPECTED}")


def _looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~"))


def _load_hub(hub_id: str, catalogue: Catalogue) -> datasets.Dataset:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise DatasetSourceError(
            f"{hub_id!r} is not a local path and HF_HUB_OFFLINE is set, so the hub is not asked; "
            "download the dataset once and pass its local folder instead"
        )
    try:
        table = datasets.load_dataset(hub_id, split="train")
    except Exception as err:  # the hub client raises many kinds; the user needs one message
        raise DatasetSourceError(f"could not load {hub_id!r} from the hub ({err}); {EXPECTED}") from err
    return _normalise_table(table, catalogue, hub_id)


def _load_saved(path: Path) -> datasets.Dataset:
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        return datasets.concatenate_datasets(list(loaded.values()))
    return loaded


def _style_dirs(root: Path, catalogue: Catalogue) -> dict[str, Path]:
    """Sub-folders of ``root`` named after a catalogue style (or an alias such as Seed_Images)."""
    found: dict[str, Path] = {}
    skipped = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found[catalogue.style(child.name)] = child
        except UnknownConceptError:
            skipped.append(child.name)
    if found and skipped:
        log.warning("ignoring %d folders that are not %s styles: %s", len(skipped), catalogue.name, skipped)
    return found


def _load_folder(root: Path, catalogue: Catalogue) -> datasets.Dataset:
    rows = []
    for style, style_dir in _style_dirs(root, catalogue).items():
        for object_dir in sorted(p for p in style_dir.iterdir() if p.is_dir()):
            try:
                obj = catalogue.object(object_dir.name)
            except UnknownConceptError as err:
                raise DatasetSourceError(f"{object_dir}: {err}") from err
            files = [p for p in object_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            for position, file in enumerate(sorted(files, key=_image_number)):
                index = int(file.stem) if file.stem.isdigit() else position
                rows.append(
                    {
                        "image": str(file),
                        "style": style,
                        "object": obj,
                        "prompt": catalogue.prompt(style, obj),
                        "index": index,
                    }
                )
    if not rows:
        raise DatasetSourceError(f"no images under {str(root)!r}; {EXPECTED}")
    return rows_to_dataset(rows)


def _image_number(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 62, path.stem)


def _normalise_table(table: datasets.Dataset, catalogue: Catalogue, where: str) -> datasets.Dataset:
    """Map a table with an image column and style/object (or template text) columns onto FEATURES."""
    names = table.column_names
    image_col = next((c for c in IMAGE_COLUMNS if c in names), None)
    if image_col is None:
        image_col = next((c for c, f in table.features.items() if isinstance(f, datasets.Image)), None)
    text_col = next((c for c in TEXT_COLUMNS if c in names), None)
    if image_col is None or not ({"style", "object"} <= set(names) or text_col):
        raise DatasetSourceError(f"{where!r} has columns {names}; {EXPECTED}")
    try:
        if {"style", "object"} <= set(names):
            styles = [catalogue.style(s) for s in table["style"]]
            objects = [catalogue.object(o) for o in table["object"]]
        else:
            styles, objects = map(list, zip(*(catalogue.parse_prompt(t) for t in table[text_col]), strict=True))
    except UnknownConceptError as err:
        raise DatasetSourceError(f"{where!r}: {err}") from err
    if "index" in names:
        indices = [int(i) for i in table["index"]]
    else:
        seen: dict[tuple[str, str], int] = {}
        indices = []
        for pair in zip(styles, objects, strict=True):
            indices.append(seen.get(pair, 0))
            seen[pair] = indices[-1] + 1
    table = table.select_columns([image_col])
    if image_col != "image":
        table = table.rename_column(image_col, "image")
    table = table.add_column("style", styles).add_column("object", objects)
    table = table.add_column("prompt", [catalogue.prompt(s, o) for s, o in zip(styles, objects, strict=True)])
    table = table.add_column("index", indices)
    return table.select_columns(list(COLUMNS)).cast(FEATURES)
