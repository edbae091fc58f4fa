"""covidct: COVID-19 detection on chest CT, after DeCoVNet (Zheng et al. 2020) and COVID-19Net (Wang et al. 2020).

Research software, not a medical device. The public API is re-exported here lazily, so that
``import covidct`` does not import PyTorch (the Slicer bridge relies on that)::

    import covidct
    ct = covidct.load_ct("chest.nii.gz")          # SimpleITK image, HU, LPS geometry
    result = covidct.detect(ct)                   # the default model, its card's lung method
    rows = covidct.detect_batch(["scans/"], "results/")

Training is ``covidct.train.train(covidct.TrainConfig(...))``: ``covidct.train`` is the subpackage,
so its function cannot also be re-exported under that name here.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first use)
_LAZY = {
    "load_ct": "covidct.io",
    "save_image": "covidct.io",
    "read_image": "covidct.io",
    "CovidCTError": "covidct.errors",
    "CTInputError": "covidct.errors",
    "UsageError": "covidct.errors",
    "ModelError": "covidct.errors",
    "DatasetError": "covidct.errors",
    "segment_lungs": "covidct.lungs",
    "lung_volumes_ml": "covidct.lungs",
    "detect": "covidct.detection",
    "Detection": "covidct.detection",
    "detect_batch": "covidct.batch",
    "load_model": "covidct.models",
    "list_models": "covidct.models",
    "TrainConfig": "covidct.train",
    "read_predictions": "covidct.evaluate",
    "evaluate_predictions": "covidct.evaluate",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'covidct' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
