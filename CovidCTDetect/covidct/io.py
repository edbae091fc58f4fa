"""Reading CTs and other images, and writing images atomically.

* :func:`load_ct` — a chest CT from a NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``),
  MetaImage (``.mha``, ``.mhd``) file, a DICOM folder (searched recursively; the CT series with the
  most slices is chosen, see :mod:`covidct.dicom`) or one DICOM file (its series, from its folder).
  Returns a SimpleITK image in Hounsfield units, ``int16`` when every value is an integer that fits,
  else ``float32``, with its full LPS geometry (origin, spacing, direction) and no metadata (so no
  DICOM patient fields travel on). Header checks run before the voxels are read, value checks after
  (:mod:`covidct.validate`); every problem is one :class:`~covidct.errors.CTInputError` sentence.
* :func:`load_ct_with_source` — the same, plus a :class:`CTSource` describing where it came from.
* :func:`read_image` — any image (a mask, a heat map) as stored, without CT checks.
* :func:`save_image` — write an image atomically (``.nii.gz``, ``.nrrd`` and ``.mha`` compressed).

ITK and GDCM warnings are kept off the console: they are switched off during reads and anything
the C++ code writes to stderr is captured and logged at DEBUG level (see :func:`quiet_itk`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import dicom, validate
from .errors import CTInputError, UsageError
from .filecheck import nifti_is_complete, stated_spacing
from .formats import DICOM_SUFFIXES, VOLUME_SUFFIXES, WRITE_SUFFIXES, suffix_of
from .outputs import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CTSource:
    """Where a loaded CT came from (no patient-identifying fields)."""

    path: str
    format: str  #: "NIfTI", "NRRD", "MetaImage", "DICOM" or "image file"
    stored_pixel_type: str  #: pixel type as read, before conversion to int16/float32
    series_uid: str | None = None  #: DICOM only (the series description is free text and may name the patient)
    series_number: str | None = None  #: DICOM only
    series_slices: int | None = None  #: DICOM only: slices in the chosen series
    series_found: int | None = None  #: DICOM only: series found in the folder
    corrections: tuple[str, ...] = ()  #: resampling applied (gantry tilt, uneven spacing)


def load_ct(path: str | os.PathLike) -> sitk.Image:
    """Read and check a chest CT.

    Parameters
    ----------
    path : str or os.PathLike
        A NIfTI (``.nii``, ``.nii.gz``), NRRD, MetaImage file or a DICOM folder (the series with the
        most slices; gantry tilt and uneven slice spacing are resampled away, and logged).

    Returns
    -------
    SimpleITK.Image
        3D scalar image in Hounsfield units (a signed pixel type), geometry in LPS millimetres as
        stored (any axis order; arrays from it are indexed ``(z, y, x)``).

    Raises
    ------
    CTInputError
        One sentence saying what is wrong and what to do: missing, unreadable or incomplete file, not
        3D, implausible spacing, too large for the memory, not Hounsfield units, a label map or noise.
    """
    return load_ct_with_source(path)[0]


def load_ct_with_source(path: str | os.PathLike) -> tuple[sitk.Image, CTSource]:
    """:func:`load_ct` plus a :class:`CTSource` (format, chosen DICOM series, corrections)."""
    image, source = _read(Path(path), ct=True)
    image = _hu_pixel_type(image)
    validate.check_values(image, _name(Path(path)))
    log.info(
        "loaded '%s' (%s): %s voxels, spacing %s mm, %s",
        _name(Path(path)),
        source.format,
        "×".join(map(str, image.GetSize())),
        "×".join(f"{s:.4g}" for s in image.GetSpacing()),
        image.GetPixelIDTypeAsString(),
    )
    return image, source


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read any image (mask, label map, heat map) as stored, with its geometry; no CT checks.

    Parameters
    ----------
    path : str or os.PathLike
        An image file or DICOM folder.

    Returns
    -------
    SimpleITK.Image
        The image, pixel type and LPS geometry as stored.

    Raises
    ------
    CTInputError
        When the path does not exist or cannot be read as an image.
    """
    return _read(Path(path), ct=False)[0]


def save_image(image: sitk.Image, path: str | os.PathLike) -> Path:
    """Write an image atomically: to a temporary name in the destination folder, verified, then renamed.

    Parameters
    ----------
    image : SimpleITK.Image
        Any image; written with its pixel type and geometry.
    path : str or os.PathLike
        Destination ending in ``.nii.gz``, ``.nrrd`` or ``.mha`` (written compressed) or ``.nii``.
        Two-file formats (``.mhd``/``.nhdr``) are refused: they cannot be renamed atomically.

    Returns
    -------
    pathlib.Path
        ``path``, which now holds the complete file.

    Raises
    ------
    UsageError
        Another suffix.
    OutputError
        The file could not be written whole (e.g. no space left); no file is left under ``path``.
    """
    path = Path(path)
    suffix = suffix_of(path)
    if suffix not in WRITE_SUFFIXES:
        raise UsageError(f"Cannot write '{path.name}': choose a name ending in {', '.join(WRITE_SUFFIXES)}.")
    with atomic_path(path, verify=_verify_image) as tmp, quiet_itk():
        sitk.WriteImage(image, str(tmp), useCompression=WRITE_SUFFIXES[suffix])
    return path


