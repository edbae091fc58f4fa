"""Segment the lungs of a chest CT: a labelmap with 1 = right lung and 2 = left lung (patient's sides).

CT is a NIfTI/NRRD/MHA file or a DICOM folder; the labelmap (UInt8) lies on the CT's own grid and is
written atomically to --out (.nii.gz, .nrrd, ...). Methods: unet (default, the bundled 2D UNet of the
DeCoVNet paper, then the rims of the lesions it holds put back) or threshold (the unsupervised method
the UNet was trained from: HU threshold, airways removed, holes filled, consolidation at the costal
pleura put back). A one-line summary
gives each lung's volume and the run time; with --progress-json it is a JSON "result" line.

Example: covidct segment chest.nii.gz --out lungs.nii.gz --lungs-method threshold
"""

from __future__ import annotations

from pathlib import Path

from ._options import add_device_option, add_lungs_method_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    parser.add_argument("ct", metavar="CT", help="CT file (.nii.gz, .nrrd, .mha ...) or DICOM folder")
    parser.add_argument("--out", required=True, help="output labelmap file, e.g. lungs.nii.gz")
    add_lungs_method_option(parser, default="installed")
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    import time

    from ..formats import WRITE_SUFFIXES
    from ..io import load_ct, save_image
    from ..lungs import lung_volumes_ml, segment_lungs
    from ..models import default_lungs_method
    from ..outputs import check_output_file
    from ..validate import check_lungs

    check_output_file(args.out, tuple(WRITE_SUFFIXES))  # before any work: a bad name is refused at once
    start = time.perf_counter()
    with progress_from_args(args) as progress:
        ct = load_ct(args.ct)
        method = args.lungs_method or default_lungs_method()
        labels = segment_lungs(ct, method=method, device=args.device, progress=progress)
        check_lungs(labels, Path(args.ct).name)
        save_image(labels, args.out)
        seconds = time.perf_counter() - start
        volumes = lung_volumes_ml(labels)
        if args.progress_json:
            progress.event(
                "result",
                out=str(args.out),
                method=method,
                seconds=round(seconds, 2),
                right_lung_ml=round(volumes["right lung"], 1),
                left_lung_ml=round(volumes["left lung"], 1),
            )
    if not args.progress_json:
        print(
            f"{args.out}: right lung {volumes['right lung'] / 1000:.2f} L, left lung "
            f"{volumes['left lung'] / 1000:.2f} L ({method}, {seconds:.1f} s)"
        )
    return 0
