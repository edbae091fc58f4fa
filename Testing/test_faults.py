"""Faults injected as a user would meet them; each test asserts on the files left behind, not only on the exit code.

Full disk and read-only destination use a small tmpfs (mounted when the tests run as root; skipped
otherwise). Real data: the CIP CT fixture and catalogue-saved random models (``models_dir``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA, shared_file

import covidct
from covidct.errors import OutputError
from covidct.outputs import write_json

CIP_CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
CIP_LUNGS = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"
QUICK = ["--model", "random-decovnet", "--device", "cpu", "--lungs-method", "threshold"]


def run_cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "covidct", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def small_disk(tmp_path):
    """A mounted tmpfs of 64 KiB (root only); yields its path and a function remounting it read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")

    def read_only():
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)

    yield mount, read_only
    subprocess.run(["umount", "-l", str(mount)])


def fill(disk: Path, leave: int = 0) -> None:
    """Fill the mounted ``disk`` up to ``leave`` bytes (written in 1 KiB steps until the disk refuses)."""
    with open(disk / "filler", "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 1024)
        except OSError:
            pass
    if leave:
        size = (disk / "filler").stat().st_size
        os.truncate(disk / "filler", max(size - leave, 0))


def hidden_temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


def test_full_disk_leaves_no_incomplete_output_under_a_final_name(small_disk, models_dir):
    disk, _ = small_disk
    result = covidct.detect(CIP_CT, model="random-decovnet", lungs=CIP_LUNGS)
    with pytest.raises(OutputError, match="Could not write"):
        result.save(disk / "case")
    assert not hidden_temporaries(disk)
    for path in (disk / "case").glob("*"):  # whatever got its final name is complete
        if path.name.endswith(".nii.gz"):
            assert sitk.ReadImage(str(path)).GetSize() == result.ct.GetSize()
        elif path.suffix == ".json":
            json.loads(path.read_text())
    assert not (disk / "case" / "report.json").exists()  # the report, written last, names only complete files


def test_full_disk_from_the_command_line(small_disk, models_dir, tmp_path):
    disk, _ = small_disk
    fill(disk, leave=2048)
    # segment: nothing fits; exit 1 (the input was fine), one sentence, nothing left behind
    result = run_cli("segment", CIP_CT, "--out", disk / "lungs.nii.gz", "--lungs-method", "threshold")
    assert result.returncode == 1 and "no space left on device" in result.stderr.lower(), result.stderr
    assert not (disk / "lungs.nii.gz").exists() and not hidden_temporaries(disk)
    # detect: the free space is checked before any work
    result = run_cli("detect", CIP_CT, "--out", disk / "out", *QUICK)
    assert result.returncode == 2 and "MB are free" in result.stderr
    assert not any((disk / "out").glob("*/*"))


def test_read_only_or_wrong_destinations_are_refused_before_any_work(small_disk, models_dir, tmp_path):
    disk, read_only = small_disk
    read_only()
    started = time.perf_counter()
    result = run_cli("detect", CIP_CT, "--out", disk / "out", *QUICK)
    assert result.returncode == 2 and "not writable" in result.stderr or "Cannot create" in result.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    result = run_cli("detect", CIP_CT, "--out", a_file, *QUICK)
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr
    result = run_cli("segment", CIP_CT, "--out", tmp_path / "lungs.png")
    assert result.returncode == 2 and "choose a name ending in" in result.stderr
    assert time.perf_counter() - started < 120  # refused up front, not after segmenting
    assert not (tmp_path / "lungs.png").exists()


@pytest.mark.slow  # three detection processes
def test_concurrent_runs_into_one_folder_keep_every_row(models_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ}
    first = subprocess.Popen(
        [sys.executable, "-m", "covidct", "detect", str(CIP_CT), "--out", str(out), *QUICK, "--no-heatmap"], env=env
    )
    second = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "covidct",
            "detect",
            str(CIP_LUNGS.parent / "ct-64.nrrd"),
            "--out",
            str(out),
            *QUICK,
            "--no-heatmap",
            "--threshold",
            "0.3",
        ],
        env=env,
    )
    assert first.wait(300) == 0 and second.wait(300) == 0
    third = run_cli("detect", CIP_CT, "--out", out, *QUICK, "--no-heatmap")
    assert third.returncode == 0
    with open(out / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3 and len({row["run"] for row in rows}) == 3
    assert sorted(row["threshold"] for row in rows) == ["0.3", "0.5", "0.5"]


def test_a_broken_or_shadowing_user_card_does_not_break_the_catalogue(models_dir, tmp_path):
    broken = models_dir / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "model.json").write_text("{ not json")
    shadow = models_dir / "shadow"
    shadow.mkdir(exist_ok=True)
    card = json.loads((models_dir / "random-decovnet" / "model.json").read_text())
    write_json(shadow / "model.json", {**card, "name": "decovnet-demo"})
    try:
        result = run_cli(
            "detect",
            CIP_CT,
            "--out",
            tmp_path / "out",
            "--model",
            "decovnet",
            "--device",
            "cpu",
            "--lungs-method",
            "threshold",
            "--no-heatmap",
        )
        assert result.returncode == 0, result.stderr
        assert "skipping the model card" in result.stderr and str(broken) in result.stderr
        assert "bundled model is used" in result.stderr.replace(
            "the bundled model has that name and is used", "bundled model is used"
        )
        report = json.loads((tmp_path / "out" / "ct-64" / "report.json").read_text())
        assert report["model"] == "decovnet-demo" and report["model_card"]["sha256"] != card["sha256"]
        segment = run_cli("segment", CIP_CT, "--out", tmp_path / "lungs.nii.gz")
        assert segment.returncode == 0, segment.stderr
    finally:
        for folder in (broken, shadow):
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()


