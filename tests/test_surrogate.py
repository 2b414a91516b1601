"""SPARE's surrogate option: prompts by hand, errors naming the choices, and run keys that stay stable."""

import pytest

from spare.concepts import get_catalogue
from spare.config import hash_view, to_dict
from spare.data import load_benchmark_data, split_for_target
from spare.data.targets import with_surrogate
from spare.errors import UserError
from spare.methods.spare_method import SPAREConfig
from spare.run import RunSettings, plan_run


@pytest.fixture(scope="module")
def data():
    cat = get_catalogue("mini")
    return {t: split_for_target(load_benchmark_data("mini", None, n_per_pair=2), t, cat) for t in
            ("style:Pop_Halftone", "object:Crescent")}  # fmt: skip


def test_surrogate_prompts(data):
    style = data["style:Pop_Halftone"]
    row = style.forget[0]
    assert row["surrogate_prompt"] == f"A {row['object']} image in Photo style."  # the benchmark default
    assert set(with_surrogate(style, "empty").forget["surrogate_prompt"]) == {""}
    nxt = with_surrogate(style, "next")  # Pop_Halftone is followed by Sunset_Silhouette in the catalogue
    assert str(nxt.surrogate) == "style:Sunset_Silhouette"
    assert nxt.forget[0]["surrogate_prompt"] == f"A {row['object']} image in Sunset Silhouette style."
    obj = data["object:Crescent"]
    chosen = with_surrogate(obj, "object:Ring")
    assert chosen.forget[0]["surrogate_prompt"] == f"A Ring image in {obj.forget[0]['style'].replace('_', ' ')} style."
    assert with_surrogate(obj, "next").surrogate not in (obj.target, obj.surrogate)


@pytest.mark.parametrize("spec", ["object:Star", "style:Pop_Halftone", "painting:X"])
def test_bad_surrogate_names_the_choices(data, spec):
    with pytest.raises(UserError, match="style"):
        with_surrogate(data["style:Pop_Halftone"], spec)


def test_new_option_at_its_default_keeps_earlier_run_keys():
    cfg = SPAREConfig()
    assert "surrogate" in to_dict(cfg) and "surrogate" not in hash_view(cfg)
    settings = RunSettings(model="m", classifiers="c")
    default = plan_run("spare", "style:Pop_Halftone", cfg, settings).key
    empty = plan_run("spare", "style:Pop_Halftone", SPAREConfig(surrogate="empty"), settings).key
    assert default != empty
    assert "surrogate" in hash_view(SPAREConfig(surrogate="empty"))
