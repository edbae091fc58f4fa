"""Fitting a prognosis model on a cohort and applying it to another, with their reports and plots.

:func:`fit_prognosis` — encode and standardise the covariates, stepwise selection, multivariate Cox
model (lifelines), median training hazard as the risk cut-off, proportional-hazards test, concordance,
Kaplan-Meier curves and log-rank test of the two risk groups. :func:`predict_prognosis` — hazards
and risk groups from the saved model alone; with outcomes, the same statistics with the TRAINING
cut-off (as the paper's validation cohorts). :func:`write_fit` / :func:`write_prediction` write
the files (model.json, report.json, report.md, CSV tables, PNG plots).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from ..errors import DatasetError
from ..outputs import atomic_path, json_safe, write_json, write_text
from ..progress import Progress
from .cox import EVENT, TIME, CoxModel, fit_cox
from .encoding import Encoder, design_matrix
from .pca import plot_feature_pca
from .report import fit_markdown, prediction_markdown
from .selection import stepwise
from .survival import GROUP_STYLE, concordance, logrank, plot_kaplan_meier
from .tables import Cohort

SELECTION_NOTE = (
    "p-values and confidence intervals are those of the final Cox model; after stepwise selection "
    "they are optimistic, so judge the model by its concordance and log-rank test on a validation cohort."
)


def fit_prognosis(
    cohort: Cohort,
    direction: str = "both",
    criterion: str = "p",
    p_enter: float = 0.05,
    p_remove: float = 0.10,
    penalizer: float = 0.0,
    event_is_favourable: bool = False,
    id_column: str = "id",
    time_column: str = "time",
    event_column: str = "event",
    progress: Progress | None = None,
) -> tuple[CoxModel, dict, pd.DataFrame]:
    """Fit the model on ``cohort`` (which must carry time and event).

    Returns ``(model, report, table)``: the :class:`CoxModel`, a JSON-able report (selection steps,
    hazard ratios with 95 % CI and p, proportional-hazards test, concordance, cut-off, log-rank) and a
    per-case table (time, event, hazard, risk group, median time).
    """
    if cohort.time is None:
        raise DatasetError("Fitting needs follow-up times and events; pass --time and --event.")
    encoder = Encoder.fit(cohort.covariates, cohort.categorical)
    design = design_matrix(encoder, cohort.covariates, "the cohort")
    if design.shape[1] == 0:
        raise DatasetError("Every covariate is constant across the cohort; give features or clinical values that vary.")
    selection = stepwise(
        design, cohort.time, cohort.event, direction, criterion, p_enter, p_remove, penalizer, progress
    )
    if not selection.selected:
        rule = "lowered the AIC" if criterion == "aic" else f"reached p < {p_enter}"
        raise DatasetError(
            f"Stepwise selection kept no covariate (none {rule}): the cohort shows no prognostic signal "
            "in these features; add cases or covariates."
        )
    fitter = fit_cox(design[selection.selected], cohort.time, cohort.event, penalizer)
    info = {
        "cases": len(design),
        "events": int(cohort.event.sum()),
        "selection": {
            "direction": direction,
            "criterion": criterion,
            "p_enter": p_enter,
            "p_remove": p_remove,
            "penalizer": penalizer,
        },
    }
    model = CoxModel.from_lifelines(
        fitter,
        encoder,
        design,
        time_column=time_column,
        event_column=event_column,
        id_column=id_column,
        event_is_favourable=event_is_favourable,
        info=info,
    )
    table = _outcome_table(model, cohort)
    ph = _proportional_hazards(fitter, design[selection.selected], cohort.time, cohort.event)
    summary = fitter.summary
    report = {
        "cohort": {
            "cases": len(design),
            "events": int(cohort.event.sum()),
            "deep_features": len(cohort.feature_columns),
            "clinical_covariates": cohort.clinical_columns,
            "categorical": cohort.categorical,
            "candidates": design.shape[1],
            "dropped_constant": encoder.dropped,
            "unused_feature_rows": cohort.unused_feature_rows,
        },
        "time_column": time_column,
        "event_column": event_column,
        "event_is_favourable": event_is_favourable,
        "selection": {**info["selection"], "steps": selection.steps},
        "features": [
            {
                "feature": name,
                "coef": float(summary.loc[name, "coef"]),
                "hazard_ratio": float(summary.loc[name, "exp(coef)"]),
                "ci_low": float(summary.loc[name, "exp(coef) lower 95%"]),
                "ci_high": float(summary.loc[name, "exp(coef) upper 95%"]),
                "p": float(summary.loc[name, "p"]),
                "ph_test_p": ph.get(name),
            }
            for name in model.features
        ],
        "concordance": float(fitter.concordance_index_),
        "cutoff": model.cutoff,
        "logrank": logrank(table["time"], table["event"], table["risk_group"]),
        "note": SELECTION_NOTE,
    }
    return model, report, table


def predict_prognosis(model: CoxModel, cohort: Cohort) -> tuple[pd.DataFrame, dict | None]:
    """Hazards, risk groups and median times of ``cohort`` from ``model`` (no lifelines fit).

    Returns ``(table, report)``; ``report`` (concordance, log-rank p with the training cut-off, group
    sizes) is None when the cohort has no outcomes.
    """
    if cohort.time is None:
        hazard = model.hazard(cohort.covariates, "the cohort")
        table = pd.DataFrame(
            {"hazard": hazard, "risk_group": model.risk_group(hazard), "median_time": model.median_time(hazard)}
        )
        return table, None
    table = _outcome_table(model, cohort)
    report = {
        "cases": len(table),
        "events": int(table["event"].sum()),
        "cutoff": model.cutoff,
        "cutoff_from": "median hazard of the training set",
        "time_column": model.time_column,
        "event_column": model.event_column,
        "event_is_favourable": model.event_is_favourable,
        "concordance": concordance(table["time"], table["event"], table["hazard"]),
        "logrank": logrank(table["time"], table["event"], table["risk_group"]),
    }
    return table, report


def write_fit(model: CoxModel, report: dict, table: pd.DataFrame, cohort: Cohort, out_dir: str | os.PathLike) -> dict:
    """Write model.json, report.json, report.md, training_predictions.csv, km_training.png, pca_training.png."""
    out = Path(out_dir)
    files = {
        "model": out / "model.json",
        "report": out / "report.json",
        "markdown": out / "report.md",
        "table": out / "training_predictions.csv",
        "km": out / "km_training.png",
        "pca": out / "pca_training.png",
    }
    _write_csv(table, files["table"], model)
    _plot_km(model, table, files["km"], "Training set")
    report = {**report, "pca": _plot_pca(cohort, table, files["pca"], "Deep features, training set")}
    model.save(out)
    write_json(files["report"], json_safe({**report, "files": {k: v.name for k, v in files.items()}}))
    write_text(files["markdown"], fit_markdown(report))
    return files


def write_prediction(
    model: CoxModel, table: pd.DataFrame, report: dict | None, cohort: Cohort, out_dir: str | os.PathLike
) -> dict:
    """Write predictions.csv, pca.png and, with outcomes, report.json, report.md and km.png."""
    out = Path(out_dir)
    files = {"table": out / "predictions.csv", "pca": out / "pca.png"}
    _write_csv(table, files["table"], model)
    pca = _plot_pca(cohort, table, files["pca"], "Deep features by predicted risk group")
    if report is not None:
        files.update({"report": out / "report.json", "markdown": out / "report.md", "km": out / "km.png"})
        _plot_km(model, table, files["km"], "Validation set (training cut-off)")
        report = {**report, "pca": pca}
        write_json(files["report"], json_safe({**report, "files": {k: v.name for k, v in files.items()}}))
        write_text(files["markdown"], prediction_markdown(report))
    return {k: v for k, v in files.items() if v.exists()}


def _outcome_table(model: CoxModel, cohort: Cohort) -> pd.DataFrame:
    hazard = model.hazard(cohort.covariates, "the cohort")
    return pd.DataFrame(
        {
            "time": cohort.time,
            "event": cohort.event,
            "hazard": hazard,
            "risk_group": model.risk_group(hazard),
            "median_time": model.median_time(hazard),
        }
    )


def _proportional_hazards(fitter, design: pd.DataFrame, time: pd.Series, event: pd.Series) -> dict:
    """Per-covariate p-value of lifelines' ``proportional_hazard_test`` (rank time transform)."""
    from lifelines.statistics import proportional_hazard_test

    frame = design.assign(**{TIME: time.to_numpy(dtype=float), EVENT: event.to_numpy(dtype=int)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = proportional_hazard_test(fitter, frame, time_transform="rank")
    return {str(name): float(p) for name, p in result.summary["p"].items()}


def _plot_km(model: CoxModel, table: pd.DataFrame, path: Path, title: str) -> None:
    p = logrank(table["time"], table["event"], table["risk_group"])["p"]
    plot_kaplan_meier(
        table["time"],
        table["event"],
        table["risk_group"],
        path,
        title,
        time_label=model.time_column,
        survival_label=f"fraction without '{model.event_column}' yet",
        p_value=p,
    )


def _plot_pca(cohort: Cohort, table: pd.DataFrame, path: Path, title: str) -> dict:
    """PCA of the deep features coloured by risk group; what was drawn (or why not) for the report."""
    try:
        explained = plot_feature_pca(
            cohort.covariates[cohort.feature_columns], table["risk_group"], path, title, GROUP_STYLE
        )
    except DatasetError as error:
        return {"drawn": False, "reason": str(error)}
    return {"drawn": True, "explained_variance": [float(v) for v in explained]}


def _write_csv(table: pd.DataFrame, path: Path, model: CoxModel) -> None:
    """The per-case table with the model's ID, time and event column names."""
    named = table.rename(columns={"time": model.time_column, "event": model.event_column})
    with atomic_path(path) as tmp:
        named.to_csv(tmp, index_label=model.id_column)
