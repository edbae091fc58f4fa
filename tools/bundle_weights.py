"""Copy a trained model into the package's weights folder under its bundled name, with its model card.

Used by ``tools/make_demo_weights.sh`` (its ``bundle-*`` steps put this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

from covidct.models import load_model, save_model

#: the real CTs behind ``synth-train7`` (the demo classifiers' training set) and their terms
SYNTH_TRAIN7_SOURCES = [
    "POPI-model 4D-CT phase 00 (via ITKElastix history; free for research, cite the POPI model)",
    "CIP COPDGene 10002K ct-64 (Chest Imaging Platform, CIP licence, research use only)",
    "TotalSegmentator example CT (CC BY 4.0 image, Apache-2.0 repository)",
]
SYNTH_TRAIN7_LICENCE = (
    "Apache-2.0 for the weights; the training CTs' own terms apply to their use (POPI: cite; CIP: "
    "research purposes only, CIP licence; TotalSegmentator example: CC BY 4.0)."
)
#: what ``synth-train7`` holds, for the ``training_data`` of a card
SYNTH_TRAIN7 = (
    "Synthetic COVID-19-like lesions (ground-glass opacity, consolidation, crazy paving; covidct synth, "
    "seed 3, 6-12 lesions of 30-80 mm per positive) inserted into the lungs of seven backgrounds made "
    "from three real non-COVID CTs: POPI 4D-CT phase 00 (resampled to 256 x 256 x 4 mm over its 500 mm "
    "field of view and over a 350 mm crop, and mirrored copies of both), the CIP COPDGene 10002K CT "
    "(64 x 64 x 79, and a mirrored copy) and the TotalSegmentator example CT (lung bases); 140 volumes "
    "with lesions and 140 without, positives and negatives sharing backgrounds; lung masks from "
    "covidct's threshold method; 15 % held out for validation"
)
#: the held-out test set both demo classifiers are scored on
SYNTH_TEST = (
    "20 + 20 volumes with/without synthetic lesions in normal001 (resampled to 256 x 256 x 4 mm), seed 2, "
    "6-12 lesions of 30-80 mm"
)
NEVER_TRAINED_ON = (
    "Never trained on real COVID-19 (COVID-CT-MD P001/P002) nor on normal001, the background of the test set."
)


def read_json(path: str | Path):
    """A JSON file's content (a run's ``history.json``, an evaluation's ``report.json``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def classifier_metrics(run: str | Path, evaluation: str | Path) -> tuple[dict, dict]:
    """``(best epoch's history record, card metrics)`` of a classifier training run folder and of its
    ``covidct evaluate`` folder on the synthetic test set (:data:`SYNTH_TEST`). The best epoch is the
    one the training loop kept: highest validation AUC, then lowest validation loss."""
    test = read_json(Path(evaluation) / "report.json")
    history = read_json(Path(run) / "history.json")
    best = max(history, key=lambda h: (h["val_auc"], -h["val_loss"]))
    return best, {
        "synthetic_test_roc_auc": round(test["roc_auc"], 4),
        "synthetic_test_pr_auc": round(test["pr_auc"]["average_precision"], 4),
        "synthetic_test_set": SYNTH_TEST,
        "best_validation_roc_auc": round(best["val_auc"], 4),
        "best_epoch": best["epoch"],
        "epochs": len(history),
    }


def bundle(
    run_model: str | Path, weights: str | Path, name: str, lungs_method: str | None = None, **card_fields
) -> None:
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
    saved = save_model(model, card, weights, card_file=f"{name}.json")  # the card with the new file's sha256
    print(json.dumps(saved.to_dict(), indent=1, default=str))


def bundle_demo_classifier(
    work: Path, weights: Path, arch: str, metrics: dict, description: str, training: str
) -> None:
    """Bundle the ``arch`` run in ``work/<arch>`` (trained on ``synth-train7``) as ``<arch>-demo``: threshold
    lung masks, threshold 0.5, synth-train7's sources and licence; ``training`` (epochs, learning rate,
    ...) goes between :data:`SYNTH_TRAIN7` and :data:`NEVER_TRAINED_ON` in the card's training data."""
    bundle(
        work / arch / "model",
        weights,
        f"{arch}-demo",
        lungs_method="threshold",
        description=description,
        training_data=f"{SYNTH_TRAIN7}; {training} {NEVER_TRAINED_ON}",
        training_sources=SYNTH_TRAIN7_SOURCES,
        licence=SYNTH_TRAIN7_LICENCE,
        threshold=0.5,
        metrics=metrics,
    )
