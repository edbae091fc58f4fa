"""Design matrix of the Cox model: standardised numeric covariates and one-hot categorical ones.

* Numeric column ``c`` → ``(c − mean) / sd`` with the training mean and sample SD (ddof = 1), so a
  hazard ratio is per one training SD.
* Categorical column ``c`` with levels L → one 0/1 column ``c=level`` per level except the
  reference (the most frequent training level; ties: alphabetical first); hazard ratios compare a
  level with the reference.
* Columns that are constant in training (SD 0, or a single level) carry no information and are dropped.

The encoder is saved in the model JSON (:meth:`Encoder.to_json`) and re-applied at prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..errors import DatasetError

SEPARATOR = "="


@dataclass
class Encoder:
    """``numeric``: name → {"mean", "sd"}; ``categorical``: name → {"levels", "reference"};
    ``order``: the used covariates in input order; ``dropped``: constant covariates."""

    numeric: dict = field(default_factory=dict)
    categorical: dict = field(default_factory=dict)
    order: list = field(default_factory=list)
    dropped: list = field(default_factory=list)

    @classmethod
    def fit(cls, covariates: pd.DataFrame, categorical: list[str]) -> Encoder:
        """Learn means/SDs and levels from the training covariates (raw values, one row per case)."""
        encoder = cls()
        for column in covariates.columns:
            values = covariates[column]
            if column in categorical:
                counts = values.astype(str).value_counts()
                if len(counts) < 2:
                    encoder.dropped.append(column)
                    continue
                levels = sorted(counts.index)
                reference = min(levels, key=lambda level: (-counts[level], level))
                encoder.categorical[column] = {"levels": levels, "reference": reference}
                encoder.order.append(column)
            else:
                sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                if not sd > 0:
                    encoder.dropped.append(column)
                    continue
                encoder.numeric[column] = {"mean": float(values.mean()), "sd": sd}
                encoder.order.append(column)
        return encoder

    def design(self) -> dict:
        """Design column name → (raw covariate, level or None for numeric), in covariate order."""
        names = {}
        for column in self.order:
            if column in self.numeric:
                names[column] = (column, None)
            else:
                spec = self.categorical[column]
                names.update(
                    {
                        f"{column}{SEPARATOR}{level}": (column, level)
                        for level in spec["levels"]
                        if level != spec["reference"]
                    }
                )
        return names

    def columns(self) -> list[str]:
        """Names of all design columns, in covariate order."""
        return list(self.design())

    def source_column(self, design_column: str) -> str:
        """The raw covariate a design column comes from (``sex=M`` → ``sex``)."""
        return self.design()[design_column][0]

    def transform(
        self, covariates: pd.DataFrame, design_columns: list[str], source: str = "the covariates"
    ) -> pd.DataFrame:
        """The design matrix (float DataFrame, same index) restricted to ``design_columns``.

        Only the raw columns those need must be present. Raises :class:`DatasetError` for a missing
        column, a non-numeric value or a category level not seen in training.
        """
        out = {}
        design = self.design()
        for name in design_columns:
            column, level = design[name]
            if column not in covariates.columns:
                raise DatasetError(f"In {source}, the column '{column}' that the model uses is missing; add it.")
            values = covariates[column]
            if column in self.numeric:
                spec = self.numeric[column]
                numbers = pd.to_numeric(values, errors="coerce")
                if numbers.isna().any():
                    case = values.index[numbers.isna()][0]
                    raise DatasetError(
                        f"In {source}, column '{column}' of case '{case}' is '{values[case]}', "
                        "not a number; fill in a numeric value."
                    )
                out[name] = (numbers.astype(float) - spec["mean"]) / spec["sd"]
            else:
                spec = self.categorical[column]
                text = values.astype(str)
                unknown = ~text.isin(spec["levels"])
                if unknown.any():
                    raise DatasetError(
                        f"In {source}, column '{column}' of case '{text.index[unknown][0]}' is "
                        f"'{text[unknown].iloc[0]}', a level the model has not seen (levels: "
                        f"{', '.join(spec['levels'])}); use one of those."
                    )
                out[name] = (text == level).astype(float)
        return pd.DataFrame(out, index=covariates.index, columns=list(design_columns))

    def to_json(self) -> dict:
        """A JSON-able dict (the ``encoding`` entry of the model file)."""
        return {"order": self.order, "numeric": self.numeric, "categorical": self.categorical, "dropped": self.dropped}

    @classmethod
    def from_json(cls, data: dict) -> Encoder:
        return cls(
            numeric=dict(data["numeric"]),
            categorical=dict(data["categorical"]),
            order=list(data["order"]),
            dropped=list(data.get("dropped", [])),
        )


def design_matrix(encoder: Encoder, covariates: pd.DataFrame, source: str = "the covariates") -> pd.DataFrame:
    """All design columns of ``covariates`` (see :meth:`Encoder.transform`)."""
    return encoder.transform(covariates, encoder.columns(), source)
