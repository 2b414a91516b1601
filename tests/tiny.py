"""What the tests that train and sample share: the tiny random model and run settings on it.

Two sampler steps, one answer seed and the committed canvas-mini classifiers keep a whole run (train,
answer set, scores) to seconds; tests change what they check with keyword fields.
"""

from pathlib import Path

from spare.answers import SamplingConfig
from spare.data.canvas_mini import CANVAS_MINI
from spare.paths import MINI_CLASSIFIERS
from spare.pipeline import T2IPipeline
from spare.run import RunSettings
from spare.tiny_model import TinyModelConfig, build_tiny_pipeline

TINY = TinyModelConfig(block_out_channels=(8, 16, 16), attention_head_dim=8, norm_num_groups=8, text_hidden_size=16)
CLASSIFIERS = MINI_CLASSIFIERS


def tiny_pipeline(seed: int = 0) -> T2IPipeline:
    """The tiny canvas-mini pipeline with fresh random weights (the same weights for the same seed)."""
    return build_tiny_pipeline(CANVAS_MINI, TINY, seed=seed)


def tiny_settings(root: Path, **fields) -> RunSettings:
    """Run settings on a tiny model saved once under ``root/model``, runs under ``root/runs``."""
    model = root / "model"
    if not model.exists():
        tiny_pipeline().save_pretrained(model)
    defaults = {
        "model": str(model),
        "classifiers": str(CLASSIFIERS),
        "runs_dir": str(root / "runs"),
        "sampling": SamplingConfig(seeds=(188,), steps=2),
    }
    return RunSettings(**{**defaults, **fields})