def _verify_image(path: Path) -> None:
    """Raise unless the image file just written is whole: NIfTI against its own header's size (ITK's
    reader would fill a truncated file with zeros), other formats by reading them back."""
    if suffix_of(path) in (".nii", ".nii.gz"):
        if not nifti_is_complete(path):
            raise OSError(f"{path.name} is incomplete")
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    else:
        sitk.ReadImage(str(path))


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """Switch ITK warnings off and capture what C++ code writes to stderr (fd 2), logging it at DEBUG.

    Restores the previous warning setting and stderr afterwards. Where fd 2 cannot be redirected
    (no console on Windows), only the warnings are switched off. Both are process-wide, so blocks on
    different threads take turns (a lock), and each restores what it found.
    """
    with _QUIET_LOCK:
        yield from _quiet_itk()


_QUIET_LOCK = threading.RLock()


def _quiet_itk() -> Iterator[None]:
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    captured = saved = None
    try:
        sys.stderr.flush()
        captured = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally block below)
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
    except (OSError, ValueError, AttributeError):
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)
        if captured is not None:
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace").strip()
            captured.close()
            if text:
                log.debug("ITK said: %s", text)


# ---------------------------------------------------------------------------------------------
def _read(path: Path, ct: bool) -> tuple[sitk.Image, CTSource]:
    """Dispatch on the kind of input; header checks (when ``ct``) come before the voxels are read."""
    if not path.exists():
        raise CTInputError(f"'{path}' does not exist; check the path.")
    if not path.is_dir() and not path.is_file():  # a named pipe or a device would block or never end
        raise CTInputError(f"'{path}' is not a regular file or folder (a pipe or device?); give a CT file or folder.")
    if path.is_dir():
        return _read_dicom(path, path, None, ct)
    if path.name.upper() == "DICOMDIR":
        return _read_dicom(path.parent, path.parent, None, ct)
    if suffix_of(path) in DICOM_SUFFIXES or (suffix_of(path) not in VOLUME_SUFFIXES and dicom.has_dicom_magic(path)):
        return _read_dicom(path.parent, path, path, ct)
    return _read_file(path, ct)


def _read_file(path: Path, ct: bool) -> tuple[sitk.Image, CTSource]:
    name = _name(path)
    if path.stat().st_size == 0:
        raise CTInputError(f"'{name}' is empty (0 bytes); copy or export the file again.")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_itk():
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise CTInputError(
                f"'{name}' is not a readable image (damaged, truncated, or not a NIfTI, NRRD, "
                "MetaImage or DICOM file); export the CT again in one of these formats."
            ) from exc
    pixel_type = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if ct and stated_spacing(path) == ():
        raise CTInputError(
            f"'{name}' states no voxel spacing in its header (NIfTI pixdim 0, or an NRRD or MetaImage file "
            "without spacing), so its size in mm is unknown; export the CT again with its spacing."
        )
    if ct:
        validate.check_header(
            reader.GetSize(),
            reader.GetSpacing(),
            reader.GetNumberOfComponents(),
            validate.bytes_per_component(reader.GetPixelID()),
            name,
        )
    truncated = CTInputError(
        f"'{name}' could not be read completely: the file is truncated or damaged (or its "
        "data file is missing); copy or export it again."
    )
    if suffix_of(path) in (".nii", ".nii.gz") and not nifti_is_complete(path):
        raise truncated
    with quiet_itk():
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise truncated from exc
    return image, CTSource(
        path=str(path), format=VOLUME_SUFFIXES.get(suffix_of(path), "image file"), stored_pixel_type=pixel_type
    )


def _read_dicom(folder: Path, shown: Path, target: Path | None, ct: bool) -> tuple[sitk.Image, CTSource]:
    name = _name(shown)
    with quiet_itk():
        scan = dicom.scan_folder(folder, recursive=target is None)
    series = dicom.choose_series(scan, name, target=target, ct_only=ct)
    plan = dicom.plan_geometry(series, name, unreadable=len(scan.unreadable))
    if ct:
        validate.check_header(plan.size, plan.spacing, 1, 2, name)
    with quiet_itk():
        image = dicom.read_series(plan, name)
    if plan.corrections:
        log.warning("DICOM series in '%s': %s.", name, "; ".join(plan.corrections))
    if scan.unreadable:
        log.warning(
            "skipped %d unreadable DICOM file(s) in '%s' (damaged or not images), e.g. '%s'",
            len(scan.unreadable),
            name,
            scan.unreadable[0].name,
        )
    for key in image.GetMetaDataKeys():  # no patient fields travel with the image
        image.EraseMetaData(key)
    source = CTSource(
        path=str(shown),
        format="DICOM",
        stored_pixel_type=image.GetPixelIDTypeAsString(),
        series_uid=series.first.series_uid,
        series_number=series.first.series_number,
        series_slices=series.n_slices,
        series_found=len(scan.series),
        corrections=tuple(plan.corrections),
    )
    return image, source


def _hu_pixel_type(image: sitk.Image) -> sitk.Image:
    """``int16`` when every voxel is an integer in int16's range, else ``float32``; metadata dropped."""
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype == np.int16:
        target = sitk.sitkInt16
    elif array.dtype.kind in "iu" or (array.dtype.kind == "f" and _integral(array)):
        fits = array.min() >= np.iinfo(np.int16).min and array.max() <= np.iinfo(np.int16).max
        target = sitk.sitkInt16 if fits else sitk.sitkFloat32
    else:
        target = sitk.sitkFloat32
    out = image if image.GetPixelID() == target else sitk.Cast(image, target)
    for key in out.GetMetaDataKeys():
        out.EraseMetaData(key)
    return out


def _integral(array: np.ndarray) -> bool:
    """True when every value is a finite integer (checked slice by slice to bound memory)."""
    return all(np.array_equal(plane, np.rint(plane)) for plane in array)


def _name(path: Path) -> str:
    return path.name or str(path)
