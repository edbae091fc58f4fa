"""Dataset manifests: parsing, label spellings, path resolution, validation errors, splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from covidct.data.manifest import Case, read_manifest, split_cases, write_manifest
from covidct.errors import DatasetError


def _write(folder: Path, text: str, files=("a.nii.gz", "b.nii.gz", "c.nii.gz", "m.nii.gz")) -> Path:
    for name in files:
        (folder / name).write_bytes(b"x")
    path = folder / "manifest.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_labels_paths_splits_and_extra_columns(tmp_path):
    (tmp_path / "dicom").mkdir()
    path = _write(
        tmp_path,
        "CT,Label,lungs,Split,site\n"
        "a.nii.gz, Positive ,m.nii.gz,TRAIN,x\n"
        "b.nii.gz,non-COVID,,validation,y\n"
        "\n"
        f"{tmp_path / 'dicom'},0,,,z\n",
    )
    cases = read_manifest(path)
    assert [c.id for c in cases] == ["a", "b", "dicom"]
    assert [c.label for c in cases] == [1, 0, 0]
    assert [c.split for c in cases] == ["train", "val", None]
    assert cases[0].ct == (tmp_path / "a.nii.gz").resolve() and cases[0].lungs == (tmp_path / "m.nii.gz").resolve()
    assert cases[1].lungs is None and cases[2].ct.is_dir()
    assert cases[0].extra == {"site": "x"} and cases[2].line == 5


@pytest.mark.parametrize(
    "text, words",
    [
        ("ct,label\na.nii.gz,maybe\n", ["line 2", "'label'", "maybe"]),
        ("ct,label\na.nii.gz,\n", ["line 2", "'label'", "empty"]),
        ("ct,label\n,1\n", ["line 2", "'ct'", "empty"]),
        ("ct,label,split\na.nii.gz,1,holdout\n", ["line 2", "'split'", "holdout"]),
        ("id,ct,label\nx,a.nii.gz,1\nx,b.nii.gz,0\n", ["line 3", "'id'", "repeats line 2"]),
        ("ct,label\nmissing.nii.gz,1\nalso.nii.gz,0\n", ["line 2", "'ct'", "does not exist", "1 more"]),
        ("ct,label,lungs\na.nii.gz,1,nomask.nii.gz\n", ["line 2", "'lungs'", "does not exist"]),
        ("path,label\na.nii.gz,1\n", ["no 'ct' column"]),
        ("ct\na.nii.gz\n", ["no 'label' column"]),
        ("ct,label\n", ["lists no cases"]),
        ("ct,label\na.nii.gz,1,extra\n", ["line 2", "more values"]),
    ],
)
def test_malformed_manifests_raise_one_sentence(tmp_path, text, words):
    with pytest.raises(DatasetError) as error:
        read_manifest(_write(tmp_path, text))
    message = str(error.value)
    assert all(word in message for word in words), message
    assert "\n" not in message and message.endswith(".")


def test_missing_manifest_and_unlabelled_use(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")
    cases = read_manifest(_write(tmp_path, "ct\na.nii.gz\n"), require_label=False)
    assert cases[0].label is None


def test_write_then_read_round_trip_with_relative_paths(tmp_path):
    cases = read_manifest(
        _write(tmp_path, "id,ct,label,lungs,lesions\nA,a.nii.gz,1,m.nii.gz,c.nii.gz\nB,b.nii.gz,0,m.nii.gz,\n")
    )
    moved = tmp_path / "sub"
    out = write_manifest(moved / "copy.csv", cases)
    assert "../a.nii.gz" in out.read_text(encoding="utf-8")
    again = read_manifest(out)
    assert [(c.id, c.ct, c.label, c.lungs) for c in again] == [(c.id, c.ct, c.label, c.lungs) for c in cases]
    assert again[0].extra["lesions"] == "c.nii.gz"  # extra columns are copied verbatim


def _cases(n_pos, n_neg, splits=None):
    labels = [1] * n_pos + [0] * n_neg
    splits = splits or [None] * len(labels)
    return [
        Case(id=f"c{i}", ct=Path(f"/c{i}"), label=label, split=split)
        for i, (label, split) in enumerate(zip(labels, splits, strict=True))
    ]


def test_split_is_stratified_seeded_and_honours_split_column():
    train, val = split_cases(_cases(20, 20), 0.15, seed=3)
    assert len(val) == 6 and sum(c.label for c in val) == 3
    assert {c.id for c in train} | {c.id for c in val} == {f"c{i}" for i in range(40)}
    assert [c.id for c in split_cases(_cases(20, 20), 0.15, seed=3)[1]] == [c.id for c in val]
    assert [c.id for c in split_cases(_cases(20, 20), 0.15, seed=4)[1]] != [c.id for c in val]
    explicit = _cases(2, 2, ["train", "val", "val", "test"])
    explicit.append(Case(id="x", ct=Path("/x"), label=0, split=None))
    train, val = split_cases(explicit, 0.15, seed=0)
    assert [c.id for c in train] == ["c0", "x"] and [c.id for c in val] == ["c1", "c2"]


def test_split_errors_one_class_and_too_few():
    with pytest.raises(DatasetError, match="all positive"):
        split_cases(_cases(5, 0), 0.2, seed=0)
    with pytest.raises(DatasetError, match="Too few cases for validation"):
        split_cases(_cases(1, 3), 0.2, seed=0)
    unlabelled = [Case(id="u", ct=Path("/u"))]
    with pytest.raises(DatasetError, match="Too few cases"):
        split_cases(unlabelled, 0.2, seed=0, need_both_labels=False)
