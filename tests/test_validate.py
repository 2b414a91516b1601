"""Validate before work: every problem with the model, the classifiers and the data, listed at
once, one line each; and a sweep goes on past a job that fails for its own reasons."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spare.concepts import UNLEARNCANVAS
from spare.data.canvas_mini import CANVAS_MINI
from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS
from spare.validate import InputProblems, classifier_problems, model_problems, validate_inputs

from tiny import tiny_pipeline


def uc_folder(root: Path, pairs: list[tuple[str, str]], n: int = 2) -> Path:
    """An UnlearnCanvas-layout folder <Style>/<Object>/<k>.jpg (photos under Seed_Images/)."""
    rng = np.random.default_rng(0)
    for style, obj in pairs:
        folder = root / ("Seed_Images" if style == "Photo" else style) / obj
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(1, n + 1):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{k}.jpg")
    return root


def test_the_committed_canvas_mini_inputs_pass():
    validate_inputs(CANVAS_MINI, str(MINI_BASE_MODEL), str(MINI_CLASSIFIERS), None, list(CANVAS_MINI.targets))


def test_every_model_problem_is_listed(tmp_path):
    torch.manual_seed(0)
    tiny_pipeline().save_pretrained(tmp_path / "m")
    assert model_problems(tmp_path / "m") == []
    (tmp_path / "m" / "unet" / "config.json").write_text("{not json")
    weights = tmp_path / "m" / "text_encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # truncated
    (tmp_path / "m" / "model_index.json").write_text("[1, 2")
    import shutil

    shutil.rmtree(tmp_path / "m" / "scheduler")
    problems = model_problems(tmp_path / "m")
    assert len(problems) == 4, problems
    assert any("model_index.json: not readable JSON" in p for p in problems)
    assert any("unet/config.json: not readable JSON" in p for p in problems)
    assert any("model.safetensors" in p for p in problems) and any("lacks scheduler/" in p for p in problems)
    assert model_problems(tmp_path / "none") == [f"model folder {str(tmp_path / 'none')!r} does not exist"]


def test_classifiers_that_do_not_match_the_catalogue(tmp_path):
    assert classifier_problems(MINI_CLASSIFIERS, CANVAS_MINI) == []
    problems = classifier_problems(MINI_CLASSIFIERS, UNLEARNCANVAS)  # canvas-mini's heads for the full world
    assert len(problems) == 2 and "has 11 classes, catalogue 'unlearncanvas' needs 51" in problems[0]
    assert "has 10 classes" in problems[1] and "needs 20" in problems[1]


def test_data_problems_are_listed_at_once_before_any_work(tmp_path):
    pairs = [(s, o) for s in ("Van_Gogh", "Monet", "Photo") for o in ("Dogs", "Cats")]
    pairs.remove(("Photo", "Cats"))  # Van_Gogh's surrogate (its photos) lacks Cats
    data = uc_folder(tmp_path / "uc", pairs)
    (data / "Monet" / "Dogs" / "2.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # a corrupt image
    targets = [UNLEARNCANVAS.target(t) for t in ("style:Van_Gogh", "object:Dogs", "style:Picasso")]
    with pytest.raises(InputProblems) as caught:
        validate_inputs(UNLEARNCANVAS, str(tmp_path / "no-model"), str(MINI_CLASSIFIERS), str(data), targets)
    problems = caught.value.problems
    text = "\n".join(problems)
    assert "model folder" in problems[0] and "does not exist" in problems[0]
    assert "classifier" in problems[1] and "classifier" in problems[2]
    assert "target style:Van_Gogh: its surrogate (Photo) has no images of Cats" in text
    assert "target object:Dogs: its surrogate object:Fishes has no images" in text  # the catalogue's default
    assert "target style:Picasso: the data has no images of it" in text
    assert "Monet/Dogs/2.jpg: cannot be decoded" in text
    assert len(problems) == 7, problems
    assert str(caught.value).count("\n") == len(problems)  # one line each


def test_a_failing_job_is_marked_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import dataclasses

    from spare.cli import main
    from spare.methods import get_method, registry

    monkeypatch.chdir(tmp_path)
    spec = get_method("ca")

    def broken(pipe, data, cfg):
        if data.target.kind == "object":
            raise RuntimeError("broken on purpose")
        return spec.unlearn(pipe, data, cfg)

    monkeypatch.setitem(registry._METHODS, "ca", dataclasses.replace(spec, unlearn=broken))
    (tmp_path / "p.yaml").write_text(
        "targets: [style:Ink_Outline, object:Star]\nmethods: [ca]\noverrides: {ca: [optim.steps=2, batch_size=2]}\n"
        "sampling: {seeds: [188], steps: 2}\ntag: tiny\n"
    )
    assert main(["benchmark", "--preset", "p.yaml", "--wandb", "off"]) == 1  # some job failed
    table = (tmp_path / "results" / "benchmark" / "p" / "per_target.md").read_text()
    assert "style:Ink_Outline" in table
    assert "failed in this invocation: ca object:Star @tiny" in table
    assert json.loads((tmp_path / "runs" / "mini" / "ca" / "style-Ink_Outline@tiny" / "metrics.json").read_text())
