"""Run a classifier over every CT of a dataset manifest: per-case probability (and deep features).

Used by ``covidct evaluate --manifest`` (predictions to evaluate) and ``covidct features`` (the
COVID-19Net 64-d deep feature per case, for prognosis). Each case: load the CT, take the manifest's
lung mask or segment the lungs, build the paper's model input, one forward pass.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CovidCTError, UsageError
from ..progress import Progress


def predict_cohort(manifest: str | os.PathLike, weights: str, device: str = "auto", lung_method: str = "unet",
                   with_features: bool = False, require_label: bool = True,
                   progress: Progress | None = None):
    """A pandas DataFrame with one row per manifest case, in manifest order.

    Columns: ``case_id``, ``label`` (0/1; empty when the manifest has none), ``probability``
    (P(COVID-19)), and with ``with_features`` the model's deep features ``f0 … f63`` (COVID-19Net only).
    ``weights``: a bundled model name or a folder with weights and model card (see
    :func:`covidct.models.load_model`). Errors name the failing case.
    """
    import pandas as pd
    import torch

    from ..data.manifest import read_manifest
    from ..device import resolve_device
    from ..models import load_model

    cases = read_manifest(manifest, require_label=require_label)
    torch_device = resolve_device(device)
    model, card = load_model(weights, torch_device)
    if with_features and not hasattr(model, "features"):
        raise UsageError(f"Model '{weights}' has no deep features; use a COVID-19Net model such as covid19net-demo.")
    rows = []
    for done, case in enumerate(cases):
        if progress:
            progress.stage("cases", done, len(cases), case=case.id)
        try:
            array = case_input(model, case, lung_method, str(torch_device))
        except CovidCTError as error:
            raise type(error)(f"Case '{case.id}' (manifest line {case.line}): {error}") from error
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None].to(torch_device)
            row = {"case_id": case.id, "label": case.label,
                   "probability": float(model.probability(model(x))[0])}
            if with_features:
                row.update({f"f{i}": float(v) for i, v in enumerate(model.features(x)[0].cpu().numpy())})
        rows.append(row)
    if progress:
        progress.stage("cases", len(cases), len(cases))
    return pd.DataFrame(rows)


def case_input(model, case, lung_method: str, device: str) -> np.ndarray:
    """The paper-exact input array of ``model``'s architecture for one manifest case (channels first)."""
    from ..io import load_ct, read_image
    from ..lungs import segment_lungs
    from ..models.covid19net import COVID19Net
    from ..models.decovnet import DeCoVNet

    ct = load_ct(case.ct)
    lungs = read_image(case.lungs) if case.lungs else segment_lungs(ct, method=lung_method, device=device)
    if isinstance(model, COVID19Net):
        from ..preprocess.covid19net import covid19net_input

        return covid19net_input(ct, lungs)[0]
    if isinstance(model, DeCoVNet):
        from ..preprocess.decovnet import decovnet_input

        return decovnet_input(ct, lungs)[0]
    raise UsageError(f"Model {type(model).__name__} is not a COVID-19 classifier; use a DeCoVNet or COVID-19Net model.")
