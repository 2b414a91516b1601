"""The GPU cost script: it runs end to end on a CPU at tiny scale, and its projection adds up by hand."""

import json

import pytest

from benchmarks import gpu_cost
from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep
from spare.methods import method_names


def test_tiny_scale_runs_the_real_methods_and_sampler_on_cpu(tmp_path):
    assert gpu_cost.main(["--scale", "tiny", "--steps", "2", "--methods", "spare", "uce", "--precision", "fp32",
                          "--out", str(tmp_path)]) == 0  # fmt: skip
    record = json.loads((tmp_path / "gpu_cost.json").read_text())
    rows = {m["method"]: m for m in record["methods"]}
    assert set(rows) == {"spare", "spare (batch 2+2)", "uce"}
    assert rows["spare"]["s/step"] > 0 and rows["spare"]["batch"] == "forget_batch=16, retain_batch=16"
    assert rows["spare (batch 2+2)"]["batch"] == "forget_batch=2, retain_batch=2"
    assert rows["uce"]["s/step"] == 0 and rows["uce"]["set-up s"] > 0  # closed form: all set-up
    assert [r["micro-batch"] for r in record["sampling"]] == [2, 4] and record["best_sampling"]["img/s"] > 0
    assert record["projection"] == []  # two methods measured: no projection of the whole preset


def test_projection_by_hand():
    """Every method 10 s set-up and 1 s/step, 2 img/s sampling, 5100 img/s judging: a job is
    10 + steps + 5100 / 2 + 2 * 5100 / 5100 seconds; the preset adds the base answer set once."""
    methods = [{"method": m, "set-up s": 10.0, "s/step": 1.0} for m in method_names()]
    rows, totals = gpu_cost.project(methods, img_s=2.0, clf_img_s=5100.0)
    sweep = build_sweep(get_preset("unlearncanvas"), runs_dir="runs")
    expected = 5100 / 2
    for row in rows:
        cfg = sweep.method_config(next(j for j in sweep.jobs if j.method == row["method"]))
        steps = cfg.optim.steps if hasattr(cfg, "optim") else 0
        assert row["preset steps"] == steps and row["jobs"] == 70
        assert row["job s"] == pytest.approx(10 + steps + 2550 + 2)
        expected += 70 * row["job s"]
    assert totals["preset_gpu_hours"] == pytest.approx(expected / 3600)
    spare = next(r for r in rows if r["method"] == "spare")
    assert totals["one_spare_target_gpu_hours"] == pytest.approx(spare["job s"] / 3600)
