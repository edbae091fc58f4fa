"""Evaluation of COVID-19 classifiers from per-case labels and probabilities.

* :mod:`.predictions` — read/check predictions (CSV, or the DeCoVNet authors' .txt): :func:`read_predictions`.
* :mod:`.metrics` — ROC AUC, PR AUC, operating points, threshold table (scikit-learn).
* :mod:`.bootstrap` — vectorised stratified bootstrap CI of the ROC AUC.
* :mod:`.plots` — ROC and PR curves (PNG).
* :mod:`.report` — :func:`evaluate_predictions` (dict) and :func:`write_report` (JSON, Markdown, PNG).
* :mod:`.cohort` — run a classifier over a dataset manifest to obtain predictions (and deep features).

Example::

    from covidct.evaluate import read_predictions, evaluate_predictions, write_report
    predictions = read_predictions("preds.csv")
    report = evaluate_predictions(predictions)        # report["roc_auc"], report["threshold_table"], ...
    write_report(report, predictions, "eval/")

The DeCoVNet paper's Table 2 labels its columns "PPV" and "NPV", but their values are the
sensitivity and the specificity; this package names every column by what it computes.
"""

from .predictions import Predictions, make_predictions, read_predictions
from .report import evaluate_predictions, render_markdown, write_report

__all__ = [
    "Predictions",
    "make_predictions",
    "read_predictions",
    "evaluate_predictions",
    "render_markdown",
    "write_report",
]
