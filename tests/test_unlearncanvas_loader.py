"""The UnlearnCanvas loader on small fixture data the tests write themselves (never the network)."""

from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from spare.concepts import UNLEARNCANVAS
from spare.data import load_benchmark_data, split_for_target
from spare.data.schema import FEATURES
from spare.data.unlearncanvas import DatasetSourceError, load_unlearncanvas

STYLES = ["Van_Gogh", "Crayon", "Seed_Images"]  # Seed_Images is the photo class
OBJECTS = ["Dogs", "Cats", "Trees"]
PER_PAIR = 3


def _image(i: int) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "UnlearnCanvas"
    k = 0
    for style in STYLES:
        for obj in OBJECTS:
            (root / style / obj).mkdir(parents=True)
            for n in range(1, PER_PAIR + 1):
                _image(k).save(root / style / obj / f"{n}.jpg")
                k += 1
    (root / "README_files").mkdir()  # an unrelated folder is ignored with a warning
    return root


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    rows = {"image": [], "text": []}
    for k, (style, obj) in enumerate((s, o) for s in ["Van Gogh", "Crayon", "Photo"] for o in OBJECTS):
        for n in range(PER_PAIR):
            rows["image"].append(_image(100 * k + n))
            rows["text"].append(f"A {obj} image in {style} style.")
    shards = tmp_path / "parquet" / "data"
    shards.mkdir(parents=True)
    ds = datasets.Dataset.from_dict(
        rows, features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    )
    ds.select(range(0, 15)).to_parquet(str(shards / "train-00000-of-00002.parquet"))
    ds.select(range(15, len(ds))).to_parquet(str(shards / "train-00001-of-00002.parquet"))
    return tmp_path / "parquet"


def _check(ds: datasets.Dataset) -> None:
    assert ds.features == FEATURES
    assert len(ds) == len(STYLES) * len(OBJECTS) * PER_PAIR
    assert set(ds["style"]) == {"Van_Gogh", "Crayon", "Photo"}
    assert set(ds["object"]) == set(OBJECTS)
    row = next(r for r in ds if r["style"] == "Van_Gogh" and r["object"] == "Dogs")
    assert row["prompt"] == "A Dogs image in Van Gogh style."
    assert np.asarray(row["image"]).shape == (16, 16, 3)
    photo = next(r for r in ds if r["style"] == "Photo")
    assert photo["prompt"] == f"A {photo['object']} image in Photo style."


def test_folder_layout(folder):
    ds = load_unlearncanvas(folder)
    _check(ds)
    assert sorted({r["index"] for r in ds}) == [1, 2, 3]  # the file numbers
    first = ds.filter(
        lambda s, o, i: s == "Crayon" and o == "Cats" and i == 2, input_columns=["style", "object", "index"]
    )
    assert np.array_equal(np.asarray(first[0]["image"]), np.asarray(Image.open(folder / "Crayon" / "Cats" / "2.jpg")))


def test_parquet_shards_with_text_column(parquet):
    ds = load_unlearncanvas(parquet)
    _check(ds)
    assert sorted({r["index"] for r in ds}) == [0, 1, 2]  # numbered inside each pair


def test_saved_dataset_with_style_object_columns(folder, tmp_path):
    saved = tmp_path / "saved"
    load_unlearncanvas(folder).remove_columns(["prompt"]).save_to_disk(str(saved))
    _check(load_unlearncanvas(saved))


def test_bad_sources_say_what_was_expected(tmp_path):
    with pytest.raises(DatasetSourceError, match="does not exist.*<Style>/<Object>/<n>.jpg"):
        load_unlearncanvas(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetSourceError, match="cannot read.*expected one of"):
        load_unlearncanvas(tmp_path / "empty")
    bad = tmp_path / "bad"
    datasets.Dataset.from_dict({"pixels": [1], "label": [2]}).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(DatasetSourceError, match=r"has columns \['pixels', 'label'\]"):
        load_unlearncanvas(tmp_path / "bad.parquet")
    (bad / "Van_Gogh" / "Doggos").mkdir(parents=True)
    with pytest.raises(DatasetSourceError, match="Did you mean 'Dogs'"):
        load_unlearncanvas(bad)


def test_hub_id_is_not_asked_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetSourceError, match="HF_HUB_OFFLINE"):
        load_unlearncanvas("OPTML-Group/UnlearnCanvas")


def test_unlearncanvas_needs_a_data_path():
    with pytest.raises(DatasetSourceError, match="--data"):
        load_benchmark_data("unlearncanvas")


def test_style_target_split(folder):
    data = split_for_target(load_unlearncanvas(folder), "style:van gogh", UNLEARNCANVAS)
    assert str(data.target) == "style:Van_Gogh" and str(data.surrogate) == "style:Photo"
    assert set(data.forget["style"]) == {"Van_Gogh"} and len(data.forget) == len(OBJECTS) * PER_PAIR
    assert "Van_Gogh" not in data.retain["style"] and len(data.retain) == 2 * len(OBJECTS) * PER_PAIR
    for row in data.forget.select_columns(["object", "surrogate_prompt"]):
        assert row["surrogate_prompt"] == f"A {row['object']} image in Photo style."


def test_object_target_split(folder):
    data = split_for_target(load_unlearncanvas(folder), "object:Dogs", UNLEARNCANVAS, object_surrogate="Cats")
    assert set(data.forget["object"]) == {"Dogs"} and len(data.forget) == len(STYLES) * PER_PAIR
    assert "Dogs" not in data.retain["object"] and len(data.retain) == len(STYLES) * 2 * PER_PAIR
    for row in data.forget.select_columns(["style", "surrogate_prompt"]):
        assert row["surrogate_prompt"] == UNLEARNCANVAS.prompt(row["style"], "Cats")


def test_split_of_a_concept_absent_from_the_data(folder):
    from spare.errors import UserError

    with pytest.raises(UserError, match="no images of style:Monet"):
        split_for_target(load_unlearncanvas(folder), "style:Monet", UNLEARNCANVAS)
