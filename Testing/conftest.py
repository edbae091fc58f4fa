"""Shared pytest fixtures: where the real CT data lives.

Large real CTs are read from ``../shared/data`` beside the repository (or from the folder named by
the ``COVIDCT_SHARED_DATA`` environment variable); tests that need them skip with a clear reason
when it is absent. Small fixtures with their licences live in ``Testing/Data``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
import SimpleITK as sitk
from real_cts import REPO, SHARED_DATA

TEST_DATA = REPO / "Testing" / "Data"

# The Slicer bridge CovidCTDetectLib sits beside the covidct package (as in an installed extension).
sys.path.insert(0, str(REPO / "CovidCTDetect"))

#: a small COVID-19Net (same layers, fewer channels) so that tests run in seconds on a CPU
TINY_COVID19NET = {"growth": 4, "block_layers": [1, 1, 1, 1], "stem_channels": 8}


def shared_file(relative: str) -> Path:
    """Path of a file under the shared data folder; skips the calling test when it is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real CT data not found at {path} (set COVIDCT_SHARED_DATA to the shared/data folder)")
    return path


def cip_slab(folder: Path) -> tuple[Path, Path]:
    """Write 16 central slices (z 30-45) of the real CIP ct-64 and of its real whole-lung mask into
    ``folder``; returns ``(ct path, lung mask path)``. A tiny real background for training tests."""
    cip = "cip-copdgene-10002K-ct64/"
    ct = sitk.ReadImage(str(shared_file(cip + "ct-64.nrrd")))
    lungs = sitk.ReadImage(str(shared_file(cip + "wholeLung-64.nrrd")))
    sitk.WriteImage(ct[:, :, 30:46], str(folder / "cip16.nrrd"))
    sitk.WriteImage(lungs[:, :, 30:46], str(folder / "cip16-lungs.nrrd"))
    return folder / "cip16.nrrd", folder / "cip16-lungs.nrrd"


@pytest.fixture
def shared_data() -> Path:
    """The shared real-CT folder (``../shared/data``); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real CT data folder {SHARED_DATA} is absent (set COVIDCT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def slicer_temporary(tmp_path_factory):
    """The module logic's temporary folders (Slicer's temporary directory in the application, the system's
    here) go under a pytest temporary folder for the test module, which pytest clears, not into /tmp."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("slicer-temporary")))
        yield


@pytest.fixture
def mrml_scene(slicer_temporary):
    """A real MRML scene (``slicer-core`` wheel) set as ``slicer.mrmlScene``, with Slicer's default
    colour nodes, as in the application; skips when ``slicer-core`` is not installed."""
    slicer = pytest.importorskip(
        "slicer", reason="slicer-core (real MRML without the Slicer application) is not installed"
    )
    scene = slicer.vtkMRMLScene()
    color_logic = slicer.vtkMRMLColorLogic()
    color_logic.SetMRMLScene(scene)
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = scene
    yield scene
    slicer.mrmlScene = previous
    color_logic.SetMRMLScene(None)
    scene.Clear(True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One PyTorch thread for a module's tests: on a small shared CPU, two OpenMP threads wait on each
    other whenever the other core is busy (a training step measured 10x slower); CI gets the same
    numbers either way. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """``COVIDCT_MODELS_DIR`` (set for the module) holding ``tiny-covid19net`` (card threshold 0.3) and
    ``random-decovnet`` (full size, threshold 0.5), both randomly initialised with seed 0: detection
    runs end to end without bundled weights (the probabilities mean nothing)."""
    import torch

    from covidct.models import ModelCard, build_model, save_model

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(
        build_model("covid19net", **TINY_COVID19NET),
        ModelCard(
            name="tiny-covid19net",
            architecture="covid19net",
            config=TINY_COVID19NET,
            threshold=0.3,
            description="random weights for tests",
        ),
        root / "tiny-covid19net",
    )
    save_model(
        build_model("decovnet"), ModelCard(name="random-decovnet", architecture="decovnet"), root / "random-decovnet"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COVIDCT_MODELS_DIR", str(root))
        yield root
