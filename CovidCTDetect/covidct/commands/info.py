"""Show a CT's size, spacing, orientation, HU percentiles and (for DICOM) the chosen series.

CT is a NIfTI/NRRD/MHA file, a DICOM folder or one DICOM file of a series. The CT is loaded and
validated exactly as the other commands load it, so a CT that ``covidct info`` accepts is accepted
everywhere. Patient-identifying DICOM fields are never shown.
"""

from __future__ import annotations

PERCENTILES = (1, 5, 50, 95, 99)


def add_arguments(parser) -> None:
    parser.add_argument("ct", metavar="CT", help="CT file (.nii.gz, .nrrd, .mha ...), DICOM folder or DICOM file")
    parser.add_argument("--json", action="store_true", help="print the facts as one JSON object")


def run(args) -> int:
    import json

    from ..io import load_ct_with_source

    image, source = load_ct_with_source(args.ct)
    facts = ct_facts(image, source)
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        print(format_facts(facts))
    return 0


def ct_facts(image, source) -> dict:
    """The facts ``covidct info`` shows, as a JSON-able dict (sizes in voxels, lengths in mm, LPS)."""
    from ..geometry import orientation_code
    from ..validate import hu_percentiles

    size = list(image.GetSize())
    spacing = [round(s, 4) for s in image.GetSpacing()]
    facts = {
        "path": source.path,
        "format": source.format,
        "size_xyz": size,
        "spacing_mm": spacing,
        "extent_mm": [round(n * s, 1) for n, s in zip(size, image.GetSpacing(), strict=True)],
        "slices": size[2],
        "orientation": orientation_code(image),
        "origin_lps_mm": [round(v, 2) for v in image.GetOrigin()],
        "pixel_type": image.GetPixelIDTypeAsString(),
        "stored_pixel_type": source.stored_pixel_type,
        "hu_percentiles": {
            f"p{q}": round(float(v), 1) for q, v in zip(PERCENTILES, hu_percentiles(image, PERCENTILES), strict=True)
        },
    }
    if source.format == "DICOM":
        facts["dicom_series"] = {
            "uid": source.series_uid,
            "number": source.series_number,
            "slices": source.series_slices,
            "series_found": source.series_found,
        }
    facts["corrections"] = list(source.corrections)
    return facts


def format_facts(facts: dict) -> str:
    """The facts as aligned ``label: value`` lines."""

    def xyz(values, unit=""):
        return " × ".join(f"{v:g}" for v in values) + unit

    lines = [
        ("file", f"{facts['path']} ({facts['format']})"),
        ("size (x × y × z)", xyz(facts["size_xyz"], " voxels")),
        ("spacing", xyz(facts["spacing_mm"], " mm")),
        ("extent", xyz(facts["extent_mm"], " mm")),
        ("slices", str(facts["slices"])),
        ("orientation", facts["orientation"]),
        ("origin (LPS)", "(" + ", ".join(f"{v:g}" for v in facts["origin_lps_mm"]) + ") mm"),
        (
            "pixel type",
            facts["pixel_type"]
            + (
                f" (stored as {facts['stored_pixel_type']})"
                if facts["stored_pixel_type"] != facts["pixel_type"]
                else ""
            ),
        ),
        ("HU percentiles", ", ".join(f"{k} {v:g}" for k, v in facts["hu_percentiles"].items())),
    ]
    series = facts.get("dicom_series")
    if series:
        lines.append(
            (
                "DICOM series",
                f"number {series['number'] or 'not given'}, UID {series['uid'] or 'not given'}, "
                f"{series['slices']} slices, chosen from {series['series_found']} series",
            )
        )
    lines.append(("corrections", "; ".join(facts["corrections"]) or "none"))
    width = max(len(label) for label, _ in lines) + 1
    return "\n".join(f"{label + ':':<{width}} {value}" for label, value in lines)
