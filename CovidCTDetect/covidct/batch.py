"""Detection on many CTs: find the cases in files and folders, run each, keep going past bad ones.

Used by ``covidct detect`` and by the Slicer module's batch section. Each case gets its own output
folder (named from its file or folder name, made unique) and one row in ``results.csv``; a case that
fails (unreadable file, no lungs, ...) gets its one-sentence error in the ``error`` column and the
batch continues. ``results.csv`` is rewritten (atomically) after every case, so an interrupted
batch keeps the rows of the finished cases. Rows hold file names only, never patient data.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import time
from pathlib import Path

from .errors import CovidCTError, UsageError
from .models.catalogue import DEFAULT_CLASSIFIER

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("case", "source", "model", "probability", "label", "threshold", "seconds", "error", "warnings")


def find_cases(inputs, exclude=()) -> list[Path]:
    """The CT inputs named by ``inputs`` (paths), in order, without duplicates.

    A file is one case. A folder that directly holds DICOM files is one case (a DICOM series).
    Any other folder contributes its volume files (NIfTI, NRRD, MetaImage) and each sub-folder
    (read as a DICOM series) as cases; other files in it (notes, spreadsheets, hidden files) are
    skipped. A path that does not exist is kept, so that its case reports the error. Paths in
    ``exclude`` (e.g. the output folder) are left out.
    """
    from .dicom import DICOM_SUFFIXES, has_dicom_magic
    from .io import VOLUME_SUFFIXES, suffix_of

    cases: list[Path] = []
    for path in map(Path, inputs):
        if not path.is_dir():
            cases.append(path)
            continue
        children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        files = [p for p in children if p.is_file()]
        if any(p.suffix.lower() in DICOM_SUFFIXES or has_dicom_magic(p) for p in files):
            cases.append(path)
            continue
        skipped = [p.name for p in files if suffix_of(p) not in VOLUME_SUFFIXES]
        if skipped:
            log.info("skipping %d non-image file(s) in '%s', e.g. '%s'", len(skipped), path.name, skipped[0])
        cases += [p for p in children if p.is_dir() or suffix_of(p) in VOLUME_SUFFIXES]
    excluded = {Path(p).resolve() for p in exclude}
    unique = [p for p in dict.fromkeys(p.resolve() if p.exists() else p for p in cases) if p not in excluded]
    if not unique:
        raise UsageError(
            "No CT found in the given paths; name CT files (NIfTI, NRRD, MetaImage), DICOM folders, "
            "or folders holding them."
        )
    return unique


def case_names(paths: list[Path]) -> list[str]:
    """One output-folder name per case: the file name without its image suffix (or the folder's
    name), reduced to letters, digits, ``-``, ``_`` and ``.``, made unique with ``-2``, ``-3``, ..."""
    from .data.manifest import path_stem

    names: list[str] = []
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", path_stem(path)).strip("._") or "case"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def detect_batch(
    inputs,
    out_dir: str | os.PathLike,
    model=DEFAULT_CLASSIFIER,
    lungs=None,
    lungs_method: str | None = None,
    threshold: float | None = None,
    device="auto",
    heatmap: bool = True,
    progress=None,
) -> list[dict]:
    """Run :func:`covidct.detection.detect` on every case of :func:`find_cases` and return the result rows.

    ``out_dir/<case>/`` receives each case's outputs (:meth:`Detection.save`) and ``out_dir/results.csv``
    one row per case (:data:`RESULT_COLUMNS`; ``seconds`` is the case's wall time). The model is loaded
    once. ``lungs`` (a mask file) is allowed for a single CT only. Option errors (model, device,
    threshold) raise before any case runs; a failing case is recorded and the batch continues (an
    internal error, i.e. a bug, propagates when there is only one case, so that its traceback can be seen).
    """
    from .detection import check_threshold, detect, load_classifier

    out_dir = Path(out_dir)
    cases = find_cases(inputs, exclude=[out_dir])  # a rerun's own outputs are not a case
    if lungs is not None and len(cases) > 1:
        raise UsageError(
            f"--lungs gives one lung mask but {len(cases)} CTs were named; run one CT at a time "
            "with --lungs, or leave it out to segment each CT's lungs."
        )
    if threshold is not None:
        check_threshold(threshold)
    loaded = load_classifier(model, device)
    rows: list[dict] = []
    for index, (path, name) in enumerate(zip(cases, case_names(cases), strict=True)):
        if progress is not None:
            progress.stage("cases", index, len(cases), case=name)
        row = dict.fromkeys(RESULT_COLUMNS, "")
        row.update(case=name, source=path.name, model=loaded[1].name)
        start = time.perf_counter()
        try:
            result = detect(
                path,
                model=loaded,
                lungs=lungs,
                threshold=threshold,
                heatmap=heatmap,
                progress=progress,
                lungs_method=lungs_method,
            )
            result.save(out_dir / name)
            row.update(
                probability=f"{result.probability:.6f}",
                label=result.label,
                threshold=result.threshold,
                warnings=" ".join(result.warnings),
            )
            for warning in result.warnings:
                log.warning("%s: %s", name, warning)
        except CovidCTError as error:
            row["error"] = str(error)
        except Exception as error:  # a bug on one case must not lose the rest of a batch
            if len(cases) == 1:
                raise
            log.debug("internal error on case '%s'", name, exc_info=True)
            row["error"] = (
                f"internal error ({type(error).__name__}: {error}); rerun this case alone with --debug "
                "to see the traceback"
            )
        row["seconds"] = f"{time.perf_counter() - start:.2f}"
        rows.append(row)
        write_results(out_dir / "results.csv", rows)
        if progress is not None:
            progress.event("result", **row)
    if progress is not None:
        progress.stage("cases", len(cases), len(cases))
    return rows


def write_results(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Write ``rows`` as CSV with :data:`RESULT_COLUMNS` (atomically)."""
    from .outputs import write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())
