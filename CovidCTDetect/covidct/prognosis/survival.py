"""Survival statistics of risk groups with lifelines: Kaplan-Meier curves, log-rank test, concordance."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..plotting import new_figure, save_png

#: Plot order and colours of the two groups.
GROUP_STYLE = {"high-risk": "C3", "low-risk": "C0"}


def logrank(time: pd.Series, event: pd.Series, groups: pd.Series) -> dict:
    """Log-rank test between two groups (lifelines ``logrank_test``).

    Returns ``{"test_statistic", "p", "groups": {name: {"n", "events", "median_time"}}}``; ``p`` is None
    when only one group is present. ``median_time`` is the Kaplan-Meier median (inf if not reached).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    summary = {}
    for name in sorted(groups.unique()):
        member = (groups == name).to_numpy()
        km = KaplanMeierFitter().fit(time[member], event[member])
        summary[name] = {
            "n": int(member.sum()),
            "events": int(event[member].sum()),
            "median_time": float(km.median_survival_time_),
        }
    if len(summary) != 2:
        return {"test_statistic": None, "p": None, "groups": summary}
    first = (groups == min(summary)).to_numpy()
    result = logrank_test(time[first], time[~first], event[first], event[~first])
    return {"test_statistic": float(result.test_statistic), "p": float(result.p_value), "groups": summary}


def concordance(time: pd.Series, event: pd.Series, hazard: pd.Series) -> float:
    """Harrell's concordance index of the hazards (lifelines ``concordance_index``; higher hazard = earlier event)."""
    from lifelines.utils import concordance_index

    return float(concordance_index(time, -np.asarray(hazard, dtype=float), event))


def kaplan_meier_curves(time: pd.Series, event: pd.Series, groups: pd.Series) -> dict:
    """Kaplan-Meier estimate of each group (lifelines ``KaplanMeierFitter``), in :data:`GROUP_STYLE` order.

    Returns ``{group: (times, survival)}``: float arrays of equal length, ``times`` ascending from 0
    (in the unit of ``time``) and ``survival`` the estimate from each time on (a right-continuous step
    function: the value holds until the next time).
    """
    from lifelines import KaplanMeierFitter

    curves = {}
    for name in [g for g in GROUP_STYLE if g in set(groups)] + sorted(set(groups) - set(GROUP_STYLE)):
        member = (groups == name).to_numpy()
        estimate = KaplanMeierFitter().fit(time[member], event[member]).survival_function_.iloc[:, 0]
        curves[name] = (estimate.index.to_numpy(dtype=float), estimate.to_numpy(dtype=float))
    return curves


def plot_kaplan_meier(
    time: pd.Series,
    event: pd.Series,
    groups: pd.Series,
    path: str | os.PathLike,
    title: str,
    time_label: str,
    survival_label: str,
    p_value: float | None,
) -> None:
    """Kaplan-Meier curves of each group (censoring ticks, 95 % bands) with numbers at risk below (PNG)."""
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    figure, axes = new_figure(6.5, 5.0)
    fitters = []
    for name in [g for g in GROUP_STYLE if g in set(groups)] + sorted(set(groups) - set(GROUP_STYLE)):
        member = (groups == name).to_numpy()
        km = KaplanMeierFitter(label=f"{name} (n={member.sum()})").fit(time[member], event[member])
        km.plot_survival_function(
            ax=axes,
            ci_show=True,
            show_censors=True,
            color=GROUP_STYLE.get(name),
            censor_styles={"marker": "|", "ms": 6},
        )
        fitters.append(km)
    p_text = "" if p_value is None else f" — log-rank p = {p_value:.2g}"
    axes.set(title=f"{title}{p_text}", xlabel=time_label, ylabel=survival_label, ylim=(0, 1.02))
    axes.legend(loc="upper right", fontsize=8)
    add_at_risk_counts(*fitters, ax=axes, fig=figure, rows_to_show=["At risk"])
    save_png(figure, path)
