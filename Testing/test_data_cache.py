"""The preprocessed-input cache: keys follow file identity and code, float16 storage, meta, reuse."""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk
from conftest import shared_file

from covidct.data.cache import TensorCache, code_version, file_identity, file_sha256
from covidct.preprocess.window import hu_window


def test_entry_is_computed_once_and_stored_as_float16(tmp_path):
    cache = TensorCache(tmp_path)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_file("cip-copdgene-10002K-ct64/ct-64.nrrd"))))
    windowed = hu_window(ct)
    calls = []

    def compute():
        calls.append(1)
        return windowed, {"spacing": [4.2, 4.2]}

    parts = {"kind": "test", "ct": "x"}
    path = cache.get(parts, compute)
    assert cache.get(parts, compute) == path and len(calls) == 1
    stored = TensorCache.load(path)
    assert stored.dtype == np.float16 and stored.shape == windowed.shape
    # float16 keeps the windowed CT to within 2^-11 relative, i.e. < 1 HU over the 1800 HU window
    assert np.abs(stored.astype(np.float32) - windowed).max() * 1800 < 1.0
    assert TensorCache.meta(path) == {"spacing": [4.2, 4.2]}
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temporary files
    masks = cache.get({"kind": "mask"}, lambda: ((ct > -400).astype(np.uint8), {}))
    assert TensorCache.load(masks).dtype == np.uint8
    big = cache.get({"kind": "big"}, lambda: (np.array([1e6], np.float32), {}))
    assert TensorCache.load(big).dtype == np.float32  # would overflow float16


def test_keys_follow_file_identity_content_and_code(tmp_path):
    file = tmp_path / "a.nii.gz"
    file.write_bytes(b"12345")
    first = file_identity(file)
    os.utime(file, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    assert file_identity(file) != first  # touched: recomputed
    sha = file_sha256(file)
    file.write_bytes(b"12346")
    assert file_sha256(file) != sha
    dicom = shared_file("cip-copdgene-10002K-ct64/ct-64Dicom")
    identity = file_identity(dicom)
    assert identity["files"] == 79 and file_identity(dicom) == identity
    import covidct.geometry as module
    import covidct.preprocess as package

    assert code_version(package) == code_version(package) != code_version(module)
    assert TensorCache.key({"a": 1, "b": [1, 2]}) == TensorCache.key({"b": [1, 2], "a": 1})
    assert TensorCache.key({"a": 1}) != TensorCache.key({"a": 2})
