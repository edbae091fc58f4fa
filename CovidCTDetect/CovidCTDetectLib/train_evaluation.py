"""Evaluation display and model saving for the CovidCTTrain module (no Qt, no PyTorch).

``covidct evaluate`` runs in the background (:func:`start_evaluation`), either running a model over a
labelled test manifest or reading released per-case predictions; its ``report.json`` (ROC AUC with CI,
PR AUC, operating points, the threshold table and the curves' points) becomes MRML nodes
(:func:`show_evaluation`): a ROC and a PR plot chart, the threshold table (the DeCoVNet paper's Table 2
layout: a case is positive when its probability is > the threshold) and the operating points. The
user's operating threshold is marked on both charts (:func:`show_operating_threshold`) and stored in
the model card when the model is copied into the user's model catalogue (:func:`save_model_to_catalogue`),
where ``covidct.models.list_models`` — and so the CovidCTDetect module — finds it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from covidct.errors import ModelError, UsageError
from covidct.outputs import atomic_path, write_json

from .jobs import CommandJob
from .process import AUTO_LUNGS, lungs_method_args, start_covidct
from .tables import add_plot_series, new_chart, set_table_columns
from .volumes import scene_or_default

#: Names a saved model may have (it becomes a folder name).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Threshold-table columns: report key → column name.
THRESHOLD_COLUMNS = {
    "threshold": "threshold",
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
    "tp": "TP",
    "fp": "FP",
    "tn": "TN",
    "fn": "FN",
}


def is_predictions_file(path: str | os.PathLike) -> bool:
    """True for per-case predictions (the DeCoVNet authors' ``.txt``, or a CSV with a ``probability`` column
    and no ``ct`` column); False for a dataset manifest."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return True
    with open(path, newline="", encoding="utf-8-sig") as stream:
        header = [cell.strip().lower() for cell in next(csv.reader(stream), [])]
    return "probability" in header and "ct" not in header


def start_evaluation(
    test_data, out, weights=None, device: str = "auto", lungs_method: str = AUTO_LUNGS, bootstrap: int = 2000
) -> EvaluationJob:
    """Start ``covidct evaluate`` into the folder ``out`` and return its job.

    ``test_data``: a labelled dataset manifest (then ``weights``, a model folder or catalogue name, is run
    over it on ``device``; cases without a lung mask are segmented with ``lungs_method``, ``auto`` being the
    method the model's training masks came from) or a predictions
    file (``case_id,label,probability`` CSV or the DeCoVNet authors' ``.txt``; ``weights`` is not used).
    """
    test_data = Path(test_data)
    if not test_data.is_file():
        raise UsageError(
            f"Test data '{test_data}' does not exist; choose a labelled manifest CSV or a predictions file."
        )
    out = Path(out)
    common = ["--out", out, "--bootstrap", int(bootstrap)]
    if is_predictions_file(test_data):
        return EvaluationJob(
            start_covidct(["evaluate", "--predictions", test_data, *common]), out, test_data, test_data.stem, test_data
        )
    if not weights:
        raise UsageError(
            "Choose the model to evaluate on the test manifest (a model folder such as RUN/model, or a model name)."
        )
    args = [
        "evaluate",
        "--manifest",
        test_data,
        "--weights",
        weights,
        "--device",
        device,
        *lungs_method_args(lungs_method),
        *common,
    ]
    return EvaluationJob(
        start_covidct(args), out, out / "predictions.csv", f"{_model_label(weights)} on {test_data.stem}", test_data
    )


def _model_label(weights) -> str:
    path = Path(weights)
    return path.parent.name if path.name == "model" and path.is_dir() else path.name


class EvaluationJob(CommandJob):
    """A running ``covidct evaluate``; :meth:`finish` reads its report."""

    def __init__(self, process, out: Path, predictions: Path, name: str, test_data: Path):
        super().__init__(process, None)
        self.out, self.predictions, self.name, self.test_data = Path(out), Path(predictions), name, Path(test_data)

    def finish(self) -> EvaluationResult:
        """Once :attr:`done`: the :class:`EvaluationResult`; raises the command's one-sentence error."""
        self.process.check()
        report = json.loads((self.out / "report.json").read_text(encoding="utf-8"))
        return EvaluationResult(report, self.predictions, self.out, self.name, self.test_data)


