"""DICOM series: find them in a folder, choose the CT series, read it onto a regular grid.

* :func:`scan_folder` reads the header of every candidate file (GDCM, no pixels), searching
  sub-folders, and groups images into series by SeriesInstanceUID, slice orientation, matrix size
  and pixel spacing. Files that look like DICOM but cannot be read as images (damaged, truncated,
  or non-image objects such as structured reports) are listed as ``unreadable``.
* :func:`choose_series` keeps CT series (Modality ``CT``, or no Modality tag at all) and picks the
  one with the most slices. Another modality (MR, PT, SEG...) alone is an error.
* :func:`plan_geometry` orders the slices by their position along the slice normal
  (ImagePositionPatient · normal, normal = row × column direction) and works out the output grid.
  **Gantry tilt** (slice origins not on the normal through the first one) and **uneven slice
  spacing** are corrected by resampling onto a regular grid with the same in-plane axes, the normal
  as third axis, and the median spacing between slices; voxels of that grid outside the acquired
  slab get the volume's minimum. Missing slices (a gap over 1.5 × the median spacing) and several
  slices at one position (mixed acquisitions) are refused: interpolating over them would invent anatomy.
* :func:`read_series` reads the pixels with SimpleITK's ImageSeriesReader (GDCM applies
  RescaleSlope/RescaleIntercept per slice, so values are Hounsfield units) and applies the plan.

Only non-identifying fields (modality, series number and UID, geometry) are read into these
objects, so nothing here can leak a patient's name, ID, birth date or accession number into logs.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import CTInputError
from .formats import DICOM_SUFFIXES, VOLUME_SUFFIXES, suffix_of

log = logging.getLogger(__name__)

ACCEPTED_MODALITIES = ("CT", "")  #: "" = no Modality tag (anonymised test data)
SPACING_TOLERANCE = 0.01  #: slices are evenly spaced within max(0.01 mm, 1 % of the spacing)
TILT_TOLERANCE_PIXELS = 0.1  #: in-plane drift of slice origins below this is not corrected
MISSING_SLICE_FACTOR = 1.5  #: a gap larger than this × the median spacing means missing slices

_MODALITY, _SERIES_UID, _NUMBER = "0008|0060", "0020|000e", "0020|0011"
_PIXEL_SPACING = "0028|0030"


@dataclass(frozen=True)
class DicomImage:
    """Header facts of one DICOM image file (no identifying fields)."""

    path: Path
    series_uid: str
    modality: str
    series_number: str
    origin: tuple[float, float, float]  #: ImagePositionPatient, LPS mm
    direction: tuple[float, ...]  #: 3×3 row-major; columns = row direction, column direction, normal
    spacing: tuple[float, float]  #: (x, y) pixel spacing in mm
    size: tuple[int, int, int]  #: (columns, rows, frames)
    spacing_stated: bool = True  #: PixelSpacing is present and positive (else the reader's 1 mm is a guess)


@dataclass
class DicomSeries:
    """Images of one series with one orientation, matrix size and pixel spacing."""

    images: list[DicomImage]

    @property
    def first(self) -> DicomImage:
        return self.images[0]

    @property
    def n_slices(self) -> int:
        return sum(image.size[2] for image in self.images)


@dataclass
class Scan:
    """What :func:`scan_folder` found: the series, unreadable DICOM-like files, files looked at."""

    series: list[DicomSeries]
    unreadable: list[Path] = field(default_factory=list)
    other_images: list[Path] = field(default_factory=list)  #: NIfTI/NRRD/MHA files seen in the folder
    files_seen: int = 0


@dataclass
class SeriesPlan:
    """The ordered slices of a series and the regular grid they are read onto."""

    files: list[Path]  #: ordered along the slice normal
    size: tuple[int, int, int]  #: output (x, y, z) voxels
    spacing: tuple[float, float, float]  #: output spacing, mm
    origin: tuple[float, float, float]  #: output origin, LPS mm
    direction: tuple[float, ...]  #: output direction, row-major 3×3
    positions: np.ndarray  #: (n,) slice positions along the normal from the first slice, mm
    offsets: np.ndarray  #: (n, 2) in-plane (x, y) drift of each slice origin, in pixels
    corrections: list[str]  #: what resampling does, in words (empty: read as is)
    multiframe: bool = False  #: one file holding all slices (geometry from GDCM)

    @property
    def resample(self) -> bool:
        return bool(self.corrections)


def scan_folder(folder: Path, recursive: bool = True) -> Scan:
    """Read the header of every DICOM-like file under ``folder`` and group the images into series."""
    groups: dict[tuple, list[DicomImage]] = {}
    scan = Scan(series=[])
    for path, looks_dicom in _candidate_files(folder, recursive, scan):
        image = read_header(path)
        if image is None:
            if looks_dicom:
                scan.unreadable.append(path)
            continue
        key = (
            image.series_uid,
            tuple(round(v, 4) for v in image.direction),
            image.size[:2],
            tuple(round(v, 4) for v in image.spacing),
        )
        groups.setdefault(key, []).append(image)
    scan.series = [DicomSeries(images) for images in groups.values()]
    return scan


def pixel_data_complete(path: Path) -> bool:
    """False when the file's Pixel Data element (7FE0,0010) announces more bytes than the file holds (a
    truncated copy); True otherwise, also when the element is not found or is encapsulated (compressed,
    undefined length: its end is the sequence delimiter, checked instead).

    GDCM notices truncation in some SimpleITK versions and not in others (2.5.2, Slicer 5.10's, reads a
    cut slice as garbage), so this is checked on the bytes, whatever the version.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return False
    at = data.rfind(b"\xe0\x7f\x10\x00")
    while at >= 0:
        if data[at + 4 : at + 6] in (b"OB", b"OW", b"OF", b"UN"):  # explicit VR: 2 reserved bytes, 4-byte length
            length, start = int.from_bytes(data[at + 8 : at + 12], "little"), at + 12
        else:  # implicit VR: 4-byte length
            length, start = int.from_bytes(data[at + 4 : at + 8], "little"), at + 8
        if length == 0xFFFFFFFF:  # encapsulated: must end with the sequence delimitation item
            return data.rstrip(b"\x00").endswith(b"\xfe\xff\xdd\xe0") or data[-8:-4] == b"\xfe\xff\xdd\xe0"
        if start + length <= len(data) and length > 0:
            return True
        if start + length > len(data) and at > 128:  # an element that runs past the end: truncated
            return False
        at = data.rfind(b"\xe0\x7f\x10\x00", 0, at)
    return True


