"""Markdown renderings of the prognosis fit and validation reports (dicts from :mod:`.workflow`)."""

from __future__ import annotations

import math


def fit_markdown(report: dict) -> str:
    """report.md of ``covidct prognosis fit``: cohort, selection, hazard-ratio table, risk groups."""
    cohort, selection = report["cohort"], report["selection"]
    lines = [
        "# Prognosis model (Cox proportional hazards)",
        "",
        f"{cohort['cases']} cases, {cohort['events']} with '{report['event_column']}' = 1; "
        f"time: '{report['time_column']}'. "
        f"{cohort['candidates']} candidate covariates ({cohort['deep_features']} deep features, clinical: "
        f"{', '.join(cohort['clinical_covariates']) or 'none'}; "
        "categorical one-hot encoded against their most frequent level: "
        f"{', '.join(cohort['categorical']) or 'none'}). Numeric covariates are standardised, so hazard ratios are per "
        "training SD."
        + (f" Dropped as constant: {', '.join(cohort['dropped_constant'])}." if cohort["dropped_constant"] else ""),
        "",
        f"Stepwise selection: {selection['direction']}, by {'AIC' if selection['criterion'] == 'aic' else 'p-value'}"
        + (
            f" (enter p < {selection['p_enter']}, remove p > {selection['p_remove']})"
            if selection["criterion"] == "p"
            else ""
        )
        + (f", penalizer {selection['penalizer']}" if selection["penalizer"] else "")
        + ": "
        + ("; ".join(f"{s['action']} {s['feature']}" for s in selection["steps"]) or "no step")
        + ".",
        "",
        "| Feature | Coefficient | Hazard ratio (95% CI) | p | PH test p |",
        "|---|---|---|---|---|",
    ]
    for row in report["features"]:
        lines.append(
            f"| {row['feature']} | {row['coef']:.3f} | {row['hazard_ratio']:.3f} "
            f"({row['ci_low']:.3f}–{row['ci_high']:.3f}) | {_p(row['p'])} | {_p(row['ph_test_p'])} |"
        )
    lines += [
        "",
        f"Concordance index (training): {report['concordance']:.3f}.",
        "PH test: lifelines' proportional_hazard_test (rank transform); p < 0.05 suggests the hazard ratio "
        "changes over time for that covariate.",
        "",
    ]
    lines += _groups(report, "training") + [
        "",
        report["note"],
        "",
        "Files: `model.json`, `training_predictions.csv`, `km_training.png`, `pca_training.png`.",
        "",
    ]
    return "\n".join(lines)


def prediction_markdown(report: dict) -> str:
    """report.md of ``covidct prognosis predict`` on a cohort with outcomes."""
    lines = [
        "# Prognosis model on a validation cohort",
        "",
        f"{report['cases']} cases, {report['events']} with '{report['event_column']}' = 1; "
        f"risk cut-off {report['cutoff']:.4g} ({report['cutoff_from']}).",
        "",
        f"Concordance index: {report['concordance']:.3f}.",
        "",
    ]
    return "\n".join(lines + _groups(report, "validation") + ["", "Files: `predictions.csv`, `km.png`, `pca.png`.", ""])


def _groups(report: dict, name: str) -> list[str]:
    rank = report["logrank"]
    favourable = report["event_is_favourable"]
    meaning = (
        "the event is favourable, so the high-risk group is the one with a hazard at or below the cut-off "
        "(later events, e.g. longer hospital stays)"
        if favourable
        else "the event is adverse, so the high-risk group is the one with a hazard above the cut-off"
    )
    lines = [
        f"Risk groups ({name}): cut-off = median training hazard {report['cutoff']:.4g}; {meaning}.",
        "",
        "| Group | Cases | Events | Kaplan-Meier median time |",
        "|---|---|---|---|",
    ]
    for group, row in rank["groups"].items():
        median = "not reached" if not math.isfinite(row["median_time"]) else f"{row['median_time']:.3g}"
        lines.append(f"| {group} | {row['n']} | {row['events']} | {median} |")
    lines.append("")
    lines.append(
        "Log-rank test: "
        + (
            "only one group is present."
            if rank["p"] is None
            else f"χ² = {rank['test_statistic']:.2f}, {_p_is(rank['p'])}."
        )
    )
    return lines


def _p_is(value: float) -> str:
    """``p = 0.013`` or ``p < 0.0001``."""
    text = _p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _p(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if value >= 1e-4 else "< 0.0001"
