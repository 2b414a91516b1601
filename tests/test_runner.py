"""The experiment runner: presets expand into the right jobs, bad names fail in one line, a killed
sweep resumes to the same tables, and two accelerate processes write the same metrics as one."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import tables
from benchmarks.ablations import get_ablation
from benchmarks.presets import get_preset
from benchmarks.runner import build_sweep, run_sweep
from spare.cli import main
from spare.config import to_dict
from spare.errors import UserError

# Two targets x two methods, the whole answer grid at one seed and 2 sampler steps: about 30 s.
TINY = """\
description: runner test sweep
targets: [style:Ink_Outline, object:Star]
methods: [uce, ca]
overrides:
  ca: [optim.steps=2, batch_size=2]
sampling:
  seeds: [188]
  steps: 2
tag: tiny
"""
QUALITY = ["method", "target", "UA", "IRA", "CRA", "FID"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--preset", "mini-fll"], "unknown preset 'mini-fll'. Did you mean 'mini-full'? Valid presets: mini-quick"),
        (["--methods", "esdd"], "unknown method 'esdd'. Did you mean 'esd'? Valid methods: spare, ca,"),
        (["--targets", "style:Inkk"], "unknown style 'Inkk' in catalogue 'mini'. Valid styles: Ink_Outline,"),
        (["--model", "/no/such/model"], "model path '/no/such/model' not found or incomplete; --model DIR"),
        (["--preset", "unlearncanvas"], "preset 'unlearncanvas' needs local paths that were not given: --model DIR"),
        (["--wandb", "sometimes"], "unknown W&B mode 'sometimes'. Valid modes: off, offline, online"),
        (["--restore", "/no/such/results"], "--restore: no stored runs (no configs/ folder) in /no/such/results"),
    ],
)
def test_bad_input_is_one_line_naming_the_valid_choices(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()  # failed before any work


def test_presets_expand_into_their_job_lists(tmp_path):
    full = build_sweep(get_preset("mini-full"), runs_dir=str(tmp_path))
    # 8 trained methods x 3 training seeds; UCE and SEOT (no randomness) once
    assert len(full.jobs) == 20 * (8 * 3 + 2) and full.jobs[0].method == "spare"
    assert [(j.seed, j.tag) for j in full.jobs[:3]] == [(0, "seed0"), (1, "seed1"), (2, "seed2")]
    assert full.targets[:2] == ("style:Ink_Outline", "style:Pencil_Hatch") and full.targets[-1] == "object:Bolt"
    shards = [full.shard(full.jobs, r, 3) for r in range(3)]
    assert sorted(j.label for s in shards for j in s) == sorted(j.label for j in full.jobs)  # every job once
    assert not {j.target for j in shards[0]} & {j.target for j in shards[1]}  # whole targets per process
    # they run seed by seed: every target and method at seed 0 (UCE and SEOT with them), then seed 1, 2;
    # the validation targets, left out of the reported summary, after all the others
    order = full.shard(full.jobs, 0, 1)
    validation = set(full.catalogue.validation_targets)
    assert len(validation) == 4 and {j.target for j in order[-4 * 26 :]} == validation
    reported = [j for j in full.jobs if j.target not in validation]
    assert [j.seed for j in order[: len(reported)]] == sorted(j.seed for j in reported)
    assert [(j.method, j.target) for j in order[:160]] == [(j.method, j.target) for j in reported if j.seed == 0]
    assert [j.seed for j in order[len(reported) :]] == sorted(j.seed for j in full.jobs if j.target in validation)
    assert [(j.target in validation, j.seed) for j in shards[1]] == sorted(
        (j.target in validation, j.seed) for j in shards[1]
    )
    tuning = build_sweep(get_ablation("tuning"), runs_dir=str(tmp_path))  # validation targets only
    assert tuning.shard(tuning.jobs, 0, 1) == tuning.jobs

    quick = build_sweep(get_preset("mini-quick"), runs_dir=str(tmp_path))
    assert len(quick.jobs) == 2 * 10 and {j.tag for j in quick.jobs} == {"quick"}
    spare_job = next(j for j in quick.jobs if j.method == "spare")
    assert quick.method_config(spare_job).optim.steps == 40  # 200 x 0.2
    assert quick.settings.sampling.seeds == (188,)

    uc = build_sweep(get_preset("unlearncanvas"), runs_dir=str(tmp_path))
    assert len(uc.jobs) == 70 * 10 and uc.settings.sampling.steps == 100 and uc.settings.sampling.sampler == "ddim"
    assert uc.settings.sampling.seeds == (188, 288, 588, 688, 888)
    by_method = {j.method: uc.method_config(j) for j in uc.jobs[:9]}
    assert by_method["spare"].optim.lr == pytest.approx(1e-4)  # the authors' learning rate
    assert by_method["esd"].optim.steps == 1000 and by_method["esd"].optim.lr == pytest.approx(1e-5)
    assert uc.missing_paths == ("model", "classifiers", "data")

    seeds = build_sweep(get_preset("mini-full"), methods=["ca"], targets=["object:Star"], runs_dir=str(tmp_path))
    seeds.preset.train_seeds = (0, 1)
    seeds = build_sweep(seeds.preset, methods=["ca"], targets=["object:Star"], runs_dir=str(tmp_path))
    assert [(j.seed, j.tag) for j in seeds.jobs] == [(0, "seed0"), (1, "seed1")]
    assert seeds.method_config(seeds.jobs[1]).seed == 1
    seeds.preset.train_seeds = (3,)  # one other seed: its own folder, never the seed-0 run's
    seeds = build_sweep(seeds.preset, methods=["ca"], targets=["object:Star"], runs_dir=str(tmp_path))
    assert [(j.seed, j.tag) for j in seeds.jobs] == [(3, "seed3")] and seeds.method_config(seeds.jobs[0]).seed == 3


def test_a_process_done_with_its_own_jobs_helps_with_the_others_unstarted_ones(tmp_path, monkeypatch):
    from benchmarks.runner import execute
    from benchmarks.runner.processes import work_order
    from spare.io import claim

    # own items first, then the others' from the ends of their lists, one process's list after another's in turn
    assert work_order([["a", "c", "e"], ["b", "d"]], 1) == (["b", "d"], ["e", "c", "a"])
    assert work_order([["a", "c", "e"], ["b", "d"]], 0) == (["a", "c", "e"], ["d", "b"])
    assert work_order([["a", "d"], ["b", "e"], ["c"]], 0) == (["a", "d"], ["e", "c", "b"])

    class SecondOfTwo:
        rank, world, main = 1, 2, False

        def barrier(self):
            pass

    sweep = build_sweep(get_preset("mini-quick"), methods=["uce", "ca"], runs_dir=str(tmp_path))
    mine, others = work_order([sweep.shard(sweep.jobs, r, 2) for r in range(2)], 1)
    assert {j.target for j in mine} == {"object:Star"} and {j.target for j in others} == {"style:Ink_Outline"}
    ran = []
    monkeypatch.setattr(execute, "_run_job", lambda sweep, job, *_: ran.append(job.label))
    with claim(sweep.planned(others[0]).out) as held:  # the first process is making that one
        assert held
        execute._run_jobs(sweep, mine, SecondOfTwo(), mirror=None, others=others)
    assert ran == [j.label for j in mine] + [others[1].label]  # its own, then the unclaimed one of the others
    assert not sweep.planned(others[0]).out.exists()  # a claim leaves the run folder alone


def test_a_resumed_sweeps_bar_starts_at_the_jobs_done_before(tmp_path, monkeypatch, capsys):
    from benchmarks.runner import execute

    class One:
        rank, world, main = 0, 1, True

        def barrier(self):
            pass

    sweep = build_sweep(get_preset("mini-quick"), methods=["uce", "ca", "esd"], runs_dir=str(tmp_path))
    done = {j.label for j in sweep.jobs[:2]}
    monkeypatch.setattr(sweep, "job_done", lambda job: job.label in done)
    ran = []
    monkeypatch.setattr(execute, "_run_job", lambda sweep, job, *_: ran.append(job.label))
    execute._run_jobs(sweep, sweep.jobs, One(), mirror=None)
    assert ran == [j.label for j in sweep.jobs[2:]]
    lines = [line for line in capsys.readouterr().err.splitlines() if "job" in line]
    n = len(sweep.jobs)  # 6: the bar opens at 2 done (no rate from skipping them) and closes at all 6
    assert f" 2/{n} " in lines[0] and "?job/s" in lines[0] and f" {n}/{n} " in lines[-1]


def test_yaml_preset_keys_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: [style:Ink_Outline]\nbudgt: 0.5\n")
    with pytest.raises(UserError, match="unknown config key 'budgt'. Did you mean 'budget'"):
        get_preset(str(bad))
    bad.write_text("overrides:\n  ca: [optim.stepz=2]\n")
    with pytest.raises(UserError, match="unknown config key 'optim.stepz'"):
        build_sweep(get_preset(str(bad)), runs_dir=str(tmp_path))


def test_summary_is_mean_and_sample_std_over_targets():
    rows = [
        {"method": "m", "target": "style:A", "kind": "style", "UA": 100.0, "IRA": 90.0, "CRA": 80.0},
        {"method": "m", "target": "style:B", "kind": "style", "UA": 80.0, "IRA": 70.0, "CRA": 80.0},
        {"method": "m", "target": "object:C", "kind": "object", "UA": 50.0, "IRA": 60.0, "CRA": 70.0},
    ]
    frame = pd.DataFrame(rows).assign(**{"FID": [1.0, 2.0, 3.0], "time s": 10.0, "memory GB": 1.0, "storage MB": 2.0})
    row = tables.summary(frame, intervals=False).iloc[0]
    # by hand: mean(100, 80) = 90, sample std = sqrt(((10)^2 + (10)^2) / 1) = 14.14
    assert row["Style UA"] == "90.00 ± 14.14" and row["Style IRA"] == "80.00 ± 14.14"
    assert row["Style CRA"] == "80.00 ± 0.00" and row["Object UA"] == "50.00" and row["Style targets"] == 2
    assert row["FID"] == "2.00 ± 1.00"
    # with intervals (no image counts: targets only): two targets give [the lower, the higher]; FID over
    # three targets: all three draws the same target has probability 1/27 > 2.5%, so [1, 3]
    row = tables.summary(frame).iloc[0]
    assert row["Style UA"] == "90.00 ± 14.14 [80.00, 100.00]" and row["Object UA"] == "50.00 [50.00, 50.00]"
    assert row["FID"] == "2.00 ± 1.00 [1.00, 3.00]" and row["time s"] == "10.00 ± 0.00"
    side = tables.published_side_by_side(frame.assign(method="esd"), "mini")
    assert list(side["source"]) == ["ours (mini)", "published (UnlearnCanvas, SD-1.5)"]
    assert side.iloc[1]["Style UA"] == 98.58 and side.iloc[1]["storage MB"] == pytest.approx(4.3 * 1024)


def test_per_target_rows_name_the_machine_each_time_was_measured_on():
    metrics = {m: {"value": 50.0} for m in ("UA", "IRA", "CRA", "time_s")}
    on = {
        "AMD EPYC (AVX512)": {"device": "cpu (x86_64)", "cpu": {"model": "AMD EPYC", "capability": "AVX512"}},
        "AMD EPYC (AVX2)": {"device": "cpu (x86_64)", "cpu": {"model": "AMD EPYC", "capability": "AVX2"}},
        "AMD EPYC (AVX2, 1 thread)": {
            "device": "cpu (x86_64)",
            "cpu": {"model": "AMD EPYC", "capability": "AVX2", "threads": 1},
        },
        "AMD EPYC (AVX2, 2 threads)": {
            "device": "cpu (x86_64)",
            "cpu": {"model": "AMD EPYC", "capability": "AVX2", "threads": 2},
        },
        "Intel(R) Xeon(R)": {"device": "cpu (x86_64)", "cpu": {"model": "Intel(R) Xeon(R)"}},
        "NVIDIA H200": {"device": "NVIDIA H200", "cpu": {"model": "Intel(R) Xeon(R)"}},
        "": {"device": "cpu (x86_64)"},  # made before provenance recorded the CPU
    }
    for expected, prov in on.items():
        row = tables.per_target_row({"metrics": metrics, "provenance": prov}, "m", "style:A")
        assert row["machine"] == expected and row["time s"] == 50.0
    assert tables.per_target_row({"metrics": metrics}, "m", "style:A")["machine"] == ""


def test_summary_reported_leaves_out_the_validation_targets(tmp_path):
    rows = [
        {"method": "m", "target": "style:A", "kind": "style", "UA": 100.0, "IRA": 90.0, "CRA": 80.0},
        {"method": "m", "target": "style:B", "kind": "style", "UA": 80.0, "IRA": 70.0, "CRA": 80.0},
        {"method": "m", "target": "style:V", "kind": "style", "UA": 20.0, "IRA": 10.0, "CRA": 20.0},
    ]
    frame = pd.DataFrame(rows).assign(**{"FID": [1.0, 2.0, 9.0], "time s": 10.0, "memory GB": 1.0, "storage MB": 2.0})
    frame["validation"] = [False, False, True]
    paths = tables.write_all(frame, pd.DataFrame(), tmp_path, "t", [])
    # by hand: all three, mean(100, 80, 20) = 66.67; without V, mean(100, 80) = 90, std 14.14
    assert pd.read_csv(tmp_path / "summary.csv").iloc[0]["Style UA"].startswith("66.67 ± ")
    reported = pd.read_csv(tmp_path / "summary_reported.csv").iloc[0]
    assert (
        reported["Style UA"] == "90.00 ± 14.14 [80.00, 100.00]"
        and reported["Style targets"] == 2
        and reported["FID"] == "1.50 ± 0.71 [1.00, 2.00]"
    )
    assert "Left out: style:V" in paths["summary_reported"].read_text()
    tables.write_all(frame.assign(validation=False), pd.DataFrame(), tmp_path / "none", "t", [])
    assert not (tmp_path / "none" / "summary_reported.md").exists()  # nothing to leave out: one summary
    # the paired table says it left the validation targets out only when it did
    both = pd.concat([frame, frame.assign(method="spare")])
    marked = tables.write_all(both, pd.DataFrame(), tmp_path / "both", "t", [])["paired"].read_text()
    unmarked = tables.write_all(both.assign(validation=False), pd.DataFrame(), tmp_path / "both0", "t", [])
    assert "targets left out" in marked and "targets left out" not in unmarked["paired"].read_text()


def _sweep_cmd(preset: Path, runs: Path, results: Path) -> list[str]:
    return ["-m", "spare", "benchmark", "--preset", str(preset), "--runs", str(runs), "--results", str(results),
            "--wandb", "off"]  # fmt: skip


def _env() -> dict:
    # one thread per process, so one process and two processes do the same arithmetic
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _metrics(runs: Path) -> dict:
    found = {}
    for path in sorted(runs.glob("mini/*/*/metrics.json")):
        result = json.loads(path.read_text())
        found[str(path.relative_to(runs))] = {k: m["value"] for k, m in result["metrics"].items() if k != "time_s"}
        found[str(path.relative_to(runs))].pop("memory_gb", None)
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process sweep of the tiny preset."""
    root = tmp_path_factory.mktemp("sweep-ref")
    preset = root / "tiny.yaml"
    preset.write_text(TINY)
    proc = subprocess.run([sys.executable, *_sweep_cmd(preset, root / "runs", root / "results")], cwd=root,
                          env=_env(), capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sweep wall time" in proc.stdout and "tables: " in proc.stdout
    return root


def test_sweep_writes_tables_plot_and_configs_from_metrics(reference):
    results = reference / "results"
    per_target = pd.read_csv(results / "per_target.csv")
    assert set(per_target["method"]) == {"base (no unlearning)", "uce", "ca"} and len(per_target) == 6
    uce = json.loads((reference / "runs/mini/uce/style-Ink_Outline@tiny/metrics.json").read_text())
    row = per_target[(per_target.method == "uce") & (per_target.target == "style:Ink_Outline")].iloc[0]
    assert row["UA"] == uce["metrics"]["UA"]["value"] and row["storage MB"] == uce["storage_bytes"] / 2**20
    assert (results / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert (results / "configs/ca/object-Star@tiny/config.json").is_file()
    assert (reference / "runs/mini/ca/object-Star@tiny/answers.png").is_file()
    assert "published (UnlearnCanvas, SD-1.5)" in (results / "published.md").read_text()
    record = json.loads((results / "sweep.json").read_text())
    assert len(record["jobs"]) == 4 and record["processes"] == 1
    # the base answer set was generated once, shared by both targets
    assert len(list((reference / "runs/mini/base").glob("answers-*"))) == 1


def _start_and_stop_after_a_job(cmd: list[str], runs: Path, cwd: Path, sig: int, ready=None) -> tuple[int, list[Path]]:
    """Start a sweep, send ``sig`` as soon as one more job has its metrics (and ``ready()`` holds, where
    given); (exit code, finished)."""

    def finished() -> set[Path]:  # the jobs' metrics, not the base model's
        return {p for p in runs.glob("mini/*/*@tiny/metrics.json") if p.parts[-3] != "base"}

    before = finished()
    with open(cwd / f"stopped-by-{sig}.log", "w") as log:  # read back when the test fails
        proc = subprocess.Popen([sys.executable, *cmd], cwd=cwd, env=_env(), stdout=log, stderr=log)
        deadline = time.time() + 300
        while (finished() == before or (ready and not ready())) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        ended = proc.poll()  # not None: the sweep had ended before the signal
        log.write(f"\n[test] signal {sig} sent; the sweep's exit code at that moment: {ended}\n")
        log.flush()
        proc.send_signal(sig)
        return proc.wait(), sorted(finished() - before)


def test_killed_sweep_resumes_to_the_same_tables(reference, tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY)
    runs, results = tmp_path / "runs", tmp_path / "results"
    cmd = _sweep_cmd(preset, runs, results)
    # SIGTERM (timeout, a scheduler): the sweep stops, says how to resume and records its time
    started = time.time()
    code, first = _start_and_stop_after_a_job(cmd, runs, tmp_path, signal.SIGTERM)
    waited = f"after {time.time() - started:.0f} s"  # the two failures say apart which one happened
    log = (tmp_path / f"stopped-by-{signal.SIGTERM}.log").read_text()[-2000:]
    assert first, f"the sweep was stopped before its first job finished ({waited}, exit code {code}):\n{log}"
    assert code == 130, f"SIGTERM after a finished job gave exit code {code}, not 130 ({waited}):\n{log}"
    record = json.loads((results / "sweep.json").read_text())
    (stopped,) = record["invocations"]
    assert stopped["interrupted"] and stopped["jobs_run"] == len(first) and stopped["wall_time_s"] > 0
    assert "unfinished" not in stopped  # its last entry replaced the one written after its job
    # the tables hold that job, also when the signal cut its checkpoint short (they are rewritten on the way out)
    stopped_tables = pd.read_csv(results / "per_target.csv")
    assert len(stopped_tables[stopped_tables.method != "base (no unlearning)"]) == len(first)

    # SIGKILL: nothing runs on the way out, and the atomic writes still leave nothing half-done; the
    # entry the sweep wrote after its last finished job keeps its time (killed once that entry is there)
    def checkpointed() -> bool:
        entries = json.loads((results / "sweep.json").read_text())["invocations"]
        return len(entries) == 2 and entries[1]["jobs_run"] >= 1

    code, second = _start_and_stop_after_a_job(cmd, runs, tmp_path, signal.SIGKILL, ready=checkpointed)
    assert code == -signal.SIGKILL and second, "the sweep was killed before its next job finished"
    record = json.loads((results / "sweep.json").read_text())
    stopped, killed = record["invocations"]
    assert killed["unfinished"] and killed["interrupted"] and 1 <= killed["jobs_run"] <= len(second)
    assert killed["wall_time_s"] > 0 and killed["started"] != stopped["started"]
    # the tables hold every job finished before the last record, and no other
    partial = pd.read_csv(results / "per_target.csv")
    assert len(partial[partial.method != "base (no unlearning)"]) == len(first) + killed["jobs_run"]
    finished = first + second
    stamp = {p: p.stat().st_mtime_ns for p in finished}
    done = subprocess.run([sys.executable, *cmd], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())  # finished jobs were not redone
    ours = pd.read_csv(results / "per_target.csv")[QUALITY]
    pd.testing.assert_frame_equal(ours, pd.read_csv(reference / "results" / "per_target.csv")[QUALITY])
    record = json.loads((results / "sweep.json").read_text())
    assert record["invocations"][:2] == [stopped, killed]  # both earlier invocations' time counts
    final = record["invocations"][2]
    assert "interrupted" not in final and "unfinished" not in final and final["jobs_run"] == 4 - len(finished)
    total = stopped["wall_time_s"] + killed["wall_time_s"] + final["wall_time_s"]
    assert len(record["invocations"]) == 3 and record["total_wall_time_s"] == pytest.approx(total)


def test_a_swallowed_sigterm_still_stops_the_sweep_before_the_next_job():
    from benchmarks.runner import signals

    with signals.sigterm_as_interrupt():
        signals.stop_if_signalled()  # nothing received: the sweep goes on
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises during the sleep
        except KeyboardInterrupt:
            pass  # what library code that swallows the interrupt does
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            signals.stop_if_signalled()
    with signals.sigterm_as_interrupt():  # the next sweep in the same process starts clean
        signals.stop_if_signalled()


def test_a_signal_during_the_tables_after_a_job_waits_until_they_are_written():
    # A SIGTERM inside the first `import matplotlib.pyplot` left matplotlib half-imported and the
    # tables written on the way out failed (exit code 1, not 130): the checkpoint now holds signals.
    from benchmarks.runner import signals

    sigint = signal.getsignal(signal.SIGINT)  # Python's default_int_handler, or SIG_IGN in a background job
    with signals.sigterm_as_interrupt():
        steps = []
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            with signals.signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # an undeferred handler would raise here
                steps.append("tables written")
        assert steps == ["tables written"]
        assert signal.getsignal(signal.SIGTERM) is signals.raise_interrupt  # the sweep's handlers are back
        assert signal.getsignal(signal.SIGINT) is sigint
    with signals.sigterm_as_interrupt(), signals.signals_deferred():  # no signal: no interrupt
        pass


def test_a_fresh_runs_folder_restores_the_stored_runs_instead_of_rerunning_them(reference, tmp_path):
    """A committed sweep continued from a fresh clone: runs/ is gone, the results folder's configs/
    holds each finished run's config and metrics; --restore takes those whose config key matches."""
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY)
    runs, results = tmp_path / "runs", tmp_path / "results"
    cmd = [*_sweep_cmd(preset, runs, results), "--methods", "uce"]
    first = subprocess.run([sys.executable, *cmd], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    stored = results / "configs/uce/style-Ink_Outline@tiny"
    assert json.loads((stored / "metrics.json").read_text()) == json.loads(
        (runs / "mini/uce/style-Ink_Outline@tiny/metrics.json").read_text()
    )
    shutil.rmtree(runs)  # the fresh clone: nothing but what was committed
    other = results / "configs/uce/object-Star@tiny/metrics.json"  # a run of another config: not taken
    other.write_text(json.dumps({**json.loads(other.read_text()), "config_key": "0123456789ab"}))
    ref = pd.read_csv(reference / "results" / "per_target.csv")[QUALITY]
    ref = ref[ref.method != "ca"].reset_index(drop=True)
    tables = subprocess.run([sys.executable, *cmd, "--restore", "--tables-only"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True)  # fmt: skip
    assert "missing runs, 1 of 2: object:Star: uce @tiny" in tables.stdout  # the stale one, listed, not filled
    restored = pd.read_csv(results / "per_target.csv")[QUALITY]  # the base model's rows are restored too
    kept = ~((ref.method == "uce") & (ref.target == "object:Star"))
    pd.testing.assert_frame_equal(restored, ref[kept].reset_index(drop=True))
    again = subprocess.run([sys.executable, *cmd, "--restore"], cwd=tmp_path, env=_env(), capture_output=True,
                           text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 stored runs have another config key" in again.stdout
    assert not (runs / "mini/uce/style-Ink_Outline@tiny/edit").exists()  # taken from the store, not rerun
    assert (runs / "mini/uce/object-Star@tiny/edit").is_dir()  # rerun
    ours = pd.read_csv(results / "per_target.csv")[QUALITY]
    pd.testing.assert_frame_equal(ours, ref)
    record = json.loads((results / "sweep.json").read_text())
    assert [i["jobs_run"] for i in record["invocations"]] == [2, 0, 1]  # restored runs are not counted as run
    # a damaged stored file restores nothing: it is named, and its job is planned to run again
    shutil.rmtree(runs / "mini/uce/style-Ink_Outline@tiny")
    (stored / "metrics.json").write_text("{not json")
    broken = subprocess.run([sys.executable, *cmd, "--restore", "--dry-run"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True)  # fmt: skip
    assert broken.returncode == 0, broken.stderr[-3000:]
    assert f"{stored / 'metrics.json'} is damaged" in broken.stderr
    assert "[todo]    uce style:Ink_Outline @tiny" in broken.stdout


UCE_ONLY = TINY.replace("methods: [uce, ca]", "methods: [uce]")  # closed form: a quick sweep


@pytest.fixture(scope="module")
def uce_stored(tmp_path_factory):
    """The results folder of one finished sweep of the tiny preset with uce only, made with the runs folder
    given as "runs" (relative, as the CLI's default): each test below copies it into its own folder and
    starts from no runs folder at all, as a fresh clone of a committed sweep does."""
    root = tmp_path_factory.mktemp("uce-stored")
    (root / "tiny.yaml").write_text(UCE_ONLY)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        preset = get_preset("tiny.yaml")
        assert run_sweep(build_sweep(preset, runs_dir="runs"), wandb_mode="off", results_root=root / "bench") == 0
    return root / "bench" / preset.name


def _fresh_clone_of(stored: Path, tmp_path: Path, monkeypatch, results: Path):
    """``stored`` copied to ``results`` under ``tmp_path``, the working folder; the preset and "runs"."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(stored, results)
    (tmp_path / "tiny.yaml").write_text(UCE_ONLY)
    return get_preset("tiny.yaml"), Path("runs")


def test_a_subset_restores_from_the_whole_presets_stored_runs(uce_stored, tmp_path, capsys, monkeypatch):
    """A fresh clone that runs a subset (--targets object:Star): its own tables folder holds nothing yet,
    so the runs come from the whole preset's committed configs/, and nothing is rerun."""
    root = tmp_path / "bench"
    preset, runs = _fresh_clone_of(uce_stored, tmp_path, monkeypatch, root / uce_stored.name)
    ref = pd.read_csv(root / preset.name / "per_target.csv")[QUALITY]
    capsys.readouterr()
    subset = build_sweep(preset, targets=["object:Star"], runs_dir=str(runs))
    assert run_sweep(subset, restore=True, dry_run=True, wandb_mode="off", results_root=root) == 0
    out = capsys.readouterr().out  # the job list says which jobs the restore would fill, and copies nothing
    assert "would restore 1 finished runs" in out and "0 done, 1 to restore, 0 to run" in out
    assert "[restore] uce object:Star" in out and not (runs / "mini/uce/object-Star@tiny").exists()
    assert run_sweep(subset, restore=True, tables_only=True, wandb_mode="off", results_root=root) == 0
    out = capsys.readouterr().out
    (folder,) = (root / f"{preset.name}-subsets").iterdir()
    assert f"restored 1 finished runs from {folder / 'configs'} and {root / preset.name / 'configs'}" in out
    ours = pd.read_csv(folder / "per_target.csv")[QUALITY]  # the base model's row came back too
    pd.testing.assert_frame_equal(ours, ref[ref.target == "object:Star"].reset_index(drop=True))
    assert not (runs / "mini/uce/object-Star@tiny/edit").exists()  # restored, not rerun


def test_the_whole_plans_record_removes_the_stored_runs_it_no_longer_plans(uce_stored, tmp_path, capsys, monkeypatch):
    """An earlier plan's stored runs (another seed, target or method) would sit beside tables that do not
    show them: the whole plan's record removes them; a narrowed plan writing into the same folder leaves them."""
    root = tmp_path / "bench"
    preset, runs = _fresh_clone_of(uce_stored, tmp_path, monkeypatch, root / uce_stored.name)
    folder = root / preset.name
    planned = sorted(p.relative_to(folder) for p in folder.glob("configs/*/*"))
    assert len(planned) == 4  # two targets' base rows and uce runs
    earlier = [folder / "configs/uce/style-Ink_Outline@seed7", folder / "configs/esd/object-Star@tiny"]
    for old in earlier:
        shutil.copytree(folder / "configs/uce/style-Ink_Outline@tiny", old)
    ref = pd.read_csv(folder / "per_target.csv")[QUALITY]
    narrowed = build_sweep(preset, targets=["object:Star"], runs_dir=str(runs))
    assert run_sweep(narrowed, restore=True, tables_only=True, wandb_mode="off", results_dir=folder) == 0
    assert all(old.is_dir() for old in earlier)  # not its plan to judge
    capsys.readouterr()
    whole = build_sweep(preset, runs_dir=str(runs))
    assert run_sweep(whole, restore=True, tables_only=True, wandb_mode="off", results_root=root) == 0
    assert f"removed 2 stored runs of an earlier plan from {folder / 'configs'}" in capsys.readouterr().out
    assert sorted(p.relative_to(folder) for p in folder.glob("configs/*/*")) == planned
    assert not (folder / "configs/esd").exists()  # no empty method folder left behind
    pd.testing.assert_frame_equal(pd.read_csv(folder / "per_target.csv")[QUALITY], ref)


def test_runs_stored_beside_another_sweeps_tables_are_restored_from_the_folder_named(
    uce_stored, tmp_path, capsys, monkeypatch
):
    """--restore DIR: a sweep sharing runs with another (mini-full's seed 0 is mini-robust's) takes the other's
    stored runs, with the same numbers, and reruns nothing."""
    root, other = tmp_path / "bench", tmp_path / "other"  # a fresh clone: only the other sweep's committed tables
    preset, runs = _fresh_clone_of(uce_stored, tmp_path, monkeypatch, other)
    sweep = build_sweep(preset, runs_dir=str(runs))
    assert run_sweep(sweep, restore=True, tables_only=True, wandb_mode="off", results_root=root) == 1  # not there
    capsys.readouterr()
    assert run_sweep(sweep, restore=True, restore_from=[other], wandb_mode="off", results_root=root) == 0
    assert f"restored {len(sweep.jobs)} finished runs from" in capsys.readouterr().out
    ours, theirs = (pd.read_csv(f / "per_target.csv")[QUALITY] for f in (root / preset.name, other))
    pd.testing.assert_frame_equal(ours, theirs)
    assert not (runs / "mini/uce/object-Star@tiny/edit").exists()  # restored, not rerun


def test_runs_stored_by_a_checkout_elsewhere_are_restored_with_this_checkouts_paths(
    uce_stored, tmp_path, capsys, monkeypatch
):
    """Config keys hash the model and classifier paths, which sit in the checkout: a clone at another
    path takes the committed runs (their paths moved to it) instead of running every job again."""
    from benchmarks.runner import restore as runner

    root = tmp_path / "bench"  # what was committed, now seen from a clone at another path
    preset, runs = _fresh_clone_of(uce_stored, tmp_path, monkeypatch, root / uce_stored.name)
    ref = pd.read_csv(root / preset.name / "per_target.csv")[QUALITY]
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "models").symlink_to(runner.PROJECT_ROOT / "models")
    monkeypatch.setattr(runner, "PROJECT_ROOT", clone)
    models = clone / "models"
    here = build_sweep(preset, runs_dir=str(runs), model=str(models / "canvas-mini-base"),
                       classifiers=str(models / "canvas-mini-classifiers"))  # fmt: skip
    capsys.readouterr()
    assert run_sweep(here, restore=True, wandb_mode="off", results_root=root) == 0
    out = capsys.readouterr().out
    assert f"restored 2 finished runs from {root / preset.name / 'configs'}; 2 of them made in the checkout at " in out
    for job in here.jobs:
        planned = here.planned(job)
        assert not (planned.out / "edit").exists()  # restored, not rerun
        assert json.loads(planned.metrics_path.read_text())["config_key"] == planned.key  # done here from now on
        settings = json.loads((planned.out / "config.json").read_text())["settings"]
        assert settings["model"] == str(models / "canvas-mini-base")
    record = json.loads((root / preset.name / "sweep.json").read_text())
    assert [i["jobs_run"] for i in record["invocations"]] == [2, 0]
    pd.testing.assert_frame_equal(pd.read_csv(root / preset.name / "per_target.csv")[QUALITY], ref)


@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate launcher not installed")  # fmt: skip
def test_two_accelerate_processes_write_the_same_metrics_as_one(reference, tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY)
    launcher = str(Path(sys.executable).parent / "accelerate")
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
           "no", "--dynamo_backend", "no", *_sweep_cmd(preset, tmp_path / "runs", tmp_path / "results")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "sweep.json").read_text())
    assert record["processes"] == 2 and record["invocations"][-1]["jobs_run"] == 4  # both processes' jobs
    assert "process 1: 2 jobs" in proc.stdout
    two, one = _metrics(tmp_path / "runs"), _metrics(reference / "runs")
    assert len(one) == 6 and two == one


def test_wandb_offline_mirror_writes_runs_tables_and_images_without_network(tmp_path, monkeypatch):
    from benchmarks.wandb_mirror import WandbMirror
    from spare.viz import image_grid, save_png

    monkeypatch.delenv("WANDB_MODE", raising=False)
    grid = save_png(image_grid([[np.zeros((4, 4, 3), "uint8")]], ["s"], ["o"]), tmp_path / "g.png")
    mirror = WandbMirror("offline", "spare-test", "tiny", tmp_path)
    mirror.log_run("uce/style:Ink_Outline", {"method": "uce"}, {"metrics": {"UA": {"value": 100.0}}}, grid)
    table = pd.DataFrame({"method": ["uce", "ca"], "UA": [100.0, 9.5], "seed": pd.array([0, None], "Int64")})
    mirror.log_sweep("tiny", {"name": "tiny"}, {"summary": table}, grid)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(list(r.glob("run-*.wandb")) for r in runs)
    # a run folder is named by its start second, then a random id: two runs of one second sort by chance,
    # so each is told by what it holds, the sweep's by its table, the job's by its answer-set grid
    (sweep_run,) = [r for r in runs if list(r.glob("files/media/table/summary_*.table.json"))]
    (job_run,) = [r for r in runs if r != sweep_run]
    assert list(job_run.glob("files/media/images/answer_set_*.png"))
    (stored,) = sweep_run.glob("files/media/table/summary_*.table.json")
    logged = json.loads(stored.read_text())  # numbers stay numbers: the dashboard sorts them numerically
    ua = logged["columns"].index("UA")
    assert [row[ua] for row in logged["data"]] == [100.0, 9.5] and isinstance(logged["data"][0][0], str)
    monkeypatch.setenv("WANDB_MODE", "disabled")  # what the tests and CI set: the mirror is off
    assert not WandbMirror("offline", "spare-test", "tiny", tmp_path).enabled


def test_equal_compute_gives_every_method_the_reference_wall_time():
    from benchmarks.equal_compute import Calibration, equal_steps, reference_budget

    cals = [Calibration("spare", 20.0, 1.0, 400), Calibration("esd", 5.0, 0.5, 400), Calibration("ca", 100.0, 2.0, 9)]
    # by hand: budget 20 + 400 x 1.0 = 420 s; esd (420 - 5) / 0.5 = 830 steps; ca (420 - 100) / 2 = 160
    assert reference_budget(cals) == 420.0
    assert equal_steps(cals) == {"spare": 400, "esd": 830, "ca": 160}


def test_tables_only_renders_what_is_done_and_lists_the_rest(reference, tmp_path, capsys):
    preset = get_preset(str(reference / "tiny.yaml"))
    preset.methods = ("uce", "ca", "fmn")  # fmn never ran in the reference sweep
    sweep = build_sweep(preset, runs_dir=str(reference / "runs"))
    code = run_sweep(sweep, tables_only=True, wandb_mode="off", results_dir=tmp_path / "t")
    gaps = "2 of 6: style:Ink_Outline, object:Star: fmn @tiny"  # both targets miss the same run: one group
    assert code == 1 and f"missing runs, {gaps}" in capsys.readouterr().out
    ours = pd.read_csv(tmp_path / "t" / "per_target.csv")[QUALITY]
    pd.testing.assert_frame_equal(ours, pd.read_csv(reference / "results" / "per_target.csv")[QUALITY])
    assert f"Missing runs (not filled in), {gaps}\n" in (tmp_path / "t" / "summary.md").read_text()


def test_missing_runs_are_counted_and_grouped_by_target(tmp_path):
    from benchmarks.runner import missing_runs

    one_seed = dataclasses.replace(get_preset("mini-full"), train_seeds=(0,))
    sweep = build_sweep(one_seed, targets=["style:Chalkboard", "object:Star"], runs_dir=str(tmp_path))
    star = [j for j in sweep.jobs if j.target == "object:Star"]
    gone = [j for j in sweep.jobs if j.target == "style:Chalkboard" and j.method in ("fmn", "uce")] + star
    # by hand: 2 + 10 of 20 jobs; every Star job is missing, Chalkboard only fmn and uce
    assert missing_runs(gone, sweep.jobs) == "12 of 20: style:Chalkboard: fmn, uce; object:Star: all 10"
    assert missing_runs(star[:1], sweep.jobs) == "1 of 20: object:Star: spare"
    same = [j for j in sweep.jobs if j.method in ("fmn", "uce")]  # both targets miss the same two runs: one group
    assert missing_runs(same, sweep.jobs) == "4 of 20: style:Chalkboard, object:Star: fmn, uce"
    assert missing_runs([], sweep.jobs) == ""


def test_a_narrowed_plan_gets_its_own_tables_and_leaves_the_whole_plans_alone(reference, tmp_path, capsys):
    preset = get_preset(str(reference / "tiny.yaml"))
    root, runs = tmp_path / "bench", str(reference / "runs")
    assert run_sweep(build_sweep(preset, runs_dir=runs), tables_only=True, wandb_mode="off", results_root=root) == 0
    whole = root / preset.name
    record, per_target = (whole / "sweep.json").read_text(), (whole / "per_target.csv").read_text()
    narrowed = build_sweep(preset, methods=["uce"], runs_dir=runs)
    assert run_sweep(narrowed, tables_only=True, wandb_mode="off", results_root=root) == 0
    (subset,) = (root / f"{preset.name}-subsets").iterdir()
    assert f"2 jobs, a subset of preset {preset.name!r}: tables in {subset}, not in {whole}" in capsys.readouterr().out
    assert set(pd.read_csv(subset / "per_target.csv")["method"]) == {"base (no unlearning)", "uce"}
    assert (whole / "sweep.json").read_text() == record and (whole / "per_target.csv").read_text() == per_target
    # --limit narrows the plan too, into a folder of its own; the same subset again finds its folder
    run_sweep(build_sweep(preset, runs_dir=runs), limit=1, tables_only=True, wandb_mode="off", results_root=root)
    run_sweep(narrowed, tables_only=True, wandb_mode="off", results_root=root)
    assert len(list((root / f"{preset.name}-subsets").iterdir())) == 2
    assert len(json.loads((subset / "sweep.json").read_text())["invocations"]) == 2
    assert (whole / "sweep.json").read_text() == record


def test_sweep_record_keeps_every_invocations_wall_time(tmp_path):
    from benchmarks.runner import save_sweep_record

    sweep = build_sweep(get_preset("mini-quick"), runs_dir=str(tmp_path / "runs"))
    save_sweep_record(sweep, sweep.jobs, tmp_path, 1643.0, 1, 18)  # the sweep that did the work
    save_sweep_record(sweep, sweep.jobs, tmp_path, 1.0, 1, 0)  # a resume that found everything done
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert [(i["wall_time_s"], i["jobs_run"]) for i in record["invocations"]] == [(1643.0, 18), (1.0, 0)]
    assert record["total_wall_time_s"] == 1644.0 and len(record["jobs"]) == 20
    save_sweep_record(sweep, sweep.jobs, tmp_path, 1600.0, 2, 2)  # a sharded invocation that ran jobs
    save_sweep_record(sweep, sweep.jobs, tmp_path, 1.0, 1, 0)  # then a tables-only pass in one process
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert record["processes"] == 2 and [i["processes"] for i in record["invocations"]] == [1, 1, 2, 1]
    record["invocations"] = record["invocations"][:2]
    (tmp_path / "sweep.json").write_text(json.dumps(record))  # back to the two entries the rest expects
    # one invocation's entries (after each job, then its last) replace each other; the others stay
    for wall, ran, unfinished in ((300.0, 1, True), (650.0, 2, True), (700.0, 2, False)):
        save_sweep_record(sweep, sweep.jobs, tmp_path, wall, 1, ran, started="t0", unfinished=unfinished)
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert [(i["wall_time_s"], i["jobs_run"]) for i in record["invocations"]] == [(1643.0, 18), (1.0, 0), (700.0, 2)]
    assert "unfinished" not in record["invocations"][-1] and record["total_wall_time_s"] == 2344.0
    # a changed plan (here: fewer targets) starts a new history: the old sweep's time is not its time
    smaller = build_sweep(get_preset("mini-quick"), targets=["object:Star"], runs_dir=str(tmp_path / "runs"))
    save_sweep_record(smaller, smaller.jobs, tmp_path, 700.0, 1, 9)
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert [(i["wall_time_s"], i["jobs_run"]) for i in record["invocations"]] == [(700.0, 9)]
    assert record["total_wall_time_s"] == 700.0 and len(record["jobs"]) == 10
    # records without plan keys, written before or after the sampling option `precision` existed:
    # at its default (fp32) they are the same plan; mini-quick's own "auto" dropped is a new plan
    full = build_sweep(get_preset("mini-full"), targets=["object:Star"], runs_dir=str(tmp_path / "runs"))
    for sw, drop, kept in (
        (full, True, [(650.0, 9), (2.0, 0)]),
        (full, False, [(650.0, 9), (2.0, 0)]),
        (smaller, True, [(2.0, 0)]),
    ):
        old = {"preset": to_dict(sw.preset), "jobs": [dataclasses.asdict(j) for j in sw.jobs]}
        if drop:
            del old["preset"]["sampling"]["precision"]
        old["invocations"] = [{"wall_time_s": 650.0, "jobs_run": 9}]
        (tmp_path / "sweep.json").write_text(json.dumps(old))
        save_sweep_record(sw, sw.jobs, tmp_path, 2.0, 1, 0)
        record = json.loads((tmp_path / "sweep.json").read_text())
        assert [(i["wall_time_s"], i["jobs_run"]) for i in record["invocations"]] == kept
