"""Why SPARE's old canvas-mini default failed some styles: where its saliency put the adapters.

    python -m benchmarks.spare_diagnosis [--runs runs] [--out results/spare/diagnosis] [--tag old-default]

The old default (before the authors' UnlearnCanvas configuration became SPARE's default) ranked
every Linear / Conv2d of the UNet by mean |grad| of the denoising loss on the forget data and put
LoRA on the top half. Two parts:

1. For every style and object target (cheap: saliency only, no training), the modules that rule
   selects, counted by kind (cross-attention key/value: the text path; cross-attention query/out;
   self-attention; convolutions; other linears), beside SPARE's UA on that target in the
   committed mini-full tables: ``selection.md`` / ``.csv``.
2. For every run made with ``--tag old-default`` under ``--runs`` (``spare unlearn --target X --tag
   old-default`` + the old default's overrides, see ``OLD_DEFAULT``): its loss curves, saliency
   plot and answer grid in ``<out>/<target>/``, and all runs' curves in ``loss_curves.png``.
   ``--tag seed0 --label "new default"`` does the same for today's default in a mini-full sweep.
3. ``--read-as``: for those runs, what the style (object) classifier reads the target's answer
   images as, beside the base model's same images (same prompts and seeds): ``read_as.md``. A
   target "forgotten" into a neighbouring benchmark style counts as forgotten; one still read as
   itself is not.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.tables import write_table
from spare.concepts import get_catalogue
from spare.config import apply_overrides
from spare.data import load_benchmark_data, split_for_target
from spare.methods import get_method
from spare.methods.adapters import lora_modules
from spare.methods.batches import ImageBatches
from spare.methods.spare_method import localize
from spare.paths import MINI_BASE_MODEL, MINI_CLASSIFIERS
from spare.pipeline import T2IPipeline
from spare.progress import tqdm
from spare.viz import answer_grid_png, save_figure

# The SPARE default that made results/benchmark/mini-full (commit f9e7755), as overrides of today's.
OLD_DEFAULT = [
    "candidates=all",
    "localization=module",
    "q=0.5",
    "dropout=0.0",
    "optim.weight_decay=0.0",
    "optim.steps=400",
    "timesteps.mode=gap",
]
KINDS = ("cross-attn k/v", "cross-attn q/out", "self-attn", "conv", "other linear")


def module_kind(name: str, module) -> str:
    """The kind of a Linear / Conv2d of the UNet, by its place in the network."""
    if ".attn2." in name:
        return "cross-attn k/v" if name.endswith(("to_k", "to_v")) else "cross-attn q/out"
    if ".attn1." in name:
        return "self-attn"
    return "conv" if module.__class__.__name__ == "Conv2d" else "other linear"


def selection_table(model: Path, mini_full: Path) -> pd.DataFrame:
    """Per target: what the old default's saliency selects, by kind, and SPARE's mini-full UA."""
    catalogue = get_catalogue("mini")
    pipe = T2IPipeline.from_pretrained(model)
    cfg = apply_overrides(get_method("spare").config_cls(), OLD_DEFAULT)
    modules = lora_modules(pipe.unet)
    totals = pd.Series([module_kind(n, m) for n, m in modules.items()]).value_counts()
    dataset = load_benchmark_data("mini", None)
    ua = {}
    if mini_full.is_file():
        table = pd.read_csv(mini_full)
        spare = table[table.method == "spare"]
        ua = dict(zip(spare["target"], spare["UA"], strict=True))
    rows = []
    targets = [f"style:{s}" for s in catalogue.styles] + [f"object:{o}" for o in catalogue.objects]
    for target in tqdm(targets, desc="saliency per target", unit="target"):
        data = split_for_target(dataset, target, catalogue)
        forget = ImageBatches(pipe, data.forget, "prompt", "surrogate_prompt")
        names, _, saliency = localize(pipe, forget, target, cfg)
        ranked = sorted(saliency, key=lambda n: float(saliency[n].mean()), reverse=True)
        kinds = pd.Series([module_kind(n, modules[n]) for n in names]).value_counts()
        kv_ranks = [i + 1 for i, n in enumerate(ranked) if module_kind(n, modules[n]) == "cross-attn k/v"]
        row = {"target": target, "mini-full UA": ua.get(target, np.nan), "selected": len(names)}
        for kind in KINDS:
            row[f"{kind} ({totals.get(kind, 0)})"] = int(kinds.get(kind, 0))
        row["best k/v rank"] = min(kv_ranks)
        row["median k/v rank"] = float(np.median(kv_ranks))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_losses(runs: dict[str, dict], path: Path) -> Path:
    """Forget and retain loss against step, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for label, report in runs.items():
        log = pd.DataFrame(report["log"])
        for ax, term in zip(axes, ("forget", "retain"), strict=True):
            ax.plot(log["step"], log[term], label=label)
    for ax, term in zip(axes, ("forget", "retain"), strict=True):
        ax.set(xlabel="step", ylabel=f"L_{term}", yscale="log", title=f"{term} loss (student vs teacher)")
    axes[0].legend(fontsize=7)
    return save_figure(fig, path, dpi=110)