def read_header(path: Path) -> DicomImage | None:
    """Header facts of one file via GDCM, or None when GDCM cannot read it as an image (or its pixel
    data is cut short: :func:`pixel_data_complete`)."""
    if not pixel_data_complete(path):
        return None
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None

    def tag(key: str) -> str:
        try:
            return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""
        except (RuntimeError, UnicodeDecodeError):
            return ""

    size = tuple(reader.GetSize()) + (1,) * (3 - reader.GetDimension())
    return DicomImage(
        path=path,
        series_uid=tag(_SERIES_UID),
        modality=tag(_MODALITY).upper(),
        series_number=tag(_NUMBER),
        origin=tuple(reader.GetOrigin()[:3]),
        direction=tuple(reader.GetDirection()),
        spacing=tuple(reader.GetSpacing()[:2]),
        size=size[:3],
        spacing_stated=_positive_numbers(tag(_PIXEL_SPACING)),
    )


def choose_series(scan: Scan, source: str, target: Path | None = None, ct_only: bool = True) -> DicomSeries:
    """The series to load: the one holding ``target`` if given, else the CT series with the most slices."""
    if not scan.series:
        if scan.unreadable:
            raise CTInputError(
                f"'{source}' holds {len(scan.unreadable)} DICOM file(s) but none can be read as an "
                "image (damaged, truncated, or non-image objects such as reports); export the CT "
                "series again."
            )
        if scan.other_images:
            raise CTInputError(
                f"No DICOM files found in '{source}', which holds image files such as "
                f"'{scan.other_images[0].name}'; pass that file instead of the folder."
            )
        raise CTInputError(
            f"No DICOM files found in '{source}'; point to the folder holding the CT series, "
            "or to a NIfTI, NRRD or MHA file."
        )
    candidates = scan.series
    if target is not None:
        candidates = [s for s in scan.series if any(image.path == target for image in s.images)]
        if not candidates:
            raise CTInputError(
                f"'{target.name}' is not a readable DICOM image (damaged, truncated, or a non-image "
                "object such as a report); export the CT series again."
            )
    usable = [s for s in candidates if s.first.modality in ACCEPTED_MODALITIES] if ct_only else candidates
    if not usable:
        found = ", ".join(sorted({s.first.modality for s in candidates}))
        raise CTInputError(f"'{source}' holds only {found} DICOM images and no CT (Modality CT); choose a CT series.")
    chosen = max(usable, key=lambda s: s.n_slices)
    log.info(
        "DICOM: %d series in '%s' (%d files looked at); chose series number %s, UID %s (modality %s, %d slices)",
        len(scan.series),
        source,
        scan.files_seen,
        chosen.first.series_number or "?",
        chosen.first.series_uid or "not given",
        chosen.first.modality or "not given",
        chosen.n_slices,
    )
    return chosen


