"""Training datasets for the CovidCTTrain module: a manifest from what the user has, and a preview table.

The user may have

* a dataset manifest (CSV with a ``ct`` column, see :mod:`covidct.data.manifest`): used as it is;
* a folder with one sub-folder per class, e.g. ``covid/`` and ``non-covid/`` (any spelling of
  :data:`covidct.data.manifest.LABEL_VALUES`: ``positive``/``negative``, ``1``/``0``, ``normal`` ...), each
  holding CT files (NIfTI, NRRD, MHA) or DICOM series folders, one case each;
* a CSV of ``path,label`` rows (header optional; the path column may be called ``path``, ``file``,
  ``image`` or ``filename``, the label column ``label``, ``class`` or ``diagnosis``; labels as in a manifest).

The last two are turned into a manifest (:func:`dataset_manifest`). :func:`preview_dataset` fills a
table node with one row per case: its label, whether its files exist, and the split the training
will use (the same rule and seed as ``covidct train``). No Qt, no PyTorch.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from covidct.data.manifest import Case, parse_label, read_manifest, split_cases, write_manifest
from covidct.errors import DatasetError
from covidct.formats import VOLUME_SUFFIXES, path_stem

from .tables import set_table_columns
from .volumes import scene_or_default

#: File name endings of CT files in a class folder (DICOM series are folders).
CT_FILE_ENDINGS = tuple(VOLUME_SUFFIXES)
#: Column names accepted for the path and the label of a ``path,label`` CSV (case-insensitive).
PATH_COLUMNS = ("path", "ct", "file", "image", "filename")
LABEL_COLUMNS = ("label", "class", "diagnosis")
#: File names of the manifests written by :func:`dataset_manifest`.
FOLDER_MANIFEST = "covidct-manifest.csv"
TABLE_MANIFEST_SUFFIX = "-manifest.csv"


def dataset_manifest(source: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """The manifest of ``source``: a manifest CSV itself, or one written from a class-folder layout or a path,label CSV.

    ``out``: where to write a new manifest (default: ``<folder>/covidct-manifest.csv`` for a folder,
    ``<name>-manifest.csv`` beside a path,label CSV). Paths in it are relative to its folder.
    Raises :class:`DatasetError` with one sentence.
    """
    source = Path(source).expanduser()
    if source.is_dir():
        return manifest_from_folders(source, out or source / FOLDER_MANIFEST)
    if not source.is_file():
        raise DatasetError(
            f"'{source}' does not exist; choose a manifest CSV, a path,label CSV or a folder with "
            "one sub-folder per class."
        )
    if "ct" in _header(source):
        return source
    return manifest_from_table(source, out or source.with_name(source.stem + TABLE_MANIFEST_SUFFIX))


def manifest_from_folders(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write a manifest of a folder holding one sub-folder per class; returns ``out``.

    Each CT file or sub-folder (a DICOM series) inside a class folder is a case whose id is its file name
    without extension (prefixed by the class folder's name when two classes hold the same name).
    """
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(
            f"Folder '{root}' has no sub-folders; put the CTs of each class in a sub-folder of its "
            "own, e.g. covid/ and non-covid/."
        )
    labels = {folder.name: _class_label(folder.name) for folder in folders}
    unknown = [name for name, label in labels.items() if label is None]
    if unknown:
        raise DatasetError(
            f"The sub-folder name(s) {', '.join(repr(n) for n in unknown)} in '{root}' name no class; "
            "rename them covid, positive or 1 (COVID-19) and non-covid, negative or 0 (not COVID-19)."
        )
    found = []
    for folder in folders:
        entries = [
            e
            for e in sorted(folder.iterdir())
            if not e.name.startswith(".") and (e.is_dir() or e.name.lower().endswith(CT_FILE_ENDINGS))
        ]
        if not entries:
            raise DatasetError(
                f"Class folder '{folder}' holds no CT file ({', '.join(CT_FILE_ENDINGS)}) and no DICOM "
                "folder; add its cases or remove the folder."
            )
        found += [(folder.name, entry, labels[folder.name]) for entry in entries]
    return write_manifest(out, _cases(found), relative=True)


