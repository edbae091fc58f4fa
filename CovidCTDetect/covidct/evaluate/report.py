"""The evaluation report: every figure in one dict, written as report.json, report.md and two PNG plots."""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..outputs import json_safe, write_json, write_text
from ..progress import Progress
from . import metrics
from .bootstrap import bootstrap_roc_auc, percentile_interval
from .plots import plot_pr, plot_roc
from .predictions import Predictions

#: Printed under the threshold table of every report.md.
COLUMN_NOTE = (
    "Columns are named by what they compute: sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), "
    "PPV = TP/(TP+FP), NPV = TN/(TN+FN); a case is positive when its probability is > the threshold. "
    'Note: the DeCoVNet paper\'s Table 2 labels two columns "PPV" and "NPV", but the values it prints '
    "are the sensitivity and the specificity (at 0.5 its released predictions give sensitivity 0.840, "
    'specificity 0.982, PPV 0.984, NPV 0.821); compare its "PPV"/"NPV" with the Sensitivity/Specificity columns here.'
)


def evaluate_predictions(
    predictions: Predictions,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    thresholds=metrics.PAPER_THRESHOLDS,
    target: float = 0.95,
    progress: Progress | None = None,
) -> dict:
    """All metrics of ``predictions`` as a JSON-able dict (see the module docstring of :mod:`.metrics`).

    Parameters
    ----------
    predictions : Predictions
        From :func:`covidct.evaluate.read_predictions` or :func:`make_predictions`.
    n_resamples : int
        Resamples of the stratified bootstrap of the ROC AUC's confidence interval.
    seed : int
        Seed of the bootstrap's random draws (the report is reproducible).
    level : float
        Confidence level of the interval, in (0, 1).
    thresholds : sequence of float
        Thresholds of the threshold table (default the paper's 0.1…0.9); positive means ``> threshold``.
    target : float
        Sensitivity and specificity targets of the operating points, in (0, 1].
    progress : Progress or None
        Receives a report per metric group.

    Returns
    -------
    dict
        Keys ``n_cases, n_positive, n_negative, roc_auc, roc_auc_ci, pr_auc, operating_points,
        threshold_table, roc_curve, pr_curve, conventions`` (the curves: see :func:`curve_points`).
    """
    y, p = predictions.labels, predictions.probabilities
    if progress:
        progress.stage("metrics", 0, 3)
    auc = metrics.roc_auc(y, p)
    low, high = percentile_interval(bootstrap_roc_auc(y, p, n_resamples, seed), level)
    if progress:
        progress.stage("metrics", 1, 3)
    points = metrics.standard_operating_points(y, p, target)
    table = metrics.threshold_table(y, p, thresholds)
    if progress:
        progress.stage("metrics", 3, 3)
    return {
        "n_cases": len(predictions),
        "n_positive": int(y.sum()),
        "n_negative": int(len(y) - y.sum()),
        "roc_auc": auc,
        "roc_auc_ci": {
            "level": level,
            "low": low,
            "high": high,
            "method": "stratified percentile bootstrap",
            "resamples": n_resamples,
            "seed": seed,
        },
        "pr_auc": metrics.pr_auc(y, p),
        "operating_points": [point.as_dict() for point in points],
        "threshold_table": table,
        **curve_points(y, p),
        "conventions": {
            "threshold_table": "positive when probability > threshold",
            "operating_points": "ROC vertices; positive when probability > threshold",
            "nearest": "vertex whose value is closest to the target; ties: highest threshold",
            "at_least": "vertex with value >= target and the best other metric",
            "pr_auc": "average_precision = sklearn average_precision_score; "
            "trapezoidal = sklearn auc over precision_recall_curve",
        },
    }


