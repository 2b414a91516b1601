"""SPARE's parts on a tiny random pipeline: saliency, masked adapters, exact removal, the teacher, timesteps."""

import numpy as np
import pytest
import torch

from spare.config import apply_overrides
from spare.data import split_for_target
from spare.data.canvas_mini import CANVAS_MINI, canvas_mini_dataset
from spare.errors import UserError
from spare.methods import get_method, method_names
from spare.methods.adapters import AdapterEdit, adapters_disabled, lora_modules
from spare.methods.batches import ImageBatches
from spare.methods.edits import edit_size_bytes
from spare.methods.saliency import compute_saliency, top_modules, weight_masks
from spare.methods.timesteps import TimestepConfig, TimestepSampler, build_sampler, smallest_band

from tiny import tiny_pipeline


@pytest.fixture(scope="module")
def data():
    ds = canvas_mini_dataset(2)
    return split_for_target(ds, "style:Chalkboard", CANVAS_MINI)


@pytest.fixture
def pipe():
    p = tiny_pipeline()
    p.unet.requires_grad_(False)
    return p


def _probe(pipe):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=gen)
    t = torch.tensor([10, 300, 600, 900])
    emb = pipe.encode_prompts(
        [CANVAS_MINI.prompt("Chalkboard", "Star")] * 2 + [CANVAS_MINI.prompt("Photo", "Disc")] * 2
    )
    with torch.no_grad():
        return pipe.predict_noise(x, t, emb)


def _trained_edit(pipe, names, masks=None):
    """An adapter with random non-zero weights (as if trained), captured and removed."""
    edit = AdapterEdit("test", 4, 4.0, names, masks=masks or {}).apply(pipe.unet, init_seed=0)
    with torch.no_grad():
        for p in edit.trainable_parameters(pipe.unet):
            p.copy_(torch.randn_like(p) * 0.1)
    edit.capture(pipe.unet).remove(pipe.unet)
    return edit


def test_saliency_selects_the_modules_that_receive_gradient(pipe, data):
    with torch.no_grad():  # with conv_out zeroed, no gradient flows past it: only conv_out is salient
        pipe.unet.conv_out.weight.zero_()
    forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
    sal = compute_saliency(pipe, forget, batches=2, batch_size=4, seed=0)
    assert set(sal) == set(lora_modules(pipe.unet))
    assert sal["conv_out"].abs().sum() > 0
    assert all(float(s.abs().sum()) == 0.0 for n, s in sal.items() if n != "conv_out")
    assert top_modules(sal, q=0.01) == ["conv_out"]
    assert list(weight_masks(sal, q=0.001)) == ["conv_out"]


def test_default_candidates_are_exactly_the_attention_projections(pipe):
    """The authors' UnlearnCanvas set: to_q, to_k, to_v, to_out.0 of every self- and cross-attention."""
    cfg = get_method("spare").config_cls()
    assert (cfg.candidates, cfg.localization) == ("attention", "none")
    from diffusers.models.attention_processor import Attention

    blocks = [n for n, m in pipe.unet.named_modules() if isinstance(m, Attention)]
    assert {n.rsplit(".", 1)[1] for n in blocks} == {"attn1", "attn2"} and len(blocks) == 8  # 4 self + 4 cross
    expected = {f"{n}.{proj}" for n in blocks for proj in ("to_q", "to_k", "to_v", "to_out.0")}
    assert set(lora_modules(pipe.unet, cfg.candidates)) == expected
    assert all(isinstance(m, torch.nn.Linear) for m in lora_modules(pipe.unet, "attention").values())


def test_a_per_weight_mask_never_touches_a_module_outside_the_candidates(pipe, data):
    """With only conv_out salient, the global threshold over every module picks conv_out alone;
    restricted to the attention projections, the mask stays inside them."""
    from spare.methods.spare_method import localize

    with torch.no_grad():
        pipe.unet.conv_out.weight.zero_()  # then gradient reaches conv_out only: everything else scores 0
    forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
    cfg = apply_overrides(get_method("spare").config_cls(), ["localization=weight", "q=0.001", "saliency_batches=1"])
    names, masks, saliency = localize(pipe, forget, "style:Chalkboard", cfg)
    attention = set(lora_modules(pipe.unet, "attention"))
    assert set(saliency) == attention and set(masks) <= attention and set(names) == set(masks)
    all_cfg = apply_overrides(cfg, ["candidates=all"])
    assert localize(pipe, forget, "style:Chalkboard", all_cfg)[0] == ["conv_out"]


