"""The tuning protocol: the grid's jobs, the selection rule by hand, and a choice applied by the presets."""

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.ablations import get_ablation
from benchmarks.presets import Preset, method_defaults
from benchmarks.runner import build_sweep
from benchmarks.tuning import choose, chosen_overrides, cost_table, grid_table, write_choice
from spare.config import ConfigError, apply_overrides
from spare.data.canvas_mini import CANVAS_MINI
from spare.methods import method_names
from spare.methods.contract import trains


def test_the_grid_runs_every_trained_method_on_validation_targets_only(tmp_path):
    preset = get_ablation("tuning")
    sweep = build_sweep(preset, runs_dir=str(tmp_path))
    trained = [m for m in method_names() if trains(method_defaults(Preset(), m))]
    assert set(sweep.methods) == set(trained) and {"uce", "seot"}.isdisjoint(sweep.methods)
    assert set(sweep.targets) == set(CANVAS_MINI.validation_targets) and len(sweep.targets) == 4
    assert sum(t.startswith("style:") for t in sweep.targets) == 2  # two styles and two objects
    assert sweep.settings.sampling.seeds == (1000, 1001)
    assert len(sweep.jobs) == len(trained) * 6 * 4
    # every point scales the method's own default: lr x {1/3, 1, 3} x steps x {1, 2}
    base = {m: method_defaults(preset, m) for m in trained}
    for job in sweep.jobs:
        cfg, ref = sweep.method_config(job), base[job.method]
        lr = {"lr0.33x": 1 / 3, "lr3x": 3.0}.get(job.variant.split("-")[0], 1.0)
        steps = 2 if job.variant.endswith("steps2x") else 1
        assert cfg.optim.lr == pytest.approx(ref.optim.lr * lr, rel=1e-5)
        assert cfg.optim.steps == ref.optim.steps * steps


def test_scaling_overrides():
    cfg = method_defaults(Preset(), "esd")
    scaled = apply_overrides(cfg, ["optim.lr*=3", "optim.steps*=0.5"])
    assert scaled.optim.lr == pytest.approx(cfg.optim.lr * 3) and scaled.optim.steps == round(cfg.optim.steps / 2)
    assert apply_overrides(cfg, ["optim.steps*=0.0001"]).optim.steps == 1  # an integer stays >= 1
    with pytest.raises(ConfigError, match="needs a number"):
        apply_overrides(cfg, ["optim.lr*=fast"])


