"""Checks of image files that their readers do not make: truncation, and a voxel spacing never stated.

ITK's NIfTI reader fills the missing part of a truncated ``.nii`` or ``.nii.gz`` with zeros without
an error (its NRRD and MetaImage readers do fail). :func:`nifti_is_complete` compares the file with
the size its own header announces: for ``.nii`` the file length, for ``.nii.gz`` the uncompressed
length stored in the gzip trailer, confirmed by decompressing the stream only when the trailer
disagrees (multi-member gzip files).

ITK also reads a voxel spacing the header does not give (NIfTI ``pixdim`` 0, an NRRD without
``spacings`` or ``space directions``, a MetaImage without ``ElementSpacing``) as 1 mm.
:func:`stated_spacing` reads what the header itself says, so that such a file can be refused.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path

_NIFTI1_HEADER = 348
_NIFTI2_HEADER = 540


def nifti_is_complete(path: str | Path) -> bool:
    """True when the NIfTI file holds every byte of voxel data that its header announces.

    Files whose header cannot be parsed return True: the image reader reports those itself.
    """
    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(_NIFTI2_HEADER)
    except (OSError, EOFError, zlib.error):
        return False
    expected = _nifti_data_end(header)
    if expected is None:
        return True
    if not compressed:
        return path.stat().st_size >= expected
    with open(path, "rb") as stream:
        stream.seek(-4, 2)
        trailer_size = struct.unpack("<I", stream.read(4))[0]
    if trailer_size == expected % (1 << 32):
        return True
    return _gzip_length(path) >= expected


def _nifti_data_end(header: bytes) -> int | None:
    """Byte offset of the end of the voxel data (vox_offset + voxels × bytes), or None if not NIfTI."""
    for endian in "<>":
        if len(header) >= _NIFTI1_HEADER and struct.unpack(endian + "i", header[:4])[0] == _NIFTI1_HEADER:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = struct.unpack(endian + "f", header[108:112])[0]
            return _data_end(dims, bitpix, offset)
        if len(header) >= _NIFTI2_HEADER and struct.unpack(endian + "i", header[:4])[0] == _NIFTI2_HEADER:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            return _data_end(dims, bitpix, offset)
    return None


def _data_end(dims, bitpix: int, offset: float) -> int | None:
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    voxels = 1
    for n in dims[1 : ndim + 1]:
        voxels *= max(int(n), 1)
    return int(offset) + voxels * bitpix // 8


def _gzip_length(path: Path) -> int:
    """Number of bytes the gzip stream decompresses to before it ends or breaks."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                total += len(chunk)
    except (OSError, EOFError, zlib.error):
        pass
    return total


def stated_spacing(path: str | Path) -> tuple[float, ...] | None:
    """The voxel spacing (mm, x y z) a NIfTI, NRRD or MetaImage header states; ``()`` when the header
    states none (or zeros: NIfTI ``pixdim`` 0), ``None`` for other formats or an unparsable header.

    NRRD ``space directions`` and MetaImage ``TransformMatrix`` give spacing as vector lengths; only
    whether they are there (and not zero) matters to the caller.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as stream:
                return _nifti_pixdim(stream.read(_NIFTI2_HEADER))
        if name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            with open(path, "rb") as stream:
                header = stream.read(1 << 16).split(b"\n\n", 1)[0].decode("latin-1")
            keys = ("spacings", "space directions") if name.endswith((".nrrd", ".nhdr")) else ("ElementSpacing",)
            return _text_spacing(header, keys)
    except (OSError, EOFError, zlib.error, struct.error):
        return None
    return None


def _nifti_pixdim(header: bytes) -> tuple[float, ...] | None:
    for endian in "<>":
        if len(header) >= _NIFTI1_HEADER and struct.unpack(endian + "i", header[:4])[0] == _NIFTI1_HEADER:
            ndim = struct.unpack(endian + "h", header[40:42])[0]
            pixdim = struct.unpack(endian + "8f", header[76:108])
        elif len(header) >= _NIFTI2_HEADER and struct.unpack(endian + "i", header[:4])[0] == _NIFTI2_HEADER:
            ndim = struct.unpack(endian + "q", header[16:24])[0]
            pixdim = struct.unpack(endian + "8d", header[104:168])
        else:
            continue
        values = tuple(float(v) for v in pixdim[1 : 1 + min(max(int(ndim), 1), 3)])
        return values if all(math.isfinite(v) and v > 0 for v in values) else ()
    return None


def _text_spacing(header: str, keys: tuple[str, ...]) -> tuple[float, ...]:
    """Spacing-like numbers of the first of ``keys`` found in a ``key: value``/``key = value`` header."""
    for key in keys:
        match = re.search(rf"^{key}\s*[:=]\s*(.+)$", header, flags=re.MULTILINE | re.IGNORECASE)
        if match:
            numbers = [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", match.group(1))]
            if key == "space directions":
                return (1.0,) if any(v != 0 for v in numbers) else ()
            return tuple(numbers) if numbers and all(v > 0 for v in numbers) else ()
    return ()
