"""One unlearning run end to end on a tiny random model: folder layout, metrics, resume."""

import json

from spare.config import apply_overrides
from spare.data.canvas_mini import CANVAS_MINI
from spare.methods import get_method
from spare.run import evaluate_base, run_dir, run_unlearning

from tiny import tiny_settings


def test_run_writes_every_stage_and_resumes(tmp_path):
    settings = tiny_settings(tmp_path, tag="micro")
    cfg = apply_overrides(
        get_method("spare").config_cls(),
        ["optim.steps=2", "saliency_batches=1", "timesteps.profile_batch=4", "forget_batch=4", "retain_batch=4"],
    )
    result = run_unlearning("spare", "object:Star", cfg, settings)
    out = run_dir(settings, "spare", "object-Star")
    assert out.name == "object-Star@micro"
    for name in ("config.json", "report.json", "metrics.json", "edit/adapter.safetensors"):
        assert (out / name).exists(), name
    stages = result["stages"]  # seconds per stage, and the answer set's rate
    assert all(stages[f"{s}_s"] > 0 for s in ("load", "data", "unlearn", "answers", "score", "classify", "fid"))
    assert stages["answers_generated"] == 110 and stages["answers_img_per_s"] > 0
    assert len(list((out / "answers").rglob("*.png"))) == len(CANVAS_MINI.style_classes) * len(CANVAS_MINI.objects)
    assert set(result["metrics"]) == {"UA", "IRA", "CRA", "FID(cls)", "time_s", "memory_gb", "storage_gb"}
    assert result["storage_bytes"] == sum(f.stat().st_size for f in (out / "edit").iterdir())
    assert result["metrics"]["memory_gb"]["value"] > 0 and result["provenance"]["versions"]["peft"]
    assert result["provenance"]["cpu"]["threads"] >= 1 and result["provenance"]["cpu"]["model"]
    stamp = (out / "metrics.json").stat().st_mtime_ns
    again = run_unlearning("spare", "object:Star", cfg, settings)  # done already: nothing is recomputed
    assert (out / "metrics.json").stat().st_mtime_ns == stamp and again == json.loads(
        (out / "metrics.json").read_text()
    )
    base = evaluate_base("object:Star", settings)
    assert set(base["metrics"]) == {"UA", "IRA", "CRA", "FID(cls)"} and base["method"] == "base"

    # the same folder with another config: retrained, and its answers regenerated (none kept from before)
    first = {p: p.stat().st_mtime_ns for p in (out / "answers").rglob("*.png")}
    other = apply_overrides(cfg, ["optim.steps=1"])
    changed = run_unlearning("spare", "object:Star", other, settings)
    assert changed["config_key"] != result["config_key"]
    # ... and the finished run of the first config is not lost: it is kept, whole, beside the folder
    kept = out.parent / ".replaced" / f"{out.name}~{result['config_key']}"
    assert json.loads((kept / "metrics.json").read_text()) == result and (kept / "edit").is_dir()
    assert all(p.stat().st_mtime_ns != t for p, t in first.items())


def test_base_metrics_of_many_targets_share_one_scoring(tmp_path, monkeypatch):
    """Every base target is scored from one classification of the shared base answers, and each
    target's metrics are those of scoring the answers for it alone."""
    from evaluators.classifiers import Classifier
    from spare.pipeline import T2IPipeline
    from spare.run import _evaluate, base_answers, evaluate_bases, planned_base

    settings = tiny_settings(tmp_path, tag="micro")
    grid = base_answers(settings)
    targets = ["object:Star", "style:Ink_Outline"]
    alone = {t: _evaluate(grid, CANVAS_MINI.target(t), settings)["metrics"] for t in targets}
    calls = []
    predict = Classifier.predict
    monkeypatch.setattr(
        Classifier, "predict", lambda self, images, **kw: calls.append(len(images)) or predict(self, images, **kw)
    )
    bases = evaluate_bases(targets, settings)
    assert calls == [len(grid), len(grid)]  # style and object classifier, once each, for both targets
    assert {t: bases[t]["metrics"] for t in targets} == alone
    assert alone["object:Star"] != alone["style:Ink_Outline"]  # the tables depend on the target
    for t in targets:
        assert json.loads(planned_base(t, settings).metrics_path.read_text())["metrics"] == alone[t]
    calls.clear()
    again = evaluate_bases(targets, settings)  # done: read back, nothing rescored
    assert {t: again[t]["metrics"] for t in targets} == alone and calls == []

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every base answer is made")

    monkeypatch.setattr(T2IPipeline, "from_pretrained", no_model)
    assert base_answers(settings).attrs["generated"] == 0
