"""The sweep-cost projection from measured stages, checked by hand."""

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
