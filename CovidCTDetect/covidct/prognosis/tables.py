"""Reading and joining the prognosis inputs: a deep-features CSV and a clinical CSV.

* Features CSV: an ID column (default ``id``) and one numeric column per feature, e.g. ``f0 … f63``
  as written by ``covidct features`` (COVID-19Net's 64-d deep feature).
* Clinical CSV: the same ID column, the follow-up time (e.g. ``hospital_days``, any unit, ≥ 0), the
  event indicator (e.g. ``discharged``: 1 = the event happened at that time, 0 = censored; also
  true/false, yes/no) and any covariates: numeric columns, or categorical ones (text, or named in
  ``categorical``), which :mod:`.encoding` one-hot encodes.

IDs are compared as text. Every clinical row must have features; feature rows without clinical data
are ignored (their number is reported). Every problem raises :class:`~covidct.errors.DatasetError`
with one sentence naming the file, the column and the case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError

_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n"}


@dataclass
class Cohort:
    """Joined cases, in clinical-file order.

    Attributes:
        covariates: DataFrame indexed by case ID: deep-feature columns then clinical covariates (raw values).
        feature_columns, clinical_columns: names of the two kinds of covariates.
        categorical: clinical covariates to one-hot encode.
        time, event: follow-up time (float ≥ 0) and event (int 0/1) per case, or None when not given.
        unused_feature_rows: feature rows whose ID is not in the clinical table.
    """

    covariates: pd.DataFrame
    feature_columns: list[str]
    clinical_columns: list[str]
    categorical: list[str] = field(default_factory=list)
    time: pd.Series | None = None
    event: pd.Series | None = None
    unused_feature_rows: int = 0

    @property
    def ids(self) -> list[str]:
        return list(self.covariates.index)


def read_csv_table(path: str | os.PathLike, kind: str, id_column: str) -> pd.DataFrame:
    """A CSV as a DataFrame of text cells indexed by ``id_column`` (unique, non-empty IDs)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"The {kind} file {path} does not exist; give the path of a CSV file with an '{id_column}' column."
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"The {kind} file {path.name} is not a readable CSV ({exc.__class__.__name__}); "
            "save it as comma-separated UTF-8 text with a header row."
        ) from exc
    table.columns = [str(c).strip() for c in table.columns]
    if id_column not in table.columns:
        raise DatasetError(
            f"The {kind} file {path.name} has no '{id_column}' column (columns: "
            f"{', '.join(table.columns[:8])}{' …' if len(table.columns) > 8 else ''}); rename it or pass --id-column."
        )
    if len(set(table.columns)) != len(table.columns):
        raise DatasetError(f"The {kind} file {path.name} names a column twice; keep one column of each name.")
    ids = table[id_column].str.strip()
    if (ids == "").any():
        raise DatasetError(
            f"The {kind} file {path.name} has an empty '{id_column}' in data row "
            f"{int(np.flatnonzero(ids == '')[0]) + 1}; give every case an ID."
        )
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise DatasetError(
            f"The {kind} file {path.name} lists case '{repeated.iloc[0]}' twice; give every case one row."
        )
    if table.empty:
        raise DatasetError(f"The {kind} file {path.name} has no cases; add one row per case below the header.")
    return table.drop(columns=id_column).set_axis(pd.Index(ids, name=id_column)).apply(lambda c: c.str.strip())


