"""Tables over training seeds: a target counts once in the summary, and the two spreads are apart."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.tables import seed_spread, summary


def _runs() -> pd.DataFrame:
    # two style targets x two seeds: A has UA 90 / 100, B has UA 60 / 80 (IRA, CRA constant)
    rows = [("A", 0, 90.0), ("A", 1, 100.0), ("B", 0, 60.0), ("B", 1, 80.0)]
    return pd.DataFrame(
        [{"method": "m", "target": f"style:{t}", "kind": "style", "seed": s, "UA": ua, "IRA": 90.0, "CRA": 95.0,
          "FID": 8.0, "time s": 10.0, "memory GB": 1.0, "storage MB": 0.1} for t, s, ua in rows]
    )  # fmt: skip


def test_summary_counts_each_target_once_with_its_mean_over_seeds():
    # per-target means 95 and 70: mean 82.5, sample std over the two targets sqrt(2 * 12.5^2) = 17.68
    # without image counts the interval resamples the two targets only: means 95, 82.5 or 70
    # (probabilities 1/4, 1/2, 1/4), so the 2.5th and 97.5th percentiles are 70 and 95
    assert summary(_runs()).loc[0, "Style UA"] == "82.50 ± 17.68 [70.00, 95.00]"
    assert summary(_runs(), intervals=False).loc[0, "Style UA"] == "82.50 ± 17.68"
    assert summary(_runs()).loc[0, "Style targets"] == 2


def test_seed_spread_separates_targets_from_seeds_by_hand():
    spread = seed_spread(_runs()).set_index("metric")
    ua = spread.loc["UA"]
    assert ua["mean"] == 82.5 and ua["sd over targets"] == pytest.approx(17.677669, rel=1e-6)
    # std over seeds: A sqrt(50) = 7.071, B sqrt(200) = 14.142; their mean 10.607
    assert ua["sd over seeds"] == pytest.approx((50**0.5 + 200**0.5) / 2)
    assert (ua["targets"], ua["seeds per target"]) == (2, 2)
    assert spread.loc["IRA", "sd over seeds"] == 0.0
    one_seed = _runs()[_runs()["seed"] == 0]
    assert seed_spread(one_seed).empty  # one training seed: no spread table


def test_rank_agreement_by_hand():
    from benchmarks.tables import PUBLISHED, rank_agreement

    # published Style UA: esd 98.58 > uce 98.40 > fmn 88.48 > ca 60.82. Ours in the same order: rho 1;
    # ours reversed on Style IRA (published: ca 96.01 > esd 80.97 > uce 60.22 > fmn 56.77): rho -1
    ua = {"esd": 90.0, "uce": 80.0, "fmn": 70.0, "ca": 60.0}
    ira = {"ca": 10.0, "esd": 20.0, "uce": 30.0, "fmn": 40.0}
    frame = pd.DataFrame(
        [{"method": m, "target": "style:A", "kind": "style", "UA": ua[m], "IRA": ira[m], "CRA": 1.0, "FID": 1.0,
          "time s": 1.0, "memory GB": 1.0, "storage MB": 1.0} for m in ua]
    )  # fmt: skip
    assert set(ua) <= set(PUBLISHED)
    table = rank_agreement(frame).set_index("column")
    assert table.loc["Style UA", "Spearman rho"] == pytest.approx(1.0)
    assert table.loc["Style IRA", "Spearman rho"] == pytest.approx(-1.0)
    assert table.loc["Style UA", "methods"] == 4 and "Object UA" not in table.index  # no object rows


def test_rank_before_after_compares_on_the_methods_before_had():
    from benchmarks.tables import rank_before_after

    def frame(ua):
        return pd.DataFrame(
            [{"method": m, "target": "style:A", "kind": "style", "UA": v, "IRA": 1.0, "CRA": 1.0, "FID": 1.0,
              "time s": 1.0, "memory GB": 1.0, "storage MB": 1.0} for m, v in ua.items()]
        )  # fmt: skip

    # published Style UA: esd > uce > fmn > ca > seot. Before: the four reversed (rho -1).
    before = frame({"esd": 60.0, "uce": 70.0, "fmn": 80.0, "ca": 90.0})
    # After: the four in the published order, and seot added on top of ours but last in theirs:
    # rank differences 1, 1, 1, 1 and 4, so rho = 1 - 6 * 20 / (5 * 24) = 0 over five; 1 over the four
    after = frame({"esd": 90.0, "uce": 80.0, "fmn": 70.0, "ca": 60.0, "seot": 95.0})
    row = rank_before_after(before, after).set_index("column").loc["Style UA"]
    assert row["before rho"] == pytest.approx(-1.0) and row["before methods"] == 4
    assert row["after rho"] == pytest.approx(0.0, abs=1e-12) and row["after methods"] == 5
    assert row["after rho, before's methods"] == pytest.approx(1.0)


def test_a_run_whose_stages_waited_is_named_in_the_tables_and_others_are_not():
    from benchmarks.tables import waited, waiting_note

    def result(stages, device="cpu", threads=1):
        return {"provenance": {"device": device, "cpu": {"threads": threads}}, "stages": stages}

    quiet = {"unlearn_s": 101.0, "unlearn_cpu_s": 100.0, "answers_s": 270.0, "answers_cpu_s": 268.0}
    # paused: answers took 1523 s on the clock for 268 s of CPU, 5.68x; the short load stage
    # (2 s against 0.5 s CPU) is below 20 s and does not count; img/s has no CPU seconds
    paused = {"unlearn_s": 50.0, "unlearn_cpu_s": 49.0, "answers_s": 1523.0, "answers_cpu_s": 268.0,
              "load_s": 2.0, "load_cpu_s": 0.5, "answers_img_per_s": 0.36}  # fmt: skip
    assert waited(result(quiet)) == pytest.approx(101.0 / 100.0)  # the larger of 1.01 and 1.0075
    assert waited(result(paused)) == pytest.approx(1523.0 / 268.0)
    # nothing to say: several threads (CPU seconds exceed wall), a GPU, no per-stage CPU seconds
    assert np.isnan(waited(result(paused, threads=2)))
    assert np.isnan(waited(result(paused, device="cuda:0")))
    assert np.isnan(waited(result({"answers_s": 1523.0})))
    frame = pd.DataFrame(
        [{"method": "ca", "target": "style:Ink_Outline", "seed": 0, "wall/CPU": waited(result(paused))},
         {"method": "spare", "target": "style:Ink_Outline", "seed": 0, "wall/CPU": waited(result(quiet))},
         {"method": "uce", "target": "style:Ink_Outline", "seed": 0, "wall/CPU": np.nan}]
    )  # fmt: skip
    note = waiting_note(frame)
    assert "ca style:Ink_Outline seed 0 (5.68x)" in note
    assert "spare" not in note and "uce" not in note
    assert waiting_note(frame.iloc[1:]) == ""
    assert "ca style:Ink_Outline lr3x seed 0 (5.68x)" in waiting_note(frame.assign(variant="lr3x"))  # an ablation
