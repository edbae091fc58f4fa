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


#: the Sample Data module's section for the extension's data
SAMPLE_CATEGORY = "COVID-19"


def sample_data_source() -> dict:
    """Keyword arguments of ``SampleData.SampleDataLogic.registerCustomSampleDataSource`` for the bundled
    CIP CT (:func:`ct_path`): a ``file:`` URI (nothing is downloaded) and its SHA256 checksum."""
    import hashlib
    import urllib.parse
    import urllib.request

    path = ct_path()
    return {
        "category": SAMPLE_CATEGORY,
        "sampleName": "CovidCT sample chest CT (CIP, 64x64)",
        "uris": urllib.parse.urljoin("file:", urllib.request.pathname2url(str(path))),
        "fileNames": "CovidCT-CIP-ct-64.nrrd",
        "nodeNames": "CovidCT sample CT",
        "checksums": "SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def register_sample_data() -> None:
    """Offer the bundled CT in Slicer's Sample Data module (called once Slicer has started)."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(**sample_data_source())
