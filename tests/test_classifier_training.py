"""The classifier training path of the full world, on a small UnlearnCanvas-layout fixture."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from evaluators.classifier_training import ClassifiersConfig, train_benchmark_classifiers
from evaluators.classifiers import (
    ClassifierConfig,
    ClassifierLoadError,
    load_classifier,
    load_external_classifier,
)

TINY_ARCH = {"channels": [8, 8, 8, 8], "layers": [1, 1, 1, 1]}


@pytest.fixture
def uc_folder(tmp_path):
    root = tmp_path / "uc"
    rng = np.random.default_rng(0)
    for style in ("Van_Gogh", "Seed_Images"):
        for obj in ("Dogs", "Cats"):
            (root / style / obj).mkdir(parents=True)
            for n in range(1, 7):
                Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / style / obj / f"{n}.jpg")
    return root


def test_full_world_heads_train_on_the_loader_output(uc_folder, tmp_path):
    head = ClassifierConfig(arch_kwargs=TINY_ARCH, input_size=32, epochs=1, batch_size=4)
    cfg = ClassifiersConfig(
        benchmark="unlearncanvas",
        data=str(uc_folder),
        style=head,
        object=head,
        out_dir=str(tmp_path / "clf"),
        results_dir=str(tmp_path / "res"),
        val_every_nth=3,
    )
    reports = train_benchmark_classifiers(cfg)
    assert reports["style"]["val_images"] == 8  # images 3 and 6 of each of the 4 pairs are held out
    style = load_classifier(tmp_path / "clf" / "style")
    assert len(style.classes) == 51 and style.classes[-1] == "Photo"
    assert len(load_classifier(tmp_path / "clf" / "object").classes) == 20
    assert (tmp_path / "res" / "style_confusion.png").exists() and (tmp_path / "res" / "classifiers.json").exists()


def test_external_checkpoint_loader(tmp_path):
    classes = ["Dogs", "Cats", "Trees"]
    model = timm.create_model("resnet18", num_classes=3, **TINY_ARCH).eval()
    # load_external_classifier builds the plain arch, so save a plain-arch state dict
    plain = timm.create_model("resnet18", num_classes=3).eval()
    torch.save(plain.state_dict(), tmp_path / "heads.pth")
    clf = load_external_classifier("resnet18", tmp_path / "heads.pth", classes, "object", input_size=32)
    img = [np.zeros((32, 32, 3), np.uint8)]
    assert clf.predict(img)[0] in classes and clf.kind == "object"
    torch.save(model.state_dict(), tmp_path / "wrong.pth")  # a different architecture
    with pytest.raises(ClassifierLoadError, match="is not a resnet18 checkpoint with 3 classes"):
        load_external_classifier("resnet18", tmp_path / "wrong.pth", classes, "object")
    with pytest.raises(ClassifierLoadError, match="not found"):
        load_external_classifier("resnet18", tmp_path / "none.pth", classes, "object")
    # the published UnlearnCanvas format: the weights under model_state_dict, beside other entries
    torch.save({"model_state_dict": plain.state_dict(), "epoch": 9}, tmp_path / "published.pth")
    same = load_external_classifier("resnet18", tmp_path / "published.pth", classes, "object", input_size=32)
    assert same.predict(img) == clf.predict(img)

    class Payload:  # a pickle that would run code when loaded: refused (weights_only=True)
        def __reduce__(self):
            return (print, ("pickle code ran",))

    torch.save({"model_state_dict": plain.state_dict(), "payload": Payload()}, tmp_path / "unsafe.pth")
    with pytest.raises(ClassifierLoadError, match="is not a resnet18 checkpoint"):
        load_external_classifier("resnet18", tmp_path / "unsafe.pth", classes, "object")


def test_too_little_data_is_a_one_line_error_with_the_fix():
    from evaluators.classifier_training import train_classifier
    from spare.data.canvas_mini import CANVAS_MINI, canvas_mini_dataset
    from spare.errors import UserError

    data = canvas_mini_dataset(1)  # 110 renders
    head = ClassifierConfig(arch_kwargs=TINY_ARCH, input_size=32, epochs=1, batch_size=512)
    with pytest.raises(UserError, match=r"110 training images, fewer than one batch of 512; lower style.batch_size"):
        train_classifier(data, data, CANVAS_MINI, "style", head)


def test_published_vit_heads_import_as_a_classifiers_folder(tmp_path, capsys):
    """A ViT in the published UnlearnCanvas format (.pth, weights under model_state_dict, 224 px,
    Normalize(0.5, 0.5)) becomes a classifiers folder whose predictions are the model's own."""
    from spare.cli import main
    from spare.concepts import get_catalogue

    catalogue = get_catalogue("unlearncanvas")
    torch.manual_seed(0)
    heads = {}
    for kind, n in (("style", 51), ("object", 20)):
        heads[kind] = timm.create_model("vit_tiny_patch16_224", num_classes=n).eval()
        torch.save({"model_state_dict": heads[kind].state_dict(), "epoch": 3}, tmp_path / f"{kind}.pth")
    argv = ["import-classifiers", "--style", str(tmp_path / "style.pth"), "--object", str(tmp_path / "object.pth")]
    assert main([*argv, "--out", str(tmp_path / "clf"), "--arch", "vit_tiny_patch16_224"]) == 0
    assert "style: vit_tiny_patch16_224, 51 classes, 224 px" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5  # the published transform
    for kind in ("style", "object"):
        clf = load_classifier(tmp_path / "clf" / kind)
        with torch.no_grad():
            expected = heads[kind](x).argmax(1).tolist()
        names = list(catalogue.style_classes if kind == "style" else catalogue.objects)
        assert clf.predict(list(images)) == [names[i] for i in expected]
    # a head of the wrong size: one line naming the checkpoint and the class count
    argv[2] = str(tmp_path / "object.pth")
    assert main([*argv, "--out", str(tmp_path / "bad"), "--arch", "vit_tiny_patch16_224"]) == 2
    assert "is not a vit_tiny_patch16_224 checkpoint with 51 classes" in capsys.readouterr().err
