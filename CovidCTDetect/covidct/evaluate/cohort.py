"""Run a classifier over every CT of a dataset manifest: per-case probability (and deep features).

Used by ``covidct evaluate --manifest`` (predictions to evaluate) and ``covidct features`` (the
COVID-19Net 64-d deep feature per case, for prognosis). Each case goes through
:func:`covidct.detection.detect` without heat map: load the CT, take the manifest's lung mask or
segment the lungs, build the paper's model input, one forward pass. The model is loaded once.
"""

from __future__ import annotations

import os

from ..errors import CovidCTError, UsageError
from ..progress import Progress


def predict_cohort(
    manifest: str | os.PathLike,
    weights: str,
    device: str = "auto",
    lungs_method: str | None = None,
    with_features: bool = False,
    require_label: bool = True,
    progress: Progress | None = None,
):
    """A pandas DataFrame with one row per manifest case, in manifest order.

    Columns: ``case_id``, ``label`` (0/1; None when the manifest has none), ``probability``
    (P(COVID-19)), and with ``with_features`` the deep features ``f0 … f63`` (COVID-19Net only).
    ``weights``: a catalogue model name or a folder with ``model.json`` and weights (see
    :func:`covidct.models.load_model`). A failing case raises its error, prefixed with the case ID.
    """
    import pandas as pd

    from ..data.manifest import read_manifest
    from ..detection import detect
    from ..models import load_model

    cases = read_manifest(manifest, require_label=require_label)
    net, card = loaded = load_model(weights, device)
    if with_features and not hasattr(net, "features"):
        raise UsageError(
            f"Model '{card.name}' ({card.architecture}) has no deep features; "
            "use a COVID-19Net model such as covid19net-demo."
        )
    rows = []
    for done, case in enumerate(cases):
        if progress:
            progress.stage("cases", done, len(cases), case=case.id)
        try:
            result = detect(case.ct, model=loaded, lungs=case.lungs, heatmap=False, lungs_method=lungs_method)
        except CovidCTError as error:
            raise type(error)(f"Case '{case.id}' (manifest line {case.line}): {error}") from error
        row = {"case_id": case.id, "label": case.label, "probability": result.probability}
        if with_features:
            row.update({f"f{i}": float(value) for i, value in enumerate(result.features)})
        rows.append(row)
    if progress:
        progress.stage("cases", len(cases), len(cases))
    return pd.DataFrame(rows)
