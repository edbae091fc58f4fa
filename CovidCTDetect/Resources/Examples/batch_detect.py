"""Example: COVID-19 detection on a folder of chest CTs with 3D Slicer, without its main window.

Run (the ``--`` separates Slicer's own options from this script's)::

    Slicer --no-main-window --python-script batch_detect.py -- --input CT_FOLDER --out RESULTS_FOLDER \
        [--model decovnet] [--device auto] [--threshold 0.5] [--lungs-method unet] [--whole-folder]

Default mode: every CT file of ``--input`` (NIfTI, NRRD, MetaImage) is loaded as a Slicer volume node and
run through the module's blocking logic (``DetectionLogic.detect``), as a user's scene would be;
``RESULTS_FOLDER/<volume name>/`` (the file name without its suffix) receives each CT's outputs
(report.json, heat map, lungs, suspicious
region, montage.png) and ``RESULTS_FOLDER/slicer_results.csv`` the results table (one row per CT:
volume, model, probability, label, threshold, time). A CT that fails is reported and skipped.

``--whole-folder``: the whole folder (CT files and DICOM series sub-folders, or one DICOM series) runs
in one background ``covidct detect`` (``DetectionLogic.runBatch``), which writes
``RESULTS_FOLDER/results.csv`` and one sub-folder per case.

Slicer always exits with a status, whatever happens (``--python-script`` never exits on its own): 0
when every CT succeeded, 1 when some failed (each reported), 2 for bad arguments, missing packages or
no CT done; an unexpected error prints its traceback and exits 1. Memory stays flat over a long folder:
each case's nodes (volume, heat map, segmentations) are removed once its outputs are on disk. The Python
packages of the extension must be installed (open the CovidCT Detect module once to install them).
Research use only: the models are not clinically validated.
"""

import argparse
import sys
import traceback
from pathlib import Path

import slicer


def parse_arguments(argv):
    from CovidCTDetectLib.detect_logic import DEVICES, LUNGS_METHODS

    parser = argparse.ArgumentParser(prog="batch_detect.py", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="folder of CT files (or, with --whole-folder, DICOM series)")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--model", default=None, help="catalogue model name or model folder (default: first installed)")
    parser.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    parser.add_argument("--threshold", type=float, default=None, help="operating threshold (default: the model's)")
    parser.add_argument("--lungs-method", choices=LUNGS_METHODS, default=LUNGS_METHODS[0])
    parser.add_argument("--whole-folder", action="store_true", help="one background covidct detect over the folder")
    return parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)


def detect_volumes(logic, args) -> tuple[int, int]:
    """Load each CT file as a volume node, detect, keep the results table; ``(successes, cases)``."""
    from covidct.errors import CovidCTError
    from covidct.formats import VOLUME_SUFFIXES, suffix_of
    from CovidCTDetectLib.volumes import remove_nodes

    files = sorted(p for p in Path(args.input).iterdir() if p.is_file() and suffix_of(p) in VOLUME_SUFFIXES)
    if not files:
        raise CovidCTError(f"No CT file (NIfTI, NRRD, MetaImage) in {args.input}; use --whole-folder for DICOM series.")
    done, table_node = 0, None
    for path in files:
        try:
            volume_node = slicer.util.loadVolume(str(path))
        except RuntimeError:  # Slicer could not read the file
            print(f"{path.name}: Slicer could not load this file as a volume; check that it is a CT image.")
            continue
        try:
            result = logic.detect(
                volume_node,
                args.model,
                lungsMethod=args.lungs_method,
                device=args.device,
                threshold=args.threshold,
                outputFolder=args.out,
                show=False,
            )
        except CovidCTError as error:
            print(f"{path.name}: {error}")
            continue
        finally:
            remove_nodes(volume_node)  # keep memory flat over a long folder
        # the outputs are on disk; the scene keeps only the results table
        remove_nodes(result.heatMapNode, result.lungSegmentationNode, result.suspiciousSegmentationNode)
        done, table_node = done + 1, result.tableNode
        print(
            f"{path.name}: P(COVID-19) = {result.probability:.3f} ({result.label}), {result.seconds:.1f} s, "
            f"outputs in {result.outputFolder}"
        )
    if table_node is not None:
        slicer.util.saveNode(table_node, str(Path(args.out) / "slicer_results.csv"))
    print(f"{done} of {len(files)} CTs done; table: {Path(args.out) / 'slicer_results.csv'}")
    return done, len(files)


def print_case_result(event: dict) -> None:
    """Print each case's row of results.csv as the background run finishes it."""
    if event.get("event") == "result":
        outcome = event["error"] or f"P(COVID-19) = {float(event['probability']):.3f} ({event['label']})"
        print(f"{event['case']}: {outcome}")


def detect_whole_folder(logic, args) -> tuple[int, int]:
    """One background ``covidct detect`` over the folder; ``(successes, cases)``."""
    table_node = logic.runBatch(
        args.input, args.out, args.model, args.lungs_method, args.device, args.threshold, onEvent=print_case_result
    )
    errors = table_node.GetTable().GetColumnByName("error")
    rows = table_node.GetTable().GetNumberOfRows()
    done = sum(1 for row in range(rows) if not errors.GetValue(row))
    print(f"{done} of {rows} CTs done; table: {Path(args.out) / 'results.csv'}")
    return done, rows


def main(argv) -> int:
    """Run the batch; the exit status (see the module docstring)."""
    try:
        args = parse_arguments(argv)
    except SystemExit as stop:  # argparse: bad arguments (2) or --help (0)
        return int(stop.code or 0)
    from covidct.errors import CovidCTError
    from CovidCTDetectLib import dependencies
    from CovidCTDetectLib.detect_logic import DetectionLogic

    missing = dependencies.missing_requirements()
    if missing:
        print(f"Missing Python packages ({', '.join(missing)}); open the CovidCT Detect module once to install them.")
        return 2
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"batch_detect.py: cannot create the results folder {args.out} ({error.strerror}); choose another --out.")
        return 2
    logic = DetectionLogic()
    try:
        done, cases = detect_whole_folder(logic, args) if args.whole_folder else detect_volumes(logic, args)
    except CovidCTError as error:
        print(f"batch_detect.py: {error}")
        return 2
    return 2 if done == 0 else 0 if done == cases else 1


status = 1
try:
    status = main(sys.argv[1:])
except Exception:  # anything unexpected: say what, and still end Slicer (--python-script never exits by itself)
    traceback.print_exc()
    status = 1
finally:
    slicer.util.exit(status)