def read_as(run_dirs: list[Path], runs: Path, classifiers: Path) -> pd.DataFrame:
    """Per run: the share of its target's answer images the classifier gives each label, beside the
    base model's answers of the same prompts and seeds (one row per run and label)."""
    from evaluators.classifiers import load_classifier
    from evaluators.evaluate import load_images, read_answer_folder
    from spare.run import base_key
    from spare.stages.attack import finished_run

    catalogue = get_catalogue("mini")
    rows = []
    for run in run_dirs:
        _, metrics, settings = finished_run(run)
        kind, name = metrics["target"].split(":", 1)
        base = runs / catalogue.name / "base" / f"answers-{base_key(settings)}"
        clf = load_classifier(classifiers / kind)
        for source, folder in (("base", base), ("spare", run / "answers")):
            table = read_answer_folder(folder, catalogue)
            mine = table[table[kind] == name]
            labels = pd.Series(clf.predict(load_images(list(mine["path"])))).value_counts(normalize=True) * 100
            for label, share in labels.items():
                rows.append(
                    {"target": metrics["target"], "run": run.name, "model": source, "read as": label, "%": share}
                )
    return pd.DataFrame(rows)


def collect_runs(runs: Path, tag: str, out: Path, label: str = "old default") -> dict[str, dict]:
    """Copy each tagged run's evidence to ``out/<target>/``; returns {target (UA): report}."""
    found = {}
    for metrics_file in sorted((runs / "mini" / "spare").glob(f"*@{tag}/metrics.json")):
        run = metrics_file.parent
        metrics, report = json.loads(metrics_file.read_text()), json.loads((run / "report.json").read_text())
        target = metrics["target"]
        dest = out / target.replace(":", "-")
        dest.mkdir(parents=True, exist_ok=True)
        if (run / "saliency.png").is_file():
            shutil.copyfile(run / "saliency.png", dest / "saliency.png")
        answer_grid_png(run / "answers", dest / "answers.png", f"spare ({label}), {target} forgotten")
        ua = metrics["metrics"]["UA"]["value"]
        if report.get("adapted_modules"):
            (dest / "adapted_modules.txt").write_text("\n".join(report["adapted_modules"]) + "\n")
        plot_losses({target: report}, dest / "loss_curves.png")
        found[f"{target} (UA {ua:.0f})"] = report
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="results/spare/diagnosis")
    parser.add_argument("--tag", default="old-default", help="the run folders' tag of the diagnosis runs")
    parser.add_argument("--model", default=str(MINI_BASE_MODEL))
    parser.add_argument("--mini-full", default="results/benchmark/mini-full/per_target.csv")
    parser.add_argument("--skip-selection", action="store_true", help="only part 2 (the tagged runs)")
    parser.add_argument("--label", default="old default", help="the runs' default, as the grids' titles name it")
    parser.add_argument("--read-as", action="store_true", help="part 3: what the classifier reads the targets as")
    parser.add_argument("--classifiers", default=str(MINI_CLASSIFIERS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.skip_selection:
        table = selection_table(Path(args.model), Path(args.mini_full))
        title = (
            "SPARE's old default: modules selected by saliency (top half of every Linear/Conv2d), by kind "
            "(in brackets: how many the UNet has), beside SPARE's mini-full UA"
        )
        write_table(table, out / "selection", title)
        print(table.to_string(index=False))
        print(f"wrote {out / 'selection.md'} and .csv")
    runs = collect_runs(Path(args.runs), args.tag, out, args.label)
    if runs:
        print("loss curves:", plot_losses(runs, out / "loss_curves.png"))
    if args.read_as:
        dirs = sorted(p.parent for p in (Path(args.runs) / "mini" / "spare").glob(f"*@{args.tag}/metrics.json"))
        table = read_as(dirs, Path(args.runs), Path(args.classifiers))
        wide = table.pivot_table(index=["target", "model"], columns="read as", values="%", fill_value=0.0)
        wide = wide.reset_index()
        write_table(
            wide,
            out / "read_as",
            f"SPARE ({args.label}): what the classifier reads each target's answer images as, base beside SPARE (%)",
            "Same prompts and answer seeds on both sides; a row sums to 100.",
        )
        print(wide.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
