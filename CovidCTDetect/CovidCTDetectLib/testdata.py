"""Where the modules' self-tests find a small real CT (no downloads)."""

from __future__ import annotations

from pathlib import Path


def ct_path() -> Path:
    """The CIP chest CT bundled with ``covidct`` (``covidct/sample/ct-64.nrrd``: 64×64×79, int16 HU),
    present in a source checkout and in the installed extension alike."""
    import covidct

    return Path(covidct.__file__).parent / "sample" / "ct-64.nrrd"


def lung_mask_path() -> Path | None:
    """The CIP whole-lung mask on :func:`ct_path`'s grid (``Testing/Data/cip-ct64/wholeLung-64.nrrd``);
    None in an installed extension, which has no ``Testing`` folder."""
    mask = Path(__file__).resolve().parents[2] / "Testing" / "Data" / "cip-ct64" / "wholeLung-64.nrrd"
    return mask if mask.is_file() else None
