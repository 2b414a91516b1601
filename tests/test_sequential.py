"""Sequential unlearning: step k starts from step k-1's weights, a killed sequence resumes at its
step, the metrics by hand, and bad sequences fail in one line."""

import json
from dataclasses import dataclass

import pytest
import torch

from spare.answers import SamplingConfig
from spare.concepts import get_catalogue
from spare.errors import UserError
from spare.methods import registry
from spare.methods.contract import Unlearned
from spare.methods.edits import WeightEdit
from spare.stages.sequential import plan_sequence, run_sequence, sequence_metrics

from tiny import tiny_settings

TARGETS = ["style:Ink_Outline", "style:Pencil_Hatch", "style:Neon_Outline"]
SEEN: list[dict] = []  # what the toy method saw at each call
KILL: set[str] = set()  # targets whose training is killed (KeyboardInterrupt), like Ctrl-C mid-step


@dataclass
class ShiftConfig:
    shift: float = 0.5
    seed: int = 0


@pytest.fixture(autouse=True)
def toy_method():
    """A method that adds ``shift`` to the UNet's output bias, recording the bias it started from."""
    from spare.methods import method_names

    method_names()  # the built-ins registered first, so that the snapshot restores them
    before = dict(registry._METHODS)

    @registry.register_method("seq_shift", ShiftConfig, "test: shift the output bias")
    def unlearn(pipe, data, cfg):
        SEEN.append(
            {
                "bias": pipe.unet.conv_out.bias.detach().clone(),
                "target": str(data.target),
                "retain_styles": set(data.retain["style"]),
            }
        )
        if str(data.target) in KILL:
            raise KeyboardInterrupt
        bias = pipe.unet.conv_out.bias.detach().cpu().clone() + cfg.shift
        return Unlearned.of(WeightEdit("seq_shift", {"conv_out.bias": bias}), pipe.unet)

    SEEN.clear()
    KILL.clear()
    yield
    registry._METHODS.clear()
    registry._METHODS.update(before)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    return tiny_settings(root)


def test_each_step_starts_from_the_previous_steps_weights_and_a_killed_sequence_resumes(settings):
    KILL.add(TARGETS[1])
    with pytest.raises(KeyboardInterrupt):  # killed in step 2's training
        run_sequence("seq_shift", TARGETS, ShiftConfig(), settings, "killed")
    steps = plan_sequence("seq_shift", TARGETS, ShiftConfig(), settings, "killed")
    assert steps[0].done() and not steps[1].done()
    SEEN.clear()
    KILL.clear()
    results = run_sequence("seq_shift", TARGETS, ShiftConfig(), settings, "killed")
    assert [s["target"] for s in SEEN] == TARGETS[1:]  # resumed at step 2: step 1 was not trained again
    assert all(s.done() for s in steps) and [r["step"] for r in results] == [1, 2, 3]

    SEEN.clear()
    run_sequence("seq_shift", TARGETS, ShiftConfig(shift=0.25), settings, "whole")
    base = SEEN[0]["bias"]
    for k, seen in enumerate(SEEN):  # on the weights: step k+1 saw the base bias shifted k times
        assert torch.allclose(seen["bias"], base + 0.25 * k, atol=1e-6), k
    # a method is never asked to keep what an earlier step removed
    assert "Ink_Outline" not in SEEN[1]["retain_styles"] and "Pencil_Hatch" in SEEN[0]["retain_styles"]
    assert {"Ink_Outline", "Pencil_Hatch"}.isdisjoint(SEEN[2]["retain_styles"])


def test_a_changed_step_redoes_every_step_after_it(settings):
    a = plan_sequence("seq_shift", TARGETS, ShiftConfig(), settings, "x")
    b = plan_sequence("seq_shift", [TARGETS[0], TARGETS[2], TARGETS[1]], ShiftConfig(), settings, "x")
    assert a[0].key == b[0].key and a[1].key != b[1].key and a[2].key != b[2].key


def test_ua_and_ra_by_hand():
    catalogue = get_catalogue("mini")
    acc_s = {s: 80.0 for s in catalogue.style_classes} | {"Ink_Outline": 10.0, "Pencil_Hatch": 30.0, "Chalkboard": 50.0}
    acc_o = {o: 90.0 for o in catalogue.objects} | {"Star": 60.0}
    removed = [catalogue.target("style:Ink_Outline"), catalogue.target("style:Pencil_Hatch")]
    m = sequence_metrics({"style_accuracy": acc_s, "object_accuracy": acc_o}, removed, catalogue)
    assert m["UA"] == {"style:Ink_Outline": 90.0, "style:Pencil_Hatch": 70.0}
    in_domain = (80.0 * 7 + 50.0) / 8  # the 8 benchmark styles not removed (Photo is not one)
    cross = (90.0 * 9 + 60.0) / 10
    assert m["RA_in_domain"] == pytest.approx(in_domain) and m["RA_cross_domain"] == pytest.approx(cross)
    assert m["RA"] == pytest.approx((in_domain + cross) / 2)


