"""Finer-scale unlearning: pair targets parse (or fail naming the valid names), their forget and
retain sets and surrogate prompts by hand, FU / FR by hand, and a pair run end to end."""

import datasets
import pandas as pd
import pytest

from evaluators.accuracy import pair_metrics
from spare.catalogue import Concept, UnknownConceptError
from spare.config import apply_overrides
from spare.data import split_for_target
from spare.data.canvas_mini import CANVAS_MINI
from spare.methods import get_method
from spare.run import evaluate_base, run_unlearning

from tiny import tiny_settings


def test_pair_targets_parse_and_bad_ones_name_the_valid_choices():
    pair = CANVAS_MINI.target("pair:ink outline+star")
    assert pair == Concept("pair", "Ink_Outline+Star") and pair.slug == "pair-Ink_Outline+Star"
    assert pair.parts == ("Ink_Outline", "Star") and str(pair) == "pair:Ink_Outline+Star"
    assert pair.shows("Ink_Outline", "Star") and not pair.shows("Ink_Outline", "Arrow")
    assert not pair.shows("Pencil_Hatch", "Star")
    with pytest.raises(UnknownConceptError, match="Did you mean 'Ink_Outline'"):
        CANVAS_MINI.target("pair:Ink_Outlin+Star")
    with pytest.raises(UnknownConceptError, match="Did you mean 'Star'"):
        CANVAS_MINI.target("pair:Ink_Outline+Starr")
    with pytest.raises(UnknownConceptError, match=r"pair:<Style>\+<Object>"):
        CANVAS_MINI.target("pair:Ink_Outline")
    with pytest.raises(UnknownConceptError, match="Valid styles"):
        CANVAS_MINI.target("pair:Photo+Star")  # the photo class is never a target


def test_a_pairs_forget_and_retain_sets_by_hand():
    rows = [(s, o) for s in ("Ink_Outline", "Pencil_Hatch", "Photo") for o in ("Star", "Arrow")]
    rows.append(("Ink_Outline", "Star"))  # a second image of the pair
    data = datasets.Dataset.from_dict(
        {
            "style": [s for s, _ in rows],
            "object": [o for _, o in rows],
            "prompt": [CANVAS_MINI.prompt(s, o) for s, o in rows],
        }
    )
    split = split_for_target(data, "pair:Ink_Outline+Star", CANVAS_MINI)
    assert list(zip(split.forget["style"], split.forget["object"], strict=True)) == [("Ink_Outline", "Star")] * 2
    kept = set(zip(split.retain["style"], split.retain["object"], strict=True))
    # the same style with other objects and the same object in other styles are kept
    assert kept == {
        ("Ink_Outline", "Arrow"),
        ("Pencil_Hatch", "Star"),
        ("Pencil_Hatch", "Arrow"),
        ("Photo", "Star"),
        ("Photo", "Arrow"),
    }
    assert split.surrogate == Concept("pair", "Photo+Star")
    assert set(split.forget["surrogate_prompt"]) == {"A Star image in Photo style."}


def test_fu_and_fr_by_hand():
    def image(style, obj, pred_style, pred_object):
        return {"style": style, "object": obj, "pred_style": pred_style, "pred_object": pred_object}

    answers = pd.DataFrame(
        [
            image("Ink_Outline", "Star", "Ink_Outline", "Star"),  # the pair, still shown
            image("Ink_Outline", "Star", "Photo", "Star"),  # the pair, forgotten (style lost)
            image("Ink_Outline", "Star", "Ink_Outline", "Arrow"),  # forgotten (object lost)
            image("Ink_Outline", "Arrow", "Ink_Outline", "Arrow"),  # same style, kept
            image("Ink_Outline", "Arrow", "Photo", "Arrow"),  # same style, lost
            image("Pencil_Hatch", "Star", "Pencil_Hatch", "Star"),  # same object, kept
            image("Pencil_Hatch", "Arrow", "Pencil_Hatch", "Arrow"),  # the rest, kept
            image("Pencil_Hatch", "Arrow", "Pencil_Hatch", "Star"),  # the rest, lost
            image("Photo", "Star", "Photo", "Arrow"),  # photo: not counted
        ]
    )
    m = pair_metrics(answers, CANVAS_MINI.target("pair:Ink_Outline+Star"), CANVAS_MINI)
    assert m["FU"].value == pytest.approx(100 * 2 / 3)
    assert m["FR_style"].value == pytest.approx(50.0)
    assert m["FR_object"].value == pytest.approx(100.0)
    assert m["FR_rest"].value == pytest.approx(50.0)
    assert all(x.higher_is_better for x in m.values())


def test_a_pair_target_runs_end_to_end(tmp_path):
    settings = tiny_settings(tmp_path)
    cfg = apply_overrides(get_method("fmn").config_cls(), ["optim.steps=2", "batch_size=2"])
    result = run_unlearning("fmn", "pair:Ink_Outline+Star", cfg, settings)
    assert {"FU", "FR_style", "FR_object", "FR_rest", "FID(cls)"} <= set(result["metrics"])
    assert (tmp_path / "runs" / "mini" / "fmn" / "pair-Ink_Outline+Star" / "metrics.json").exists()
    base = evaluate_base("pair:Ink_Outline+Star", settings)
    assert set(base["metrics"]) == {"FU", "FR_style", "FR_object", "FR_rest", "FID(cls)"}


def test_a_pair_sweep_writes_the_finer_table_under_results_finer(tmp_path, monkeypatch):
    from benchmarks.presets import get_preset
    from spare.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs.yaml").write_text(
        "targets: ['pair:Ink_Outline+Star']\nmethods: [uce]\nsampling: {seeds: [188], steps: 2}\n"
        "results_root: results/finer\ntag: tiny\n"
    )
    assert main(["benchmark", "--preset", "pairs.yaml", "--wandb", "off"]) == 0
    table = pd.read_csv(tmp_path / "results" / "finer" / "pairs" / "finer.csv")
    from benchmarks.tables import BASE_METHOD

    assert list(table["method"]) == [BASE_METHOD, "uce"] and table.loc[1, "pairs"] == 1  # what FR starts from, first
    per_target = pd.read_csv(tmp_path / "results" / "finer" / "pairs" / "per_target.csv")
    for i, method in enumerate([BASE_METHOD, "uce"]):
        run = per_target[per_target["method"] == method].iloc[0]
        assert table.loc[i, "FU"] == pytest.approx(run["FU"]) and pd.isna(run["UA"])
        assert table.loc[i, "FR same style"] == pytest.approx(run["FR_style"])
    assert "no published row exists" in (tmp_path / "results" / "finer" / "pairs" / "finer.md").read_text()
    assert (tmp_path / "results" / "finer" / "pairs" / "finer.png").exists()
    assert get_preset("mini-finer").results_root == "results/finer"
