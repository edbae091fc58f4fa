"""Detection on many CTs: find the cases in files and folders, run each, keep going past bad ones.

Used by ``covidct detect`` and by the Slicer module's batch section. Each case gets its own output
folder (named from its file or folder name, made unique) and one row in ``results.csv``; a case that
fails (unreadable file, no lungs, ...) gets its one-sentence error in the ``error`` column and the
batch continues. Each row is appended to ``results.csv`` as its case finishes, under a file lock, with
the run's identifier (``run``: start time and process), so an interrupted batch keeps the rows of the
finished cases and runs into one folder, at once or one after the other, keep every row. The output
folder is checked (writable, free space) before the first case. Rows hold file names only, never
patient data.
"""

from __future__ import annotations

import contextlib
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

RESULT_COLUMNS = (
    "run",
    "case",
    "source",
    "model",
    "probability",
    "label",
    "threshold",
    "seconds",
    "error",
    "warnings",
)
#: free disk space asked for per case before a batch starts (MB): a heat map, lungs, montage, report
MB_PER_CASE = 20.0


def find_cases(inputs, exclude=()) -> list[Path]:
    """The CT inputs named by ``inputs`` (paths), in order, without duplicates.

    A file is one case. A folder that directly holds DICOM files is one case (a DICOM series).
    Any other folder contributes its volume files (NIfTI, NRRD, MetaImage) and each sub-folder
    (read as a DICOM series) as cases; other files in it (notes, spreadsheets, hidden files) are
    skipped. A path that does not exist is kept, so that its case reports the error. Paths in
    ``exclude`` (e.g. the output folder) are left out.
    """
    from .dicom import has_dicom_magic
    from .formats import DICOM_SUFFIXES, VOLUME_SUFFIXES, suffix_of

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
    from .formats import path_stem

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
    """Run :func:`covidct.detection.detect` on every case and write each case's outputs.

    The model is loaded once. Option errors (model, device, threshold, output folder) raise before any
    case runs; a failing case is recorded and the batch goes on (an internal error, i.e. a bug,
    propagates when there is only one case, so that its traceback can be seen).

    Parameters
    ----------
    inputs : iterable of str or os.PathLike
        CT files and folders; a folder is expanded into cases by :func:`find_cases`.
    out_dir : str or os.PathLike
        Receives ``<case>/`` with each case's outputs (:meth:`Detection.save`) and ``results.csv``,
        appended under a file lock with one row per case (:data:`RESULT_COLUMNS`).
    model, lungs_method, threshold, device, heatmap
        As for :func:`covidct.detection.detect`.
    lungs : str, os.PathLike or None
        A lung mask file, allowed when ``inputs`` name a single CT only.
    progress : covidct.progress.Progress or None
        Receives a report per case and per step.

    Returns
    -------
    list of dict
        One row per case, keys :data:`RESULT_COLUMNS` (``status`` ``"ok"`` or ``"failed"`` with the
        ``error`` sentence; ``seconds`` is the case's wall time).
    """
    from .detection import check_threshold, detect, load_classifier
    from .outputs import check_output_folder

    out_dir = Path(out_dir)
    cases = find_cases(inputs, exclude=[out_dir])  # a rerun's own outputs are not a case
    check_output_folder(out_dir, MB_PER_CASE * len(cases))
    run = run_id()
    if lungs is not None and len(cases) > 1:
        raise UsageError(
            f"--lungs gives one lung mask but {len(cases)} CTs were named; run one CT at a time "
            "with --lungs, or leave it out to segment each CT's lungs."
        )
    if threshold is not None:
        check_threshold(threshold)
    loaded = load_classifier(model, device)
    if progress is not None:
        progress.event("run", run=run, results=str(out_dir / "results.csv"))
    rows: list[dict] = []
    for index, (path, name) in enumerate(zip(cases, case_names(cases), strict=True)):
        if progress is not None:
            progress.stage("cases", index, len(cases), case=name)
        row = dict.fromkeys(RESULT_COLUMNS, "")
        row.update(run=run, case=name, source=path.name, model=loaded[1].name)
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
        append_results(out_dir / "results.csv", [row])
        if progress is not None:
            progress.event("result", **row)
    if progress is not None:
        progress.stage("cases", len(cases), len(cases))
    return rows


def run_id() -> str:
    """This run's identifier in ``results.csv``: its UTC start time and process id."""
    from datetime import datetime, timezone

    return f"{datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}-{os.getpid()}"


def append_results(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Append ``rows`` (:data:`RESULT_COLUMNS`) to the CSV at ``path`` under an exclusive file lock, writing
    the header when the file is new. A file with other columns is refused (it is not this version's),
    never rewritten. Raises :class:`~covidct.errors.OutputError` when the rows cannot be written."""
    from .errors import OutputError

    path = Path(path)
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n").writerows(rows)
    try:
        with open(path, "a+", newline="", encoding="utf-8") as stream, _locked(stream):
            stream.seek(0)
            header = stream.readline().strip()
            if header and header != ",".join(RESULT_COLUMNS):
                raise OutputError(
                    f"{path} has other columns than this version writes ({header[:60]}...); move it away or choose "
                    "another output folder."
                )
            stream.seek(0, os.SEEK_END)
            if not header:
                stream.write(",".join(RESULT_COLUMNS) + "\n")
            stream.write(buffer.getvalue())
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as exc:
        raise OutputError(f"Could not write {path}: {exc.strerror or exc}.") from exc
    return path


def read_results(path: str | os.PathLike, run: str | None = None) -> list[dict]:
    """The rows of a ``results.csv`` (of one ``run`` when given)."""
    with open(path, newline="", encoding="utf-8") as stream:
        return [row for row in csv.DictReader(stream) if run is None or row.get("run") == run]


@contextlib.contextmanager
def _locked(stream):
    """An exclusive lock on an open file for the block (``fcntl`` on POSIX, ``msvcrt`` on Windows)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        stream.seek(0)
        msvcrt.locking(stream.fileno(), msvcrt.LK_LOCK, 1)
        try:
            yield
        finally:
            stream.seek(0)
            msvcrt.locking(stream.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
