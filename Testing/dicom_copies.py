"""Edited copies of a real DICOM series for tests, written with SimpleITK/GDCM only (no pydicom).

:func:`read_slices` reads each slice of a series with all its tags; :func:`copy_series` lets a
callback change tags or voxels (or drop a slice) and writes the slices to a new folder, keeping the
original UIDs. Geometry edits go through the tags
(ImagePositionPatient ``0020|0032``, ImageOrientationPatient ``0020|0037``): GDCM writes the tags it
is given (it uses the image origin only when the tag is absent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import SimpleITK as sitk

POSITION, MODALITY, SERIES_UID, INTERCEPT, SLOPE = "0020|0032", "0008|0060", "0020|000e", "0028|1052", "0028|1053"


def read_slices(folder: Path) -> list[sitk.Image]:
    """Every slice of ``folder``'s files (sorted by name), each a 3D image of one slice with its tags."""
    return [sitk.ReadImage(str(path)) for path in sorted(Path(folder).glob("*.dcm"))]


def write_slice(image: sitk.Image, path: Path, compressor: str | None = None) -> None:
    """Write one slice with its tags, keeping its UIDs; ``compressor``: GDCM's ``"JPEG"`` (lossless JPEG) or
    ``"JPEG2000"`` (lossless JPEG 2000) transfer syntax, or None for uncompressed."""
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(path))
    if compressor:
        writer.UseCompressionOn()
        writer.SetCompressor(compressor)
    writer.Execute(image)


def copy_series(
    slices: list[sitk.Image],
    target: Path,
    edit: Callable[[int, sitk.Image], sitk.Image | None] | None = None,
    compressor: str | None = None,
) -> Path:
    """Write the slices (from :func:`read_slices`) to ``target``; ``edit(index, copy_of_slice)`` may return
    a changed slice, or None to drop that slice; ``compressor``: see :func:`write_slice`. Returns ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(slices):
        out = edit(index, copy_with_tags(image)) if edit else image
        if out is not None:
            write_slice(out, target / f"IMG{index + 1:04d}.dcm", compressor)
    return target


def position(image: sitk.Image) -> tuple[float, float, float]:
    """ImagePositionPatient of a slice read with its tags (LPS mm)."""
    return tuple(float(v) for v in image.GetMetaData(POSITION).split("\\"))


def set_position(image: sitk.Image, point) -> sitk.Image:
    """Set ImagePositionPatient (LPS mm) of a slice; returns the slice."""
    image.SetMetaData(POSITION, "\\".join(f"{v:.6f}" for v in point))
    return image


def copy_with_tags(image: sitk.Image, pixel_type: int | None = None) -> sitk.Image:
    """A copy of the slice (cast to ``pixel_type`` if given) that keeps every tag.

    ``sitk.Image(image)`` alone is not enough: the copy shares its buffer until the first change, and
    that change makes a private copy without the tags.
    """
    out = sitk.Cast(image, pixel_type) if pixel_type is not None else sitk.Image(image)
    for key in image.GetMetaDataKeys():
        out.SetMetaData(key, image.GetMetaData(key))
    return out


def with_tags(image: sitk.Image, tags: dict[str, str], as_float: bool = False) -> sitk.Image:
    """A copy of the slice with ``tags`` set; ``as_float`` casts it to float64 first, so that GDCM
    stores the values through a written RescaleSlope/RescaleIntercept."""
    out = copy_with_tags(image, sitk.sitkFloat64 if as_float else None)
    for key, value in tags.items():
        out.SetMetaData(key, value)
    return out
