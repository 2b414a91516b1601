"""A number the harness reuses is the number it would compute: content-keyed stages, damaged files."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from benchmarks.tables import read_metrics
from spare.io import content_fingerprint
from spare.methods import get_method
from spare.run import RunSettings, plan_run, run_unlearning

from tiny import CLASSIFIERS, tiny_settings


def _settings(tmp_path: Path, classifiers: Path) -> RunSettings:
    return tiny_settings(tmp_path, classifiers=str(classifiers), tag="rel")


def _shift_head(folder: Path) -> None:
    """The style head's rows rolled by one: the same file names and shapes, other predictions."""
    path = folder / "style" / "model.safetensors"
    state = load_file(path)
    state = {k: torch.roll(v, 1, dims=0) if k.startswith("fc.") else v for k, v in state.items()}
    save_file(state, path)


def test_content_fingerprint_follows_the_bytes_not_the_path(tmp_path):
    clf = tmp_path / "clf"
    shutil.copytree(CLASSIFIERS, clf)
    first = content_fingerprint(clf)
    assert first == content_fingerprint(CLASSIFIERS)  # same contents elsewhere: same fingerprint
    (clf / "notes.png").write_bytes(b"not a weight file")  # plots and logs beside the weights do not count
    assert content_fingerprint(clf) == first
    _shift_head(clf)
    assert content_fingerprint(clf) not in (first, None)
    assert content_fingerprint(None) is None and content_fingerprint(tmp_path / "missing") is None


def test_a_classifier_replaced_at_the_same_path_is_recomputed_never_served(tmp_path):
    clf = tmp_path / "clf"
    shutil.copytree(CLASSIFIERS, clf)
    uce = get_method("uce").config_cls()
    before = run_unlearning("uce", "style:Ink_Outline", uce, _settings(tmp_path, clf))
    metrics = tmp_path / "runs/mini/uce/style-Ink_Outline@rel/metrics.json"
    stamp = metrics.stat().st_mtime_ns
    _shift_head(clf)
    settings = _settings(tmp_path, clf)
    assert not plan_run("uce", "style:Ink_Outline", uce, settings).done()  # the stored run is stale now
    after = run_unlearning("uce", "style:Ink_Outline", uce, settings)
    assert metrics.stat().st_mtime_ns != stamp and after["config_key"] != before["config_key"]
    # the scores are those the new classifier gives the same answers, not the stored ones
    from spare.cli import main

    answers = metrics.parent / "answers"
    assert main(["evaluate", "--images", str(answers), "--target", "style:Ink_Outline", "--classifiers", str(clf),
                 "--out", str(tmp_path / "fresh.json")]) == 0  # fmt: skip
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert {m: after["metrics"][m] for m in ("UA", "IRA", "CRA")} == {
        m: fresh["metrics"][m] for m in ("UA", "IRA", "CRA")
    }
    assert after["style_accuracy"] == fresh["style_accuracy"] != before["style_accuracy"]


def test_damaged_stage_files_count_as_not_done_and_are_named(tmp_path, caplog):
    settings = _settings(tmp_path, CLASSIFIERS)
    uce = get_method("uce").config_cls()
    planned = plan_run("uce", "object:Star", uce, settings)
    first = run_unlearning("uce", "object:Star", uce, settings)
    report = planned.out / "report.json"
    for damage in ("{not json", "[]", "\udcff"):
        planned.metrics_path.write_text(damage, errors="surrogateescape")
        with caplog.at_level(logging.WARNING):
            assert not planned.done() and read_metrics(planned.metrics_path) is None
        assert f"{planned.metrics_path} is damaged" in caplog.text
        caplog.clear()
    report.write_text("[1, 2")  # a damaged report: the edit is made again rather than trusted
    again = run_unlearning("uce", "object:Star", uce, settings)
    assert json.loads(report.read_text())["config_key"] == first["config_key"] == again["config_key"]
    assert again["metrics"]["UA"] == first["metrics"]["UA"] and planned.done()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["unlearn", "--target", "style:Chalkboard", "--sample-steps", "0"], "--sample-steps: must be >= 1, got 0"),
        (["unlearn", "--target", "style:Chalkboard", "--guidance", "-1"], "--guidance: must be >= 0.0, got -1"),
        (["unlearn", "--target", "style:Chalkboard", "optim.steps=0"], "optim.steps must be >= 1, got 0"),
        (["unlearn", "--target", "style:Chalkboard", "optim.steps=-5"], "optim.steps must be >= 1, got -5"),
        (["unlearn", "--target", "style:Chalkboard", "q=1.5"], "q must be in (0, 1], got 1.5"),
        (["unlearn", "--target", "style:Chalkboard", "--seeds"], "--seeds: expected at least one argument"),
        (["benchmark", "--limit", "0"], "--limit: must be >= 1, got 0"),
        (["benchmark", "--limit", "-1"], "--limit: must be >= 1, got -1"),
        (["benchmark", "--preset", "BUDGET"], "budget must be > 0, got -1.0"),
        (["data", "build", "--n-per-pair", "0"], "--n-per-pair: must be >= 1, got 0"),
        (["data", "preview", "--size", "0"], "--size: must be >= 1, got 0"),
        (["data", "preview", "--scale", "-1"], "--scale: must be >= 1, got -1"),
        (["classifiers", "style.epochs=-1"], "style.epochs must be >= 1, got -1"),
        (["base-model", "steps=0"], "steps must be >= 1, got 0"),
    ],
)
def test_impossible_settings_are_one_line_before_any_work(argv, needle, tmp_path, monkeypatch, capsys):
    from spare.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "budget.yaml").write_text("targets: [style:Ink_Outline]\nbudget: -1\n")
    argv = [str(tmp_path / "budget.yaml") if a == "BUDGET" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's answer to a bad argument
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir()) or sorted(p.name for p in tmp_path.iterdir()) == ["budget.yaml"]


