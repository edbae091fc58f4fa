"""Logic of the CovidCTDetect module's prognosis section, without Qt.

For the current CT: COVID-19Net's 64-d deep feature (``covidct detect --no-heatmap`` with a
COVID-19Net model in a background process, see :mod:`.detect_logic`), the patient's clinical values
from the panel's form, and a prognosis model folder written by ``covidct prognosis fit`` give the
hazard, the risk group and the predicted median time to the event, computed in this process with
the model's JSON (:func:`covidct.prognosis.predict_prognosis`: numpy and pandas, no PyTorch, no
lifelines).

Cohort view: a fitted model's training report becomes a plot chart node with the Kaplan-Meier curve of
each risk group (step curves, :func:`covidct.prognosis.survival.kaplan_meier_curves`) and a table node
of the selected covariates' hazard ratios with 95 % confidence intervals and p-values.

Deep-feature columns are the ones named ``f0`` … ``f63`` (as ``covidct features`` writes them); every
other covariate of the model is a clinical value the form asks for.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidct.errors import DatasetError, ModelError, UsageError

from .detect_logic import DetectionJob, DetectionLogic, classifier_card, classifier_models
from .tables import append_result_row, plot_curve
from .volumes import scene_or_default

#: Names of the deep-feature columns: ``f<index into the 64-d feature>``.
FEATURE_COLUMN = re.compile(r"f(\d+)")
#: Plot colours (RGB 0..1) of the risk groups: matplotlib's C3 and C0, as in the report's PNG.
GROUP_COLORS = {"high-risk": (0.839, 0.153, 0.157), "low-risk": (0.122, 0.467, 0.706)}


@dataclass
class ClinicalField:
    """One clinical covariate the model uses: ``kind`` "numeric" (``default`` = training mean, ``sd`` the
    training SD) or "categorical" (``levels`` seen in training, ``default`` = the reference level)."""

    name: str
    kind: str
    default: float | str
    levels: tuple = ()
    sd: float | None = None


@dataclass
class PrognosisResult:
    """Hazard (partial hazard: 1 = the average training case) and risk group of one patient.

    ``highHazard``: hazard above ``cutoff`` (the training median); ``riskGroup``: "high-risk" or
    "low-risk" (for a favourable event such as discharge the LOW-hazard group is high-risk);
    ``medianTime``: predicted median time to the event in the unit of ``timeColumn`` (inf if not reached).
    """

    hazard: float
    riskGroup: str
    highHazard: bool
    cutoff: float
    medianTime: float
    timeColumn: str
    eventColumn: str
    eventIsFavourable: bool


@dataclass
class CohortView:
    """The nodes of a model's cohort view and the report's headline figures."""

    chartNode: object
    hazardRatioTableNode: object
    concordance: float
    logrankP: float | None


def load_model(folder):
    """The :class:`covidct.prognosis.CoxModel` of a folder written by ``covidct prognosis fit``."""
    from covidct.prognosis import CoxModel

    if not folder:
        raise UsageError("Choose the folder of a prognosis model (written by 'covidct prognosis fit').")
    return CoxModel.load(folder)


def deep_feature_columns(model) -> list[str]:
    """The deep-feature columns (``f<i>``) the model uses."""
    return [c for c in model.source_columns() if FEATURE_COLUMN.fullmatch(c)]


def clinical_fields(model) -> list[ClinicalField]:
    """The clinical covariates the model uses, in the model's order, as form fields."""
    fields = []
    for column in model.source_columns():
        if FEATURE_COLUMN.fullmatch(column):
            continue
        if column in model.encoder.numeric:
            spec = model.encoder.numeric[column]
            fields.append(ClinicalField(column, "numeric", float(spec["mean"]), sd=float(spec["sd"])))
        else:
            spec = model.encoder.categorical[column]
            fields.append(ClinicalField(column, "categorical", spec["reference"], tuple(spec["levels"])))
    return fields


