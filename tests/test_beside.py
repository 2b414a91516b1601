"""benchmarks.beside: rows of separate sweeps on their shared targets, averaged by hand."""

import pandas as pd
import pytest

from benchmarks.beside import beside, shared_rows
from spare.errors import UserError


def _rows(method, target, kind, uas, seeds=(0, 1)):
    return [
        {"method": method, "target": target, "kind": kind, "UA": ua, "IRA": 90.0, "CRA": 80.0 + s, "FID": 8.0}
        | {"seed": s}
        for ua, s in zip(uas, seeds, strict=True)
    ]


def test_beside_averages_the_shared_targets_and_never_counts_a_method_twice():
    first = pd.DataFrame(
        _rows("spare", "style:A", "style", [60.0, 80.0])
        + _rows("spare", "style:B", "style", [100.0, 100.0])
        + _rows("spare", "style:C", "style", [0.0, 0.0])  # C is not in the second table: left out
        + _rows("base (no unlearning)", "style:A", "style", [10.0], seeds=(0,))
        + _rows("base (no unlearning)", "style:B", "style", [20.0], seeds=(0,))
    )
    second = pd.DataFrame(
        _rows("esd", "style:A", "style", [90.0, 100.0])
        + _rows("esd", "style:B", "style", [100.0, 100.0])
        + _rows("spare", "style:A", "style", [0.0, 0.0])  # already in the first table: not taken again
        + _rows("base (no unlearning)", "style:A", "style", [99.0], seeds=(0,))
    )
    table = beside(shared_rows([first, second])).set_index("method")
    assert list(table.index) == ["spare", "esd", "base (no unlearning)"]
    assert table.loc["spare", "runs"] == 4 and table.loc["spare", "targets"] == 2
    assert table.loc["spare", "UA"] == pytest.approx((60 + 80 + 100 + 100) / 4)
    # sd over seeds: A's (60, 80) is 14.142..., B's 0, mean 7.071...
    assert table.loc["spare", "UA sd over seeds"] == pytest.approx(200**0.5 / 2)
    assert table.loc["esd", "UA"] == pytest.approx(97.5)
    assert table.loc["base (no unlearning)", "UA"] == pytest.approx(15.0)  # the first table's base rows
    assert pd.isna(table.loc["base (no unlearning)", "UA sd over seeds"])


def test_tables_without_a_shared_target_are_refused():
    a = pd.DataFrame(_rows("spare", "style:A", "style", [1.0, 2.0]))
    b = pd.DataFrame(_rows("esd", "style:B", "style", [1.0, 2.0]))
    with pytest.raises(UserError, match="share no target"):
        shared_rows([a, b])


def test_the_command_writes_both_tables_and_names_a_missing_reference(tmp_path):
    from benchmarks.beside import main

    ours = pd.DataFrame(
        _rows("spare", "style:A", "style", [100.0, 100.0]) + _rows("spare", "style:B", "style", [90.0, 90.0])
    )
    theirs = pd.DataFrame(_rows("esd", "style:A", "style", [0.0, 0.0]) + _rows("esd", "style:B", "style", [10.0, 10.0]))
    ours.to_csv(tmp_path / "ours.csv", index=False)
    theirs.to_csv(tmp_path / "theirs.csv", index=False)
    tables = ["--tables", str(tmp_path / "ours.csv"), str(tmp_path / "theirs.csv")]
    assert main([*tables, "--out", str(tmp_path / "beside")]) == 0
    paired = pd.read_csv(tmp_path / "beside_paired.csv").set_index("metric")
    # no image counts: only the targets are redrawn, and spare - esd is 100 or 80 on either target
    assert paired.loc["UA", "difference"] == pytest.approx(90.0)
    assert paired.loc["UA", "verdict"] == "better" and paired.loc["IRA", "verdict"] == "tie"
    assert (tmp_path / "beside.md").read_text().startswith("# Beside each other")
    with pytest.raises(SystemExit, match="no 'salun' rows; methods: spare, esd"):
        main([*tables, "--out", str(tmp_path / "again"), "--reference", "salun"])