@pytest.mark.parametrize(
    "targets, needle",
    [
        (["style:Ink_Outline"], "at least two targets"),
        (["style:Ink_Outline", "style:Ink_Outline"], "each target once"),
        (["style:Ink_Outline", "object:Star"], "one kind"),
        (["style:Ink_Outlin", "style:Pencil_Hatch"], "Did you mean 'Ink_Outline'"),
    ],
)
def test_a_bad_sequence_is_a_one_line_error(settings, targets, needle):
    with pytest.raises(UserError, match=needle):
        run_sequence("seq_shift", targets, ShiftConfig(), settings, "bad")


def test_a_sequence_preset_runs_every_method_and_writes_its_tables(tmp_path, capsys):
    import pandas as pd

    from benchmarks.sequential import SequencePreset, run_sequences
    from spare.cli import main

    preset = SequencePreset(
        name="two",
        description="test",
        targets=tuple(TARGETS[:2]),
        methods=("seq_shift", "uce"),
        sampling=SamplingConfig(seeds=(188,), steps=2),
    )
    kw = dict(runs_dir=str(tmp_path / "runs"), results=tmp_path / "results", wandb_mode="off")
    assert run_sequences(preset, dry_run=True, **kw) == 0
    assert "[todo] [todo]" in capsys.readouterr().out
    assert run_sequences(preset, **kw) == 0
    steps = pd.read_csv(tmp_path / "results" / "two" / "steps.csv")
    assert list(steps["method"]) == ["seq_shift", "seq_shift", "uce", "uce"] and list(steps["step"]) == [1, 2, 1, 2]
    assert steps["UA T2"].isna().tolist() == [True, False, True, False]  # T2 is scored once it is removed
    from spare.provenance import cpu_info

    assert steps["machine"].str.startswith(cpu_info()["model"]).all()  # each step's time names its machine
    published = (tmp_path / "results" / "two" / "published.md").read_text()
    assert "published (UnlearnCanvas, SD-1.5)" in published  # uce's published row beside ours
    assert (tmp_path / "results" / "two" / "rebound.png").exists()
    # --tables-only: the tables again from the finished steps, nothing run (a step made unfinished stays so)
    (last,) = (tmp_path / "runs").rglob("seq_shift/two/2-*/metrics.json")
    last.rename(last.with_suffix(".aside"))
    SEEN.clear()
    assert run_sequences(preset, tables_only=True, **kw) == 1  # 1: a step is missing from the tables
    assert SEEN == [] and len(pd.read_csv(tmp_path / "results" / "two" / "steps.csv")) == 3
    last.with_suffix(".aside").rename(last)
    assert run_sequences(preset, tables_only=True, **kw) == 0
    assert SEEN == [] and pd.read_csv(tmp_path / "results" / "two" / "steps.csv").equals(steps)

    # every finished step is kept beside the tables; a fresh runs folder takes whole sequences back
    import shutil

    stored = tmp_path / "results" / "two" / "configs"
    assert sorted(p.parent.name for p in stored.glob("*/*/metrics.json")) == [
        "1-style-Ink_Outline",
        "1-style-Ink_Outline",
        "2-style-Pencil_Hatch",
        "2-style-Pencil_Hatch",
    ]
    shutil.rmtree(tmp_path / "runs")
    (stored / "uce" / "2-style-Pencil_Hatch" / "metrics.json").unlink()  # uce's sequence stored in part only
    capsys.readouterr()
    assert run_sequences(preset, restore=True, dry_run=True, **kw) == 0
    assert "would restore 1 finished sequences from" in capsys.readouterr().out  # uce's is not whole
    assert not (tmp_path / "runs").exists()
    SEEN.clear()
    assert run_sequences(preset, methods=["seq_shift"], restore=True, **kw) == 0
    assert "restored 1 finished sequences" in capsys.readouterr().out and SEEN == []  # not trained again
    again = pd.read_csv(tmp_path / "results" / "two" / "steps.csv")
    pd.testing.assert_frame_equal(again, steps[steps["method"] == "seq_shift"])

    # stored by a checkout at another path (keys hash the model's path, inside the checkout): restored
    # with this checkout's paths and keys instead of run again
    from benchmarks import sequential
    from benchmarks.presets import world_preset
    from benchmarks.runner.restore import relocate
    from spare.paths import PROJECT_ROOT

    here = sequential.settings_for(preset, world_preset(preset.benchmark), kw["runs_dir"])
    there = relocate(here, PROJECT_ROOT, "/elsewhere/clone")
    assert there.model.startswith("/elsewhere/clone/") and here.model != there.model
    cfg = sequential.method_config(preset, "seq_shift")
    for step in plan_sequence("seq_shift", list(preset.targets), cfg, there, "two"):
        for name in ("config.json", "metrics.json"):
            path = stored / "seq_shift" / step.out.name / name
            data = json.loads(path.read_text()) | {"config_key": step.key}
            if "settings" in data:
                data["settings"] = data["settings"] | {"model": there.model, "classifiers": there.classifiers}
            path.write_text(json.dumps(data))
    shutil.rmtree(tmp_path / "runs")
    SEEN.clear()
    capsys.readouterr()
    assert run_sequences(preset, methods=["seq_shift"], restore=True, **kw) == 0
    assert "restored 1 finished sequences" in capsys.readouterr().out and SEEN == []  # not trained again
    for step in plan_sequence("seq_shift", list(preset.targets), cfg, here, "two"):
        assert step.done()  # under this checkout's key
        assert json.loads((step.out / "config.json").read_text())["settings"]["model"] == here.model
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / "two" / "steps.csv"), again)
    assert main(["sequential", "--preset", "mini-sequentail"]) == 2
    assert "valid: mini-sequential" in capsys.readouterr().err


