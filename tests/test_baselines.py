"""Every registered method on the canvas-mini base model: a micro run changes the target more than a
retained concept, and its edit round-trips through save / load and removes exactly."""

from pathlib import Path

import pytest
import torch

from spare.baselines.common import scoped_parameters
from spare.config import apply_overrides
from spare.data import split_for_target
from spare.data.canvas_mini import CANVAS_MINI, canvas_mini_dataset
from spare.errors import UserError
from spare.methods import get_method, method_names
from spare.methods.contract import edited_part
from spare.methods.edits import WeightEdit, edit_size_bytes, load_edit
from spare.pipeline import T2IPipeline

from tiny import tiny_pipeline

TARGET, KEPT = "Chalkboard", "Pop_Halftone"
BASE = Path(__file__).resolve().parents[1] / "models" / "canvas-mini-base"

# the smallest budgets that still train: the point is the direction of the change, not its size
MICRO = {
    "spare": [
        "optim.steps=20",
        "forget_batch=4",
        "retain_batch=4",
        "saliency_batches=1",
        "saliency_batch_size=4",
        "timesteps.profile_batch=4",
    ],
    "esd": ["optim.steps=20", "batch_size=2", "sample_steps=4", "optim.lr=1e-3"],
    "uce": [],
    "seot": [],
    "ca": ["optim.steps=20", "optim.lr=1e-3"],
    "salun": ["optim.steps=20", "saliency_batches=1", "saliency_batch_size=4"],
    "ediff": ["optim.steps=10", "optim.lr=1e-3", "alpha=1.0"],
    "fmn": ["optim.steps=20", "optim.lr=1e-3"],
    "spm": ["optim.steps=20", "optim.lr=1e-2", "sample_steps=4", "la_strength=10"],
    "shs": ["optim.steps=30", "optim.lr=1e-3", "alpha=1.0", "snip_batches=1", "snip_batch_size=4"],
}


@pytest.fixture(scope="module")
def data():
    return split_for_target(canvas_mini_dataset(2), f"style:{TARGET}", CANVAS_MINI)


@pytest.fixture
def pipe():
    """The committed canvas-mini base model: targeted forgetting needs a model that knows
    its concepts (on random weights, any retain-denoising term moves every prompt alike)."""
    if not (BASE / "unet").is_dir():
        pytest.skip("models/canvas-mini-base is not committed: run `make base-model`")
    p = T2IPipeline.from_pretrained(BASE)
    p.unet.requires_grad_(False)
    return p


@pytest.fixture
def tiny():
    p = tiny_pipeline()
    p.unet.requires_grad_(False)
    return p


def _outputs(pipe, style: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    objects = list(CANVAS_MINI.objects)
    x = torch.randn(len(objects), 3, 32, 32, generator=gen)
    t = torch.linspace(50, 950, len(objects)).long()
    with torch.no_grad():
        return pipe.predict_noise(x, t, pipe.encode_prompts([CANVAS_MINI.prompt(style, o) for o in objects]))


def test_every_method_has_a_micro_budget():
    assert set(method_names()) == set(MICRO), "add the new method's micro budget to MICRO"


@pytest.mark.parametrize("method", sorted(MICRO))
def test_micro_run_is_targeted_and_its_edit_round_trips(method, pipe, data, tmp_path):
    spec = get_method(method)
    cfg = apply_overrides(spec.config_cls(), MICRO[method])
    before_t, before_k = _outputs(pipe, TARGET), _outputs(pipe, KEPT)
    state = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    text_state = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    unlearned = spec.unlearn(pipe, data, cfg)
    edit, report = unlearned.edit, unlearned.report()
    # unlearning leaves the pipeline as it found it; the change lives in the edit
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in state.items())
    assert all(torch.equal(v, pipe.text_encoder.state_dict()[k]) for k, v in text_state.items())
    assert report["trainable_params"] == edit.num_parameters
    # a UNet edit has parameters; a prompt edit (SEOT) changes no weight and stores none
    assert (edit.num_parameters > 0) == (getattr(edit, "component", "unet") == "unet")

    edit.save(tmp_path / "edit")
    loaded = load_edit(tmp_path / "edit")
    assert type(loaded) is type(edit) and edit_size_bytes(tmp_path / "edit") > 0
    for e in (edit, loaded):
        e.apply(edited_part(pipe, e))
        after_t, after_k = _outputs(pipe, TARGET), _outputs(pipe, KEPT)
        e.remove(edited_part(pipe, e))
        if e is edit:
            first = after_t
        else:
            assert torch.allclose(after_t, first, atol=1e-6)  # the reloaded edit does the same
    change_t = (after_t - before_t).pow(2).mean()
    change_k = (after_k - before_k).pow(2).mean()
    assert change_t > 0 and change_t > 1.2 * change_k, (float(change_t), float(change_k))
    assert torch.equal(_outputs(pipe, TARGET), before_t)  # removed exactly


def test_weight_edit_errors(tiny, tmp_path):
    pipe = tiny
    names = scoped_parameters(pipe.unet, "xattn_kv")
    assert names and all(".attn2.to_" in n for n in names)
    edit = WeightEdit("test", {names[0]: torch.zeros(3, 3)})
    with pytest.raises(UserError, match="does not fit"):
        edit.apply(pipe.unet)
    with pytest.raises(UserError, match="valid scopes: xattn, xattn_kv, non_xattn, all"):
        scoped_parameters(pipe.unet, "attention")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "edit.json").write_text('{"kind": "weights"}')
    with pytest.raises(UserError, match="corrupt or incomplete"):
        load_edit(tmp_path / "bad")
    # every kind: a record without its fields, or a tensor file that is missing or damaged, is one error
    for record in ('{"kind": "adapter", "method": "spare"}', '{"kind": "prompt", "method": "seot"}', "not json"):
        (tmp_path / "bad" / "edit.json").write_text(record)
        with pytest.raises(UserError, match="corrupt"):
            load_edit(tmp_path / "bad")
    (tmp_path / "bad" / "edit.json").write_text('{"kind": "weights", "method": "esd"}')
    (tmp_path / "bad" / "weights.safetensors").write_bytes(b"truncated")
    with pytest.raises(UserError, match="corrupt or incomplete"):
        load_edit(tmp_path / "bad")
    (tmp_path / "bad" / "edit.json").write_text('{"kind": "lora"}')
    with pytest.raises(UserError, match="valid kinds: adapter, weights"):
        load_edit(tmp_path / "bad")
