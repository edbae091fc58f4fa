"""Dataset manifests: a CSV file listing CT volumes, their labels, lung masks and splits.

Format (UTF-8 CSV with a header row; column names are case-insensitive, extra columns are kept in
:attr:`Case.extra` and otherwise ignored)::

    id,ct,label,lungs,split
    case001,ct/case001.nii.gz,positive,lungs/case001.nii.gz,train
    case002,/data/dicom/case002/,0,,val

* ``ct`` (required): a CT file (NIfTI, NRRD, MHA, ...) or a DICOM folder. Relative paths are read from
  the manifest's own folder, so a manifest can be moved together with its data.
* ``label`` (required for training and evaluation): see :data:`LABEL_VALUES`; 1 = COVID-19 positive.
  Any other binary task (e.g. COVID-19Net's auxiliary pre-training) uses 0/1.
* ``lungs`` (optional): a lung labelmap on the CT grid (non-zero = lung); when empty, the lungs are
  segmented (and cached) at training time.
* ``split`` (optional): ``train``, ``val`` or ``test`` (also ``training``, ``validation``, ``valid``,
  ``testing``); when the column is absent or empty for all rows, training draws its own validation set.
* ``id`` (optional): a unique case identifier; by default the ``ct`` file name without its extension.
* any other column (e.g. ``lesions``, written by ``covidct synth``) is kept verbatim in :attr:`Case.extra`.

Every malformed thing raises :class:`~covidct.errors.DatasetError` with one sentence naming the row
(the CSV line number, the header being line 1) and the column.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from ..formats import path_stem
from ..outputs import atomic_path

#: Accepted label spellings (case-insensitive, surrounding spaces ignored) and the label they mean.
LABEL_VALUES = {
    **dict.fromkeys(("1", "1.0", "positive", "pos", "covid", "covid-19", "covid19", "true", "yes"), 1),
    **dict.fromkeys(
        (
            "0",
            "0.0",
            "negative",
            "neg",
            "non-covid",
            "noncovid",
            "non-covid-19",
            "non-covid19",
            "normal",
            "false",
            "no",
        ),
        0,
    ),
}
#: Accepted split spellings and the split they mean.
SPLIT_VALUES = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("val", "valid", "validation"), "val"),
    **dict.fromkeys(("test", "testing"), "test"),
}
COLUMNS = ("id", "ct", "label", "lungs", "split")


@dataclass(frozen=True)
class Case:
    """One row of a manifest. ``ct`` and ``lungs`` are absolute paths; ``label`` is 0, 1 or None."""

    id: str
    ct: Path
    label: int | None = None
    lungs: Path | None = None
    split: str | None = None
    line: int = 0
    extra: dict = field(default_factory=dict, compare=False)


def read_manifest(path: str | os.PathLike, require_label: bool = True, check_files: bool = True) -> list[Case]:
    """Read and validate a manifest; returns its cases in file order.

    ``require_label``: every row must have a valid label (training, evaluation). ``check_files``: every
    ``ct`` (and given ``lungs``) path must exist. Raises :class:`DatasetError` on the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Manifest '{path}' does not exist; give the path of a CSV file with columns ct,label.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"Manifest '{path}' cannot be read as UTF-8 text ({exc}); save it as a UTF-8 CSV file."
        ) from exc
    reader = csv.DictReader(text.splitlines())
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "ct" not in header:
        raise DatasetError(
            f"Manifest '{path}' has no 'ct' column (header: {','.join(header) or 'empty'}); "
            "the first line must name the columns, e.g. 'ct,label'."
        )
    if require_label and "label" not in header:
        raise DatasetError(f"Manifest '{path}' has no 'label' column; add one with 1/positive or 0/negative per row.")
    if len(set(header)) != len(header):
        raise DatasetError(
            f"Manifest '{path}' names a column twice (header: {','.join(header)}); keep one column of each name."
        )
    reader.fieldnames = header
    root = path.parent
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise DatasetError(
                f"Manifest '{path}' line {line} has more values than the header has columns; "
                "quote values that contain commas."
            )
        values = {key: (value or "").strip() for key, value in row.items()}
        if not any(values.values()):
            continue  # blank line
        case = _parse_row(values, line, root, require_label, path)
        if case.id in seen:
            raise DatasetError(
                f"Manifest '{path}' line {line}, column 'id': '{case.id}' repeats line "
                f"{seen[case.id]}; give every case a unique id."
            )
        seen[case.id] = line
        cases.append(case)
    if not cases:
        raise DatasetError(f"Manifest '{path}' lists no cases; add one row per CT below the header.")
    if check_files:
        _check_files(cases, path)
    return cases


def write_manifest(path: str | os.PathLike, cases: list[Case], relative: bool = True) -> Path:
    """Write ``cases`` as a manifest CSV (atomically); paths relative to its folder when ``relative``.

    Columns: ``id, ct, label, lungs, split`` and then the union of the cases' extra columns.
    """
    path = Path(path)
    extra_columns: list[str] = []
    for case in cases:
        extra_columns += [key for key in case.extra if key not in extra_columns and key not in COLUMNS]
    root = path.parent.resolve()

    def show(value) -> str:
        if value is None:
            return ""
        if isinstance(value, Path):
            return os.path.relpath(value, root) if relative else str(value)
        return str(value)

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(list(COLUMNS) + extra_columns)
        for case in cases:
            writer.writerow(
                [show(v) for v in (case.id, case.ct, case.label, case.lungs, case.split)]
                + [show(case.extra.get(key)) for key in extra_columns]
            )
    return path


