"""Stepwise selection of Cox covariates, by AIC or by Wald p-value, forward, backward or both.

Every candidate model is a lifelines ``CoxPHFitter`` fit (:func:`.cox.fit_cox`).

* ``forward``: start with no covariate; at each step add the candidate that gives the lowest AIC
  (if that is below the current model's) or the lowest p-value (if below ``p_enter``).
* ``backward``: start with all candidates; at each step remove the covariate whose removal gives
  the lowest AIC (if not above the current) or the one with the highest p-value (if above ``p_remove``).
* ``both``: forward steps, each followed by backward steps over the covariates already in
  (the usual "stepwise"; ``p_remove`` must be ≥ ``p_enter`` so nothing cycles).

AIC of a Cox model = −2 · partial log-likelihood + 2 · (number of coefficients) (lifelines'
``AIC_partial_``); the empty model's comes from lifelines' likelihood-ratio test. p-values after a
selection are optimistic: the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..errors import DatasetError, UsageError
from ..progress import Progress
from .cox import fit_cox

DIRECTIONS = ("forward", "backward", "both")
CRITERIA = ("aic", "p")


@dataclass
class Selection:
    """The selected design columns (in order of entry) and one record per step."""

    selected: list[str]
    steps: list[dict] = field(default_factory=list)


def stepwise(
    design: pd.DataFrame,
    time: pd.Series,
    event: pd.Series,
    direction: str = "both",
    criterion: str = "p",
    p_enter: float = 0.05,
    p_remove: float = 0.10,
    penalizer: float = 0.0,
    progress: Progress | None = None,
) -> Selection:
    """Select columns of ``design`` (standardised covariates, one row per case) for a Cox model.

    ``time``/``event``: follow-up and event indicator per row. Returns the :class:`Selection`; its
    ``steps`` hold ``{"step", "action": "add"|"remove", "feature", "aic", "p"}``.
    """
    if direction not in DIRECTIONS:
        raise UsageError(f"Unknown selection direction '{direction}'; choose forward, backward or both.")
    if criterion not in CRITERIA:
        raise UsageError(f"Unknown selection criterion '{criterion}'; choose aic or p.")
    if not (0 < p_enter < 1 and 0 < p_remove < 1) or (direction == "both" and p_remove < p_enter):
        raise UsageError(
            f"The p-value thresholds (enter {p_enter}, remove {p_remove}) must lie in 0..1 with "
            "remove ≥ enter; e.g. --p-enter 0.05 --p-remove 0.10."
        )
    state = _State(design, time, event, criterion, p_enter, p_remove, penalizer, progress)
    if direction == "backward":
        state.start(list(design.columns))
        while state.remove():
            pass
    else:
        state.start([])
        while state.add():
            if direction == "both":
                while state.remove():
                    pass
    return Selection(selected=state.selected, steps=state.steps)


class _State:
    """The current model of a stepwise search and its moves."""

    def __init__(self, design, time, event, criterion, p_enter, p_remove, penalizer, progress):
        self.design, self.time, self.event = design, time, event
        self.criterion, self.p_enter, self.p_remove, self.penalizer = criterion, p_enter, p_remove, penalizer
        self.progress = progress
        self.selected: list[str] = []
        self.steps: list[dict] = []
        self.visited: set[frozenset] = set()
        self.fits = 0
        self.null_aic: float | None = None

    def fit(self, columns: list[str], quiet: bool = True):
        self.fits += 1
        if self.progress:
            self.progress.stage("stepwise selection", None, None, fits=self.fits, selected=len(self.selected))
        return fit_cox(self.design[columns], self.time, self.event, self.penalizer, quiet=quiet)

    def start(self, columns: list[str]) -> None:
        self.selected = list(columns)
        self.visited.add(frozenset(columns))
        if columns:
            try:
                fitter = self.fit(columns, quiet=False)
            except DatasetError as exc:
                raise DatasetError(
                    f"Backward selection cannot start: the Cox model with all {len(columns)} covariates "
                    "does not converge; use --selection forward or both, or a --penalizer such as 0.1."
                ) from exc
            self.aic, self.pvalues = fitter.AIC_partial_, fitter.summary["p"]
        else:
            self.aic, self.pvalues = self._null_aic(), pd.Series(dtype=float)

    def add(self) -> bool:
        """One forward step; False when no candidate qualifies."""
        best = None
        for column in self.design.columns:
            if column in self.selected or frozenset(self.selected + [column]) in self.visited:
                continue
            fitter = self._try(self.selected + [column])
            if fitter is None:
                continue
            score = fitter.AIC_partial_ if self.criterion == "aic" else fitter.summary["p"][column]
            if best is None or score < best[0]:
                best = (score, column, fitter)
        if best is None:
            return False
        score, column, fitter = best
        if (self.criterion == "aic" and score >= self.aic) or (self.criterion == "p" and score >= self.p_enter):
            return False
        self._move("add", column, self.selected + [column], fitter)
        return True

    def remove(self) -> bool:
        """One backward step; False when no covariate qualifies."""
        if not self.selected:
            return False
        if self.criterion == "p":
            column = self.pvalues.idxmax()
            if self.pvalues[column] <= self.p_remove:
                return False
            remaining = [c for c in self.selected if c != column]
            fitter = self._try(remaining) if remaining else None
            if remaining and fitter is None:
                return False
        else:
            best = None
            for column in self.selected:
                remaining = [c for c in self.selected if c != column]
                fitter = self._try(remaining) if remaining else None
                if remaining and fitter is None:
                    continue
                aic = fitter.AIC_partial_ if fitter is not None else self._null_aic()
                if best is None or aic < best[0]:
                    best = (aic, column, remaining, fitter)
            if best is None or best[0] > self.aic:
                return False
            _, column, remaining, fitter = best
        if frozenset(remaining) in self.visited:
            return False
        self._move("remove", column, remaining, fitter)
        return True

    def _try(self, columns: list[str]):
        try:
            return self.fit(columns)
        except DatasetError:
            return None  # a candidate that does not converge is skipped

    def _null_aic(self) -> float:
        """AIC of the model without covariates: −2 · its partial log-likelihood (from any fit's LR test)."""
        if self.null_aic is None:
            fitter = fit_cox(self.design.iloc[:, :1], self.time, self.event, self.penalizer, quiet=True)
            self.null_aic = -2.0 * (fitter.log_likelihood_ - fitter.log_likelihood_ratio_test().test_statistic / 2.0)
        return self.null_aic

    def _move(self, action: str, column: str, columns: list[str], fitter) -> None:
        p = float(self.pvalues[column] if action == "remove" else fitter.summary["p"][column])
        self.selected = list(columns)
        self.visited.add(frozenset(columns))
        self.aic = fitter.AIC_partial_ if fitter is not None else self._null_aic()
        self.pvalues = fitter.summary["p"] if fitter is not None else pd.Series(dtype=float)
        self.steps.append(
            {"step": len(self.steps) + 1, "action": action, "feature": column, "aic": float(self.aic), "p": p}
        )
