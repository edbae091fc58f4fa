"""Completeness checks for image files whose reader does not notice truncation.

ITK's NIfTI reader fills the missing part of a truncated ``.nii`` or ``.nii.gz`` with zeros without
an error (its NRRD and MetaImage readers do fail). :func:`nifti_is_complete` compares the file with
the size its own header announces: for ``.nii`` the file length, for ``.nii.gz`` the uncompressed
length stored in the gzip trailer, confirmed by decompressing the stream only when the trailer
disagrees (multi-member gzip files).
"""

from __future__ import annotations

import gzip
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
