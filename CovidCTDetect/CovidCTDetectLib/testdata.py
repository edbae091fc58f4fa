"""Where the modules' self-tests find a small real CT (no downloads)."""

from __future__ import annotations

from pathlib import Path

#: The CIP CT fixture of a source checkout (``Testing/Data/cip-ct64``), relative to the repository root.
_FIXTURE = Path("Testing") / "Data" / "cip-ct64"


def ct_path() -> Path:
    """The CIP chest CT ``ct-64.nrrd`` (64×64×79, int16 HU) of the source checkout's ``Testing/Data``,
    or, in an installed extension, the first CT bundled in ``covidct/sample``."""
    fixture = Path(__file__).resolve().parents[2] / _FIXTURE / "ct-64.nrrd"
    if fixture.is_file():
        return fixture
    import covidct

    bundled = sorted(p for p in (Path(covidct.__file__).parent / "sample").glob("*")
                     if p.name.endswith((".nrrd", ".nii.gz", ".nii", ".mha")))
    if not bundled:
        raise FileNotFoundError(f"no test CT: neither {fixture} nor a CT in covidct/sample exists")
    return bundled[0]


def lung_mask_path() -> Path | None:
    """The CIP whole-lung mask on the same grid as :func:`ct_path`'s fixture, when that fixture is used."""
    mask = ct_path().with_name("wholeLung-64.nrrd")
    return mask if mask.is_file() else None
