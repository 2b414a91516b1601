"""SEOT: the soft-weighted regularization by hand, and an edit that touches only the text side,
only for prompts that name the target, and only at the concept's and end-of-text positions."""

import math

import pytest
import torch

from benchmarks.presets import Preset
from benchmarks.runner.plan import build_sweep
from spare.baselines.seot import SEOTConfig
from spare.baselines.seot import unlearn as seot
from spare.config import apply_overrides
from spare.data import split_for_target
from spare.data.canvas_mini import CANVAS_MINI, canvas_mini_dataset
from spare.errors import UserError
from spare.methods.contract import edited_part
from spare.methods.edits import load_edit
from spare.methods.prompt_edit import PromptEdit, find, soft_weighted

from tiny import tiny_pipeline


@pytest.fixture(scope="module")
def dataset():
    return canvas_mini_dataset(1)


@pytest.fixture
def pipe():
    return tiny_pipeline()


def _embed(pipe, prompts):
    tokens = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length)
    with torch.no_grad():
        return pipe.encode_prompts(prompts), tokens.input_ids


def test_soft_weighted_by_hand():
    # singular values 3 and 1 (a diagonal matrix is its own SVD): 3 e^-3 and 1 e^-1, times beta
    x = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    got = soft_weighted(x, alpha=1.0, beta=2.0)
    want = torch.tensor([[2 * 3 * math.exp(-3), 0.0], [0.0, 2 * math.exp(-1)], [0.0, 0.0]])
    assert torch.allclose(got, want, atol=1e-6)
    # alpha 0, beta 1: nothing changes
    y = torch.randn(5, 4)
    assert torch.allclose(soft_weighted(y, 0.0, 1.0), y, atol=1e-5)
    assert find([1, 7, 8, 2, 7, 8], [7, 8]) == [1, 2, 4, 5] and find([1, 7, 2], [7, 8]) == []


def test_seot_edits_only_the_target_prompts_on_the_text_side(pipe, dataset, tmp_path):
    data = split_for_target(dataset, "style:Ink_Outline", CANVAS_MINI)
    unet = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    text = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    target = CANVAS_MINI.prompt("Ink_Outline", "Star")
    kept = [CANVAS_MINI.prompt("Neon_Outline", "Star"), CANVAS_MINI.prompt("Pop_Halftone", "Heart"), ""]
    before, ids = _embed(pipe, [target, *kept])

    edit = seot(pipe, data, SEOTConfig()).edit
    assert edited_part(pipe, edit) is pipe.text_encoder and edit.num_parameters == 0
    edit.apply(edited_part(pipe, edit))
    after, _ = _embed(pipe, [target, *kept])
    with pytest.raises(RuntimeError, match="applied already"):
        edit.apply(pipe.text_encoder)
    edit.remove(pipe.text_encoder)

    # no weight anywhere changed
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in unet.items())
    assert all(torch.equal(v, pipe.text_encoder.state_dict()[k]) for k, v in text.items())
    # the target prompt changed, at exactly the concept's tokens and from the end-of-text token on
    words = pipe.tokenizer("Ink Outline", add_special_tokens=False).input_ids
    cols = sorted(set(find(ids[0], words)) | set(range(ids[0].index(pipe.tokenizer.eos_token_id), len(ids[0]))))
    changed = (after[0] - before[0]).abs().amax(dim=1) > 0
    assert changed.nonzero().flatten().tolist() == cols
    assert (after[0] - before[0]).norm() > 0.1 * before[0].norm()
    # a retained prompt (another "... Outline" style, another style and object, the empty prompt) did not
    assert torch.equal(after[1:], before[1:])
    # removed exactly, and the saved edit does the same after loading
    assert torch.equal(_embed(pipe, [target])[0], before[:1])
    loaded = load_edit(edit.save(tmp_path / "edit"))
    assert isinstance(loaded, PromptEdit)
    loaded.apply(edited_part(pipe, loaded))
    assert torch.equal(_embed(pipe, [target])[0], after[:1])
    loaded.remove(pipe.text_encoder)


def test_a_pair_is_suppressed_only_where_both_parts_are_named(pipe, dataset):
    data = split_for_target(dataset, "pair:Ink_Outline+Star", CANVAS_MINI)
    prompts = [CANVAS_MINI.prompt("Ink_Outline", "Star"), CANVAS_MINI.prompt("Ink_Outline", "Heart")]
    prompts.append(CANVAS_MINI.prompt("Neon_Stripes", "Star"))
    before, _ = _embed(pipe, prompts)
    edit = seot(pipe, data, SEOTConfig()).edit.apply(pipe.text_encoder)
    after, _ = _embed(pipe, prompts)
    edit.remove(pipe.text_encoder)
    assert not torch.equal(after[0], before[0])
    assert torch.equal(after[1:], before[1:])


def test_a_sweep_runs_unseeded_methods_once():
    preset = Preset(name="t", targets=("style:Ink_Outline",), methods=("seot", "uce", "ca"), train_seeds=(0, 1, 2))
    sweep = build_sweep(preset)
    seeds = {m: [j.seed for j in sweep.jobs if j.method == m] for m in preset.methods}
    assert seeds == {"seot": [0], "uce": [0], "ca": [0, 1, 2]}


def test_columns_start_the_tail_after_the_concept():
    # a tokenizer that pads with its end-of-text token (id 9), with two pad slots in front of the
    # prompt (the attack's prefix): the tail starts at the end-of-text token after the concept
    edit = PromptEdit("seot", [[5, 6]], eot_id=9)
    assert edit.columns([1, 9, 9, 3, 5, 6, 4, 9, 9, 9]) == [4, 5, 7, 8, 9]
    assert edit.columns([1, 3, 5, 4, 9]) == []  # the concept is not named
    # "after": the concept and every position after it, the words before the end-of-text token included
    after = PromptEdit("seot", [[5, 6]], eot_id=9, positions="after")
    assert after.columns([1, 9, 9, 3, 5, 6, 4, 9, 9, 9]) == [4, 5, 6, 7, 8, 9]
    assert after.columns([1, 3, 5, 4, 9]) == []
    with pytest.raises(UserError, match="unknown SEOT positions 'tail'; valid: eot, after"):
        PromptEdit("seot", [[5, 6]], eot_id=9, positions="tail")
    with pytest.raises(UserError, match="valid: eot, after"):
        apply_overrides(SEOTConfig(), ["positions=tail"])
