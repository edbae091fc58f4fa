"""The multivariate Cox proportional-hazards model: fitting with lifelines, saving as plain JSON.

Hazards are *partial* hazards, as lifelines' ``predict_partial_hazard``:
``h(x) = exp((x − x̄) · β)``, with ``x`` the design row (:mod:`.encoding`), ``x̄`` the training mean
of the design columns and ``β`` the coefficients. A hazard of 2 means twice the average training
case's instantaneous rate of the event. The risk cut-off is the median training hazard (the
COVID-19Net paper's rule): hazard > cut-off is the high-hazard group.

Risk groups: when the event is adverse (death, ICU admission) the high-hazard group is the
high-risk group. When the event is favourable — ``discharged``, as in the paper's hospital-stay
end point — a high hazard means an early discharge, so the *low*-hazard group is the high-risk
(long-stay) group; the model records which with ``event_is_favourable``.

The model file holds everything prediction needs (no pickle): encoder, selected design columns,
β, x̄, the cut-off and lifelines' baseline survival S₀(t) (for the predicted median time
``min{t : S₀(t)^h(x) ≤ 0.5}``, as lifelines' ``predict_median``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError, ModelError
from ..outputs import write_json
from .encoding import Encoder

FORMAT = "covidct-cox-model"
VERSION = 1
MODEL_FILE = "model.json"
#: Column names of time and event inside the frames given to lifelines (cannot clash with covariates).
TIME, EVENT = "__time__", "__event__"


def fit_cox(design: pd.DataFrame, time: pd.Series, event: pd.Series, penalizer: float = 0.0, quiet: bool = False):
    """A fitted ``lifelines.CoxPHFitter`` (Efron ties) on the design columns.

    ``quiet`` silences lifelines' convergence warnings (used for the many candidate fits of stepwise
    selection). Raises :class:`DatasetError` when the fit fails (collinear or separating covariates).
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    frame = design.assign(**{TIME: time.to_numpy(dtype=float), EVENT: event.to_numpy(dtype=int)})
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
            return CoxPHFitter(penalizer=penalizer).fit(frame, TIME, EVENT)
    except (ConvergenceError, np.linalg.LinAlgError, ValueError) as exc:
        raise DatasetError(
            f"The Cox model with {', '.join(design.columns) or 'no covariates'} did not converge "
            "(collinear or perfectly separating covariates); use a small --penalizer such as 0.1, "
            "or fewer covariates."
        ) from exc


@dataclass
class CoxModel:
    """A fitted prognosis model; see the module docstring. ``features`` are design-column names."""

    encoder: Encoder
    features: list[str]
    coefficients: np.ndarray
    centre: np.ndarray
    cutoff: float
    baseline_time: np.ndarray
    baseline_survival: np.ndarray
    time_column: str
    event_column: str
    id_column: str = "id"
    event_is_favourable: bool = False
    info: dict = field(default_factory=dict)

    @classmethod
    def from_lifelines(cls, fitter, encoder: Encoder, design: pd.DataFrame, **fields) -> CoxModel:
        """Take β and S₀ from a fitted ``CoxPHFitter``; x̄ is ``design``'s column mean (lifelines' centring).

        The cut-off is the median of the training hazards; ``fields`` are the remaining attributes.
        """
        features = list(fitter.params_.index)
        coefficients = fitter.params_.to_numpy(dtype=float)
        centre = design[features].mean(axis=0).to_numpy(dtype=float)
        log_hazard = (design[features].to_numpy(dtype=float) - centre) @ coefficients
        baseline = fitter.baseline_survival_.iloc[:, 0]
        return cls(
            encoder=encoder,
            features=features,
            coefficients=coefficients,
            centre=centre,
            cutoff=float(np.median(np.exp(log_hazard))),
            baseline_time=baseline.index.to_numpy(dtype=float),
            baseline_survival=baseline.to_numpy(dtype=float),
            **fields,
        )

    # ---- prediction (JSON-only; no lifelines needed)
    def source_columns(self) -> list[str]:
        """Raw covariates prediction needs (deep features and clinical columns), without repeats."""
        return list(dict.fromkeys(self.encoder.source_column(f) for f in self.features))

    def hazard(self, covariates: pd.DataFrame, source: str = "the covariates") -> pd.Series:
        """Partial hazard ``exp((x − x̄)·β)`` per case (index of ``covariates``)."""
        design = self.encoder.transform(covariates, self.features, source).to_numpy(dtype=float)
        return pd.Series(np.exp((design - self.centre) @ self.coefficients), index=covariates.index, name="hazard")

    def high_hazard(self, hazard: pd.Series) -> pd.Series:
        """True where the hazard is above the training median (the cut-off)."""
        return hazard > self.cutoff

    def risk_group(self, hazard: pd.Series) -> pd.Series:
        """``"high-risk"``/``"low-risk"`` per case (see the module docstring for favourable events)."""
        high_risk = self.high_hazard(hazard) != self.event_is_favourable
        return high_risk.map({True: "high-risk", False: "low-risk"}).rename("risk_group")

    def median_time(self, hazard: pd.Series) -> pd.Series:
        """Predicted median time to the event, ``min{t : S₀(t)^h ≤ 0.5}`` (inf when S never reaches 0.5)."""
        survival = self.baseline_survival[None, :] ** hazard.to_numpy()[:, None]  # (cases, times)
        reached = survival <= 0.5
        first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
        times = np.where(first >= 0, self.baseline_time[np.maximum(first, 0)], np.inf)
        return pd.Series(times, index=hazard.index, name="median_time")

    # ---- JSON
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "time_column": self.time_column,
            "event_column": self.event_column,
            "id_column": self.id_column,
            "event_is_favourable": self.event_is_favourable,
            "features": self.features,
            "coefficients": dict(zip(self.features, self.coefficients.tolist(), strict=True)),
            "centre": dict(zip(self.features, self.centre.tolist(), strict=True)),
            "cutoff": self.cutoff,
            "encoding": self.encoder.to_json(),
            "baseline_survival": {"time": self.baseline_time.tolist(), "survival": self.baseline_survival.tolist()},
            "info": self.info,
        }

    @classmethod
    def from_json(cls, data: dict) -> CoxModel:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ModelError(
                f"This is not a covidct prognosis model (format {data.get('format')!r} version "
                f"{data.get('version')!r}); give a folder written by 'covidct prognosis fit'."
            )
        features = list(data["features"])
        return cls(
            encoder=Encoder.from_json(data["encoding"]),
            features=features,
            coefficients=np.array([data["coefficients"][f] for f in features], dtype=float),
            centre=np.array([data["centre"][f] for f in features], dtype=float),
            cutoff=float(data["cutoff"]),
            baseline_time=np.array(data["baseline_survival"]["time"], dtype=float),
            baseline_survival=np.array(data["baseline_survival"]["survival"], dtype=float),
            time_column=data["time_column"],
            event_column=data["event_column"],
            id_column=data["id_column"],
            event_is_favourable=bool(data["event_is_favourable"]),
            info=dict(data.get("info", {})),
        )

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/model.json`` (atomically) and return its path."""
        return write_json(Path(folder) / MODEL_FILE, self.to_json())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> CoxModel:
        """Read a model from a folder (or its ``model.json``); raises :class:`ModelError` with one sentence."""
        path = Path(folder)
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.is_file():
            raise ModelError(f"No prognosis model at {path}; give the folder written by 'covidct prognosis fit'.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"The prognosis model {path} is not valid JSON ({exc}); fit the model again.") from exc
        try:
            return cls.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"The prognosis model {path} lacks or garbles the entry {exc}; fit the model again."
            ) from exc