@dataclass
class EvaluationResult:
    """A finished evaluation: ``report`` (the parsed ``report.json``), the per-case ``predictions_path``,
    the report folder ``out``, a display ``name`` and the ``test_data`` evaluated."""

    report: dict
    predictions_path: Path
    out: Path
    name: str
    test_data: Path
    _predictions: object = field(default=None, repr=False)

    @property
    def predictions(self):
        """The per-case labels and probabilities (:class:`covidct.evaluate.Predictions`), read once."""
        if self._predictions is None:
            from covidct.evaluate.predictions import read_predictions

            self._predictions = read_predictions(self.predictions_path)
        return self._predictions

    def at(self, threshold: float) -> dict:
        """Accuracy, sensitivity, specificity, PPV, NPV, F1 and counts when a case is positive iff its probability
        is > ``threshold`` (as the model card's threshold is applied by detection)."""
        from covidct.evaluate.metrics import confusion_at

        return confusion_at(self.predictions.labels, self.predictions.probabilities, threshold)

    def summary(self) -> str:
        """E.g. "ROC AUC 0.959 (95% CI 0.927-0.985), PR AUC 0.976 (average precision); 131 cases, 75 positive."."""
        r, ci = self.report, self.report["roc_auc_ci"]
        return (
            f"ROC AUC {r['roc_auc']:.3f} ({ci['level']:.0%} CI {ci['low']:.3f}-{ci['high']:.3f}), PR AUC "
            f"{r['pr_auc']['average_precision']:.3f} (average precision); {r['n_cases']} cases, "
            f"{r['n_positive']} positive."
        )


@dataclass
class EvaluationNodes:
    """The nodes :func:`show_evaluation` makes: two charts and their tables, the threshold table, the
    operating points and the (one-row) chosen operating point shown on both charts."""

    roc_chart: object
    pr_chart: object
    roc_table: object
    pr_table: object
    threshold_table: object
    points_table: object
    chosen_table: object


def show_evaluation(result: EvaluationResult, name: str, scene=None) -> EvaluationNodes:
    """Turn ``result`` into nodes named after ``name`` (see :class:`EvaluationNodes`)."""
    scene = scene_or_default(scene)
    report = result.report

    def table(suffix: str, columns: dict):
        return set_table_columns(scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} {suffix}"), columns)

    roc, pr = report["roc_curve"], report["pr_curve"]
    roc_table = table(
        "ROC",
        {
            "1 - specificity": [1.0 - s for s in roc["specificity"]],
            "sensitivity": roc["sensitivity"],
            "threshold": roc["threshold"],
        },
    )
    pr_table = table("PR", {"recall": pr["recall"], "precision": pr["precision"], "threshold": pr["threshold"]})
    threshold_table = table(
        "thresholds",
        {title: [row[key] for row in report["threshold_table"]] for key, title in THRESHOLD_COLUMNS.items()},
    )
    points = report["operating_points"]
    points_table = table(
        "operating points",
        {
            "point": [p["name"] for p in points],
            "rule": [p["rule"] for p in points],
            "threshold": [p["threshold"] for p in points],
            "sensitivity": [p["sensitivity"] for p in points],
            "specificity": [p["specificity"] for p in points],
            "1 - specificity": [1.0 - p["specificity"] for p in points],
        },
    )
    chosen_table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} chosen threshold")

    roc_chart = _unit_chart(f"{name} ROC", "1 - specificity", "sensitivity", scene)
    add_plot_series(roc_chart, roc_table, "1 - specificity", "sensitivity", f"ROC (AUC {report['roc_auc']:.3f})")
    add_plot_series(
        roc_chart,
        points_table,
        "1 - specificity",
        "sensitivity",
        "operating points",
        color=(0.9, 0.5, 0.1),
        line=False,
        markers=True,
        label_column="point",
    )
    pr_chart = _unit_chart(f"{name} PR", "recall", "precision", scene)
    add_plot_series(pr_chart, pr_table, "recall", "precision", f"PR (AP {report['pr_auc']['average_precision']:.3f})")
    for chart, x in ((roc_chart, "1 - specificity"), (pr_chart, "recall")):
        add_plot_series(
            chart,
            chosen_table,
            x,
            "precision" if chart is pr_chart else "sensitivity",
            "chosen threshold",
            color=(0.8, 0.1, 0.1),
            line=False,
            markers=True,
            label_column="point",
        )
    return EvaluationNodes(roc_chart, pr_chart, roc_table, pr_table, threshold_table, points_table, chosen_table)