def manifest_from_table(table: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write a manifest of a CSV of ``path,label`` rows; returns ``out``.

    The first row is a header when it names a path or label column (:data:`PATH_COLUMNS`,
    :data:`LABEL_COLUMNS`); otherwise the columns are path, label. Relative paths are read from the CSV's
    folder. Raises :class:`DatasetError` naming the line of the first bad row.
    """
    table = Path(table)
    rows = list(csv.reader(table.read_text(encoding="utf-8-sig").splitlines()))
    rows = [(line, row) for line, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise DatasetError(f"'{table}' is empty; write one 'path,label' row per CT.")
    path_index, label_index = 0, 1
    first = [cell.strip().lower() for cell in rows[0][1]]
    if any(cell in PATH_COLUMNS + LABEL_COLUMNS for cell in first):
        path_index = _column(first, PATH_COLUMNS, table, "path")
        label_index = _column(first, LABEL_COLUMNS, table, "label")
        rows = rows[1:]
    found = []
    for line, row in rows:
        if len(row) <= max(path_index, label_index) or not row[path_index].strip():
            raise DatasetError(f"'{table}' line {line} has no path and label; write 'path,label' on every line.")
        label = _class_label(row[label_index])
        if label is None:
            raise DatasetError(
                f"'{table}' line {line}: '{row[label_index].strip()}' is not a label; use 1/positive/"
                "COVID or 0/negative/non-COVID."
            )
        path = Path(os.path.expanduser(row[path_index].strip()))
        path = path if path.is_absolute() else (table.parent / path).resolve()
        found.append((path.parent.name, path, label))
    return write_manifest(out, _cases(found), relative=True)


@dataclass(frozen=True)
class DatasetSummary:
    """Counts of a previewed dataset. ``split_error``: why no training/validation split can be drawn (else None)."""

    cases: int
    positives: int
    negatives: int
    missing: int
    train: int
    val: int
    test: int
    split_error: str | None = None

    def text(self) -> str:
        """One line for the panel, e.g. "12 cases (6 COVID-19, 6 not); 10 training, 2 validation; all files found."."""
        parts = [
            f"{self.cases} cases"
            + (f" ({self.positives} COVID-19, {self.negatives} not)" if self.positives + self.negatives else "")
        ]
        if self.split_error:
            parts.append(self.split_error.rstrip("."))
        else:
            parts.append(f"{self.train} training, {self.val} validation" + (f", {self.test} test" if self.test else ""))
        parts.append(f"{self.missing} missing file(s)" if self.missing else "all files found")
        return "; ".join(parts) + "."


def preview_dataset(
    manifest: str | os.PathLike,
    val_fraction: float = 0.15,
    seed: int = 0,
    needs_labels: bool = True,
    table_node=None,
    scene=None,
):
    """Fill a table node with the cases of ``manifest``; returns ``(table node, DatasetSummary)``.

    Columns: ``case``, ``label`` (``COVID-19``/``not COVID-19``/empty), ``files`` (``found`` or which file is
    missing), ``split`` (``train``/``val``/``test`` as ``covidct train --val-fraction val_fraction --seed
    seed`` will draw it; empty when no split can be drawn), ``ct``, ``lungs``. ``needs_labels``: False for
    the lung UNet (no labels). The table is ``"<manifest name> cases"`` when ``table_node`` is None.
    """
    cases = read_manifest(manifest, require_label=needs_labels, check_files=False)
    split: dict[str, str] = {case.id: "test" for case in cases if case.split == "test"}
    split_error = None
    try:
        train, val = split_cases(cases, val_fraction, seed, need_both_labels=needs_labels)
        split.update({case.id: "train" for case in train})
        split.update({case.id: "val" for case in val})
    except DatasetError as error:
        split_error = str(error)
    files = [_files_state(case) for case in cases]
    if table_node is None:
        table_node = scene_or_default(scene).AddNewNodeByClass("vtkMRMLTableNode", f"{Path(manifest).name} cases")
    set_table_columns(
        table_node,
        {
            "case": [case.id for case in cases],
            "label": [{1: "COVID-19", 0: "not COVID-19"}.get(case.label, "") for case in cases],
            "files": files,
            "split": [split.get(case.id, "") for case in cases],
            "ct": [str(case.ct) for case in cases],
            "lungs": [str(case.lungs or "") for case in cases],
        },
    )
    values = list(split.values())
    summary = DatasetSummary(
        cases=len(cases),
        positives=sum(case.label == 1 for case in cases),
        negatives=sum(case.label == 0 for case in cases),
        missing=sum(state != "found" for state in files),
        train=values.count("train"),
        val=values.count("val"),
        test=values.count("test"),
        split_error=split_error,
    )
    return table_node, summary


def _files_state(case: Case) -> str:
    missing = [
        name for name, path in (("ct", case.ct), ("lungs", case.lungs)) if path is not None and not path.exists()
    ]
    return "missing " + " and ".join(missing) if missing else "found"


def _class_label(name: str) -> int | None:
    try:
        return parse_label(name)
    except ValueError:
        return None


def _cases(found: list[tuple[str, Path, int]]) -> list[Case]:
    """Cases from ``(folder name, CT path, label)``; ids are file stems, prefixed by the folder name when they clash."""
    stems = [path_stem(path) for _, path, _ in found]
    return [
        Case(id=f"{folder}-{stem}" if stems.count(stem) > 1 else stem, ct=path, label=label)
        for (folder, path, label), stem in zip(found, stems, strict=True)
    ]


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        first = next(csv.reader(stream), [])
    return [cell.strip().lower() for cell in first]


def _column(header: list[str], names: tuple[str, ...], table: Path, what: str) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise DatasetError(
        f"'{table}' has no {what} column (header: {','.join(header)}); name it {' or '.join(names[:2])}, "
        "or leave out the header and write 'path,label' rows."
    )
