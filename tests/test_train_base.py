"""The base-model trainer resumes exactly, and its checkpoints hold no pickle."""

import json

import pytest
import torch
from safetensors.torch import load_file

from spare import train_base
from spare.errors import UserError
from spare.train_base import EMA_SETTINGS, EMA_TENSORS, BaseTrainConfig, _latest_checkpoint, train_base_model

from tiny import TINY


def _cfg(tmp_path, name: str, steps: int) -> BaseTrainConfig:
    return BaseTrainConfig(
        model=TINY,
        n_per_pair=1,
        steps=steps,
        batch_size=4,
        warmup_steps=1,
        ema_decay=0.9,
        mixed_precision="no",
        log_every=1,
        checkpoint_every=2,
        sample_every=0,
        out_dir=str(tmp_path / name / "model"),
        work_dir=str(tmp_path / name / "work"),
    )


def _ema_of(folder):
    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


def test_resumed_training_exports_the_same_ema_as_an_unbroken_one(tmp_path, monkeypatch):
    straight = train_base_model(_cfg(tmp_path, "straight", 4))
    real = train_base._checkpoint

    def killed_after_first(accelerator, ema, work_dir, step, **kw):  # the process dies after step 2's checkpoint
        real(accelerator, ema, work_dir, step, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_base, "_checkpoint", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_base_model(_cfg(tmp_path, "resumed", 4))
    monkeypatch.setattr(train_base, "_checkpoint", real)
    ckpt = _latest_checkpoint(tmp_path / "resumed" / "work")
    assert ckpt.name == "step-000002"
    assert (ckpt / EMA_TENSORS).is_file() and json.loads((ckpt / EMA_SETTINGS).read_text())["optimization_step"] == 2
    # accelerate reads custom objects with weights_only=False (any code could run): the EMA is none
    assert not list(ckpt.glob("custom_checkpoint_*"))
    resumed = train_base_model(_cfg(tmp_path, "resumed", 4))
    a, b = _ema_of(straight), _ema_of(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # the EMA after 4 steps is not the one after 2: the resumed run did continue it
    first = load_file(ckpt / EMA_TENSORS)
    assert any(
        not torch.equal(t, first[k])
        for k, t in load_file(_latest_checkpoint(tmp_path / "resumed" / "work") / EMA_TENSORS).items()
    )


def test_a_damaged_ema_checkpoint_is_a_clear_error(tmp_path):
    train_base_model(_cfg(tmp_path, "run", 2))
    (tmp_path / "run" / "model").rename(tmp_path / "run" / "exported")
    ckpt = _latest_checkpoint(tmp_path / "run" / "work")
    (ckpt / EMA_TENSORS).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="no readable EMA.*delete the folder"):
        train_base_model(_cfg(tmp_path, "run", 4))
