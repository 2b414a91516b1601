"""The sweep-cost projection from measured stages, checked by hand."""

import pandas as pd
import pytest

from benchmarks.sweep_cost import job_cost, projected_job, summarise


def test_job_cost_splits_unlearning_into_setup_and_steps():
    stages = {"load_s": 2.0, "data_s": 3.0, "unlearn_s": 25.0, "answers_s": 11.0, "score_s": 1.1, "fid_s": 0.2}
    metrics = {"stages": {**stages, "answers_generated": 110, "answers_img_per_s": 10.0, "unlearn_cpu_s": 40.0}}
    log = [{"step": 0, "elapsed_s": 6.0}, {"step": 10, "elapsed_s": 16.0}, {"step": 19, "elapsed_s": 25.0}]
    cost = job_cost(metrics, {"log": log}, steps=20)
    # 1 s per step (19 s over 19 steps); set-up 25 - 20 x 1 = 5 s; measured 2 + 3 + 25 + 11 + 1.1
    assert cost["s/step"] == pytest.approx(1.0) and cost["set-up s"] == pytest.approx(5.0)
    assert cost["measured s"] == pytest.approx(42.1) and cost["CPU s"] == 40.0
    # mini-full: 200 steps and 550 images (5x the 110 measured): 2 + 3 + 5 + 200 + 5 x (11 + 1.1)
    assert projected_job(cost, full_steps=200, images=550) == pytest.approx(270.5)
    closed_form = job_cost(metrics, {"log": [{"elapsed_s": 0.1}]}, steps=0)  # UCE: no steps
    assert closed_form["s/step"] == 0 and closed_form["set-up s"] == 25.0


def test_summary_takes_the_median_job_and_adds_the_base_answer_set():
    rows = [
        {"config": c, "mini-full job s": s, "answers s": 11.0, "images": 110}
        for c, jobs in (("fp32", (100.0, 300.0, 200.0)), ("auto", (50.0, 100.0, 150.0)))
        for s in jobs
    ]
    out = summarise(rows, targets=20, base_images=550)
    assert out["fp32"]["median_job_s"] == 200.0 and out["auto"]["median_job_s"] == 100.0
    # 20 targets x (100 + 300 + 200) + 550 images x 0.1 s = 12,055 s
    assert out["fp32"]["mini_full_hours"] == pytest.approx(12055 / 3600)
    assert out["auto"]["median_speedup_vs_fp32"] == 2.0


def test_speed_agreement_by_hand():
    """A style target with 2 seeds has 10 objects x 2 = 20 images: one image is 5 UA points;
    IRA and CRA must agree within 1 point."""
    from benchmarks.speed_agreement import compare, presets, target_images

    assert target_images("style:Ink_Outline", 2) == 20 and target_images("object:Star", 2) == 22
    fp32 = pd.DataFrame(
        [
            {"method": "a", "target": "style:Ink_Outline", "UA": 90.0, "IRA": 95.0, "CRA": 97.0, "FID": 8.0},
            {"method": "b", "target": "style:Ink_Outline", "UA": 90.0, "IRA": 95.0, "CRA": 97.0, "FID": 8.0},
            {"method": "c", "target": "style:Ink_Outline", "UA": 90.0, "IRA": 95.0, "CRA": 97.0, "FID": 8.0},
        ]
    )
    auto = fp32.copy()
    auto.loc[0, ["UA", "IRA"]] = [95.0, 94.0]  # one image, 1 point: agree
    auto.loc[1, "UA"] = 100.0  # two images
    auto.loc[2, "CRA"] = 95.5  # 1.5 points
    table = compare({"fp32": fp32, "auto": auto}, seeds=2)
    assert table["agree"].tolist() == [True, False, False]
    assert table.loc[0, "dUA"] == 5.0 and table.loc[0, "dIRA"] == -1.0 and table.loc[0, "one image"] == 5.0
    both = presets(1.0, ("spare", "uce"))
    assert both["fp32"].overrides == {"spare": ["optim.precision=fp32", "optim.fused=false"]}  # UCE trains nothing
    assert both["auto"].overrides == {"spare": ["optim.precision=auto", "optim.fused=true"]}
    assert both["auto"].sampling.micro_batch == 55 and both["fp32"].sampling.micro_batch == 32
    # the answers-only side: training exactly as fp32's, sampling as auto's
    assert both["answers"].overrides == both["fp32"].overrides and both["answers"].sampling == both["auto"].sampling
    assert both["answers"].tag == "agree-answers"
    # the floor: fp32's configuration unchanged (same overrides and sampling, so the same keys), its own folders
    assert both["threads"].overrides == both["fp32"].overrides and both["threads"].sampling == both["fp32"].sampling
    assert both["threads"].tag == "agree-fp32-t1" != both["fp32"].tag
    # rounding: fused calls and micro-batches of 55, but fp32 throughout
    assert both["rounding"].overrides == {"spare": ["optim.precision=fp32", "optim.fused=true"]}
    assert both["rounding"].sampling.precision == "fp32" and both["rounding"].sampling.micro_batch == 55
    assert compare({"fp32": fp32, "answers": auto}, seeds=2, against="answers")["agree"].tolist() == [
        True,
        False,
        False,
    ]
    assert (
        both["fp32"].targets
        == both["auto"].targets
        == (
            "style:Pop_Halftone",
            "object:Crescent",
        )
    )


def test_a_narrowed_side_keeps_its_tables_apart(tmp_path):
    from benchmarks.speed_agreement import side_dir
    from spare.methods import method_names

    assert side_dir(tmp_path, "fp32", tuple(method_names())) == tmp_path / "speed_agreement" / "fp32"
    narrowed = side_dir(tmp_path, "fp32", ("spare", "esd"))
    assert narrowed == tmp_path / "speed_agreement" / "fp32-subsets" / "esd+spare"


def test_floor_verdict_by_hand():
    """A setting is within the floor when it misses the bar no more often and moves each metric on
    average by at most the floor's mean plus the bar (one image of UA: 5 points here; 1 point)."""
    from benchmarks.speed_agreement import floor_verdict

    def table(rows):
        frame = pd.DataFrame(rows, columns=["method", "target", "dUA", "dIRA", "dCRA", "agree"])
        return frame.assign(**{"one image": 5.0})

    floor = table([("a", "style:X", 0.0, 2.0, 0.0, False), ("b", "style:X", 5.0, 0.0, 1.0, True)])
    # misses 1 (= floor's 1); mean |dUA| 5 <= 2.5 + 5; |dIRA| 1.5 <= 1 + 1; |dCRA| 1.5 <= 0.5 + 1
    side = table(
        [
            ("a", "style:X", 10.0, 1.0, -1.0, True),
            ("b", "style:X", 0.0, 2.0, 2.0, False),
            ("c", "style:X", 50.0, 50.0, 50.0, False),  # no floor for c: left out
        ]
    )
    row = floor_verdict(side, floor, "auto")
    assert (row["rows"], row["misses"], row["floor misses"]) == (2, 1, 1)
    assert row["mean |dUA|"] == 5.0 and row["floor mean |dUA|"] == 2.5 and row["mean |dCRA|"] == 1.5
    assert row["within the floor"]
    side.loc[1, "dCRA"] = 2.5  # mean |dCRA| 1.75 > 0.5 + 1
    assert not floor_verdict(side, floor, "auto")["within the floor"]
    side.loc[1, "dCRA"] = 2.0
    side.loc[0, "agree"] = False  # two misses against the floor's one
    assert not floor_verdict(side, floor, "auto")["within the floor"]