def _per_target(scores: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """(method, point) -> UA per target; IRA = CRA = 90 everywhere, so score = (UA + 90) / 2."""
    rows = []
    for (method, point), uas in scores.items():
        for i, ua in enumerate(uas):
            rows.append(
                {"method": method, "variant": point, "target": f"style:T{i}", "UA": ua, "IRA": 90.0, "CRA": 90.0}
            )
    return pd.DataFrame(rows)


def test_selection_rule_by_hand(tmp_path):
    variants = get_ablation("tuning").variants
    frame = _per_target(
        {
            # a: lr3x scores (100 + 90) / 2 = 95 against the default's (80 + 90) / 2 = 85: lr3x
            ("a", "default"): [80.0, 80.0],
            ("a", "lr3x"): [100.0, 100.0],
            ("a", "steps2x"): [90.0, 90.0],
            # b: steps2x is 0.25 above the default, within the 0.5 tie: the default
            ("b", "default"): [90.0, 90.0],
            ("b", "steps2x"): [90.5, 90.5],
            # c: lr0.33x and lr3x tie at the top, no default among them: the same steps, the lower lr
            ("c", "default"): [0.0, 0.0],
            ("c", "lr3x"): [100.0, 100.0],
            ("c", "lr0.33x"): [100.0, 100.0],
            # d: its best point misses a target: only complete points compete
            ("d", "default"): [50.0, 50.0],
            ("d", "lr3x"): [100.0],
            # e: a partial grid where e has run one target so far (a, b, c, d two): its points compete on it
            ("e", "default"): [70.0],
            ("e", "lr3x"): [100.0],
        }
    )
    grid = grid_table(frame, variants)
    assert grid.set_index(["method", "point"]).loc[("a", "lr3x"), "score"] == 95.0
    chosen = choose(grid).set_index("method")["chosen"].to_dict()
    assert chosen == {"a": "lr3x", "b": "default", "c": "lr0.33x", "d": "default", "e": "lr3x"}
    assert choose(grid).set_index("method")["targets"].to_dict() == {"a": 2, "b": 2, "c": 2, "d": 2, "e": 1}
    overrides = chosen_overrides(choose(grid))
    assert overrides["a"] == ["optim.lr*=3"] and overrides["b"] == []

    # a partial grid shows its choice but writes no chosen.yaml; a complete one does, and presets apply it
    base = pd.DataFrame({"method": "base", "target": ["style:T0", "style:T1", "style:T9"], "UA": 0.0, "IRA": 95.0,
                         "CRA": 97.0})  # fmt: skip
    paths = write_choice(frame, tmp_path, tmp_path / "chosen.yaml", missing="1 of 10: ...", base=base)
    assert "chosen.yaml" not in paths and "PROVISIONAL" in (tmp_path / "chosen.md").read_text()
    assert paths["grid plot"].read_bytes()[:4] == b"\x89PNG"  # the grid in the UA-retain plane, a panel per method
    write_choice(frame.assign(method=frame["method"].replace({"a": "esd"})), tmp_path, tmp_path / "chosen.yaml")
    tuned = Preset(tuned=str(tmp_path / "chosen.yaml"))
    assert method_defaults(tuned, "esd").optim.lr == pytest.approx(3 * method_defaults(Preset(), "esd").optim.lr)
    assert method_defaults(tuned, "ca") == method_defaults(Preset(), "ca")  # not in the choice: its default
    assert method_defaults(Preset(tuned=str(tmp_path / "none.yaml")), "esd") == method_defaults(Preset(), "esd")


def test_a_relative_tuned_file_is_found_from_another_folder(tmp_path, monkeypatch):
    from benchmarks.presets import tuned_path

    monkeypatch.chdir(tmp_path)  # no results/ here: the repository's own path is used
    assert tuned_path("benchmarks/presets.py").is_file()
    assert tuned_path("results/tuning/none.yaml") == Path("results/tuning/none.yaml")  # nowhere: as given
    (tmp_path / "mine.yaml").write_text("esd: []\n")
    assert tuned_path("mine.yaml") == tmp_path.joinpath("mine.yaml").relative_to(tmp_path)  # found here: as given


def test_the_grid_cost_and_the_sweeps_projection_by_hand():
    """Two default runs (X) and one lr3x run (Y, whose process waited) of method a; its choice is the default."""
    cost_columns = ["time s", "answers s", "score s", "FID s", "img/s", "wall/CPU"]
    frame = pd.DataFrame(
        [
            ["a", "default", "X (AVX512, 1 thread)", 100.0, 40.0, 5.0, 5.0, 2.0, 1.01],
            ["a", "default", "X (AVX512, 1 thread)", 200.0, 60.0, 5.0, 5.0, 4.0, float("nan")],
            ["a", "lr3x", "Y (AVX2, 1 thread)", 300.0, 100.0, 0.0, 0.0, 1.0, 1.6],
        ],
        columns=["method", "variant", "machine", *cost_columns],
    )
    chosen = pd.DataFrame({"method": ["a"], "chosen": ["default"]})
    table = cost_table(frame, chosen, {"a": 6}, seeds_ratio=2.5).set_index("method")
    # the grid: (150 + 270 + 400) s; the job: 150 s unlearning + 2.5 x (50 + 70) / 2 s of images = 300 s
    assert table.loc["a", "grid h"] == pytest.approx(820 / 3600)
    assert table.loc["a", "projected job s"] == pytest.approx(300.0) and table.loc["a", "img/s"] == 3.0
    assert table.loc["a", "projected h"] == pytest.approx(6 * 300 / 3600)
    assert table.loc["a", "grid machines"] == "X 2, Y 1" and table.loc["a", "chosen runs on"] == "X 2"
    assert table.loc["all", "jobs"] == 6 and table.loc["all", "projected h"] == pytest.approx(0.5)
    assert table.loc["a", "runs that waited"] == 1 and table.loc["all", "runs that waited"] == 1