def _unit_chart(name: str, x_title: str, y_title: str, scene):
    chart = new_chart(name, x_title, y_title, scene)
    for auto, limits in (
        (chart.SetXAxisRangeAuto, chart.SetXAxisRange),
        (chart.SetYAxisRangeAuto, chart.SetYAxisRange),
    ):
        auto(False)
        limits(0.0, 1.0)
    return chart


def show_operating_threshold(nodes: EvaluationNodes, result: EvaluationResult, threshold: float) -> dict:
    """Mark the operating point of ``threshold`` on the ROC and PR charts; returns :meth:`EvaluationResult.at`."""
    metrics = result.at(threshold)
    set_table_columns(
        nodes.chosen_table,
        {
            "point": [f"threshold {threshold:g}"],
            "threshold": [float(threshold)],
            "1 - specificity": [1.0 - metrics["specificity"]],
            "sensitivity": [metrics["sensitivity"]],
            "recall": [metrics["sensitivity"]],
            "precision": [metrics["ppv"]],
        },
    )
    return metrics


def save_model_to_catalogue(
    model_dir, name: str, threshold: float, evaluation: EvaluationResult | None = None, overwrite: bool = False
):
    """Copy the model ``model_dir`` (folder with ``model.json``, card file or catalogue name) into the user's
    model folder (``covidct.models.catalogue.user_models_dir()``) as ``<name>/model.json`` + ``<name>.pt``.

    The new card keeps the trained model's card (architecture, input size, training data) with ``name``,
    the operating ``threshold`` and the weights' sha256 (checked against the source card first); with
    ``evaluation``, its test figures at that threshold are added to ``metrics`` and the description.
    Returns the new :class:`covidct.models.ModelCard`. Raises :class:`UsageError`/:class:`ModelError`.
    """
    from covidct.models.catalogue import BUNDLED_DIR, USER_CARD, file_sha256, find_model, list_models, user_models_dir

    if not MODEL_NAME.fullmatch(name or ""):
        raise UsageError(
            f"The model name '{name}' is not usable as a folder name; use up to 64 letters, digits, "
            "'-', '_' or '.', starting with a letter or digit (e.g. decovnet-hospital-a)."
        )
    if not 0.0 <= float(threshold) <= 1.0:
        raise UsageError(f"The operating threshold {threshold} is not a probability; choose a value from 0 to 1.")
    if any(card.name == name and card.path.parent == BUNDLED_DIR for card in list_models()):
        raise UsageError(f"'{name}' is the name of a bundled model; choose another name.")
    folder = user_models_dir() / name
    if (folder / USER_CARD).exists() and not overwrite:
        raise UsageError(
            f"A model named '{name}' already exists in '{folder.parent}'; choose another name or overwrite it."
        )
    source = find_model(model_dir)
    if not source.weights_path.is_file() or file_sha256(source.weights_path) != source.sha256:
        raise ModelError(
            f"The weights of model '{source.name}' ({source.weights_path}) are missing or do not match "
            "its card; train or save the model again."
        )
    metrics, description = dict(source.metrics), source.description
    if evaluation is not None:
        at, report = evaluation.at(threshold), evaluation.report
        metrics.update(
            {
                "test_roc_auc": report["roc_auc"],
                "test_pr_auc": report["pr_auc"]["average_precision"],
                "test_cases": report["n_cases"],
                "test_accuracy": at["accuracy"],
                "test_sensitivity": at["sensitivity"],
                "test_specificity": at["specificity"],
            }
        )
        description += (
            f" Operating threshold {float(threshold):g} chosen on {evaluation.test_data.name} "
            f"({report['n_cases']} cases, ROC AUC {report['roc_auc']:.3f}): sensitivity "
            f"{at['sensitivity']:.3f}, specificity {at['specificity']:.3f}."
        )
    card = dataclasses.replace(
        source,
        name=name,
        threshold=float(threshold),
        weights=f"{name}.pt",
        metrics=metrics,
        description=description.strip(),
        created="",
        path=(folder / USER_CARD).resolve(),
    )
    with atomic_path(folder / card.weights) as tmp:
        shutil.copyfile(source.weights_path, tmp)
        card = dataclasses.replace(card, sha256=file_sha256(tmp))
    write_json(card.path, card.to_dict())
    return card