def split_cases(
    cases: list[Case], val_fraction: float, seed: int, need_both_labels: bool = True
) -> tuple[list[Case], list[Case]]:
    """Training and validation cases; rows with split ``test`` are left out of both.

    When some rows say ``val``, those are the validation set and the rest (``train`` or empty) train.
    Otherwise ``val_fraction`` of each label (at least one case each) is drawn at random with ``seed``
    (stratified, so both sets keep the class balance); without labels (UNet task) the draw ignores them.
    ``need_both_labels``: each set must hold positives and negatives (a ROC AUC needs both).
    """
    import numpy as np

    pool = [case for case in cases if case.split != "test"]
    if any(case.split == "val" for case in pool):
        train = [case for case in pool if case.split != "val"]
        val = [case for case in pool if case.split == "val"]
    else:
        if not 0.0 < val_fraction < 1.0:
            raise DatasetError(
                f"The validation fraction {val_fraction} must lie between 0 and 1 (exclusive) when "
                "the manifest has no 'val' rows; use e.g. --val-fraction 0.15."
            )
        rng = np.random.default_rng(seed)
        groups = {}
        for case in pool:
            groups.setdefault(case.label if need_both_labels else None, []).append(case)
        val_ids = set()
        for members in groups.values():
            n_val = max(1, int(round(val_fraction * len(members))))
            if n_val < len(members):
                val_ids.update(members[i].id for i in rng.permutation(len(members))[:n_val])
        train = [case for case in pool if case.id not in val_ids]
        val = [case for case in pool if case.id in val_ids]
    _check_split(train, val, need_both_labels)
    return train, val


def _check_split(train: list[Case], val: list[Case], need_both_labels: bool) -> None:
    if need_both_labels:
        labels = {case.label for case in train + val}
        if labels != {0, 1}:
            only = "positive (1)" if labels == {1} else "negative (0)"
            raise DatasetError(
                f"The manifest's training cases are all {only}; training a classifier needs both "
                "positive and negative cases."
            )
        for name, subset in (("training", train), ("validation", val)):
            if {case.label for case in subset} != {0, 1}:
                raise DatasetError(
                    f"Too few cases for validation: the {name} set ({len(subset)} cases) lacks a "
                    "positive or a negative case; add cases (at least 2 of each label) or mark "
                    "some rows split=val."
                )
    elif not train or not val:
        raise DatasetError(
            f"Too few cases for validation: {len(train)} training and {len(val)} validation cases; "
            "the manifest needs at least 2 cases (or rows marked split=val)."
        )


def parse_label(value: str) -> int:
    """0 or 1 for a label spelling of :data:`LABEL_VALUES`; raises ``ValueError`` otherwise."""
    label = LABEL_VALUES.get(value.strip().lower())
    if label is None:
        raise ValueError(value)
    return label


def _parse_row(values: dict, line: int, root: Path, require_label: bool, manifest: Path) -> Case:
    where = f"Manifest '{manifest}' line {line}"
    ct = values.get("ct", "")
    if not ct:
        raise DatasetError(f"{where}, column 'ct' is empty; give the path of a CT file or DICOM folder.")
    label_text = values.get("label", "")
    label = None
    if label_text:
        try:
            label = parse_label(label_text)
        except ValueError:
            raise DatasetError(
                f"{where}, column 'label': '{label_text}' is not a label; use 1/positive/COVID or 0/negative/non-COVID."
            ) from None
    elif require_label:
        raise DatasetError(f"{where}, column 'label' is empty; give 1 (COVID-19 positive) or 0 (negative).")
    split_text = values.get("split", "")
    split = None
    if split_text:
        split = SPLIT_VALUES.get(split_text.lower())
        if split is None:
            raise DatasetError(
                f"{where}, column 'split': '{split_text}' is not a split; use train, val or test (or leave it empty)."
            )
    ct_path = _resolve(ct, root)
    lungs_text = values.get("lungs", "")
    extra = {key: value for key, value in values.items() if key not in COLUMNS and key}
    return Case(
        id=values.get("id") or path_stem(ct_path),
        ct=ct_path,
        label=label,
        lungs=_resolve(lungs_text, root) if lungs_text else None,
        split=split,
        line=line,
        extra=extra,
    )


def _check_files(cases: list[Case], manifest: Path) -> None:
    missing = [
        (case.line, column, value)
        for case in cases
        for column, value in (("ct", case.ct), ("lungs", case.lungs))
        if value is not None and not value.exists()
    ]
    if missing:
        line, column, value = missing[0]
        more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
        raise DatasetError(
            f"Manifest '{manifest}' line {line}, column '{column}': '{value}' does not exist{more}; "
            "fix the path (relative paths are read from the manifest's folder)."
        )


def _resolve(text: str, root: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else (root / path).resolve()
