"""Export a finished run's unlearned model for use outside the harness.

    spare export --run runs/unlearncanvas/spare/style-Van_Gogh --out exported/

Writes under ``out``:
    pipeline/  the base model with the edit merged into its weights, as a diffusers folder. For a
               latent (Stable Diffusion) model a whole ``StableDiffusionPipeline`` (model_index.json,
               unet, vae, text_encoder, tokenizer, and the harness's DDIM sampler as its scheduler,
               no safety checker): ``StableDiffusionPipeline.from_pretrained(out / "pipeline")``.
               canvas-mini's pixel-space model has no diffusers pipeline class: its components are
               plain diffusers / transformers folders (``UNet2DConditionModel.from_pretrained(
               out / "pipeline" / "unet")``; the whole: ``spare.pipeline.T2IPipeline.from_pretrained``).
    lora/      for a plain (unmasked) adapter edit (SPARE's module-level variant, SPM, any LoRA):
               ``pytorch_lora_weights.safetensors`` in diffusers' peft key format, loadable by
               ``pipe.load_lora_weights(out / "lora")`` on the base model. The adapter's scaling
               alpha / rank is folded into ``lora_B``, so any loader (which assumes alpha = rank
               when it reads no alpha) applies exactly the trained update. A per-weight masked
               adapter is not low-rank, and a weight edit is not an adapter: both export the
               merged pipeline only, and say so.
    export.json what was written, from which run
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from spare.errors import UserError
from spare.io import atomic_path, write_json
from spare.methods.adapters import AdapterEdit
from spare.methods.edits import load_edit
from spare.pipeline import T2IPipeline
from spare.provenance import provenance
from spare.stages.attack import finished_run

LORA_FILE = "pytorch_lora_weights.safetensors"


def lora_state_dict(edit: AdapterEdit) -> dict[str, torch.Tensor]:
    """The adapter in diffusers' peft key format (``unet.<module>.lora_A.weight``), alpha / rank folded into B."""
    out = {}
    for key, value in edit.state.items():
        tensor = value.detach().float().cpu()
        if ".lora_B." in key:
            tensor = tensor * edit.scaling
        out[f"unet.{key}"] = tensor.contiguous()
    return out


def export_pipeline(pipe: T2IPipeline, out: Path) -> None:
    """``pipe`` as a diffusers folder: a StableDiffusionPipeline for a latent model, else its components."""
    with atomic_path(out) as tmp:
        if pipe.is_latent:
            from diffusers import StableDiffusionPipeline

            StableDiffusionPipeline(
                vae=pipe.vae,
                text_encoder=pipe.text_encoder,
                tokenizer=pipe.tokenizer,
                unet=pipe.unet,
                scheduler=pipe.sampler("ddim"),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            ).save_pretrained(tmp)
        else:
            pipe.save_pretrained(tmp)


def export_run(run: str | Path, out: str | Path) -> dict:
    """Export the finished run in ``run`` to ``out`` (see the module docstring); returns export.json's content."""
    run, out = Path(run), Path(out)
    config, metrics, settings = finished_run(run, answers=False)
    if out.exists() and any(out.iterdir()):
        if not (out / "export.json").is_file():
            raise UserError(f"{str(out)!r} exists and is not an earlier export; give an empty or new folder")
        shutil.rmtree(out)
    edit = load_edit(run / "edit")
    if getattr(edit, "component", "unet") != "unet":
        raise UserError(
            f"{config['method']} edits the prompt's text embedding at inference ({edit.component}), not the"
            " UNet's weights: there is no merged model to export; load the run's edit with the harness instead"
        )
    written, skipped = [], None
    if isinstance(edit, AdapterEdit) and not edit.masks:
        with atomic_path(out / "lora" / LORA_FILE) as tmp:
            save_file(lora_state_dict(edit), str(tmp), metadata={"format": "pt"})
        written.append("lora")
    elif isinstance(edit, AdapterEdit):
        skipped = "a per-weight masked adapter is not low-rank: no LoRA file, the merged pipeline holds the edit"
    else:
        skipped = f"{config['method']} edits weights, not an adapter: no LoRA file, the merged pipeline holds the edit"
    pipe = T2IPipeline.from_pretrained(settings.model)
    edit.merge(pipe.unet)
    export_pipeline(pipe, out / "pipeline")
    written.insert(0, "pipeline")
    record = {
        "run": str(run),
        "method": config["method"],
        "target": config["target"],
        "run_key": config["config_key"],
        "model": settings.model,
        "written": written,
        "lora_skipped": skipped,
        "latent": pipe.is_latent,
        "metrics": {k: v.get("value") for k, v in metrics.get("metrics", {}).items()},
        "provenance": provenance(),
    }
    write_json(out / "export.json", record)
    return json.loads((out / "export.json").read_text())