def step_points(times, values) -> tuple[np.ndarray, np.ndarray]:
    """The corner points of a right-continuous step function that takes ``values[i]`` from ``times[i]``
    until ``times[i+1]``: a line through them draws the steps."""
    times, values = np.asarray(times, float), np.asarray(values, float)
    return np.repeat(times, 2)[1:], np.repeat(values, 2)[:-1]


class PrognosisLogic:
    """Hazard and risk group of the current patient; the cohort view of a fitted model.

    Methods follow Slicer's camelCase convention, as :class:`.detect_logic.DetectionLogic`'s.
    """

    def __init__(self, detectionLogic: DetectionLogic | None = None):
        self.detectionLogic = detectionLogic or DetectionLogic()

    # -- deep features ---------------------------------------------------------------------------
    def startFeatures(
        self, volumeNode, model="covid19net", lungSegmentationNode=None, lungsMethod: str = "auto", device: str = "auto"
    ) -> DetectionJob:
        """Start computing ``volumeNode``'s 64-d COVID-19Net feature in the background (detection without heat
        map); :meth:`featuresFromJob` reads it when the job is done. ``model``: a COVID-19Net catalogue name,
        folder or card (``"covid19net"``: the installed one)."""
        card = classifier_card(_covid19net_name(model))
        if card.architecture != "covid19net":
            raise UsageError(
                f"Model '{card.name}' is a {card.architecture} model; deep features for prognosis come "
                "from a covid19net model."
            )
        outputs = Path(tempfile.mkdtemp(prefix="covidct-features-"))
        try:
            job = self.detectionLogic.startDetection(
                volumeNode, card, lungSegmentationNode, lungsMethod, device, heatmap=False, outputFolder=outputs
            )
        except BaseException:
            shutil.rmtree(outputs, ignore_errors=True)
            raise
        job.temporary.append(outputs)  # deleted once the report is read, or on cancel
        return job

    @staticmethod
    def featuresFromJob(job: DetectionJob) -> list[float]:
        """Once the job of :meth:`startFeatures` is done: the 64 feature values (its outputs are deleted)."""
        return list(job.report()["features"])

    def computeFeatures(
        self,
        volumeNode,
        model="covid19net",
        lungSegmentationNode=None,
        lungsMethod: str = "auto",
        device: str = "auto",
        onEvent: Callable[[dict], None] | None = None,
    ) -> list[float]:
        """``volumeNode``'s 64-d COVID-19Net feature (blocks until done)."""
        job = self.startFeatures(volumeNode, model, lungSegmentationNode, lungsMethod, device)
        try:
            job.wait(onEvent)
        except BaseException:
            job.cancel()
            raise
        return self.featuresFromJob(job)

    # -- one patient -----------------------------------------------------------------------------
    def predict(self, modelFolder, clinicalValues: dict, features) -> PrognosisResult:
        """Hazard, risk group and median time for one patient, exactly as ``covidct prognosis predict``.

        ``clinicalValues``: covariate name → value (numbers, or the category's text) for every field
        of :func:`clinical_fields`; ``features``: the 64-d deep feature (:meth:`computeFeatures`).
        Raises :class:`DatasetError` / :class:`ModelError` with one sentence.
        """
        import pandas as pd

        from covidct.prognosis import Cohort, predict_prognosis

        model = load_model(modelFolder)
        deep = deep_feature_columns(model)
        features = list(features) if features is not None else []
        needed = max((int(FEATURE_COLUMN.fullmatch(c).group(1)) for c in deep), default=-1) + 1
        if len(features) < needed:
            raise DatasetError(
                f"The model uses deep feature f{needed - 1} but only {len(features)} "
                "feature values were given; compute the CT's features with a covid19net model."
            )
        fields = clinical_fields(model)
        missing = [f.name for f in fields if clinicalValues.get(f.name) in (None, "")]
        if missing:
            raise DatasetError(f"The clinical value '{missing[0]}' is missing; fill it in.")
        row = {c: float(features[int(FEATURE_COLUMN.fullmatch(c).group(1))]) for c in deep}
        row.update(
            {
                f.name: clinicalValues[f.name] if f.kind == "categorical" else _number(f.name, clinicalValues[f.name])
                for f in fields
            }
        )
        covariates = pd.DataFrame([row], index=pd.Index(["patient"], name=model.id_column))
        cohort = Cohort(
            covariates=covariates,
            feature_columns=deep,
            clinical_columns=[f.name for f in fields],
            categorical=[f.name for f in fields if f.kind == "categorical"],
        )
        table, _ = predict_prognosis(model, cohort)
        hazard = float(table["hazard"].iloc[0])
        return PrognosisResult(
            hazard=hazard,
            riskGroup=str(table["risk_group"].iloc[0]),
            highHazard=hazard > model.cutoff,
            cutoff=model.cutoff,
            medianTime=float(table["median_time"].iloc[0]),
            timeColumn=model.time_column,
            eventColumn=model.event_column,
            eventIsFavourable=model.event_is_favourable,
        )

    # -- cohort view -----------------------------------------------------------------------------
    def showCohort(self, modelFolder, scene=None) -> CohortView:
        """Kaplan-Meier curves of the training risk groups (plot chart node) and the hazard-ratio table
        (table node) of the model in ``modelFolder`` (with its report.json and training_predictions.csv)."""
        import pandas as pd

        from covidct.prognosis.survival import kaplan_meier_curves

        model = load_model(modelFolder)
        folder = Path(modelFolder)
        report_path, table_path = folder / "report.json", folder / "training_predictions.csv"
        for path in (report_path, table_path):
            if not path.is_file():
                raise ModelError(
                    f"The prognosis model folder {folder} has no {path.name}; give the whole folder "
                    "written by 'covidct prognosis fit'."
                )
        report = json.loads(report_path.read_text(encoding="utf-8"))
        table = pd.read_csv(table_path, dtype={model.id_column: str})
        scene = scene_or_default(scene)
        name = folder.resolve().name
        p = report["logrank"]["p"]
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(f"{name} Kaplan-Meier"))
        chart.SetTitle(f"Training set, {name}" + ("" if p is None else f" (log-rank p = {p:.2g})"))
        chart.SetXAxisTitle(model.time_column)
        chart.SetYAxisTitle(f"fraction without '{model.event_column}' yet")
        groups = table["risk_group"].astype(str)
        for group, (times, survival) in kaplan_meier_curves(
            table[model.time_column].astype(float), table[model.event_column].astype(int), groups
        ).items():
            x, y = step_points(times, survival)
            plot_curve(
                x,
                y,
                f"{name} {group} (n={int((groups == group).sum())})",
                chart,
                model.time_column,
                "survival",
                GROUP_COLORS.get(group, (0.4, 0.4, 0.4)),
            )
        hazard_ratios = None
        for feature in report["features"]:
            hazard_ratios = append_result_row(
                {
                    "Covariate": feature["feature"],
                    "Hazard ratio": feature["hazard_ratio"],
                    "95% CI low": feature["ci_low"],
                    "95% CI high": feature["ci_high"],
                    "p": feature["p"],
                    "PH test p": np.nan if feature.get("ph_test_p") is None else feature["ph_test_p"],
                },
                hazard_ratios,
                scene.GenerateUniqueName(f"{name} hazard ratios"),
                scene,
            )
        return CohortView(
            chartNode=chart, hazardRatioTableNode=hazard_ratios, concordance=float(report["concordance"]), logrankP=p
        )


def _covid19net_name(model):
    """``"covid19net"`` stands for the installed COVID-19Net (as ``covidct detect --model covid19net``)."""
    if model != "covid19net":
        return model
    matching = [card for card in classifier_models() if card.architecture == "covid19net"]
    if not matching:
        raise ModelError(
            "No covid19net model is installed, so the CT's deep features cannot be computed; train one "
            "with the CovidCT Train module or 'covidct train'."
        )
    return matching[0]


def _number(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"The clinical value '{name}' is '{value}', not a number; enter a number.") from None