def plan_geometry(series: DicomSeries, source: str, unreadable: int = 0) -> SeriesPlan:
    """Order the slices along the normal and decide the output grid (see the module docstring).

    ``unreadable`` (files skipped by the scan) is mentioned when slices turn out to be missing.
    """
    first = series.first
    if not first.spacing_stated:
        raise CTInputError(
            f"The DICOM series in '{source}' has no Pixel Spacing (0028,0030), so its size in mm is unknown; "
            "export the CT again with its pixel spacing."
        )
    direction = np.array(first.direction, dtype=float).reshape(3, 3)
    if len(series.images) == 1:
        return SeriesPlan(
            files=[first.path],
            size=first.size,
            spacing=first.spacing + (1.0,),
            origin=first.origin,
            direction=first.direction,
            positions=np.zeros(1),
            offsets=np.zeros((1, 2)),
            corrections=[],
            multiframe=first.size[2] > 1,
        )
    if any(image.size[2] != 1 for image in series.images):
        raise CTInputError(
            f"The DICOM series in '{source}' mixes several multi-frame files; export it as one "
            "file per slice or as a NIfTI volume."
        )
    row, col, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    origins = np.array([image.origin for image in series.images], dtype=float)
    order = np.argsort(origins @ normal, kind="stable")
    origins = origins[order]
    files = [series.images[i].path for i in order]
    relative = origins - origins[0]
    positions = relative @ normal
    gaps = np.diff(positions)
    if gaps.min() < SPACING_TOLERANCE:
        raise CTInputError(
            f"The DICOM series in '{source}' has several slices at the same position (mixed "
            "acquisitions or duplicates); export a single acquisition."
        )
    median = float(np.median(gaps))
    if gaps.max() > MISSING_SLICE_FACTOR * median:
        skipped = f", and {unreadable} unreadable file(s) were skipped" if unreadable else ""
        raise CTInputError(
            f"The DICOM series in '{source}' has missing slices (a gap of {gaps.max():.2f} mm where "
            f"slices are {median:.2f} mm apart{skipped}); export the complete series again."
        )
    sx, sy = first.spacing
    drift = relative - np.outer(positions, normal)
    offsets = np.stack([drift @ row / sx, drift @ col / sy], axis=1)
    tilted = float(np.abs(offsets).max()) > TILT_TOLERANCE_PIXELS
    uneven = float(np.abs(gaps - median).max()) > max(SPACING_TOLERANCE, 0.01 * median)

    corrections = []
    if tilted:
        angle = math.degrees(math.atan2(float(np.linalg.norm(drift[-1])), float(positions[-1])))
        corrections.append(f"gantry tilt of {angle:.1f}° resampled onto slices along the normal")
    if uneven:
        corrections.append(
            f"uneven slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm) resampled to {median:.3g} mm"
        )
    if not tilted:
        offsets = np.zeros_like(offsets)
    low, high = offsets.min(axis=0), offsets.max(axis=0)
    nx = first.size[0] + int(math.ceil(high[0] - low[0] - 1e-6))
    ny = first.size[1] + int(math.ceil(high[1] - low[1] - 1e-6))
    step = median if uneven else float(positions[-1]) / (len(files) - 1)
    nz = int(round(float(positions[-1]) / step)) + 1
    step = float(positions[-1]) / (nz - 1)
    origin = origins[0] + low[0] * sx * row + low[1] * sy * col
    return SeriesPlan(
        files=files,
        size=(nx, ny, nz),
        spacing=(sx, sy, step),
        origin=tuple(origin),
        direction=tuple(direction.ravel()),
        positions=positions,
        offsets=offsets - low,
        corrections=corrections,
    )