def curve_points(labels, probabilities) -> dict:
    """The points of the ROC and precision-recall curves, for plotting them elsewhere (e.g. Slicer plot charts).

    Returns ``{"roc_curve": {"threshold", "sensitivity", "specificity"}, "pr_curve": {"threshold", "recall",
    "precision"}}``, each a dict of equal-length lists. ROC: every vertex (:func:`metrics.roc_vertices`),
    thresholds decreasing from +inf ("nothing positive"); PR: scikit-learn's ``precision_recall_curve``,
    thresholds increasing, the last point (recall 0, precision 1) has threshold +inf. A case is positive when
    its probability is > the threshold (PR thresholds restated as the ROC's, :func:`metrics.strict_thresholds`).
    """
    from sklearn.metrics import precision_recall_curve

    thresholds, sensitivity, specificity = metrics.roc_vertices(labels, probabilities)
    precision, recall, pr_thresholds = precision_recall_curve(labels, probabilities)
    return {
        "roc_curve": {
            "threshold": thresholds.tolist(),
            "sensitivity": sensitivity.tolist(),
            "specificity": specificity.tolist(),
        },
        "pr_curve": {
            "threshold": metrics.strict_thresholds(pr_thresholds, probabilities).tolist() + [math.inf],
            "recall": recall.tolist(),
            "precision": precision.tolist(),
        },
    }


def write_report(report: dict, predictions: Predictions, out_dir: str | os.PathLike) -> dict:
    """Write ``report.json``, ``report.md``, ``roc.png`` and ``pr.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    files = {"json": out / "report.json", "markdown": out / "report.md", "roc": out / "roc.png", "pr": out / "pr.png"}
    y, p = predictions.labels, predictions.probabilities
    points = [metrics.OperatingPoint(**point) for point in report["operating_points"]]
    ci = report["roc_auc_ci"]
    plot_roc(y, p, files["roc"], report["roc_auc"], (ci["low"], ci["high"]), points)
    plot_pr(y, p, files["pr"], report["pr_auc"]["average_precision"])
    write_json(files["json"], {**json_safe(report), "files": {k: v.name for k, v in files.items()}})
    write_text(files["markdown"], render_markdown(report))
    return files


def render_markdown(report: dict) -> str:
    """The report as Markdown: summary, operating points and the threshold table with the naming note."""
    ci = report["roc_auc_ci"]
    lines = [
        "# Evaluation report",
        "",
        f"{report['n_cases']} cases: {report['n_positive']} positive, {report['n_negative']} negative.",
        "",
        "| Metric | Value |",
        "|---|---|",
        f"| ROC AUC | {report['roc_auc']:.3f} ({ci['level']:.0%} CI {ci['low']:.3f}–{ci['high']:.3f}, "
        f"{ci['method']}, {ci['resamples']} resamples, seed {ci['seed']}) |",
        f"| PR AUC (average precision) | {report['pr_auc']['average_precision']:.3f} |",
        f"| PR AUC (trapezoidal) | {report['pr_auc']['trapezoidal']:.3f} |",
        "",
        "## Operating points",
        "",
        "ROC vertices; a case is positive when its probability is > the threshold. `nearest`: value closest to "
        "the target (ties: highest threshold); `at_least`: value ≥ target with the best other metric.",
        "",
        "| Point | Rule | Threshold | Sensitivity | Specificity |",
        "|---|---|---|---|---|",
    ]
    for point in report["operating_points"]:
        threshold = (
            "∞ (no case positive)"
            if point["threshold"] is None or math.isinf(point["threshold"])
            else f"{point['threshold']:.4g}"
        )
        lines.append(
            f"| {point['name']} | {point['rule']} | {threshold} | "
            f"{point['sensitivity']:.3f} | {point['specificity']:.3f} |"
        )
    lines += [
        "",
        "## Threshold table",
        "",
        "| Threshold | Accuracy | Sensitivity | Specificity | PPV | NPV | F1 | TP | FP | TN | FN |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["threshold_table"]:
        rates = " | ".join(_fmt(row[k]) for k in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"))
        lines.append(f"| {row['threshold']:g} | {rates} | {row['tp']} | {row['fp']} | {row['tn']} | {row['fn']} |")
    lines += ["", COLUMN_NOTE, "", "Plots: `roc.png`, `pr.png`.", ""]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"
