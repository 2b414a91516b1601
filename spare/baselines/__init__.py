"""Baseline unlearning methods, one small module each, on SPARE's shared parts.

Every baseline registers itself in :mod:`spare.methods` (``@register_method``), trains
through the one optimisation loop (:func:`spare.methods.trainer.optimise`) on the same
forget / retain data, and returns an edit of :mod:`spare.methods.edits`.

Budget rule (the same for every method, SPARE included): a method's canvas-mini step
count is its published iteration count times ``STEP_FACTOR``, and its learning rate its
published one times ``LR_FACTOR``, so relative costs and step sizes stay as published.
Both factors come from SPARE's own calibration on the validation target
``style:Pop_Halftone``: the authors' lr 1e-4 became 3e-3 (x30); ESD's 1000 published
iterations (UnlearnCanvas scripts) give SPARE's 400 at x0.4.
"""

from __future__ import annotations

STEP_FACTOR = 0.4
LR_FACTOR = 30.0


def scaled_steps(published: int) -> int:
    return max(1, round(published * STEP_FACTOR))


def scaled_lr(published: float) -> float:
    return published * LR_FACTOR