def test_two_identical_runs_at_once_do_the_work_once(tmp_path, monkeypatch, caplog):
    import threading

    import spare.run as run

    settings = _settings(tmp_path, CLASSIFIERS)
    uce = get_method("uce").config_cls()
    made = []
    real = run.generate_answer_set
    monkeypatch.setattr(run, "generate_answer_set", lambda *a, **k: made.append(1) or real(*a, **k))
    results = []
    with caplog.at_level(logging.WARNING):
        threads = [
            threading.Thread(target=lambda: results.append(run_unlearning("uce", "object:Star", uce, settings)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 2 and results[0] == results[1] and made == [1]
    assert "is being made by process" in caplog.text  # the second said who held the folder, and waited


def test_a_run_that_fails_before_any_work_leaves_no_folder(tmp_path):
    settings = _settings(tmp_path, tmp_path / "no-classifiers")
    out = plan_run("uce", "object:Star", get_method("uce").config_cls(), settings).out
    with pytest.raises(Exception, match="no-classifiers"):
        run_unlearning("uce", "object:Star", get_method("uce").config_cls(), settings)
    assert not out.exists()


def _unlearn_cmd(runs: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "spare", "unlearn", "--method", "spare", "--target", "style:Ink_Outline",
            "optim.steps=60", "--seeds", "188"]  # fmt: skip


def _run_killed_when(cmd, cwd: Path, ready, timeout: float = 600) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``ready()`` holds (nothing runs on the way out)."""
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before the stage it was to be killed in"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_in_each_stage_resumes_to_the_same_metrics(tmp_path):
    """SIGKILL while training (no edit yet) and while writing the answer set (some images there):
    each rerun finishes, and its metrics are an uninterrupted run's."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    subprocess.run(_unlearn_cmd(tmp_path), cwd=tmp_path / "whole", env=env, check=True, capture_output=True)
    folder = tmp_path / "killed" / "runs" / "mini" / "spare" / "style-Ink_Outline"
    # 1. training: the run folder exists, its edit does not
    _run_killed_when(_unlearn_cmd(tmp_path), tmp_path / "killed", lambda: (folder / "config.json").exists())
    assert not (folder / "edit").exists()
    # 2. the answer set: the edit is saved and some images are written
    _run_killed_when(_unlearn_cmd(tmp_path), tmp_path / "killed", lambda: len(list(folder.rglob("*.png"))) >= 3)
    made = len(list((folder / "answers").rglob("*.png")))
    assert (folder / "edit").is_dir() and 3 <= made < 110 and not (folder / "metrics.json").exists()
    # 3. the rerun finishes what is missing
    subprocess.run(_unlearn_cmd(tmp_path), cwd=tmp_path / "killed", env=env, check=True, capture_output=True)
    whole = json.loads(
        (tmp_path / "whole" / "runs" / "mini" / "spare" / "style-Ink_Outline" / "metrics.json").read_text()
    )
    resumed = json.loads((folder / "metrics.json").read_text())
    quality = ("UA", "IRA", "CRA", "FID(cls)")
    assert {k: resumed["metrics"][k]["value"] for k in quality} == {k: whole["metrics"][k]["value"] for k in quality}
    assert resumed["stages"]["answers_generated"] == 110 - made  # only the missing images were sampled


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["classifiers", "--config", "list.yaml"], "config file 'list.yaml' must hold a mapping of keys, not a list"),
        (["base-model", "--config", "bad.yaml"], "config file 'bad.yaml' is not valid YAML (line 2)"),
        (
            ["evaluate", "--images", "answers", "--target", "style:Ink_Outline"],
            "answer image 'answers/Ink_Outline/Star/188.png' cannot be read",
        ),
    ],
)
def test_damaged_inputs_are_one_line_errors(argv, needle, tmp_path, monkeypatch, capsys):
    from spare.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    (tmp_path / "answers" / "Ink_Outline" / "Star").mkdir(parents=True)
    (tmp_path / "answers" / "Ink_Outline" / "Star" / "188.png").write_bytes(b"not a png")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
