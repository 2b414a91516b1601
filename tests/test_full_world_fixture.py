"""The unlearncanvas preset end to end on fixtures in the real formats: a tiny Stable-Diffusion-format
model, an UnlearnCanvas-layout folder (50 styles + Seed_Images x 20 objects) and ViT heads in the
published .pth format. Validation lists the broken image and the missing surrogate before any
sampling; fixed, the sweep completes every job; a job made to fail leaves the others complete and
is marked in the tables. Slow (a few minutes): ``make test-slow``."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from spare.cli import main
from spare.concepts import UNLEARNCANVAS

PRESET = """\
benchmark: unlearncanvas
targets: [style:Van_Gogh, object:Dogs]
methods: [uce, ca]
overrides:
  ca: [optim.steps=2, batch_size=2]
sampling: {seeds: [188], steps: 2, sampler: ddim, guidance: 9.0, micro_batch: 102, batch_size: 204}
requires: [model, classifiers, data]
tag: fixture
"""


def write_uc_folder(root, per_pair=6):
    rng = np.random.default_rng(0)
    for style in (*UNLEARNCANVAS.styles, "Seed_Images"):
        for obj in UNLEARNCANVAS.objects:
            folder = root / style / obj
            folder.mkdir(parents=True)
            for k in range(1, per_pair + 1):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{k}.jpg")


@pytest.mark.slow
def test_the_unlearncanvas_preset_on_fixtures(sd_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_uc_folder(tmp_path / "uc")
    torch.manual_seed(0)
    for kind, n in (("style", 51), ("object", 20)):
        head = timm.create_model("vit_tiny_patch16_224", num_classes=n)
        torch.save({"model_state_dict": head.state_dict()}, tmp_path / f"{kind}.pth")
    argv = ["import-classifiers", "--style", "style.pth", "--object", "object.pth", "--out", "clf"]
    assert main([*argv, "--arch", "vit_tiny_patch16_224"]) == 0
    (tmp_path / "fixture.yaml").write_text(PRESET)
    run = ["benchmark", "--preset", "fixture.yaml", "--model", str(sd_folder), "--classifiers", "clf", "--data", "uc"]
    run += ["--wandb", "off"]

    # broken: a corrupt image, and Dogs' surrogate (Fishes) has no images
    corrupt = tmp_path / "uc" / "Monet" / "Cats" / "3.jpg"
    good = corrupt.read_bytes()
    corrupt.write_bytes(good[:40])
    fishes = {s: tmp_path / "uc" / s / "Fishes" for s in (*UNLEARNCANVAS.styles, "Seed_Images")}
    for folder in fishes.values():
        shutil.move(folder, tmp_path / f"aside-{folder.parent.name}")
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "2 problem(s) with the inputs" in err, err
    assert "Monet/Cats/3.jpg: cannot be decoded" in err
    assert "target object:Dogs: its surrogate object:Fishes has no images" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.png"))  # no sampling

    # fixed: every job completes
    corrupt.write_bytes(good)
    for style, folder in fishes.items():
        shutil.move(tmp_path / f"aside-{style}", folder)
    assert main(run) == 0
    results = tmp_path / "results" / "benchmark" / "fixture"
    per_target = (results / "per_target.csv").read_text()
    for label in ("uce,style:Van_Gogh", "uce,object:Dogs", "ca,style:Van_Gogh", "ca,object:Dogs"):
        assert label in per_target
    answers = list((tmp_path / "runs" / "unlearncanvas" / "uce" / "style-Van_Gogh@fixture" / "answers").rglob("*.png"))
    assert len(answers) == 51 * 20  # 50 styles + Seed_Images x 20 objects, one seed

    # one job made to fail: the others still complete and the tables mark it
    from spare.methods import get_method, registry

    spec = get_method("ca")

    def broken(pipe, data, cfg):
        raise RuntimeError("broken on purpose")

    monkeypatch.setitem(registry._METHODS, "ca", dataclasses.replace(spec, unlearn=broken))
    (tmp_path / "fixture.yaml").write_text(PRESET.replace("optim.steps=2", "optim.steps=3"))  # ca's runs are new
    assert main(run) == 1
    table = (results / "per_target.md").read_text()
    assert "failed in this invocation: ca style:Van_Gogh @fixture, ca object:Dogs @fixture" in table
    uce = tmp_path / "runs" / "unlearncanvas" / "uce" / "object-Dogs@fixture"
    assert json.loads((uce / "metrics.json").read_text())["config_key"]
