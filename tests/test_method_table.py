"""The side-by-side method table is rendered from metrics files only and never fills gaps."""

import json

from benchmarks import method_table


def _metrics(path, ua, storage):
    path.mkdir(parents=True)
    values = {"UA": ua, "IRA": 90.0, "CRA": 95.0, "FID(cls)": 7.5, "time_s": 12.0, "memory_gb": 1.5}
    result = {
        "metrics": {k: {"value": v} for k, v in values.items()},
        "storage_bytes": storage,
        "trainable_params": 7,
    }
    (path / "metrics.json").write_text(json.dumps(result))
    (path / "config.json").write_text("{}")


def test_table_rows_come_from_metrics_files_and_gaps_are_listed(tmp_path, capsys):
    runs = tmp_path / "runs"
    _metrics(runs / "base" / "style-Ink_Outline", 0.0, 0)
    _metrics(runs / "spare" / "style-Ink_Outline", 100.0, 255)
    _metrics(runs / "uce" / "style-Ink_Outline", 42.5, 132)
    code = method_table.main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--targets", "style:Ink_Outline"])
    assert code == 2  # other methods have no runs: listed, not invented
    out = capsys.readouterr().out
    assert "esd style:Ink_Outline" in out and "spm style:Ink_Outline" in out
    table = (tmp_path / "out" / "methods.csv").read_text().splitlines()
    assert len(table) == 4  # header, base, spare, uce
    assert any(line.startswith("style:Ink_Outline,uce,42.5,") for line in table)
    assert (tmp_path / "out" / "configs" / "uce" / "style-Ink_Outline" / "config.json").is_file()
