"""The image file formats this package reads and writes, told apart by the file name's suffix.

The one home of the suffix tables: readers (:mod:`covidct.io`, :mod:`covidct.dicom`), case finding
(:mod:`covidct.batch`), manifests and the Slicer dataset builder all use these. Imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

#: file suffix -> format name, for the volume formats read directly
VOLUME_SUFFIXES = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}
#: suffixes :func:`covidct.io.save_image` writes (single-file formats only, so that the rename is
#: atomic) -> written compressed?
WRITE_SUFFIXES = {".nii": False, ".nii.gz": True, ".nrrd": True, ".mha": True}
#: suffixes of DICOM files (DICOM files without a suffix are found by their magic bytes)
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def suffix_of(path: str | Path) -> str:
    """The lower-case format suffix of ``path`` (``.nii.gz`` counts as one suffix)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def path_stem(path: str | Path) -> str:
    """A file name without its image suffix (:data:`VOLUME_SUFFIXES`, :data:`DICOM_SUFFIXES`); any other
    name (a folder's, say) unchanged."""
    name, suffix = Path(path).name, suffix_of(path)
    return name[: -len(suffix)] if suffix in VOLUME_SUFFIXES or suffix in DICOM_SUFFIXES else name
