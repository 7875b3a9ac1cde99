"""Macro precision, recall and F1 of K members' predictions at once.

The same numbers as scikit-learn's `precision_recall_fscore_support(average="macro", zero_division=0)`,
which the single-run engine calls (the mean over the labels present in the targets or the predictions;
F1 = 2 tp / (true + predicted)), from per-class counts in three scatter-adds: one scikit-learn call per
member per evaluation cost more than the population's training step at K=32 (tests/test_population.py
checks the two agree).
"""

from __future__ import annotations

import torch


def macro_scores(pred: torch.Tensor, true: torch.Tensor, n_classes: int) -> dict[str, torch.Tensor]:
    """`pred` (K, n) class indices, `true` (n,) or each member's own (K, n): accuracy, precision, recall, f1, each
    (K,) float64."""
    k, n = pred.shape
    true = true.expand(k, n)
    ones = torch.ones(k, n, dtype=torch.float64, device=pred.device)

    def per_class(index, values):
        return torch.zeros(k, n_classes, dtype=torch.float64, device=pred.device).scatter_add_(1, index, values)

    predicted = per_class(pred, ones)
    correct = (pred == true).double()
    tp = per_class(true, correct)
    actual = per_class(true, ones)
    present = (predicted + actual) > 0

    def ratio(num, den):
        return torch.where(den > 0, num / den.clamp(min=1), 0.0)

    def macro(per_class):
        return (per_class * present).sum(1) / present.sum(1)

    return {"acc": correct.mean(1), "precision": macro(ratio(tp, predicted)), "recall": macro(ratio(tp, actual)),
            "f1": macro(ratio(2 * tp, actual + predicted))}