def numeric_column(table: pd.DataFrame, column: str, source: str) -> pd.Series:
    """``table[column]`` as float64; a DatasetError names the first cell that is not a finite number."""
    values = pd.to_numeric(table[column], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        case = table.index[bad][0]
        raise DatasetError(
            f"In {source}, column '{column}' of case '{case}' is '{table[column][bad].iloc[0]}', "
            "not a number; fill in a numeric value or remove the case."
        )
    return values.astype(float)


def read_features(path: str | os.PathLike, id_column: str = "id") -> pd.DataFrame:
    """The features CSV as a float DataFrame indexed by case ID (every non-ID column is a feature)."""
    table = read_csv_table(path, "features", id_column)
    if table.shape[1] == 0:
        raise DatasetError(
            f"The features file {Path(path).name} has no feature columns; "
            "write it with 'covidct features' (columns id,f0,…,f63)."
        )
    source = f"the features file {Path(path).name}"
    return pd.DataFrame({column: numeric_column(table, column, source) for column in table.columns})


def read_outcome(table: pd.DataFrame, time_column: str, event_column: str, source: str) -> tuple[pd.Series, pd.Series]:
    """Follow-up time (float ≥ 0) and event (0/1, at least one event) from a clinical table."""
    for column in (time_column, event_column):
        if column not in table.columns:
            raise DatasetError(
                f"In {source}, there is no column '{column}' (columns: {', '.join(table.columns)}); "
                f"rename it or pass --{'time' if column == time_column else 'event'} with the right name."
            )
    time = numeric_column(table, time_column, source)
    if (time < 0).any():
        case = time.index[time < 0][0]
        raise DatasetError(
            f"In {source}, column '{time_column}' of case '{case}' is {time[case]:g}, a negative time; "
            "follow-up times must be ≥ 0."
        )
    text = table[event_column].str.lower()
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        raise DatasetError(
            f"In {source}, column '{event_column}' of case '{table.index[bad][0]}' is "
            f"'{table[event_column][bad].iloc[0]}'; use 1 (event happened) or 0 (censored)."
        )
    event = text.isin(_TRUE).astype(int)
    if event.sum() == 0:
        raise DatasetError(
            f"In {source}, no case has {event_column} = 1; a Cox model needs cases with the event "
            "(1 = event happened at the given time, 0 = censored)."
        )
    return time, event


def load_cohort(
    features: str | os.PathLike,
    clinical: str | os.PathLike,
    id_column: str = "id",
    time_column: str | None = None,
    event_column: str | None = None,
    covariates: list[str] | None = None,
    categorical: list[str] | None = None,
    needed: list[str] | None = None,
) -> Cohort:
    """Join the features and clinical CSVs into a :class:`Cohort`.

    ``covariates``: clinical columns to use (default: every column except ID, time and event).
    ``categorical``: clinical columns to one-hot encode even if numeric (text columns always are).
    ``needed``: instead of ``covariates``, the columns a fitted model uses, each from either file
    (prediction: other clinical columns are then ignored, whatever they hold).
    ``time_column``/``event_column``: required together for fitting and validation; both None for
    prediction without outcome.
    """
    feature_table = read_features(features, id_column)
    clinical_table = read_csv_table(clinical, "clinical", id_column)
    source = f"the clinical file {Path(clinical).name}"
    time = event = None
    if time_column or event_column:
        if not (time_column and event_column):
            raise DatasetError("Give both the time column and the event column (--time and --event), or neither.")
        time, event = read_outcome(clinical_table, time_column, event_column, source)
    outcome = {time_column, event_column} - {None}
    if needed is not None:
        absent = [c for c in needed if c not in feature_table.columns and c not in clinical_table.columns]
        if absent:
            raise DatasetError(
                f"The model uses column '{absent[0]}', which neither the features file nor {source} has; add it."
            )
        covariates = [c for c in needed if c not in feature_table.columns]
    elif covariates is None:
        covariates = [c for c in clinical_table.columns if c not in outcome]
    for column in list(covariates) + list(categorical or []):
        if column not in clinical_table.columns or column in outcome:
            raise DatasetError(
                f"In {source}, there is no covariate column '{column}'; "
                f"choose from {', '.join(c for c in clinical_table.columns if c not in outcome)}."
            )
    clash = sorted(set(covariates) & set(feature_table.columns))
    if clash:
        raise DatasetError(f"Column '{clash[0]}' is in both the features and the clinical file; rename one of them.")
    missing = [case for case in clinical_table.index if case not in feature_table.index]
    if missing:
        raise DatasetError(
            f"{len(missing)} of the {len(clinical_table)} cases of {source} have no row in the features "
            f"file (first: '{missing[0]}'); make the '{id_column}' values of both files match."
        )
    categorical = [
        c
        for c in covariates
        if c in set(categorical or []) or pd.to_numeric(clinical_table[c], errors="coerce").isna().all()
    ]
    clinical_values = {}
    for column in covariates:
        if column in categorical:
            empty = clinical_table[column] == ""
            if empty.any():
                raise DatasetError(
                    f"In {source}, column '{column}' of case '{clinical_table.index[empty][0]}' is empty; "
                    "fill in a value or remove the case."
                )
            clinical_values[column] = clinical_table[column]
        else:
            clinical_values[column] = numeric_column(clinical_table, column, source)
    joined = pd.concat(
        [feature_table.loc[clinical_table.index], pd.DataFrame(clinical_values, index=clinical_table.index)], axis=1
    )
    return Cohort(
        covariates=joined,
        feature_columns=list(feature_table.columns),
        clinical_columns=list(covariates),
        categorical=categorical,
        time=time,
        event=event,
        unused_feature_rows=len(feature_table) - len(clinical_table),
    )
