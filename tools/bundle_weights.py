"""Copy a trained model into the package's weights folder under its bundled name, with its model card.

Used by ``tools/make_demo_weights.sh`` (its ``bundle-*`` steps put this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

from covidct.models import load_model, save_model


def read_json(path: str | Path):
    """A JSON file's content (a run's ``history.json``, an evaluation's ``report.json``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def bundle(run_model: str | Path, weights: str | Path, name: str, lungs_method: str | None = None,
           **card_fields) -> None:
    """Load the model in ``run_model`` (a run's ``model`` folder), set its card's ``name``, weights file
    ``<name>.pt``, the lung segmentation its training masks came from (``input.lungs_method``, which
    detection then uses by default) and ``card_fields`` (description, training_data, licence, metrics,
    ...), write both into ``weights`` as ``<name>.pt`` / ``<name>.json`` (sha256 filled in) and print
    the card."""
    model, card = load_model(run_model, device="cpu")
    card.name, card.weights = name, f"{name}.pt"
    if lungs_method:
        card.input = {**card.input, "lungs_method": lungs_method}
    for field, value in card_fields.items():
        if not hasattr(card, field):
            raise SystemExit(f"bundle_weights: model cards have no field '{field}'")
        setattr(card, field, value)
    save_model(model, card, weights, card_file=f"{name}.json")
    print(json.dumps({k: v for k, v in card.__dict__.items() if k != "path"}, indent=1, default=str))
