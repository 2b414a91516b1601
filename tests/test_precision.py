"""Precision chosen by the machine: bf16 only where it is native and a probe shows it faster,
fp32 everywhere else (on a CPU without native bf16, bf16 autocast runs 40-90x slower)."""

import dataclasses

import pytest

import spare.precision as precision
from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep
from spare.answers import SamplingConfig
from spare.errors import UserError


@pytest.fixture(autouse=True)
def _fresh_probe():
    precision._auto.cache_clear()
    precision._asked.cache_clear()
    yield
    precision._auto.cache_clear()
    precision._asked.cache_clear()


def test_no_native_bf16_chooses_fp32_without_probing(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: (False, "forced: no native bf16"))
    choice = precision.resolve_precision("auto", "cpu")
    assert choice.precision == "fp32" and not choice.native_bf16
    assert "forced: no native bf16" in choice.reason


def test_native_bf16_is_used_and_decided_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(precision, "native_bf16", lambda device: calls.append(device) or (True, "forced: native"))
    for _ in range(3):
        assert precision.resolve_precision("auto", "cpu").precision == "bf16"
    assert calls == ["cpu"]


def test_cpu_flags_decide_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f", "fma"})
    assert precision.native_bf16("cpu")[0] is False
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert precision.native_bf16("cpu") == (True, "CPU flags avx512_bf16")


def test_explicit_requests_are_kept_and_unknown_ones_name_the_valid(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: (False, "forced"))
    assert precision.resolve_precision("bf16", "cpu").precision == "bf16"  # asked for: kept (with a warning)
    assert precision.resolve_precision("fp32", "cpu").precision == "fp32"
    with pytest.raises(UserError, match="valid precisions: fp32, bf16, auto"):
        precision.resolve_precision("fp16", "cpu")


def test_mini_quick_samples_in_fp32_on_a_machine_without_native_bf16(monkeypatch, tmp_path):
    """The first command a new user types: its sweep resolves to fp32 there, keyed exactly as an
    fp32 preset, so a bf16 run made on another machine is never taken for it."""
    monkeypatch.setattr(precision, "native_bf16", lambda device: (False, "forced"))
    quick = get_preset("mini-quick")
    assert quick.sampling.precision == "auto"
    sweep = build_sweep(quick, runs_dir=str(tmp_path))
    assert sweep.settings.sampling.precision == "fp32"
    fp32 = dataclasses.replace(quick, sampling=dataclasses.replace(quick.sampling, precision="fp32"))
    bf16 = dataclasses.replace(quick, sampling=dataclasses.replace(quick.sampling, precision="bf16"))
    job = sweep.jobs[0]
    keys = {p: build_sweep(s, runs_dir=str(tmp_path)).planned(job).key for p, s in (("fp32", fp32), ("bf16", bf16))}
    assert sweep.planned(job).key == keys["fp32"] != keys["bf16"]


def test_auto_resolves_to_bf16_where_native_and_faster(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "native_bf16", lambda device: (True, "forced"))
    assert SamplingConfig(precision="auto").resolved("cpu").precision == "bf16"
    assert build_sweep(get_preset("mini-quick"), runs_dir=str(tmp_path)).settings.sampling.precision == "bf16"


def test_training_precision_auto_is_the_machines_and_keys_runs_apart(monkeypatch, tmp_path):
    """``optim.precision=auto``: fp32 on a machine without native bf16 (keyed exactly as an
    explicit fp32 run), bf16 where native (keyed apart)."""
    from spare.methods import get_method
    from spare.methods.trainer import resolved_config
    from spare.run import RunSettings, plan_run

    cfg = _with_precision(get_method("spare").config_cls(), "auto")
    settings = RunSettings(runs_dir=str(tmp_path), fingerprints={"model": "m"})
    explicit = {
        p: plan_run("spare", "style:Ink_Outline", _with_precision(cfg, p), settings).key for p in ("fp32", "bf16")
    }
    monkeypatch.setattr(precision, "native_bf16", lambda device: (False, "forced"))
    assert resolved_config(cfg, "cpu").optim.precision == "fp32"
    assert plan_run("spare", "style:Ink_Outline", cfg, settings).key == explicit["fp32"]
    precision._auto.cache_clear()
    monkeypatch.setattr(precision, "native_bf16", lambda device: (True, "forced"))
    assert resolved_config(cfg, "cpu").optim.precision == "bf16"
    assert plan_run("spare", "style:Ink_Outline", cfg, settings).key == explicit["bf16"] != explicit["fp32"]


def test_the_old_default_keeps_its_key():
    """Runs made before auto precision and fused calls became the defaults (fp32, unfused) are
    found again by asking for exactly that: those values are the hash baseline."""
    from spare.config import hash_view
    from spare.methods.trainer import OptimConfig

    old = OptimConfig(steps=200, lr=3e-3, weight_decay=1e-2)
    asked = OptimConfig(steps=200, lr=3e-3, weight_decay=1e-2, precision="fp32", fused=False)
    assert (
        hash_view(asked)
        == hash_view(old)
        == {"steps": 200, "lr": 3e-3, "warmup_steps": 0, "schedule": "cosine", "weight_decay": 1e-2, "grad_clip": 1.0}
    )
    assert "fused" in hash_view(OptimConfig(fused=True)) and "precision" in hash_view(OptimConfig(precision="bf16"))


def _with_precision(cfg, value):
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, precision=value))
