"""Ablation configs expand into the expected jobs, unknown names list the valid ones, tables average by hand."""

import pandas as pd
import pytest

from benchmarks.ablations import ablation_names, ablation_plot, ablation_table, get_ablation, spread_labels
from benchmarks.runner import build_sweep
from spare.cli import main
from spare.errors import UserError

REPORTED = {"style:Ink_Outline", "object:Star"}  # the benchmark's reported targets: never ablated on


def test_every_ablation_the_issue_names_exists():
    assert set(ablation_names()) >= {"localization", "sparsity", "rank", "tradeoff", "timesteps", "steps", "surrogate"}
    assert "spare_default" in ablation_names()  # where SPARE's default steps were chosen


@pytest.mark.parametrize(
    "name",
    ["localization", "sparsity", "rank", "tradeoff", "timesteps", "steps", "surrogate", "spare_default", "tuning"],
)
def test_ablation_expands_on_validation_targets_only(name, tmp_path):
    sweep = build_sweep(get_ablation(name), runs_dir=str(tmp_path))
    assert not REPORTED & set(sweep.targets) and sweep.settings.sampling.seeds == (1000, 1001)
    spare_jobs = [j for j in sweep.jobs if j.method == "spare"]
    assert len(spare_jobs) == len(sweep.targets) * len(sweep.preset.variants)
    assert any(j.tag == "abl-default" for j in spare_jobs)  # the shared SPARE default point


def test_rank_ablation_job_list_and_configs(tmp_path):
    sweep = build_sweep(get_ablation("rank"), runs_dir=str(tmp_path))
    assert [(j.target, j.tag) for j in sweep.jobs[:5]] == [
        ("style:Pop_Halftone", f"abl-{v}") for v in ("rank1", "rank2", "default", "rank8", "rank16")
    ]
    assert [(sweep.method_config(j).rank, sweep.method_config(j).alpha) for j in sweep.jobs[:5]] == [
        (1, 1.0), (2, 2.0), (4, 4.0), (8, 8.0), (16, 16.0)
    ]  # fmt: skip
    assert len(sweep.jobs) == 10


def test_tradeoff_runs_baselines_once_and_spare_per_variant(tmp_path):
    sweep = build_sweep(get_ablation("tradeoff"), runs_dir=str(tmp_path))
    per_target = [j for j in sweep.jobs if j.target == "style:Pop_Halftone"]
    assert [j.tag for j in per_target if j.method == "esd"] == ["abl"]
    assert [sweep.method_config(j).w_forget for j in per_target if j.method == "spare"] == [0.1, 0.3, 1.0, 3.0]


def test_timesteps_ablation_varies_mode_and_steps(tmp_path):
    sweep = build_sweep(get_ablation("timesteps"), runs_dir=str(tmp_path))
    cfgs = {j.variant: sweep.method_config(j) for j in sweep.jobs if j.target == "object:Crescent"}
    assert (cfgs["band-steps100"].timesteps.mode, cfgs["band-steps100"].optim.steps) == ("band", 100)
    assert (cfgs["band"].timesteps.band_lo, cfgs["band"].timesteps.band_hi) == (250, 750)
    assert (cfgs["default"].timesteps.mode, cfgs["default"].optim.steps) == ("uniform", 200)
    assert (cfgs["gap-steps400"].timesteps.mode, cfgs["gap-steps400"].optim.steps) == ("gap", 400)


def test_unknown_ablation_lists_the_valid_ones(capsys):
    with pytest.raises(UserError, match=r"unknown ablation 'rnk'. Did you mean 'rank'\? Valid ablations: loc"):
        get_ablation("rnk")
    assert main(["ablation", "sparsty"]) == 2
    err = capsys.readouterr().err
    assert "Valid ablations: localization, rank, spare_default, sparsity, steps, surrogate, timesteps, tradeoff" in err


def test_ablation_table_is_the_mean_over_targets_per_variant(tmp_path):
    preset = get_ablation("sparsity")
    rows = []
    for variant, q, uas in (("q0.1", 0.1, (20.0, 40.0)), ("default", 0.5, (90.0, 100.0))):
        for target, ua in zip(("style:Pop_Halftone", "object:Crescent"), uas, strict=True):
            rows.append({"method": "spare", "variant": variant, "q": q, "target": target, "UA": ua, "IRA": 80.0,
                         "CRA": 90.0, "FID": 5.0, "time s": 10.0, "memory GB": 1.0, "storage MB": 0.2})  # fmt: skip
    table = ablation_table(pd.DataFrame(rows), preset)
    assert list(table["variant"]) == ["q0.1", "default"]
    assert list(table["UA"]) == [30.0, 95.0] and list(table["retain (IRA+CRA)/2"]) == [85.0, 85.0]
    assert list(table["targets"]) == [2, 2]
    png = ablation_plot(table, preset, tmp_path / "a.png", "sparsity")
    assert png.read_bytes()[:4] == b"\x89PNG"
    base = {"UA": 2.0, "IRA": 97.0, "CRA": 96.0, "retain": 96.5}
    for name, kind in (("sparsity", "curves"), ("localization", "bars")):  # numeric key / named variants
        named = table.assign(localization=["weight", "module"]) if name == "localization" else table
        png = ablation_plot(named, get_ablation(name), tmp_path / f"{kind}.png", name, base=base)
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_spread_labels_keeps_crowded_labels_apart_and_below_the_top():
    # tradeoff's four SPARE points: UA 97.5, 95, 92.5, 92.5 -> sorted 92.5, 92.5, 95, 97.5; pushed
    # up 92.5, 97.5, 102.5, 107.5; the top one clamped to 101 and the rest pulled down 5 apart.
    assert spread_labels([97.5, 95.0, 92.5, 92.5], gap=5.0, top=101.0) == [101.0, 96.0, 86.0, 91.0]
    assert spread_labels([10.0, 50.0, 30.0], gap=5.0, top=101.0) == [10.0, 50.0, 30.0]  # room: unchanged
    assert spread_labels([], gap=5.0, top=101.0) == []


def test_tradeoff_plane_plot_labels_every_variant(tmp_path):
    preset = get_ablation("tradeoff")
    rows = [{"method": "spare", "variant": v, "w_forget": w, "UA": ua, "retain (IRA+CRA)/2": r}
            for v, w, ua, r in (("wf0.1", 0.1, 95.0, 96.6), ("default", 0.3, 97.5, 96.9), ("wf1", 1.0, 92.5, 97.0),
                                ("wf3", 3.0, 92.5, 96.9))]  # fmt: skip
    rows.append({"method": "uce", "variant": "", "w_forget": None, "UA": 100.0, "retain (IRA+CRA)/2": 97.2})
    base = {"UA": 2.3, "IRA": 97.0, "CRA": 97.6, "retain": 97.3}
    png = ablation_plot(pd.DataFrame(rows), preset, tmp_path / "plane.png", "tradeoff", base=base)
    assert png.read_bytes()[:4] == b"\x89PNG"