def test_processes_take_whole_unfinished_methods(tmp_path, monkeypatch, capsys):
    """Under ``accelerate launch`` each process runs whole sequences: here the second of two
    processes, which runs the second unfinished method's sequence first, then helps with the first
    process's method, unless that process has claimed it."""
    import benchmarks.sequential as sequential
    from benchmarks.sequential import SequencePreset, run_sequences, shard_methods

    assert shard_methods(["a", "b", "c", "d", "e"], 0, 2) == ["a", "c", "e"]
    assert shard_methods(["a", "b", "c", "d", "e"], 1, 2) == ["b", "d"]

    class SecondOfTwo:
        rank, world, main = 1, 2, False

        def barrier(self):
            pass

    ran = []
    monkeypatch.setattr(sequential, "Processes", SecondOfTwo)
    monkeypatch.setattr(sequential, "run_sequence", lambda method, targets, *_: ran.append((method, tuple(targets))))
    preset = SequencePreset(
        name="two", description="test", targets=tuple(TARGETS[:2]), methods=("seq_shift", "uce"),
        sampling=SamplingConfig(seeds=(188,), steps=2),
    )  # fmt: skip
    kw = dict(runs_dir=str(tmp_path / "runs"), results=tmp_path / "results", wandb_mode="off")
    from benchmarks.presets import world_preset
    from spare.io import claim
    from spare.stages.sequential import sequence_dir

    folder = sequence_dir(
        sequential.settings_for(preset, world_preset(preset.benchmark), kw["runs_dir"]), "seq_shift", "two"
    )
    with claim(folder) as held:  # the first process is at it
        assert held
        assert run_sequences(preset, **kw) == 0
    assert ran == [("uce", tuple(TARGETS[:2]))]  # seq_shift is the first process's, and being made
    ran.clear()
    assert run_sequences(preset, **kw) == 0  # nobody at seq_shift (the stand-in finishes nothing): it helps
    assert ran == [("uce", tuple(TARGETS[:2])), ("seq_shift", tuple(TARGETS[:2]))]


def test_a_sequence_keeps_the_rule_default_when_a_tuning_choice_appears(tmp_path, monkeypatch):
    """mini-sequential runs every method at the world's rule: a chosen.yaml written later for the
    main table (``make tuning``) must not change a sequence's configs, or every stored sequence
    would become stale; a sequence preset that names a choice gets it."""
    import dataclasses

    from benchmarks import presets
    from benchmarks.sequential import get_sequence_preset, method_config

    chosen = tmp_path / "chosen.yaml"
    chosen.write_text("seq_shift: [shift=2.0]\nesd: ['optim.lr*=3']\n")
    full = presets.PRESETS["mini-full"]
    monkeypatch.setitem(presets.PRESETS, "mini-full", dataclasses.replace(full, tuned=str(chosen)))
    assert presets.method_defaults(presets.world_preset("mini"), "seq_shift").shift == 2.0  # mini-full takes it
    preset = get_sequence_preset("mini-sequential")
    assert preset.tuned == ""
    assert method_config(preset, "seq_shift").shift == 0.5
    rule = presets.method_defaults(dataclasses.replace(full, tuned=""), "esd")
    assert method_config(preset, "esd").optim.lr == rule.optim.lr
    preset.tuned = str(chosen)
    assert method_config(preset, "seq_shift").shift == 2.0
    assert method_config(preset, "esd").optim.lr == pytest.approx(3 * rule.optim.lr)
