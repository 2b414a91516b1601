"""Where the project's own files live: the checkout, and canvas-mini's committed model and classifiers.

The one place default paths are worked out (the CLI, the runner and the benchmarks all ask here).
Committed models live in the project checkout; outputs (results/, runs/) go under the working directory.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MINI_BASE_MODEL = PROJECT_ROOT / "models" / "canvas-mini-base"
MINI_CLASSIFIERS = PROJECT_ROOT / "models" / "canvas-mini-classifiers"
DEFAULT_PREVIEW = Path("results/canvas_mini/preview.png")