def test_an_unknown_candidate_set_is_one_line_naming_the_valid_ones(pipe, capsys):
    from spare.cli import main

    with pytest.raises(UserError, match="unknown candidate set 'attn'; valid candidate sets: attention, all"):
        lora_modules(pipe.unet, "attn")
    assert main(["unlearn", "--target", "style:Chalkboard", "candidates=attn", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "candidates must be one of ('attention', 'all'), got 'attn'" in err and err.count("\n") == 1, err


def test_saliency_matches_autograd_by_hand(pipe, data):
    forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
    sal = compute_saliency(pipe, forget, batches=1, batch_size=4, seed=3)
    gen = torch.Generator().manual_seed(3)  # replay the same draws
    x0, prompts, _ = forget.sample(4, gen)
    t = torch.randint(1000, (4,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    w = pipe.unet.mid_block.attentions[0].transformer_blocks[0].attn2.to_k.weight
    w.requires_grad_(True)
    loss = torch.nn.functional.mse_loss(
        pipe.predict_noise(pipe.add_noise(x0, noise, t), t, pipe.encode_prompts(prompts)), noise
    )
    (g,) = torch.autograd.grad(loss, [w])
    name = "mid_block.attentions.0.transformer_blocks.0.attn2.to_k"
    assert torch.allclose(sal[name], g.abs(), atol=1e-7)


def test_module_and_weight_selection_sizes():
    sal = {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([5.0, 0.0]), "c": torch.tensor([0.1, 0.2])}
    assert top_modules(sal, 0.34) == ["b"]  # means: a 1.0, b 2.5, c 0.15
    assert top_modules(sal, 0.67) == ["a", "b"]
    masks = weight_masks(sal, 0.5)  # top 3 of 6 weights: 5.0, 1.0, 1.0
    assert {k: v.tolist() for k, v in masks.items()} == {"a": [True, True], "b": [True, False]}


def test_removing_the_adapter_restores_outputs_exactly(pipe):
    before = _probe(pipe)
    names = sorted(lora_modules(pipe.unet))[::3]
    for masks in ({}, {n: torch.rand(pipe.unet.get_submodule(n).weight.shape) < 0.3 for n in names}):
        edit = _trained_edit(pipe, names, masks)
        edit.apply(pipe.unet)
        changed = _probe(pipe)
        with adapters_disabled(pipe.unet):
            teacher = _probe(pipe)  # the teacher: exactly the original model
        edit.remove(pipe.unet)
        assert not torch.equal(changed, before)
        assert torch.equal(teacher, before)
        assert torch.equal(_probe(pipe), before)


def test_masked_merge_leaves_unmasked_weights_bit_identical(pipe):
    names = sorted(n for n in lora_modules(pipe.unet) if "attn" in n)
    masks = {n: torch.rand(pipe.unet.get_submodule(n).weight.shape) < 0.2 for n in names}
    edit = _trained_edit(pipe, names, masks)
    original = {n: pipe.unet.get_submodule(n).weight.clone() for n in names}
    edit.apply(pipe.unet)
    adapted = _probe(pipe)
    edit.merge(pipe.unet)
    for n in names:
        w, m = pipe.unet.get_submodule(n).weight, masks[n]
        assert torch.equal(w[~m], original[n][~m])  # bit-identical outside the mask
        assert not torch.equal(w[m], original[n][m])
    assert torch.allclose(_probe(pipe), adapted, atol=1e-5)  # merged == adapter applied


def test_lora_dropout_is_off_when_an_adapter_is_applied_for_sampling(pipe):
    """peft makes new layers in train mode; an adapter applied to an eval-mode UNet must not drop
    anything: two passes agree, and match the same weights without dropout."""
    pipe.unet.eval()
    names = sorted(lora_modules(pipe.unet, "attention"))
    trained = _trained_edit(pipe, names)
    with_dropout = AdapterEdit("test", 4, 4.0, names, state=trained.state, dropout=0.5)
    with_dropout.apply(pipe.unet)
    first, second = _probe(pipe), _probe(pipe)
    with_dropout.remove(pipe.unet)
    trained.apply(pipe.unet)
    plain = _probe(pipe)
    trained.remove(pipe.unet)
    assert torch.equal(first, second) and torch.equal(first, plain)


def test_edit_round_trips_through_save_and_load(pipe, tmp_path):
    names = sorted(lora_modules(pipe.unet))[:6]
    masks = {n: torch.rand(pipe.unet.get_submodule(n).weight.shape) < 0.5 for n in names[:3]}
    edit = _trained_edit(pipe, names, masks)
    edit.apply(pipe.unet)
    expected = _probe(pipe)
    edit.remove(pipe.unet)
    edit.save(tmp_path / "edit")
    loaded = AdapterEdit.load(tmp_path / "edit")
    assert {n: m.tolist() for n, m in loaded.masks.items()} == {n: m.tolist() for n, m in masks.items()}
    loaded.apply(pipe.unet)
    assert torch.equal(_probe(pipe), expected)
    loaded.remove(pipe.unet)
    mask_bits = sum(m.numel() for m in masks.values())
    assert edit_size_bytes(tmp_path / "edit") < 4 * edit.num_parameters + mask_bits / 8 + 4096  # bit-packed masks
    (tmp_path / "edit" / "adapter.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="corrupt"):
        AdapterEdit.load(tmp_path / "edit")


@pytest.mark.parametrize(
    "localization, candidates", [("none", "attention"), ("module", "attention"), ("weight", "attention"),
                                 ("module", "all"), ("weight", "all")]
)  # fmt: skip
def test_unlearn_trains_only_the_adapter(pipe, data, localization, candidates):
    spec = get_method("spare")
    cfg = apply_overrides(
        spec.config_cls(),
        [
            f"localization={localization}",
            f"candidates={candidates}",
            "optim.steps=3",
            "saliency_batches=1",
            "optim.lr=1e-2",
            "timesteps.profile_batch=4",
            "forget_batch=4",
            "retain_batch=4",
        ],
    )
    base = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    before = _probe(pipe)
    unlearned = spec.unlearn(pipe, data, cfg)
    edit, report = unlearned.edit, unlearned.report()
    assert all(torch.equal(v, base[k]) for k, v in pipe.unet.state_dict().items())  # teacher weights untouched
    assert all(p.grad is None for p in pipe.unet.parameters())
    assert torch.equal(_probe(pipe), before)  # the adapter was taken off again
    assert edit.num_parameters == report["trainable_params"] > 0
    assert any(float(v.abs().sum()) > 0 for k, v in edit.state.items() if "lora_B" in k)  # it learned something
    attention = set(lora_modules(pipe.unet, "attention"))
    if candidates == "attention":  # adapters (and masks) never leave the candidate set
        assert set(report["adapted_modules"]) <= attention and set(edit.masks) <= attention
    if localization == "none":
        assert report["adapted_modules"] == sorted(lora_modules(pipe.unet, candidates))
    if localization == "weight":
        assert set(edit.masks) == set(report["adapted_modules"])
    edit.apply(pipe.unet)
    assert not torch.equal(_probe(pipe), before)
    edit.remove(pipe.unet)


def test_smallest_band_by_hand():
    assert smallest_band(np.array([0, 1, 8, 1, 0]), 0.8) == (2, 3)
    assert smallest_band(np.array([0, 1, 8, 1, 0]), 0.9) == (1, 3)
    assert smallest_band(np.array([5, 0, 0, 0, 5]), 0.6) == (0, 5)


def test_timestep_samplers(pipe, data):
    gen = torch.Generator().manual_seed(0)
    sampler = TimestepSampler(np.array([0, 100, 200, 1000]), np.array([0.0, 3.0, 1.0]))
    t = sampler.sample(4000, gen)
    assert t.min() >= 100 and t.max() < 1000 and sampler.support() == (100, 999)
    in_first = ((t >= 100) & (t < 200)).float().mean()
    assert abs(float(in_first) - 0.75) < 0.03
    forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
    gap = build_sampler(TimestepConfig(mode="gap", grid=10, profile_batch=4, focus=1.0), pipe, forget, seed=0)
    lo, hi = gap.profile["band"]
    assert 0 <= lo < hi <= 1000 and len(gap.profile["gap"]) == 10
    assert gap.support()[0] >= lo and gap.support()[1] < hi
    half = build_sampler(TimestepConfig(mode="gap", grid=10, profile_batch=4, focus=0.5), pipe, forget, seed=0)
    assert half.support() == (0, 999)  # uniform coverage under the band
    t = half.sample(20000, gen)
    in_band = float(((t >= lo) & (t < hi)).double().mean())
    assert abs(in_band - (0.5 + 0.5 * (hi - lo) / 1000)) < 0.02
    # x0 units: the noise-unit gap times (1 - abar_t) / abar_t at each profiled t, by hand
    abar = [float(pipe.scheduler.alphas_cumprod[t]) for t in gap.profile["t"]]
    by_hand = [e * (1 - a) / a for e, a in zip(gap.profile["eps_gap"], abar, strict=True)]
    assert np.allclose(gap.profile["gap"], by_hand, rtol=1e-9) and gap.profile["units"] == "x0"
    eps = build_sampler(TimestepConfig(mode="gap", units="eps", grid=10, profile_batch=4), pipe, forget, seed=0)
    assert np.allclose(eps.profile["gap"], gap.profile["eps_gap"])
    with pytest.raises(UserError, match="valid units: x0, eps"):
        build_sampler(TimestepConfig(mode="gap", units="v"), pipe, forget, seed=0)
    with pytest.raises(UserError, match="inside"):
        build_sampler(TimestepConfig(mode="band", band_lo=500, band_hi=2000), pipe, forget, seed=0)


def test_registry_lists_spare_and_rejects_unknown_methods():
    assert "spare" in method_names()
    with pytest.raises(UserError, match="Did you mean 'spare'.*Valid methods"):
        get_method("spar")


def test_remove_restores_the_module_tree(pipe):
    keys = list(pipe.unet.state_dict())
    edit = _trained_edit(pipe, sorted(lora_modules(pipe.unet))[:4])
    edit.apply(pipe.unet)
    edit.merge(pipe.unet)
    assert list(pipe.unet.state_dict()) == keys  # no peft wrappers left: save_pretrained keys unchanged


def test_fused_calls_predict_what_separate_calls_do(pipe):
    """``optim.fused``: the calls of one step run as one batched call, split back in order; the
    UNet treats samples independently, so only rounding may differ."""
    from spare.methods.trainer import predict_many

    gen = torch.Generator().manual_seed(0)
    emb = pipe.encode_prompts(["a photo of a star", "an ink outline of a heart", ""]).detach()
    calls = [
        (torch.randn(3, *pipe.sample_shape, generator=gen), torch.tensor([10, 500, 990]), emb),
        (torch.randn(2, *pipe.sample_shape, generator=gen), torch.tensor([3, 700]), emb[:2]),
    ]
    with torch.no_grad():
        separate = predict_many(pipe.unet, calls, fused=False)
        fused = predict_many(pipe.unet, calls, fused=True)
    assert [f.shape for f in fused] == [s.shape for s in separate] == [(3, *pipe.sample_shape), (2, *pipe.sample_shape)]
    for f, s in zip(fused, separate, strict=True):
        torch.testing.assert_close(f, s, rtol=1e-4, atol=1e-5)
    swapped = predict_many(pipe.unet, calls[::-1], fused=True)  # the split follows the order of the calls
    torch.testing.assert_close(swapped[0], separate[1], rtol=1e-4, atol=1e-5)


def test_merging_an_edit_that_is_not_applied_applies_it(pipe):
    """An edit loaded from disk merges into a bare UNet exactly as an applied one does (export and
    sequences merge edits they load)."""
    from spare.methods.edits import WeightEdit

    names = sorted(n for n in lora_modules(pipe.unet) if "attn" in n)[:4]
    original = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    edit = _trained_edit(pipe, names)
    edit.apply(pipe.unet)
    edit.merge(pipe.unet)
    applied_then_merged = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    pipe.unet.load_state_dict(original)
    edit.merge(pipe.unet)  # not applied
    merged = pipe.unet.state_dict()
    assert any(not torch.equal(merged[k], original[k]) for k in original)
    assert all(torch.equal(merged[k], applied_then_merged[k]) for k in original)
    pipe.unet.load_state_dict(original)
    name = f"{names[0]}.weight"
    weights = WeightEdit("w", {name: torch.zeros_like(original[name])})
    weights.merge(pipe.unet)
    assert pipe.unet.state_dict()[name].abs().max() == 0
    pipe.unet.load_state_dict(original)


def test_the_lr_schedule_by_hand():
    """diffusers' schedules (get_scheduler): the numbers every default (no warmup) trained with before,
    0.5 (1 + cos(pi s / S)) for cosine and 1 for constant; a warmup rises linearly from 0."""
    import math

    from spare.methods.trainer import OptimConfig, lr_schedule

    def lrs(**kw):
        cfg = OptimConfig(lr=1.0, **kw)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
        sched, out = lr_schedule(opt, cfg), []
        for _ in range(cfg.steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    assert lrs(steps=4, schedule="cosine") == [0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]
    assert lrs(steps=3, schedule="constant") == [1.0, 1.0, 1.0]
    assert lrs(steps=4, schedule="constant", warmup_steps=2) == [0.0, 0.5, 1.0, 1.0]