def read_series(plan: SeriesPlan, source: str) -> sitk.Image:
    """Read the planned slices (HU, after GDCM's rescale) onto the planned grid."""
    try:
        if plan.multiframe:
            reader = sitk.ImageFileReader()
            reader.SetImageIO("GDCMImageIO")
            reader.SetFileName(str(plan.files[0]))
            return reader.Execute()
        reader = sitk.ImageSeriesReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileNames([str(path) for path in plan.files])
        image = reader.Execute()
    except RuntimeError as exc:
        raise CTInputError(
            f"A file of the DICOM series in '{source}' cannot be decoded (truncated, damaged, or "
            "an unsupported compression); export the series again."
        ) from exc
    if plan.resample:
        image = _regularise(image, plan)
    image.SetOrigin(plan.origin)
    image.SetSpacing(plan.spacing)
    image.SetDirection(plan.direction)
    return image


def _regularise(image: sitk.Image, plan: SeriesPlan) -> sitk.Image:
    """Resample the stacked slices onto ``plan``'s grid: each output slice blends the two input slices
    around its position along the normal (linear), each shifted in-plane by its own drift (bilinear)."""
    from scipy import ndimage

    array = sitk.GetArrayFromImage(image).astype(np.float32)
    integral = np.issubdtype(sitk.GetArrayViewFromImage(image).dtype, np.integer)
    fill = float(array.min())
    nx, ny, nz = plan.size
    n = array.shape[0]
    shifted: dict[int, np.ndarray] = {}

    def slice_on_grid(k: int) -> np.ndarray:
        if k not in shifted:
            dx, dy = plan.offsets[k]
            if dx == 0 and dy == 0 and (ny, nx) == array.shape[1:]:
                shifted[k] = array[k]
            else:
                shifted[k] = ndimage.affine_transform(
                    array[k],
                    [1.0, 1.0],
                    offset=(-dy, -dx),
                    output_shape=(ny, nx),
                    order=1,
                    mode="grid-constant",
                    cval=fill,
                )
        return shifted[k]

    out = np.empty((nz, ny, nx), dtype=np.float32)
    where = np.interp(np.arange(nz) * plan.spacing[2], plan.positions, np.arange(n))
    for z, position in enumerate(where):
        k = min(int(math.floor(position)), n - 2)
        weight = float(position - k)
        for old in [key for key in shifted if key < k]:
            del shifted[old]
        out[z] = slice_on_grid(k) if weight < 1e-6 else (1 - weight) * slice_on_grid(k) + weight * slice_on_grid(k + 1)
    if integral:
        out = np.rint(out).astype(sitk.GetArrayViewFromImage(image).dtype)
    return sitk.GetImageFromArray(out)


def _candidate_files(folder: Path, recursive: bool, scan: Scan):
    """Yield ``(path, looks_dicom)`` for files under ``folder`` worth asking GDCM about: those with the
    DICOM magic bytes or a DICOM suffix (``looks_dicom``), and those without any suffix."""
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, dirs, names in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or name.upper() == "DICOMDIR" or not path.is_file():
                continue
            scan.files_seen += 1
            if suffix_of(path) in VOLUME_SUFFIXES:
                scan.other_images.append(path)
                continue
            looks_dicom = has_dicom_magic(path) or path.suffix.lower() in DICOM_SUFFIXES
            if looks_dicom or not path.suffix:
                yield path, looks_dicom


def has_dicom_magic(path: Path) -> bool:
    """True when ``path`` has the DICOM Part 10 marker ``DICM`` after its 128-byte preamble."""
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def _positive_numbers(value: str) -> bool:
    """True when a DICOM multi-value string (``a\\b``) holds numbers that are all positive."""
    try:
        numbers = [float(v) for v in value.split("\\") if v.strip()]
    except ValueError:
        return False
    return bool(numbers) and all(v > 0 for v in numbers)
