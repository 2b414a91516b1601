"""UA / IRA / CRA on small synthetic answer sets whose values are computed by hand."""

import pandas as pd
import pytest

from evaluators.accuracy import base_metrics, object_accuracy, pair_accuracy, style_accuracy, unlearning_metrics
from spare.concepts import Catalogue, Concept
from spare.errors import UserError

# A 3-style (+ photo) x 2-object world, 2 seeds: 16 images.
CAT = Catalogue(name="tiny-test", styles=("Ink", "Neon", "Pastel"), objects=("Disc", "Star"), photo="Photo")


def answer_set(wrong_style: dict, wrong_object: dict) -> pd.DataFrame:
    """Every prediction right except the (style, object, seed) keys listed, which get another label."""
    rows = []
    for s in CAT.style_classes:
        for o in CAT.objects:
            for seed in (188, 288):
                key = (s, o, seed)
                rows.append(
                    {
                        "style": s,
                        "object": o,
                        "seed": seed,
                        "pred_style": wrong_style.get(key, s),
                        "pred_object": wrong_object.get(key, o),
                    }
                )
    return pd.DataFrame(rows)


def test_style_target_by_hand():
    # target Ink: 3 of its 4 images are read as Photo -> acc_Ink = 25%, UA = 75.
    # Neon: 1 of 4 wrong -> 75%; Pastel: all right -> 100%; Photo: 2 of 4 wrong -> 50% (must not count).
    # IRA = mean(75, 100) = 87.5 (photo excluded; with photo it would be 75).
    # Objects: Disc 1 of 8 wrong -> 87.5%, Star 8/8 -> 100%; CRA = 93.75.
    wrong_style = {
        ("Ink", "Disc", 188): "Photo",
        ("Ink", "Disc", 288): "Photo",
        ("Ink", "Star", 188): "Photo",
        ("Neon", "Star", 288): "Ink",
        ("Photo", "Disc", 188): "Ink",
        ("Photo", "Star", 188): "Ink",
    }
    wrong_object = {("Pastel", "Disc", 188): "Star"}
    m = unlearning_metrics(answer_set(wrong_style, wrong_object), Concept("style", "Ink"), CAT)
    assert m["UA"].value == pytest.approx(75.0)
    assert m["IRA"].value == pytest.approx(87.5)
    assert m["CRA"].value == pytest.approx(93.75)
    assert all(x.higher_is_better for x in m.values())


def test_object_target_by_hand():
    # target Star: 5 of its 8 images read as Disc -> UA = 62.5; IRA = acc_Disc: 1 of 8 wrong -> 87.5.
    # CRA = mean acc over benchmark styles: Ink 2/4 wrong -> 50, Neon 100, Pastel 100 -> 83.333...
    # (Photo is wrong on every image and must not move CRA.)
    wrong_object = {
        ("Ink", "Star", 188): "Disc",
        ("Ink", "Star", 288): "Disc",
        ("Neon", "Star", 188): "Disc",
        ("Pastel", "Star", 288): "Disc",
        ("Photo", "Star", 188): "Disc",
        ("Neon", "Disc", 288): "Star",
    }
    wrong_style = {("Ink", "Disc", 188): "Neon", ("Ink", "Star", 188): "Neon"}
    wrong_style.update({("Photo", o, seed): "Pastel" for o in CAT.objects for seed in (188, 288)})
    m = unlearning_metrics(answer_set(wrong_style, wrong_object), Concept("object", "Star"), CAT)
    assert m["UA"].value == pytest.approx(62.5)
    assert m["IRA"].value == pytest.approx(87.5)
    assert m["CRA"].value == pytest.approx(250 / 3)


def test_per_concept_and_pair_accuracy():
    answers = answer_set({("Neon", "Star", 288): "Ink"}, {("Ink", "Disc", 188): "Star"})
    assert style_accuracy(answers)["Neon"] == pytest.approx(75.0)
    assert object_accuracy(answers)["Disc"] == pytest.approx(87.5)
    pairs = pair_accuracy(answers)
    assert pairs["style"].loc["Neon", "Star"] == pytest.approx(50.0)
    assert pairs["style"].loc["Neon", "Disc"] == pytest.approx(100.0)
    assert pairs["object"].loc["Ink", "Disc"] == pytest.approx(50.0)
    base = base_metrics(answers, CAT)
    assert base["style_acc"].value == pytest.approx((100 + 75 + 100 + 100) / 4)
    assert base["min_object_acc"].value == pytest.approx(87.5)


def test_missing_concepts_and_columns_are_errors():
    answers = answer_set({}, {})
    with pytest.raises(UserError, match="no images of styles \\['Pastel'\\]"):
        unlearning_metrics(answers[answers["style"] != "Pastel"], Concept("style", "Ink"), CAT)
    with pytest.raises(UserError, match="lacks columns"):
        style_accuracy(answers.drop(columns=["pred_style"]))
