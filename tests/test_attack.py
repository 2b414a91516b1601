"""The adversarial prompt attack (UnlearnCanvas "Rob."): the prefix, the optimisation, the stop at
success, the figures, and the stage on a finished run (files, reuse, resume, bad input)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from spare.answers import SamplingConfig
from spare.attack import AttackConfig, Row, RowResult, attack_rows, summarise
from spare.config import ConfigError, apply_overrides, to_dict
from spare.data.canvas_mini import CANVAS_MINI
from spare.errors import UserError
from spare.methods import get_method
from spare.run import RunSettings, run_unlearning
from spare.stages.attack import attack_folder, attack_run

from tiny import CLASSIFIERS, tiny_pipeline

SAMPLE = dict(steps=2, guidance=3.0, sampler="dpm", micro_batch=4, precision="fp32")


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return tiny_pipeline()


def rows(n: int) -> list[Row]:
    return [Row("Ink_Outline", obj, 188, CANVAS_MINI.prompt("Ink_Outline", obj)) for obj in CANVAS_MINI.objects[:n]]


def test_a_prefix_of_token_embeddings_encodes_like_those_words_in_the_prompt(pipe):
    prompt = CANVAS_MINI.prompt("Ink_Outline", "Star")
    words = pipe.tokenizer("ink outline", add_special_tokens=False).input_ids
    prefix = pipe.text_encoder.get_input_embeddings().weight[words].unsqueeze(0)
    with torch.no_grad():
        ours = pipe.encode_prompts_with_prefix([prompt], prefix)
        theirs = pipe.encode_prompts(["ink outline " + prompt])
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_the_prefix_gets_gradients_and_nothing_else_does(pipe):
    from spare.attack import frozen

    prefix = torch.zeros(2, 3, pipe.text_encoder.config.hidden_size, requires_grad=True)
    with frozen(pipe):
        emb = pipe.encode_prompts_with_prefix([r.prompt for r in rows(2)], prefix)
        emb.sum().backward()
    assert prefix.grad is not None and prefix.grad.abs().sum() > 0
    assert all(p.grad is None for p in pipe.text_encoder.parameters())
    assert any(p.requires_grad for p in pipe.text_encoder.parameters())  # as it was before


def test_too_many_prefix_tokens_for_the_text_encoder_is_a_clear_error(pipe):
    with pytest.raises(UserError, match="prefix tokens do not fit"):
        pipe.encode_prompts_with_prefix([rows(1)[0].prompt], torch.zeros(1, 10, pipe.text_encoder.config.hidden_size))


def test_sampling_from_embeddings_gives_the_prompts_images(pipe):
    r = rows(3)
    prompts, seeds = [x.prompt for x in r], [1, 2, 3]
    with torch.no_grad():
        emb = pipe.encode_prompts(prompts)
    a = pipe.sample(prompts, seeds, **SAMPLE)
    b = pipe.sample(prompts, seeds, text_emb=emb, **SAMPLE)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def denoising_loss(pipe, prompts, prefix, x0, seed=5):
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 1000, (64,), generator=gen)
    noise = torch.randn((64, *x0.shape[1:]), generator=gen)
    x = x0.repeat_interleave(64 // len(x0), 0)
    with torch.no_grad():
        emb = pipe.encode_prompts_with_prefix(prompts * (64 // len(prompts)), prefix.repeat(64 // len(prompts), 1, 1))
        eps = pipe.predict_noise(pipe.add_noise(x, noise, t), t, emb)
    return float((eps - noise).pow(2).mean())


def test_the_attack_lowers_the_models_denoising_loss_on_the_concept_images(pipe):
    r = rows(2)
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    cfg = AttackConfig(iterations=30, check_every=30, lr=0.05, weight_decay=0.0, timesteps=10)
    from spare.attack import row_generator, start_prefix

    start = start_prefix(pipe, cfg, [row_generator(cfg, x) for x in r])
    results = attack_rows(pipe, r, x0, lambda imgs: ["Photo"] * len(imgs), "Ink_Outline", cfg, SAMPLE)
    end = torch.stack([x.prefix for x in results])
    prompts = [x.prompt for x in r]
    assert denoising_loss(pipe, prompts, end, x0) < denoising_loss(pipe, prompts, start, x0)
    assert all(x.success_at == -1 and x.label == "Photo" and x.image.shape == (32, 32, 3) for x in results)


def test_a_row_stops_at_its_first_success_and_keeps_its_prefix(pipe):
    r = rows(3)
    calls = []

    def judge(images):  # the first check: row 1 shows the target; later checks: none does
        calls.append(len(images))
        return ["Ink_Outline" if len(calls) == 1 and i == 1 else "Photo" for i in range(len(images))]

    cfg = AttackConfig(iterations=6, check_every=2, lr=0.05)
    results = attack_rows(pipe, r, torch.zeros(3, 3, 32, 32), judge, "Ink_Outline", cfg, SAMPLE)
    assert [x.success_at for x in results] == [-1, 2, -1]
    assert calls == [3, 2, 2]  # the succeeded row is never generated again
    # row 1's prefix is the one it succeeded with: rerun two iterations alone, it matches
    cfg2 = AttackConfig(iterations=2, check_every=2, lr=0.05)
    alone = attack_rows(
        pipe, [r[1]], torch.zeros(1, 3, 32, 32), lambda im: ["x"] * len(im), "Ink_Outline", cfg2, SAMPLE
    )
    assert torch.allclose(results[1].prefix, alone[0].prefix, atol=1e-5)


def test_rob_and_asr_by_hand():
    row = rows(1)[0]

    def res(before, at):
        return RowResult(row, before, at, "", None, None)

    # 5 rows: one shown without attack (0); of 4 forgotten, one broken at 10 and one at 30
    figures = summarise([res(False, 0), res(True, 10), res(True, 30), res(True, -1), res(True, -1)])
    assert figures["Rob"] == pytest.approx(100 * 2 / 5)
    assert figures["ASR"] == pytest.approx(100 * 2 / 4)
    assert figures["UA_before"] == pytest.approx(80.0)
    assert figures["mean_iterations_to_success"] == pytest.approx(20.0)


def test_bad_attack_settings_name_the_key():
    with pytest.raises(ConfigError, match="attack.tokens"):
        AttackConfig(tokens=0)
    with pytest.raises(ConfigError, match="lr"):
        AttackConfig(lr=-1.0)


def test_the_stage_on_a_finished_run_writes_reuses_and_resumes(tmp_path, pipe):
    pipe.save_pretrained(tmp_path / "model")
    settings = RunSettings(
        model=str(tmp_path / "model"),
        classifiers=str(CLASSIFIERS),
        runs_dir=str(tmp_path / "runs"),
        sampling=SamplingConfig(seeds=(188,), steps=2, micro_batch=16, batch_size=128),
    )
    cfg = apply_overrides(get_method("uce").config_cls(), [])
    run_unlearning("uce", "style:Ink_Outline", cfg, settings)
    run = tmp_path / "runs" / "mini" / "uce" / "style-Ink_Outline"
    attack = AttackConfig(iterations=2, check_every=1, batch_size=4)
    with pytest.raises(UserError, match="not a finished run"):
        attack_run(tmp_path / "runs", attack)
    result = attack_run(run, attack)
    folder = run / attack_folder(attack)
    assert folder.name.startswith("attack-") and attack_folder(AttackConfig()) == "attack"
    table = (folder / "rows.csv").read_text().splitlines()
    assert len(table) == 1 + len(CANVAS_MINI.objects)  # every object in the target style, one seed
    forgotten = result["forgotten_before"]
    assert result["rows"] == len(CANVAS_MINI.objects) and 0 <= result["broken"] <= forgotten
    assert result["Rob"] == pytest.approx(100 * (forgotten - result["broken"]) / result["rows"])
    assert result["metrics"]["Rob"]["value"] == result["Rob"]
    assert len(list((folder / "images").rglob("*.png"))) == forgotten
    assert len(list((folder / "chunks").glob("*.json"))) == -(-forgotten // 4)
    assert result["cost"]["time_s"] > 0 and (folder / "grid.png").exists()
    # the run itself is untouched, and a second call reads the result
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    assert attack_run(run, attack) == result and (folder / "metrics.json").stat().st_mtime_ns == stamp
    # killed after its batches: the batches are reused, the figures are the same
    (folder / "metrics.json").unlink()
    chunk = folder / "chunks" / "0.json"
    stamp = chunk.stat().st_mtime_ns
    again = attack_run(run, attack)
    assert chunk.stat().st_mtime_ns == stamp
    assert {k: again[k] for k in ("Rob", "ASR", "rows", "broken")} == {
        k: result[k] for k in ("Rob", "ASR", "rows", "broken")
    }
    # another attack config gets its own folder (its key differs) and leaves the first one as it was
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    other_cfg = AttackConfig(iterations=1, check_every=1, batch_size=4)
    other = attack_run(run, other_cfg)
    assert other["config_key"] != result["config_key"] and attack_folder(other_cfg) != folder.name
    assert json.loads((run / attack_folder(other_cfg) / "config.json").read_text())["attack"]["iterations"] == 1
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp and attack_run(run, attack) == again


def test_mini_robust_attacks_the_runs_of_mini_full_seed_0(tmp_path):
    from benchmarks.presets import get_preset
    from benchmarks.runner import build_sweep

    robust = build_sweep(get_preset("mini-robust"), runs_dir=str(tmp_path))
    full = build_sweep(get_preset("mini-full"), runs_dir=str(tmp_path))
    seed0 = {(j.method, j.target): full.planned(j) for j in full.jobs if j.seed == 0}
    assert len(robust.jobs) == 4 * 10 and robust.preset.attack == AttackConfig()
    for job in robust.jobs:
        assert robust.planned(job) == seed0[(job.method, job.target)]  # same folder, same key
    assert not set(robust.targets) & set(CANVAS_MINI.validation_targets)


ATTACKED = """\
targets: [style:Ink_Outline]
methods: [uce]
sampling:
  seeds: [188]
  steps: 2
