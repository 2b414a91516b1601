from spare.cli import main


def test_concepts_lists_the_catalogue(capsys):
    assert main(["concepts", "--benchmark", "unlearncanvas"]) == 0
    out = capsys.readouterr().out
    assert "50 benchmark styles + Photo, 20 objects" in out and "Van_Gogh" in out


def test_unknown_target_is_a_one_line_error(capsys):
    assert main(["data", "split", "--target", "style:Neon Outlne"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Did you mean 'Neon_Outline'" in err and "Chalkboard" in err


def test_unknown_benchmark_is_a_one_line_error(capsys):
    assert main(["concepts", "--benchmark", "imagenet"]) == 2
    assert "Valid catalogues: unlearncanvas, mini" in capsys.readouterr().err


def test_split_prints_forget_and_retain(capsys):
    assert main(["data", "split", "--target", "object:star", "--surrogate", "Disc"]) == 0
    out = capsys.readouterr().out
    assert "target object:Star, surrogate object:Disc" in out
    assert "'A Star image in Ink Outline style.' -> 'A Disc image in Ink Outline style.'" in out


def test_preview_writes_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "preview", "--out", str(out), "--scale", "1"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_single_run_follows_its_worlds_protocol(tmp_path, monkeypatch):
    """`spare unlearn --benchmark unlearncanvas` samples as the unlearncanvas preset does (100 DDIM
    steps) and trains SPARE at the authors' lr, not canvas-mini's; canvas-mini single runs follow
    mini-full, its tuning choice included; an explicit flag still wins."""
    import pytest
    import yaml

    import spare.run
    from benchmarks.presets import method_defaults, tuned_path, world_preset
    from spare.baselines import LR_FACTOR
    from spare.cli import main
    from spare.config import apply_overrides
    from spare.methods.spare_method import SPAREConfig

    seen = []

    def fake(method, target, cfg, settings, evaluate=True):
        seen.append((cfg, settings))
        return {"time_s": 0.0, "storage_bytes": 0}

    monkeypatch.setattr(spare.run, "run_unlearning", fake)
    monkeypatch.setattr("spare.validate.validate_inputs", lambda *a, **k: None)  # the folders below are empty
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir(), (tmp_path / "c").mkdir()
    argv = [
        "unlearn",
        "--target",
        "style:Van_Gogh",
        "--benchmark",
        "unlearncanvas",
        "--model",
        "m",
        "--classifiers",
        "c",
    ]
    assert main([*argv, "--no-eval"]) == 0
    cfg, settings = seen[-1]
    world = world_preset("unlearncanvas")
    assert settings.sampling.steps == 100 and settings.sampling.sampler == "ddim" and settings.sampling.guidance == 9.0
    assert cfg.optim.lr == method_defaults(world, "spare").optim.lr == 3e-3 / LR_FACTOR
    assert main([*argv, "--no-eval", "--sample-steps", "7"]) == 0 and seen[-1][1].sampling.steps == 7
    assert main(["unlearn", "--target", "style:Ink_Outline", "--no-eval"]) == 0
    cfg, settings = seen[-1]
    assert settings.sampling.steps == 25 and settings.sampling.seeds == (188, 288, 588, 688, 888)
    # canvas-mini's protocol is mini-full's, its tuning choice (results/tuning/chosen.yaml) included
    assert cfg == method_defaults(world_preset("mini"), "spare") and cfg.optim.steps == 200
    tuned = yaml.safe_load(tuned_path(world_preset("mini").tuned).read_text())["spare"]
    assert cfg.optim.lr == pytest.approx(apply_overrides(SPAREConfig(), tuned).optim.lr)
    # --seeds takes every word after it: an override there is handed back to the overrides
    assert main(["unlearn", "--target", "style:Ink_Outline", "--no-eval", "--seeds", "1000", "1001", "q=0.25"]) == 0
    cfg, settings = seen[-1]
    assert settings.sampling.seeds == (1000, 1001) and cfg.q == 0.25
    assert main(["unlearn", "--target", "style:Ink_Outline", "--no-eval", "--seeds", "1000", "fast"]) == 2
