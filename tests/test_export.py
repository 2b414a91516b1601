"""Export: a run's unlearned model, as a merged diffusers pipeline and as a LoRA, loads in plain
diffusers and reproduces the harness's images (alpha != rank, so the scaling is checked)."""

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from spare.cli import main
from spare.config import to_dict
from spare.methods.adapters import AdapterEdit, lora_modules
from spare.methods.edits import WeightEdit
from spare.pipeline import T2IPipeline
from spare.run import RunSettings
from spare.stages.export import export_pipeline, export_run

PROMPTS = ["A Dogs image in Van Gogh style.", "A Cats image in Monet style."]
SEEDS = [188, 288]
STEPS, GUIDANCE = 4, 3.0


def fake_run(root, model, edit) -> str:
    """A finished run folder around ``edit`` (config, metrics and edit, as run_unlearning writes them)."""
    run = root / "run"
    settings = RunSettings(benchmark="unlearncanvas", model=str(model), classifiers="")
    config = {"method": edit.method, "target": "style:Van_Gogh", "settings": to_dict(settings), "config_key": "k1"}
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.json").write_text(json.dumps({"config_key": "k1", "metrics": {"UA": {"value": 1.0}}}))
    edit.save(run / "edit")
    return run


def trained_adapter(model, masked=False) -> AdapterEdit:
    """An adapter on the tiny SD UNet's attention projections with random (non-zero) A and B, alpha = 2 x rank."""
    pipe = T2IPipeline.from_pretrained(model)
    names = sorted(lora_modules(pipe.unet, "attention"))
    edit = AdapterEdit("spare", rank=2, alpha=4.0, target_modules=names)
    edit.apply(pipe.unet, init_seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in pipe.unet.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    edit.capture(pipe.unet)
    edit.remove(pipe.unet)
    if masked:
        edit.masks = {names[0]: torch.rand(pipe.unet.get_submodule(names[0]).weight.shape) > 0.5}
    return edit


def harness_images(model, edit) -> np.ndarray:
    pipe = T2IPipeline.from_pretrained(model)
    edit.apply(pipe.unet)
    return pipe.sample(PROMPTS, SEEDS, steps=STEPS, guidance=GUIDANCE, sampler="ddim", micro_batch=2)


def diffusers_images(pipe: StableDiffusionPipeline) -> np.ndarray:
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    out = pipe(
        PROMPTS,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        generator=[torch.Generator().manual_seed(s) for s in SEEDS],
        height=size,
        width=size,
        output_type="np",
    ).images
    return (out * 255).round().astype(np.uint8)


def test_both_exports_load_in_plain_diffusers_and_reproduce_the_harness_images(sd_folder, tmp_path):
    edit = trained_adapter(sd_folder)
    ours = harness_images(sd_folder, edit)
    unedited = harness_images(sd_folder, AdapterEdit("spare", 2, 4.0, edit.target_modules, {}))  # B = 0
    assert np.abs(ours.astype(int) - unedited.astype(int)).max() > 10  # the edit changes the images

    record = export_run(fake_run(tmp_path, sd_folder, edit), tmp_path / "out")
    assert record["written"] == ["pipeline", "lora"] and record["lora_skipped"] is None

    merged = StableDiffusionPipeline.from_pretrained(tmp_path / "out" / "pipeline")
    diff_merged = np.abs(diffusers_images(merged).astype(int) - ours.astype(int)).max()

    export_pipeline(T2IPipeline.from_pretrained(sd_folder), tmp_path / "base")
    base = StableDiffusionPipeline.from_pretrained(tmp_path / "base")
    base.load_lora_weights(tmp_path / "out" / "lora")
    diff_lora = np.abs(diffusers_images(base).astype(int) - ours.astype(int)).max()
    print(f"max abs difference to the harness's images (0-255): merged {diff_merged}, LoRA {diff_lora}")
    assert diff_merged <= 2 and diff_lora <= 2


def test_a_masked_adapter_or_a_weight_edit_exports_the_merged_pipeline_only(sd_folder, tmp_path, capsys):
    record = export_run(fake_run(tmp_path / "a", sd_folder, trained_adapter(sd_folder, masked=True)), tmp_path / "x")
    assert record["written"] == ["pipeline"] and "not low-rank" in record["lora_skipped"]
    pipe = T2IPipeline.from_pretrained(sd_folder)
    name = next(n for n, _ in pipe.unet.named_parameters() if n.endswith("attn2.to_k.weight"))
    weights = {name: torch.zeros_like(dict(pipe.unet.named_parameters())[name])}
    run = fake_run(tmp_path / "b", sd_folder, WeightEdit("uce", weights))
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "y")]) == 0
    assert "not an adapter" in capsys.readouterr().out
    exported = T2IPipeline.from_pretrained(tmp_path / "y" / "pipeline")
    assert dict(exported.unet.named_parameters())[name].abs().max() == 0  # the weight edit is merged
    assert main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "z")]) == 2  # not a run: one line


@pytest.fixture(autouse=True)
def _dirs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