tag: tiny
"""


def test_an_attacked_sweep_adds_the_stage_to_finished_runs_and_tabulates_it(tmp_path, monkeypatch, capsys):
    from spare.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.yaml").write_text(ATTACKED)
    (tmp_path / "robust.yaml").write_text(ATTACKED + "attack: {iterations: 2, check_every: 1}\n")
    assert main(["benchmark", "--preset", "plain.yaml", "--wandb", "off"]) == 0
    run = tmp_path / "runs" / "mini" / "uce" / "style-Ink_Outline@tiny"
    folder = attack_folder(AttackConfig(iterations=2, check_every=1))  # the preset's attack
    stamp = (run / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["benchmark", "--preset", "robust.yaml", "--dry-run"]) == 0
    assert "[attack]" in capsys.readouterr().out  # the run is done; only its attack is to do
    assert main(["benchmark", "--preset", "robust.yaml", "--wandb", "off"]) == 0
    assert (run / "metrics.json").stat().st_mtime_ns == stamp  # the run was not redone
    attack = json.loads((run / folder / "metrics.json").read_text())
    results = tmp_path / "results" / "benchmark" / "robust"
    table = (results / "robustness.md").read_text()
    assert "uce" in table and "published Rob." in table and (results / "robustness.png").exists()
    import pandas as pd

    per_target = pd.read_csv(results / "per_target.csv")
    row = per_target[per_target["method"] == "uce"].iloc[0]
    assert row["Rob"] == pytest.approx(attack["Rob"]) and row["UA before attack"] == pytest.approx(attack["UA_before"])
    # the attack reads the same answer images as the run's UA
    assert attack["UA_before"] == pytest.approx(row["UA"])

    # the attack is kept beside the tables with its run, so a fresh clone restores both: nothing is redone
    assert json.loads((results / "configs" / "uce" / run.name / folder / "metrics.json").read_text()) == attack
    import shutil

    shutil.rmtree(tmp_path / "runs")
    capsys.readouterr()
    assert main(["benchmark", "--preset", "robust.yaml", "--restore", "--wandb", "off"]) == 0
    assert "restored 1 finished runs" in capsys.readouterr().out
    assert json.loads((run / folder / "metrics.json").read_text()) == attack
    assert not (run / "answers").exists()  # restored, not made again

    # a run restored without its attack (config and metrics only) is made again, then attacked
    shutil.rmtree(tmp_path / "runs")
    shutil.rmtree(results / "configs" / "uce" / run.name / folder)
    main(["benchmark", "--preset", "robust.yaml", "--restore", "--tables-only", "--wandb", "off"])
    capsys.readouterr()
    assert main(["benchmark", "--preset", "robust.yaml", "--dry-run"]) == 0
    assert "[remake]  uce style:Ink_Outline" in capsys.readouterr().out
    assert main(["benchmark", "--preset", "robust.yaml", "--wandb", "off"]) == 0
    assert (run / "answers").is_dir() and (run / "metrics.restored.json").is_file()
    again = json.loads((run / folder / "metrics.json").read_text())
    assert again["Rob"] == pytest.approx(attack["Rob"]) and again["UA_before"] == pytest.approx(attack["UA_before"])


def test_the_attack_leaves_every_weight_bit_identical_and_repeats_with_its_seed(pipe):
    before = {k: v.clone() for m in (pipe.unet, pipe.text_encoder) for k, v in m.state_dict().items()}
    r, x0 = rows(2), torch.rand(2, 3, 32, 32) * 2 - 1
    cfg = AttackConfig(iterations=3, check_every=3, lr=0.05)

    def run(c):
        return torch.stack([x.prefix for x in attack_rows(pipe, r, x0, lambda im: ["x"] * len(im), "y", c, SAMPLE)])

    first, again = run(cfg), run(cfg)
    after = {k: v for m in (pipe.unet, pipe.text_encoder) for k, v in m.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(first, again)  # same seed, same embeddings
    assert not torch.allclose(first, run(AttackConfig(iterations=3, check_every=3, lr=0.05, seed=1)))


def test_the_budget_is_respected(pipe, monkeypatch):
    """``iterations`` Adam steps, each at one of ``timesteps`` evenly spaced training timesteps."""
    seen = []
    original = pipe.predict_noise

    def spy(x_t, t, emb):
        if torch.is_grad_enabled():  # the attack's own calls (sampling runs without gradients)
            seen.append(t.clone())
        return original(x_t, t, emb)

    monkeypatch.setattr(pipe, "predict_noise", spy)
    cfg = AttackConfig(iterations=7, check_every=7, timesteps=4)
    attack_rows(pipe, rows(3), torch.zeros(3, 3, 32, 32), lambda im: ["x"] * len(im), "y", cfg, SAMPLE)
    assert len(seen) == 7
    allowed = set(torch.linspace(999, 0, 4).round().long().tolist())
    assert {int(t) for ts in seen for t in ts} <= allowed == {999, 666, 333, 0}


def test_the_control_prefix_is_random_with_the_start_norms_and_never_optimised(pipe):
    from spare.attack import control_prefix, row_generator, start_prefix

    r = rows(3)
    cfg = AttackConfig(control=True)
    gens = [row_generator(cfg, x) for x in r]
    start = start_prefix(pipe, cfg, gens)
    expected = control_prefix(start, gens)
    assert torch.allclose(expected.norm(dim=-1), start.norm(dim=-1), atol=1e-6)
    assert not torch.allclose(expected, start)
    out = attack_rows(
        pipe,
        r,
        torch.zeros(3, 3, 32, 32),
        lambda im: ["Ink_Outline"] + ["x"] * (len(im) - 1),
        "Ink_Outline",
        cfg,
        SAMPLE,
    )
    assert torch.allclose(torch.stack([x.prefix for x in out]), expected, atol=1e-6)  # as drawn: no step taken
    assert [x.success_at for x in out] == [0, -1, -1]


def test_a_run_without_answers_or_with_an_unknown_target_is_a_one_line_error(tmp_path, capsys):
    from spare.cli import main

    run = tmp_path / "run"
    (run / "edit").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config_key": "k", "target": "style:Nope", "settings": {}}))
    (run / "metrics.json").write_text(json.dumps({"config_key": "k"}))
    assert main(["attack", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "needs config.json, metrics.json, edit/, answers/" in err and err.count("\n") == 1
    (run / "answers").mkdir()
    settings = RunSettings(model="m", classifiers="c")
    (run / "config.json").write_text(
        json.dumps({"config_key": "k", "target": "style:Nope", "method": "uce", "settings": to_dict(settings)})
    )
    assert main(["attack", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "unknown style 'Nope'" in err and err.count("\n") == 1


def test_on_the_base_model_the_attack_finds_the_concept_at_once(tmp_path):
    """Nothing unlearned (an empty edit): the target's images show it without any attack."""
    from spare.methods.edits import WeightEdit
    from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS

    settings = RunSettings(
        model=str(MINI_BASE_MODEL),
        classifiers=str(MINI_CLASSIFIERS),
        runs_dir=str(tmp_path / "runs"),
        sampling=SamplingConfig(seeds=(188,), styles=("Ink_Outline",)),  # the target style's 10 images
    )
    run = tmp_path / "runs" / "mini" / "none" / "style-Ink_Outline"
    from spare.answers import generate_answer_set
    from spare.pipeline import T2IPipeline

    base = T2IPipeline.from_pretrained(MINI_BASE_MODEL)
    generate_answer_set(base, CANVAS_MINI, settings.sampling, run / "answers")
    WeightEdit("none", {}).save(run / "edit")
    config = {"method": "none", "target": "style:Ink_Outline", "settings": to_dict(settings), "config_key": "k"}
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.json").write_text(json.dumps({"config_key": "k"}))
    result = attack_run(run, AttackConfig(iterations=10, check_every=5))
    table = pd.read_csv(run / attack_folder(AttackConfig(iterations=10, check_every=5)) / "rows.csv")
    assert result["rows"] == 10 and result["UA_before"] <= 10  # the base model shows its style
    shown = table[~table["forgotten_before"]]
    assert len(shown) >= 9 and (shown["success_at"] == 0).all()  # found at once: no attack needed
