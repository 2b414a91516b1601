"""The pipeline layer: the tiny pixel pipeline and a Stable-Diffusion-format latent pipeline share one code path."""

import numpy as np
import pytest

from spare.answers import SamplingConfig, answer_grid, generate_answer_set
from spare.concepts import get_catalogue
from spare.config import ConfigError, hash_view, to_dict
from spare.data.canvas_mini import CANVAS_MINI
from spare.errors import UserError
from spare.io import config_hash
from spare.paths import MINI_BASE_MODEL
from spare.pipeline import ModelPathError, T2IPipeline
from spare.tiny_model import build_tokenizer

from tiny import tiny_pipeline


def test_sd_format_latent_pipeline_generates_an_answer_set(sd_folder, tmp_path):
    pipe = T2IPipeline.from_pretrained(sd_folder)
    assert pipe.is_latent and pipe.sample_shape == (4, 8, 8) and pipe.image_size == 16
    uc = get_catalogue("unlearncanvas")
    cfg = SamplingConfig(seeds=(188,), steps=3, styles=("Van_Gogh", "Photo"), objects=("Dogs", "Cats"), batch_size=3)
    grid = generate_answer_set(pipe, uc, cfg, tmp_path / "answers")
    assert len(grid) == 4 and (tmp_path / "answers" / "Van_Gogh" / "Dogs" / "188.png").exists()
    from PIL import Image

    assert np.asarray(Image.open(grid["path"][0])).shape == (16, 16, 3)


def test_tiny_pixel_pipeline_round_trips_through_save_and_load(tmp_path):
    pipe = tiny_pipeline()
    assert not pipe.is_latent and pipe.sample_shape == (3, 32, 32)
    prompts = [CANVAS_MINI.prompt("Chalkboard", "Star"), CANVAS_MINI.prompt("Photo", "Disc")]
    before = pipe.sample(prompts, [1, 2], steps=3)
    pipe.save_pretrained(tmp_path / "mini")
    loaded = T2IPipeline.from_pretrained(tmp_path / "mini")
    assert np.array_equal(loaded.sample(prompts, [1, 2], steps=3), before)
    assert before.shape == (2, 32, 32, 3) and before.dtype == np.uint8


def test_answer_images_do_not_depend_on_batch_size_or_order(tmp_path):
    pipe = tiny_pipeline()
    cfg = SamplingConfig(seeds=(188, 288), steps=4, styles=("Ink_Outline", "Photo"), objects=("Disc", "Star", "Bolt"))
    a = generate_answer_set(pipe, CANVAS_MINI, SamplingConfig(**{**cfg.__dict__, "batch_size": 12}), tmp_path / "a")
    b = generate_answer_set(pipe, CANVAS_MINI, SamplingConfig(**{**cfg.__dict__, "batch_size": 5}), tmp_path / "b")
    from PIL import Image

    for pa, pb in zip(a["path"], b["path"], strict=True):
        assert np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb))), pa
    one = pipe.sample([a["prompt"][7]], [int(a["seed"][7])], steps=4, guidance=cfg.guidance, sampler=cfg.sampler)[0]
    assert np.array_equal(one, np.asarray(Image.open(a["path"][7])))


def test_answer_generation_resumes(tmp_path):
    pipe = tiny_pipeline()
    cfg = SamplingConfig(seeds=(188,), steps=2, styles=("Ink_Outline",), objects=("Disc", "Star"), batch_size=1)
    grid = generate_answer_set(pipe, CANVAS_MINI, cfg, tmp_path)
    first = tmp_path / "Ink_Outline" / "Disc" / "188.png"
    first.write_bytes(b"kept")  # an existing image is not regenerated
    (tmp_path / "Ink_Outline" / "Star" / "188.png").unlink()
    generate_answer_set(pipe, CANVAS_MINI, cfg, tmp_path)
    assert first.read_bytes() == b"kept" and len(grid) == 2
    assert (tmp_path / "Ink_Outline" / "Star" / "188.png").exists()


def test_grid_covers_every_style_class_object_and_seed():
    grid = answer_grid(get_catalogue("unlearncanvas"), SamplingConfig(seeds=(188, 288, 588, 688, 888)))
    assert len(grid) == 51 * 20 * 5
    assert grid.iloc[0]["prompt"] == "A Architectures image in Abstractionism style."


def test_tokenizer_is_word_level_over_the_catalogue():
    tok = build_tokenizer(CANVAS_MINI)
    ids = tok("A Star image in Neon Outline style.").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert len(ids) == 10  # bos, a, star, image, in, neon, outline, style, ".", eos: one token per word
    assert tok.unk_token_id in tok("A Zebra image").input_ids


def test_bad_model_folder_and_sampler(tmp_path):
    with pytest.raises(ModelPathError, match="does not exist.*make base-model"):
        T2IPipeline.from_pretrained(tmp_path / "nope")
    (tmp_path / "half" / "unet").mkdir(parents=True)
    with pytest.raises(ModelPathError, match="lacks text_encoder/, tokenizer/, scheduler/"):
        T2IPipeline.from_pretrained(tmp_path / "half")
    tiny_pipeline().save_pretrained(tmp_path / "corrupt")
    next((tmp_path / "corrupt" / "unet").glob("*.safetensors")).write_bytes(b"truncated")
    with pytest.raises(ModelPathError, match="corrupt or partial"):
        T2IPipeline.from_pretrained(tmp_path / "corrupt")
    with pytest.raises(UserError, match="valid samplers: ddim, dpm"):
        tiny_pipeline().sampler("euler")
    with pytest.raises(ConfigError, match="valid samplers: ddim, dpm"):
        SamplingConfig(sampler="euler")
    with pytest.raises(ConfigError, match="valid: fp32, bf16"):
        SamplingConfig(precision="fp16")


def test_bf16_sampling_is_close_to_fp32_and_keyed_apart():
    """bf16 autocast changes images by a few grey levels only, and gets its own answer-set key;
    fp32 keeps the key it had before the option existed (no earlier answer set is invalidated)."""
    pipe = T2IPipeline.from_pretrained(MINI_BASE_MODEL)
    prompts = ["A Star image in Ink_Outline style.", "A Crescent image in Photo style."] * 2
    seeds = [188, 288, 588, 688]
    fp32 = pipe.sample(prompts, seeds, steps=10, guidance=9.0, sampler="dpm", micro_batch=4).astype(float)
    bf16 = pipe.sample(prompts, seeds, steps=10, guidance=9.0, sampler="dpm", micro_batch=4, precision="bf16")
    diff = np.abs(fp32 - bf16.astype(float))
    assert 0 < diff.mean() < 8, diff.mean()  # not bit-identical (autocast is on), yet the same images
    with pytest.raises(UserError, match="valid precisions: fp32, bf16"):
        pipe.sample(prompts[:1], seeds[:1], steps=1, precision="fp16")

    plain = SamplingConfig()
    before = {k: v for k, v in to_dict(plain).items() if k != "precision"}  # the dict keys hashed before
    assert config_hash(hash_view(plain)) == config_hash(before)
    assert config_hash(hash_view(SamplingConfig(precision="bf16"))) != config_hash(before)
