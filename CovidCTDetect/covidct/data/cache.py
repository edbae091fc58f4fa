"""A disk cache of preprocessed model inputs, so training does not re-segment and re-resample every epoch.

An entry is one ``.npy`` array named by the sha256 of its key, plus a ``.json`` file holding the key
in readable form. The key is built from:

* the CT's identity: resolved path, size in bytes and modification time in nanoseconds (for a DICOM
  folder, those of every file in it) — editing or replacing the file invalidates the entry;
* the lung mask's content: sha256 of the file(s), or the segmentation method when masks are computed;
* the preprocessing code's version: the sha256 of the source of the modules that made the array
  (see :func:`code_version`), so any change in preprocessing invalidates old entries;
* the architecture and any other option (input size, ...).

Storage: floating-point arrays are stored as **float16** (the inputs are windowed to 0…1 or z-scored,
where float16's relative precision of 2⁻¹¹ is 0.9 HU at most over the 1800 HU window, finer than the
paper's own 8-bit quantisation of 7 HU), unless a value would overflow float16, then as float32.
Integer arrays (masks) keep their dtype. Writes are atomic (temporary name, then rename), so
concurrent workers or distributed ranks computing the same entry cannot corrupt it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..outputs import atomic_path, write_json

FLOAT16_MAX = float(np.finfo(np.float16).max)


def file_identity(path: str | os.PathLike) -> dict:
    """Path, size and mtime of a file, or of every file in a folder (DICOM series), as a JSON-able dict."""
    path = Path(path).resolve()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for file in files:
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return {"path": str(path), "files": len(files), "listing_sha256": digest.hexdigest()}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, or of a folder's files in name order."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def code_version(*objects) -> str:
    """Short sha256 of the source code of the given modules, packages (every ``.py`` file in them) or
    functions (their whole module file): changes whenever that code changes."""
    digest = hashlib.sha256()
    for obj in objects:
        module = inspect.getmodule(obj) or obj
        if hasattr(module, "__path__"):  # a package
            files = sorted(p for folder in module.__path__ for p in Path(folder).rglob("*.py"))
            for file in files:
                digest.update(file.read_bytes())
        else:
            digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


class TensorCache:
    """Arrays on disk under ``folder``, keyed by a JSON-able dict (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @staticmethod
    def key(parts: dict) -> str:
        """The sha256 hex digest naming the entry for ``parts``."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, parts: dict) -> Path:
        """Where the entry for ``parts`` is (or would be) stored."""
        key = TensorCache.key(parts)
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, parts: dict, compute: Callable[[], tuple[np.ndarray, dict]]) -> Path:
        """Path of the entry for ``parts``, first storing ``compute()`` when absent.

        ``compute`` returns ``(array, meta)``; ``meta`` (a JSON-able dict, e.g. voxel spacing) is kept
        in the entry's ``.json`` file and read back by :meth:`meta`.
        """
        path = self.path(parts)
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
        array, meta = compute()
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating) and np.all(np.abs(array) <= FLOAT16_MAX):
            array = array.astype(np.float16)
        with atomic_path(path, verify=lambda tmp: np.load(tmp, mmap_mode="r")) as tmp:
            np.save(tmp, array)
        write_json(
            path.with_suffix(".json"), {"parts": parts, "shape": array.shape, "dtype": str(array.dtype), "meta": meta}
        )
        return path

    @staticmethod
    def load(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
        """Read an entry (memory-mapped by default; copy what you modify)."""
        return np.load(path, mmap_mode="r" if mmap else None)

    @staticmethod
    def meta(path: str | os.PathLike) -> dict:
        """The ``meta`` dict stored with an entry."""
        return json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))["meta"]
