"""The committed canvas-mini classifiers, their file format, and the evaluate command."""

import json
from pathlib import Path

import numpy as np
import pytest

from evaluators.classifier_training import confusion_matrix
from evaluators.classifiers import ClassifierLoadError, load_classifier
from spare.cli import main
from spare.data.canvas_mini import CANVAS_MINI, image_seed, render

MODELS = Path(__file__).resolve().parents[1] / "models" / "canvas-mini-classifiers"


@pytest.fixture(scope="module")
def classifiers():
    return load_classifier(MODELS / "style"), load_classifier(MODELS / "object")


def test_committed_classifiers_read_fresh_renders(classifiers):
    style_clf, object_clf = classifiers
    assert style_clf.classes == list(CANVAS_MINI.style_classes) and object_clf.classes == list(CANVAS_MINI.objects)
    pairs = [(s, o, i) for s in CANVAS_MINI.style_classes for o in CANVAS_MINI.objects for i in range(2)]
    images = [render(s, o, image_seed(s, o, i, "test")) for s, o, i in pairs]
    style_hits = np.mean([p == s for p, (s, _, _) in zip(style_clf.predict(images), pairs, strict=True)])
    object_hits = np.mean([p == o for p, (_, o, _) in zip(object_clf.predict(images), pairs, strict=True)])
    assert style_hits >= 0.97 and object_hits >= 0.97, (style_hits, object_hits)


def test_classifier_round_trip_and_corrupt_files(classifiers, tmp_path):
    style_clf, _ = classifiers
    img = [render("Chalkboard", "Star", 5)]
    style_clf.save(tmp_path / "copy")
    again = load_classifier(tmp_path / "copy")
    assert np.allclose(again.logits(img).numpy(), style_clf.logits(img).numpy())
    (tmp_path / "copy" / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ClassifierLoadError, match="corrupt or incomplete"):
        load_classifier(tmp_path / "copy")
    with pytest.raises(ClassifierLoadError, match="make classifiers"):
        load_classifier(tmp_path / "nowhere")


def test_confusion_matrix_counts():
    m = confusion_matrix(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_evaluate_command_on_rendered_images(tmp_path, capsys):
    folder = tmp_path / "renders"
    # validation renders: unseen by the classifiers and not the FID reference (the test split)
    assert main(["data", "export", "--out", str(folder), "--n-per-pair", "2", "--split", "validation"]) == 0
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--images", str(folder), "--classifiers", str(MODELS), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert metrics["style_acc"]["value"] >= 95 and metrics["object_acc"]["value"] >= 95
    assert "FID(cls)" in metrics and "FID" not in metrics and metrics["FID(cls)"]["higher_is_better"] is False
    assert 0 < metrics["FID(cls)"]["value"] < 5  # renders vs other renders: close, not identical
    assert result["fid_features"] == "FID(cls)" and result["provenance"]["versions"]["torch"]
    assert (
        main(
            [
                "evaluate",
                "--images",
                str(folder),
                "--classifiers",
                str(MODELS),
                "--target",
                "style:Chalkboard",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"UA", "IRA", "CRA", "FID(cls)"}
    assert metrics["UA"]["value"] <= 5  # nothing was unlearned: the renders are still read as Chalkboard
    assert main(["evaluate", "--images", str(tmp_path / "none"), "--classifiers", str(MODELS)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _tone_shift(img: np.ndarray, gain: float, pull: float) -> np.ndarray:
    """A global tone drift like the base model's: darker, and pulled towards the image mean."""
    x = img.astype(np.float64) / 255 * gain
    x = x.mean() + (x - x.mean()) * pull
    return (x.clip(0, 1) * 255).round().astype(np.uint8)


def test_style_head_reads_texture_under_global_tone_drift(classifiers):
    """Generated images keep a style's texture while their overall tone drifts (a cream page
    turns grey): the style head must still name the style, not fall back to the nearest tone."""
    style_clf, _ = classifiers
    pairs = [(s, o) for s in CANVAS_MINI.style_classes for o in CANVAS_MINI.objects]
    clean = [render(s, o, image_seed(s, o, 0, "test")) for s, o in pairs]
    for gain, pull in [(0.8, 0.8), (1.0, 0.7)]:
        shifted = [_tone_shift(img, gain, pull) for img in clean]
        assert not np.array_equal(shifted[0], clean[0])
        hits = np.mean([p == s for p, (s, _) in zip(style_clf.predict(shifted), pairs, strict=True)])
        assert hits >= 0.9, (gain, pull, hits)


def test_the_vit_recipe_builds_without_resnet_keywords():
    """`style.arch=vit_*` as the README writes it: ResNet-only keywords (channels, layers) never
    reach a ViT; canvas-mini's small ResNet keeps its own; a keyword an architecture does not take
    is a one-line load error, not a TypeError."""
    import pytest as _pytest

    from evaluators.classifiers import ClassifierConfig, ClassifierLoadError, arch_kwargs, build_model

    vit = build_model(ClassifierConfig(arch="vit_tiny_patch16_224", input_size=224), num_classes=11)
    assert type(vit).__name__ == "VisionTransformer" and vit.head.out_features == 11
    assert arch_kwargs(ClassifierConfig()) == {"channels": [32, 64, 128, 256], "layers": [1, 1, 1, 1]}
    small = build_model(ClassifierConfig(), num_classes=10)
    assert sum(p.numel() for p in small.parameters()) < 2_000_000  # the small canvas-mini ResNet, not resnet18's 11M
    with _pytest.raises(ClassifierLoadError, match="cannot build timm model 'vit_tiny_patch16_224'"):
        build_model(ClassifierConfig(arch="vit_tiny_patch16_224", arch_kwargs={"channels": [8]}), num_classes=3)
