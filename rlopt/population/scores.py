"""Macro precision, recall and F1 of K members' predictions at once.

The same numbers as scikit-learn's `precision_recall_fscore_support(average="macro", zero_division=0)`,
which the single-run engine calls (the mean over the labels present in the targets or the predictions;
F1 = 2 tp / (true + predicted)), from per-class counts in three scatter-adds: one scikit-learn call per
member per evaluation cost more than the population's training step at K=32 (tests/test_population.py
checks the two agree).
"""

from __future__ import annotations

import torch


def macro_scores(pred: torch.Tensor, true: torch.Tensor, n_classes: int,
                 valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """`pred` (K, n) class indices, `true` (n,) or each member's own (K, n), `valid` (K, n): which of a member's
    columns are its examples (members with validation splits of different sizes are padded; default: all):
    accuracy, precision, recall, f1, each (K,) float64."""
    k, n = pred.shape
    true = true.expand(k, n)
    counted = torch.ones(k, n, dtype=torch.float64, device=pred.device) if valid is None else valid.double()
    predicted = torch.zeros(k, n_classes, dtype=torch.float64, device=pred.device).scatter_add_(1, pred, counted)
    correct = (pred == true).double() * counted
    tp = torch.zeros(k, n_classes, dtype=torch.float64, device=pred.device).scatter_add_(1, true, correct)
    actual = torch.zeros(k, n_classes, dtype=torch.float64, device=pred.device).scatter_add_(1, true, counted)
    present = (predicted + actual) > 0

    def ratio(num, den):
        return torch.where(den > 0, num / den.clamp(min=1), 0.0)

    def macro(per_class):
        return (per_class * present).sum(1) / present.sum(1)

    return {"acc": correct.sum(1) / counted.sum(1), "precision": macro(ratio(tp, predicted)),
            "recall": macro(ratio(tp, actual)), "f1": macro(ratio(2 * tp, actual + predicted))}