def test_a_killed_save_leaves_nothing_under_the_final_name_and_is_cleaned_next_time(tmp_path):
    folder = tmp_path / "out"
    script = textwrap.dedent(f"""
        import numpy as np, SimpleITK as sitk
        from covidct.io import save_image
        image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(120, 512, 512)).astype(np.float32))
        print("ready", flush=True)
        while True:
            save_image(image, r"{folder / "big.nii.gz"}")
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    deadline = time.time() + 60
    while not hidden_temporaries(folder) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = hidden_temporaries(folder)
    assert left, "the kill did not land during a write"
    if (folder / "big.nii.gz").exists():
        assert sitk.ReadImage(str(folder / "big.nii.gz")).GetSize() == (512, 512, 120)
    from covidct.io import save_image

    save_image(sitk.GetImageFromArray(np.zeros((20, 20, 20), np.uint8)), folder / "next.nii.gz")
    assert not hidden_temporaries(folder)  # the killed run's temporary file is gone


@pytest.mark.slow  # a training run
def test_a_failed_training_start_does_not_block_the_corrected_run(tmp_path):
    from conftest import cip_slab

    ct, lungs = cip_slab(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("ct,label\nmissing.nii.gz,1\n")
    run = tmp_path / "run"
    failed = run_cli("train", "--model", "decovnet", "--manifest", bad, "--out", run, "--device", "cpu")
    assert failed.returncode == 2 and not (run / "config.json").exists()
    good = tmp_path / "good.csv"
    rows = [
        f"{label}{i},{ct},{int(label == 'pos')},{lungs},{split}"
        for i, split in enumerate(("train", "val"))
        for label in ("pos", "neg")
    ]
    good.write_text("id,ct,label,lungs,split\n" + "\n".join(rows) + "\n")
    (run / "config.json").parent.mkdir(exist_ok=True)
    (run / "config.json").write_text("{}")  # what an older version's failed start left
    again = run_cli(
        "train",
        "--model",
        "decovnet",
        "--manifest",
        good,
        "--out",
        run,
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--input-size",
        "32x48",
        "--quiet",
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert "never saved a checkpoint" in again.stderr and (run / "model" / "model.json").exists()


def test_saved_weights_are_byte_identical_and_files_follow_the_umask(tmp_path):
    import torch

    from covidct.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    model = build_model("decovnet")
    card = ModelCard(name="same", architecture="decovnet", created="2026-01-01T00:00:00+00:00")
    save_model(model, card, tmp_path / "a")
    save_model(model, card, tmp_path / "b")
    assert (tmp_path / "a" / "same.pt").read_bytes() == (tmp_path / "b" / "same.pt").read_bytes()
    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "mode.json", {})
    finally:
        os.umask(previous)
    assert (tmp_path / "mode.json").stat().st_mode & 0o777 == 0o644


def test_small_things(tmp_path, models_dir):
    # a named pipe is refused at once instead of blocking
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    result = run_cli("info", fifo, timeout=30)
    assert result.returncode == 2 and "not a regular file" in result.stderr
    # --debug and -v also after the command
    assert run_cli("info", CIP_CT, "-v", "--debug").returncode == 0
    # montage tiles name the stored slice of a CT stored coronally, not one fixed index
    from covidct.montage import axial_panels

    ct = sitk.DICOMOrient(sitk.ReadImage(str(CIP_CT)), "LSP")
    heat = sitk.Cast(ct > -500, sitk.sitkFloat32)
    panels = axial_panels(ct, heat, None, 4)
    assert len({panel["k"] for panel in panels}) == 4
    # the evaluation report states one rule, "> threshold"
    from covidct.evaluate import evaluate_predictions, make_predictions, render_markdown

    report = evaluate_predictions(make_predictions([0, 0, 1, 1, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.9, 0.2]))
    text = render_markdown(report) + json.dumps(report["conventions"])
    assert "≥ the threshold" not in text and ">= threshold" not in text


def test_patient_name_in_a_series_description_never_reaches_the_output(tmp_path):
    from dicom_copies import copy_series, read_slices, with_tags

    slices = read_slices(shared_file("cip-copdgene-10002K-ct64/ct-64Dicom"))
    folder = copy_series(
        slices, tmp_path / "series", lambda _, image: with_tags(image, {"0008|103e": "DOE^JANE CHEST"})
    )
    result = run_cli("-v", "info", folder)
    assert result.returncode == 0 and "DOE" not in result.stdout + result.stderr
    assert "UID" in result.stdout
