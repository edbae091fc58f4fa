"""Binary-classification metrics from labels and probabilities, computed with scikit-learn.

Conventions (all functions): ``labels`` is an (n,) array of 0/1 (1 = COVID-19 positive),
``probabilities`` an (n,) array of P(COVID-19) in 0..1.

* **Threshold table** — a case is called positive when ``probability > threshold`` (strictly
  greater), as in the DeCoVNet paper ("if the probability of COVID-19 was larger than 0.5").
* **Operating points** are vertices of scikit-learn's ROC curve (``roc_curve`` with
  ``drop_intermediate=False``), their thresholds restated for the same rule, ``probability >
  threshold``: scikit-learn's vertex at ``t`` (positive when ``>= t``) is reported at the largest
  probability below ``t``, which selects the same cases.

Naming: sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), PPV (precision) = TP/(TP+FP),
NPV = TN/(TN+FN). The DeCoVNet paper's Table 2 labels two columns "PPV" and "NPV", but the values
printed there are the sensitivity and the specificity of its released predictions (at 0.5: 0.840 and
0.982, while PPV and NPV are 0.984 and 0.821); this module names every column by what it computes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn import metrics

#: The DeCoVNet paper's Table 2 thresholds: 0.1, 0.2, ..., 0.9.
PAPER_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def roc_auc(labels, probabilities) -> float:
    """Area under the ROC curve (scikit-learn ``roc_auc_score``)."""
    return float(metrics.roc_auc_score(labels, probabilities))


def pr_auc(labels, probabilities) -> dict:
    """Area under the precision-recall curve, two ways.

    Returns ``{"average_precision": ..., "trapezoidal": ...}``: scikit-learn's
    ``average_precision_score`` (step-wise sum, no interpolation) and the trapezoidal rule
    (``auc``) over ``precision_recall_curve``'s points. The two usually differ in the 3rd or 4th decimal.
    On the DeCoVNet paper's released predictions they are 0.97571 and 0.97557: both round to the
    abstract's 0.976, and the results section's 0.975 is either of them truncated to 3 decimals.
    """
    precision, recall, _ = metrics.precision_recall_curve(labels, probabilities)
    return {
        "average_precision": float(metrics.average_precision_score(labels, probabilities)),
        "trapezoidal": float(metrics.auc(recall, precision)),
    }


def confusion_at(labels, probabilities, threshold: float) -> dict:
    """Counts and rates when a case is positive iff ``probability > threshold``.

    Returns a dict with ``threshold, accuracy, sensitivity, specificity, ppv, npv, f1, tp, fp, tn, fn``.
    A rate whose denominator is zero (e.g. PPV when nothing is called positive) is ``nan``.
    """
    labels = np.asarray(labels)
    predicted = (np.asarray(probabilities) > threshold).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    # per class [negative, positive]: precision = [NPV, PPV], recall = [specificity, sensitivity]
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        labels, predicted, labels=[0, 1], zero_division=np.nan
    )
    return {
        "threshold": float(threshold),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "sensitivity": float(recall[1]),
        "specificity": float(recall[0]),
        "ppv": float(precision[1]),
        "npv": float(precision[0]),
        "f1": float(f1[1]),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def threshold_table(labels, probabilities, thresholds=PAPER_THRESHOLDS) -> list[dict]:
    """:func:`confusion_at` for each threshold (default 0.1 … 0.9, the paper's Table 2)."""
    return [confusion_at(labels, probabilities, t) for t in thresholds]


@dataclass(frozen=True)
class OperatingPoint:
    """One vertex of the ROC curve.

    ``threshold``: a case is positive when its probability is ``> threshold`` (+inf: no case). ``rule`` says how the
    vertex was chosen, ``target`` the sensitivity or specificity asked for (None for Youden/balanced).
    """

    name: str
    rule: str
    target: float | None
    threshold: float
    sensitivity: float
    specificity: float

    def as_dict(self) -> dict:
        return asdict(self)


#: How "sensitivity ≈ 0.95" picks a vertex (see :func:`operating_point`).
RULES = ("nearest", "at_least")


def roc_vertices(labels, probabilities) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, sensitivity, specificity)`` of every ROC vertex, thresholds decreasing.

    The first vertex is "nothing positive" (threshold +inf, written as null in JSON); it is chosen
    only when no other vertex qualifies (e.g. specificity ≥ target with uninformative scores).
    """
    fpr, tpr, thresholds = metrics.roc_curve(labels, probabilities, drop_intermediate=False)
    return strict_thresholds(thresholds, probabilities), tpr, 1.0 - fpr


def strict_thresholds(thresholds, probabilities) -> np.ndarray:
    """scikit-learn's ``>=`` thresholds restated for ``>``: each finite ``t`` becomes the largest
    probability below it (just below ``t`` when there is none), so the same cases are positive."""
    values = np.unique(np.asarray(probabilities, dtype=float))
    thresholds = np.asarray(thresholds, dtype=float)
    index = np.searchsorted(values, thresholds, side="left") - 1
    strict = np.where(index >= 0, values[np.clip(index, 0, None)], np.nextafter(thresholds, -np.inf))
    return np.where(np.isfinite(thresholds), strict, thresholds)


def operating_point(labels, probabilities, metric: str, target: float, rule: str = "nearest") -> OperatingPoint:
    """The ROC vertex where ``metric`` ("sensitivity" or "specificity") is approximately ``target``.

    Rules:
        ``nearest``: the vertex whose ``metric`` is closest to ``target``; among equally close vertices
            the one with the highest threshold (the first reached when the threshold is lowered).
            This is what the DeCoVNet paper's "approximately 0.95" figures correspond to.
        ``at_least``: among vertices with ``metric >= target``, the one with the best other metric
            (ties: highest threshold) — a guaranteed minimum, the usual "sensitivity at 95 % specificity".
    """
    if metric not in ("sensitivity", "specificity"):
        raise ValueError(f"metric must be 'sensitivity' or 'specificity', not {metric!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    thresholds, sensitivity, specificity = roc_vertices(labels, probabilities)
    value, other = (sensitivity, specificity) if metric == "sensitivity" else (specificity, sensitivity)
    if rule == "nearest":
        index = int(np.argmin(np.abs(value - target)))  # argmin returns the first (highest-threshold) tie
    else:
        eligible = np.flatnonzero(value >= target - 1e-12)
        index = int(eligible[np.argmax(other[eligible])])
    short = "sens" if metric == "sensitivity" else "spec"
    return OperatingPoint(
        f"{short}~{target:g}",
        rule,
        float(target),
        float(thresholds[index]),
        float(sensitivity[index]),
        float(specificity[index]),
    )


def youden_point(labels, probabilities) -> OperatingPoint:
    """The vertex maximising Youden's J = sensitivity + specificity − 1 (ties: highest threshold)."""
    thresholds, sensitivity, specificity = roc_vertices(labels, probabilities)
    index = int(np.argmax(sensitivity + specificity))
    return OperatingPoint(
        "youden",
        "max sensitivity+specificity-1",
        None,
        float(thresholds[index]),
        float(sensitivity[index]),
        float(specificity[index]),
    )


def balanced_point(labels, probabilities) -> OperatingPoint:
    """The vertex maximising min(sensitivity, specificity) (ties: highest threshold).

    On the DeCoVNet paper's released predictions this is its "sensitivity 0.907, specificity 0.911".
    """
    thresholds, sensitivity, specificity = roc_vertices(labels, probabilities)
    index = int(np.argmax(np.minimum(sensitivity, specificity)))
    return OperatingPoint(
        "balanced",
        "max min(sensitivity,specificity)",
        None,
        float(thresholds[index]),
        float(sensitivity[index]),
        float(specificity[index]),
    )


def standard_operating_points(labels, probabilities, target: float = 0.95) -> list[OperatingPoint]:
    """Sensitivity ≈ target and specificity ≈ target (both rules), Youden and balanced points."""
    points = [
        operating_point(labels, probabilities, metric, target, rule)
        for metric in ("sensitivity", "specificity")
        for rule in RULES
    ]
    return points + [youden_point(labels, probabilities), balanced_point(labels, probabilities)]
