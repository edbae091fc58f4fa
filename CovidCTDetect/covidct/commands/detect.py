"""Detect COVID-19 on chest CTs: probability, label, lungs and a heat map per CT, and a results.csv.

Each CT (file, DICOM folder, or a folder holding CT files and DICOM sub-folders) gets a sub-folder
of --out with report.json, lungs.nii.gz, heatmap.nii.gz, suspicious.nii.gz and montage.png; the
run writes --out/results.csv with one row per CT (a failed CT has its error there and the others
go on). A CT is positive when its probability exceeds the threshold (default: the model card's).
Exit status: 0 when at least one CT succeeded, 2 when all failed. Research use only: the bundled
models are not clinically validated.

Example: covidct detect scans/ --out results --model decovnet --device cpu
"""

from __future__ import annotations

from pathlib import Path

from ..models.catalogue import DEFAULT_CLASSIFIER
from ._options import add_device_option, add_lungs_method_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    parser.add_argument("ct", nargs="+", metavar="CT", help="CT file(s), DICOM folder(s), or folder(s) of CTs")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per CT, and results.csv)")
    parser.add_argument(
        "--model",
        default=DEFAULT_CLASSIFIER,
        help="model: decovnet or covid19net (the installed model of that architecture), a catalogue "
        "name, or a folder holding model.json (default: decovnet)",
    )
    parser.add_argument("--lungs", metavar="FILE", help="lung mask of the (single) CT; default: segment the lungs")
    add_lungs_method_option(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="operating threshold in (0, 1); positive when probability > T (default: the model's)",
    )
    parser.add_argument("--no-heatmap", action="store_true", help="skip the HiResCAM heat map (faster)")
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    from ..batch import detect_batch
    from ..errors import CovidCTError
    from ..progress import BarProgress

    with progress_from_args(args) as progress:
        rows = detect_batch(
            args.ct,
            args.out,
            model=args.model,
            lungs=args.lungs,
            lungs_method=args.lungs_method,
            threshold=args.threshold,
            device=args.device,
            heatmap=not args.no_heatmap,
            progress=progress,
        )
    failed = [row for row in rows if row["error"]]
    if len(rows) == 1 and failed:
        raise CovidCTError(failed[0]["error"])
    if not args.progress_json:
        if not isinstance(progress, BarProgress):  # bars show each case's result as it finishes
            for row in rows:
                outcome = row["error"] or f"P(COVID-19) = {float(row['probability']):.3f} ({row['label']})"
                print(f"{row['case']}: {outcome}")
        print(f"results: {Path(args.out) / 'results.csv'} ({len(rows) - len(failed)} of {len(rows)} CTs done)")
    return 2 if len(failed) == len(rows) else 0
