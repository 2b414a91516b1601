import numpy as np
import pytest

from spare.concepts import UnknownConceptError
from spare.data.canvas_mini import CANVAS_MINI, CLOSE_STYLE_PAIRS, canvas_mini_dataset, image_seed, preview_grid, render


def test_catalogue_shape():
    assert len(CANVAS_MINI.styles) >= 10 and len(CANVAS_MINI.objects) >= 10
    assert CANVAS_MINI.photo == "Photo" and "Photo" not in CANVAS_MINI.styles
    assert CANVAS_MINI.prompt("Neon_Outline", "Star") == "A Star image in Neon Outline style."


def test_render_is_deterministic_for_a_seed():
    a = render("Watercolor_Wash", "Heart", seed=1234)
    b = render("watercolor wash", "heart", seed=1234)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()


def test_different_seeds_vary_inside_a_pair():
    images = [render("Ink_Outline", "Arrow", seed=s).astype(int) for s in range(8)]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i] - images[j]).mean() > 1.0


def test_every_pair_renders_something_visible():
    for s in CANVAS_MINI.style_classes:
        for o in CANVAS_MINI.objects:
            img = render(s, o, image_seed(s, o, 0)).astype(float)
            assert img.std() > 10, f"{s}/{o} is flat"


def test_objects_differ_more_than_seeds_of_one_object():
    """Shape is carried by the object word: the same seed (same pose, colours) with another object differs."""
    seed = 7
    base = render("Sunset_Silhouette", "Disc", seed).astype(int)
    for o in CANVAS_MINI.objects[1:]:
        assert np.abs(render("Sunset_Silhouette", o, seed).astype(int) - base).mean() > 2.0, o


def _palette(style: str, n: int = 40) -> np.ndarray:
    """Colour histogram (4 bins per channel) of a style over many objects and seeds."""
    hist = np.zeros(64)
    for i in range(n):
        o = CANVAS_MINI.objects[i % len(CANVAS_MINI.objects)]
        img = render(style, o, image_seed(style, o, i)) // 64
        idx = img[..., 0] * 16 + img[..., 1] * 4 + img[..., 2]
        hist += np.bincount(idx.ravel(), minlength=64)
    return hist / hist.sum()


def test_close_style_pairs_share_a_palette():
    """The deliberately close pairs are each other's nearest neighbour in colour space."""
    palettes = {s: _palette(s) for s in CANVAS_MINI.style_classes}
    for a, b in CLOSE_STYLE_PAIRS:
        distances = {s: np.abs(palettes[a] - p).sum() for s, p in palettes.items() if s != a}
        assert min(distances, key=distances.get) == b, (a, distances)


def test_seeds_are_split_disjoint():
    train = {image_seed("Chalkboard", "Ring", i, "train") for i in range(100)}
    val = {image_seed("Chalkboard", "Ring", i, "validation") for i in range(100)}
    assert len(train) == 100 and not train & val


def test_dataset_columns_cache_and_content(tmp_path):
    ds = canvas_mini_dataset(2, cache_dir=tmp_path)
    assert ds.column_names == ["image", "style", "object", "prompt", "index"]
    assert len(ds) == 2 * len(CANVAS_MINI.style_classes) * len(CANVAS_MINI.objects)
    row = ds[5]
    assert row["prompt"] == CANVAS_MINI.prompt(row["style"], row["object"])
    expected = render(row["style"], row["object"], image_seed(row["style"], row["object"], row["index"]))
    assert np.array_equal(np.asarray(row["image"]), expected)  # PNG round trip is lossless
    cached = list(tmp_path.iterdir())
    again = canvas_mini_dataset(2, cache_dir=tmp_path)  # served from the cache, same rows
    assert list(tmp_path.iterdir()) == cached and again["prompt"] == ds["prompt"]
    with pytest.raises(ValueError, match="train, validation, test"):
        canvas_mini_dataset(2, split="holdout", cache_dir=tmp_path)


def test_unknown_names_fail_with_choices():
    with pytest.raises(UnknownConceptError, match="Did you mean 'Neon_Outline'"):
        render("neon outlines", "Star", 0)


def test_preview_grid_holds_every_pair():
    grid = preview_grid(scale=1)
    assert grid.width >= 32 * len(CANVAS_MINI.objects) and grid.height >= 32 * len(CANVAS_MINI.style_classes)
