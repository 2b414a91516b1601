"""Labelled image grids (dataset previews, answer sets) as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spare.io import atomic_path


def image_grid(
    cells: Sequence[Sequence[np.ndarray | Image.Image]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    scale: int = 3,
    pad: int = 2,
    title: str | None = None,
) -> Image.Image:
    """A rows x cols grid of equally sized images with row and column labels, upscaled ``scale``x."""
    if len(cells) != len(row_labels) or any(len(r) != len(col_labels) for r in cells):
        raise ValueError("grid cells must match the row and column labels")
    first = np.asarray(cells[0][0])
    h, w = first.shape[0] * scale, first.shape[1] * scale
    font = ImageFont.load_default()
    label_w = max(font.getbbox(s)[2] for s in row_labels) + 8
    label_h = 14
    col_h = label_h * 2  # column labels alternate between two lines so long names never overlap
    top = col_h + (label_h + 4 if title else 0)
    grid = Image.new("RGB", (label_w + len(col_labels) * (w + pad), top + len(row_labels) * (h + pad)), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    for j, label in enumerate(col_labels):
        draw.text((label_w + j * (w + pad), top - col_h + (j % 2) * label_h), label, fill="black", font=font)
    for i, (label, row) in enumerate(zip(row_labels, cells, strict=True)):
        y = top + i * (h + pad)
        draw.text((2, y + h // 2 - 6), label, fill="black", font=font)
        for j, cell in enumerate(row):
            img = Image.fromarray(np.asarray(cell)).resize((w, h), Image.Resampling.NEAREST)
            grid.paste(img, (label_w + j * (w + pad), y))
    return grid


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (a crash never leaves half a file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def answer_grid_png(answers: str | Path, path: str | Path, title: str) -> Path:
    """The first seed of an answer set ``<answers>/<Style>/<Object>/<seed>.png`` as a styles x objects grid."""
    answers = Path(answers)
    styles = sorted(p.name for p in answers.iterdir() if p.is_dir())
    objects = sorted(p.name for p in (answers / styles[0]).iterdir() if p.is_dir())
    seed = min(int(f.stem) for f in (answers / styles[0] / objects[0]).glob("*.png"))
    cells = [[Image.open(answers / s / o / f"{seed}.png") for o in objects] for s in styles]
    return save_png(image_grid(cells, styles, objects, title=f"{title}, seed {seed}"), path)


def percent_bars(ax, labels, series, title: str, width: float = 0.2, legend: bool = False) -> None:
    """Grouped bars on a 0-100 axis: one group per label, one bar per ``(values, bar keywords)`` in series.
    The axis runs to 122 so that the legend (``legend``: the series' labels, in one row) sits above
    every bar instead of hiding some."""
    x = np.arange(len(labels))
    for i, (values, style) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, **style)
    ax.set_xticks(x, labels, rotation=30)
    ax.set_ylim(0, 122)
    ax.set_yticks(range(0, 101, 20))
    if legend:
        ax.legend(fontsize=7, loc="upper center", ncol=len(series))
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def save_figure(fig, path: str | Path, dpi: int = 120, rect: tuple = (0, 0, 1, 1)) -> Path:
    """A matplotlib figure as a PNG, laid out tight (within ``rect``, in figure fractions: room left
    for a legend beside the plots), written atomically, then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=rect)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
