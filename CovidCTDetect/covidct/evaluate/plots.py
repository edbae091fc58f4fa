"""ROC and precision-recall curves as PNG files (matplotlib without pyplot: no display needed)."""

from __future__ import annotations

import os

import numpy as np
from sklearn import metrics

from ..plotting import new_figure, save_png


def plot_roc(
    labels, probabilities, path: str | os.PathLike, auc: float, ci: tuple[float, float] | None = None, points=()
) -> None:
    """ROC curve (1 − specificity vs sensitivity) with the AUC in the legend and ``points`` marked.

    ``points``: :class:`~covidct.evaluate.metrics.OperatingPoint` objects to mark on the curve.
    """
    fpr, tpr, _ = metrics.roc_curve(labels, probabilities)
    figure, axes = new_figure()
    label = f"ROC AUC {auc:.3f}" + (f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else "")
    axes.plot(fpr, tpr, color="C0", lw=2, drawstyle="steps-post", label=label)
    axes.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--", label="chance")
    for i, point in enumerate(points):
        axes.plot(
            1 - point.specificity,
            point.sensitivity,
            marker="o",
            ls="none",
            color=f"C{i + 1}",
            label=f"{point.name} ({point.rule.split()[0]}): sens {point.sensitivity:.3f}, spec {point.specificity:.3f}",
        )
    axes.set(
        xlabel="1 − specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title="ROC curve",
    )
    axes.set_aspect("equal")
    axes.legend(loc="lower right", fontsize=6)
    save_png(figure, path)


def plot_pr(labels, probabilities, path: str | os.PathLike, average_precision: float) -> None:
    """Precision-recall curve with the average precision and the prevalence (chance level)."""
    precision, recall, _ = metrics.precision_recall_curve(labels, probabilities)
    prevalence = float(np.mean(labels))
    figure, axes = new_figure()
    axes.plot(
        recall,
        precision,
        color="C0",
        lw=2,
        drawstyle="steps-post",
        label=f"PR AUC (average precision) {average_precision:.3f}",
    )
    axes.axhline(prevalence, color="0.7", lw=1, ls="--", label=f"prevalence {prevalence:.3f}")
    axes.set(
        xlabel="recall (sensitivity)",
        ylabel="precision (PPV)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title="Precision-recall curve",
    )
    axes.set_aspect("equal")
    axes.legend(loc="lower left", fontsize=7)
    save_png(figure, path)
