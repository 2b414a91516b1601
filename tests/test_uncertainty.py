"""Bootstrap intervals and the paired table, on hand-made tables whose answers follow by hand."""

import pandas as pd
import pytest

from benchmarks.uncertainty import bootstrap_interval, image_counts, paired_table


def _frame(rows, method="m", kind="style"):
    """rows: (target, seed, UA, images UA)."""
    return pd.DataFrame(
        [{"method": method, "kind": kind, "target": t, "seed": s, "UA": v, "images UA": n} for t, s, v, n in rows]
    )


def test_interval_over_targets_by_hand():
    # two targets at 0 and 100, no image counts: resampled means 0, 50, 100 with probabilities
    # 1/4, 1/2, 1/4, so the 95% interval is [0, 100]; one target with two seeds (0 and 100) is always 50
    assert bootstrap_interval(_frame([("A", 0, 0.0, 0), ("B", 0, 100.0, 0)]), "UA") == (0.0, 100.0)
    assert bootstrap_interval(_frame([("A", 0, 0.0, 0), ("A", 1, 100.0, 0)]), "UA") == (50.0, 50.0)


def test_interval_over_images_by_hand():
    # one target, UA 50 over 2 images: a redraw gives 0, 1 or 2 misses (1/4, 1/2, 1/4): [0, 100]
    assert bootstrap_interval(_frame([("A", 0, 50.0, 2)]), "UA") == (0.0, 100.0)
    # UA 90 over 10,000 images: the normal approximation, 90 ± 1.96 sqrt(0.9 * 0.1 / 10000) = 90 ± 0.588
    lo, hi = bootstrap_interval(_frame([("A", 0, 90.0, 10000)]), "UA")
    assert lo == pytest.approx(90 - 0.588, abs=0.06) and hi == pytest.approx(90 + 0.588, abs=0.06)
    # a fixed seed gives the same interval
    assert bootstrap_interval(_frame([("A", 0, 90.0, 50)]), "UA") == bootstrap_interval(
        _frame([("A", 0, 90.0, 50)]), "UA"
    )


def test_image_counts_of_the_mini_answer_set():
    # 11 style classes (10 benchmark styles + photo) x 10 objects x 5 answer seeds = 550 images
    grid = {s: dict.fromkeys(range(10), 100.0) for s in range(11)}
    result = {"pair_accuracy": {"style": grid}, "n_images": 550}
    assert image_counts(result, "style:X", 10) == {"images UA": 50, "images IRA": 450, "images CRA": 550}
    assert image_counts(result, "object:Y", 10) == {"images UA": 55, "images IRA": 495, "images CRA": 500}
    assert image_counts(result, "pair:X+Y", 10) == {} and image_counts({}, "style:X", 10) == {}


def test_paired_table_by_hand():
    ours = _frame([("A", 0, 100.0, 0), ("B", 0, 100.0, 0), ("C", 0, 50.0, 0)], "spare").assign(FID=5.0)
    theirs = _frame([("A", 0, 0.0, 0), ("B", 0, 0.0, 0)], "esd").assign(FID=8.0)
    same = _frame([("A", 0, 100.0, 0), ("B", 0, 100.0, 0)], "ca").assign(FID=5.0)
    table = paired_table(pd.concat([ours, theirs, same]), metrics=("UA", "FID")).set_index(["baseline", "metric"])
    # only the shared targets A and B count; SPARE's UA is 100 points higher on both
    assert table.loc[("esd", "UA"), ["targets", "difference", "low", "high"]].tolist() == [2, 100.0, 100.0, 100.0]
    assert table.loc[("esd", "UA"), "verdict"] == "better"
    assert table.loc[("esd", "FID"), "difference"] == -3.0 and table.loc[("esd", "FID"), "verdict"] == "better"
    assert table.loc[("ca", "UA"), "verdict"] == "tie" and table.loc[("ca", "FID"), "verdict"] == "tie"
    worse = paired_table(pd.concat([ours.assign(UA=0.0), theirs.assign(UA=100.0)]), metrics=("UA",))
    assert worse["verdict"].tolist() == ["worse"]


def test_no_verdict_without_an_interval():
    # one shared target and FID (no images to redraw): the difference is shown, no verdict
    ours = _frame([("A", 0, 100.0, 10)], "spare").assign(FID=5.0)
    theirs = _frame([("A", 0, 0.0, 10)], "esd").assign(FID=8.0)
    table = paired_table(pd.concat([ours, theirs]), metrics=("UA", "FID")).set_index("metric")
    assert table.loc["FID", "difference"] == -3.0 and table.loc["FID", "verdict"] == "- (one target)"
    assert table.loc["UA", "verdict"] == "better"  # UA's images give it an interval
