"""Reading and checking per-case predictions: a binary label and a probability of COVID-19 per case.

Two file formats are read:

* CSV with a header (default columns ``case_id``, ``label``, ``probability``; names are options).
  ``label`` is 0 (negative) or 1 (COVID-19); ``probability`` is P(COVID-19) in 0..1.
* The whitespace-separated ``.txt`` written by the DeCoVNet authors' test script: optional header
  lines, then one line per case ``path case_id p(negative) p(COVID) label``.

Every problem is reported as one :class:`~covidct.errors.DatasetError` sentence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError


@dataclass(frozen=True)
class Predictions:
    """Checked predictions of ``n`` cases.

    Attributes:
        case_ids: (n,) str array of case identifiers.
        labels: (n,) int array, 1 = COVID-19 positive, 0 = negative; both classes present.
        probabilities: (n,) float64 array of P(COVID-19), each in [0, 1].
    """

    case_ids: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def to_frame(self):
        """A pandas DataFrame with columns ``case_id``, ``label``, ``probability``."""
        import pandas as pd

        return pd.DataFrame({"case_id": self.case_ids, "label": self.labels, "probability": self.probabilities})


def make_predictions(labels, probabilities, case_ids=None, source: str = "the predictions") -> Predictions:
    """Check labels and probabilities (any sequences of equal length) and return :class:`Predictions`.

    Raises:
        DatasetError: different lengths, missing or non-numeric values, probability outside 0..1,
            labels other than 0/1, or only one class present.
    """
    labels = _numeric(labels, "label", source)
    probabilities = _numeric(probabilities, "probability", source)
    if len(labels) != len(probabilities):
        raise DatasetError(
            f"In {source}, there are {len(labels)} labels but {len(probabilities)} probabilities; "
            "give one of each per case."
        )
    if len(labels) == 0:
        raise DatasetError(f"In {source}, there are no cases; give at least one positive and one negative case.")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise DatasetError(
            f"In {source}, the label {labels[bad][0]:g} of data row {int(np.flatnonzero(bad)[0]) + 1} is not binary; "
            "labels must be 0 (negative) or 1 (COVID-19 positive)."
        )
    outside = (probabilities < 0) | (probabilities > 1)
    if outside.any():
        raise DatasetError(
            f"In {source}, the probability {probabilities[outside][0]:g} of data row "
            f"{int(np.flatnonzero(outside)[0]) + 1} is outside 0..1; probabilities must lie in 0..1 "
            "(give P(COVID-19), not a logit or a percentage)."
        )
    labels = labels.astype(int)
    if labels.min() == labels.max():
        only = "positive" if labels[0] == 1 else "negative"
        raise DatasetError(
            f"In {source}, all cases are {only}; ROC and PR curves need both positive and negative cases."
        )
    if case_ids is None:
        case_ids = [f"case{i + 1:04d}" for i in range(len(labels))]
    case_ids = np.asarray([str(c) for c in case_ids])
    if len(case_ids) != len(labels):
        raise DatasetError(
            f"In {source}, there are {len(case_ids)} case IDs for {len(labels)} cases; give one ID per case."
        )
    return Predictions(case_ids=case_ids, labels=labels, probabilities=probabilities.astype(np.float64))


def read_predictions(
    path: str | os.PathLike,
    label_column: str = "label",
    probability_column: str = "probability",
    id_column: str | None = "case_id",
) -> Predictions:
    """Read predictions from a CSV file, or from the DeCoVNet authors' ``.txt`` format (by suffix).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` file with a header, or the authors' released per-case ``.txt`` predictions.
    label_column : str
        CSV column of the true labels (1 = COVID-19, 0 = not).
    probability_column : str
        CSV column of P(COVID-19), each in [0, 1].
    id_column : str or None
        CSV column of the case identifiers; optional: when the file lacks it, cases are numbered
        ``case0001``...

    Returns
    -------
    Predictions
        Case identifiers, labels and probabilities, both classes present.

    Raises
    ------
    DatasetError
        An unreadable file, a missing column or bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"Predictions file {path} does not exist; give the path of a CSV with columns "
            f"{id_column or 'case_id'},{label_column},{probability_column}."
        )
    if path.suffix.lower() == ".txt":
        return _read_decovnet_txt(path)
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"Predictions file {path.name} is not a readable CSV ({exc.__class__.__name__}); "
            "save it as comma-separated text with a header row."
        ) from exc
    missing = [c for c in (label_column, probability_column) if c not in table.columns]
    if missing:
        raise DatasetError(
            f"Predictions file {path.name} has no column '{missing[0]}' (columns: "
            f"{', '.join(map(str, table.columns))}); rename it or pass "
            f"--{'label' if missing[0] == label_column else 'probability'}-column."
        )
    ids = table[id_column].tolist() if id_column and id_column in table.columns else None
    return make_predictions(
        table[label_column].tolist(), table[probability_column].tolist(), ids, source=f"predictions file {path.name}"
    )


def _read_decovnet_txt(path: Path) -> Predictions:
    """Parse ``path case_id p(negative) p(COVID) label`` lines; leading non-matching lines are a header."""
    ids, labels, probabilities = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        row = _decovnet_row(fields)
        if row is None:
            if ids:
                raise DatasetError(
                    f"Line {number} of {path.name} is not 'path case_id p(negative) p(COVID) label'; "
                    "fix or remove that line."
                )
            continue
        ids.append(row[0])
        probabilities.append(row[1])
        labels.append(row[2])
    if not ids:
        raise DatasetError(
            f"{path.name} has no line 'path case_id p(negative) p(COVID) label'; "
            "give a CSV with columns case_id,label,probability instead."
        )
    return make_predictions(labels, probabilities, ids, source=f"predictions file {path.name}")


def _decovnet_row(fields: list[str]):
    if len(fields) != 5:
        return None
    try:
        return fields[1], float(fields[3]), float(fields[4])
    except ValueError:
        return None


def _numeric(values, name: str, source: str) -> np.ndarray:
    """``values`` as float64, or a DatasetError naming the first value that is not a number."""
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            out[i] = np.nan
        if not np.isfinite(out[i]):
            raise DatasetError(
                f"In {source}, the {name} '{value}' of data row {i + 1} is not a number; "
                f"give a numeric {name} for every case."
            )
    return out
