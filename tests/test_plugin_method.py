"""Adding a method is one file: a toy method registered from outside the package runs through
``spare unlearn`` with nothing in the package touched."""

import json
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from spare.cli import main
from spare.methods import BUILTIN_METHODS, method_names, registry

TOY = textwrap.dedent(
    '''
    """A toy method: shifts the UNet's output bias, which makes every image brighter or darker."""
    from dataclasses import dataclass

    from spare.methods.contract import Unlearned
    from spare.methods.edits import WeightEdit
    from spare.methods.registry import register_method


    @dataclass
    class ToyConfig:
        shift: float = 0.5
        seed: int = 0


    @register_method("toy_shift", ToyConfig, "toy: a constant shift of the predicted noise")
    def unlearn(pipe, data, cfg):
        bias = pipe.unet.conv_out.bias.detach().cpu().clone() + cfg.shift
        edit = WeightEdit("toy_shift", {"conv_out.bias": bias}, meta={"target": str(data.target)})
        return Unlearned.of(edit, pipe.unet)
    '''
)


@pytest.fixture(autouse=True)
def _unregister_toy():
    """The toy method leaves the registry as it found it (later tests list every method)."""
    method_names()  # the built-ins registered first, so that the snapshot restores them
    before, modules = dict(registry._METHODS), set(sys.modules)
    yield
    registry._METHODS.clear()
    registry._METHODS.update(before)
    for name in set(sys.modules) - modules:
        if name.startswith("spare_plugin_"):
            del sys.modules[name]


def test_a_method_from_a_file_of_its_own_runs_through_spare_unlearn(tmp_path, monkeypatch, capsys):
    plugin = tmp_path / "elsewhere" / "toy_method.py"
    plugin.parent.mkdir()
    plugin.write_text(TOY)
    monkeypatch.chdir(tmp_path)  # runs/ is written under the working directory
    argv = ["--plugin", str(plugin), "unlearn", "--method", "toy_shift", "--target", "style:Ink_Outline"]
    assert main([*argv, "shift=0.5", "--sample-steps", "4", "--seeds", "188"]) == 0  # 4 steps: the path, quickly
    out = capsys.readouterr().out
    assert "toy_shift style:Ink_Outline" in out and "UA" in out
    assert "toy_shift" in method_names() and "toy_shift" not in BUILTIN_METHODS  # registered, not built in
    assert method_names()[: len(BUILTIN_METHODS)] == tuple(BUILTIN_METHODS)  # the built-ins keep the tables' order
    runs = tmp_path / "runs" / "mini"
    metrics = json.loads((runs / "toy_shift" / "style-Ink_Outline" / "metrics.json").read_text())
    assert metrics["method"] == "toy_shift" and metrics["n_images"] == 110
    # the edit was applied when sampling: its images are not the base model's
    toy = sorted((runs / "toy_shift" / "style-Ink_Outline").rglob("188.png"))
    base = sorted((runs / "base").rglob("188.png"))
    assert len(toy) == len(base) == 110
    diff = [
        np.abs(np.asarray(Image.open(a), float) - np.asarray(Image.open(b), float)).mean()
        for a, b in zip(toy, base, strict=True)
    ]
    assert np.mean(diff) > 5  # grey levels


def test_an_unknown_plugin_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["--plugin", str(tmp_path / "missing.py"), "concepts"]) == 2
    assert "method plugin" in capsys.readouterr().err


def test_both_edit_kinds_keep_the_edit_contract_and_a_loose_tuple_is_refused(tmp_path):
    from dataclasses import dataclass

    import torch

    from spare.methods.adapters import AdapterEdit
    from spare.methods.contract import Edit, Unlearned
    from spare.methods.edits import WeightEdit
    from spare.methods.registry import register_method
    from spare.run import RunSettings, run_unlearning

    assert isinstance(WeightEdit("w", {"conv_out.bias": torch.zeros(3)}), Edit)
    assert isinstance(AdapterEdit("a", 4, 4.0, ["x"]), Edit)
    with pytest.raises(TypeError, match="must return an Edit"):
        Unlearned({"conv_out.bias": torch.zeros(3)})

    @dataclass
    class LooseConfig:
        seed: int = 0

    @register_method("loose", LooseConfig, "returns the old (edit, dict) tuple")
    def loose(pipe, data, cfg):
        return WeightEdit("loose", {"conv_out.bias": pipe.unet.conv_out.bias.detach().clone()}), {}

    from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS

    settings = RunSettings(model=str(MINI_BASE_MODEL), classifiers=str(MINI_CLASSIFIERS), runs_dir=str(tmp_path))
    with pytest.raises(TypeError, match="returns an Unlearned"):
        run_unlearning("loose", "style:Ink_Outline", LooseConfig(), settings)
