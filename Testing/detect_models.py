"""Shared fixture of the detection tests: models saved through the catalogue with random weights, so
that detection runs end to end without bundled weights (the probabilities mean nothing)."""

from __future__ import annotations

import pytest
import torch

from covidct.models import ModelCard, build_model, save_model

#: a small COVID-19Net (same layers, fewer channels) so that tests run in seconds on a CPU
TINY = {"growth": 4, "block_layers": [1, 1, 1, 1], "stem_channels": 8}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """``COVIDCT_MODELS_DIR`` (set for the module) holding ``tiny-covid19net`` (card threshold 0.3) and
    ``random-decovnet`` (full size, threshold 0.5), both randomly initialised with seed 0."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(build_model("covid19net", **TINY),
               ModelCard(name="tiny-covid19net", architecture="covid19net", config=TINY, threshold=0.3,
                         description="random weights for tests"), root / "tiny-covid19net")
    save_model(build_model("decovnet"), ModelCard(name="random-decovnet", architecture="decovnet"),
               root / "random-decovnet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COVIDCT_MODELS_DIR", str(root))
        yield root
