"""Copy a trained model into the package's weights folder under its bundled name, with its model card.

Used by ``tools/make_demo_weights.sh`` (its ``bundle-*`` steps put this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

from covidct.models import find_model, load_model, save_model


def read_json(path: str | Path):
    """A JSON file's content (a run's ``history.json``, an evaluation's ``report.json``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


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


def heatmap_peaks(run_model: str | Path, manifest: str | Path, count: int = 20) -> list[float]:
    """The in-lung maximum of the HiResCAM map (before any scaling) of up to ``count`` positive cases of a
    synthetic ``manifest`` (their lungs: the manifest's masks, else segmented by the card's lung method, as
    the run trained): what a model's card ``heatmap_scale`` is made from (their median, so that a typical
    positive's hottest lung area shows as 1)."""
    import numpy as np
    import SimpleITK as sitk

    from covidct.data.manifest import read_manifest
    from covidct.explain import heatmap_on_ct, hires_cam
    from covidct.io import load_ct, read_image
    from covidct.lungs import segment_lungs
    from covidct.preprocess import input_options, model_input

    model, card = load_model(run_model, device="cpu")
    import torch

    peaks = []
    for case in [c for c in read_manifest(manifest) if c.label == 1][:count]:
        ct = load_ct(case.ct)
        lungs = read_image(case.lungs) if case.lungs else segment_lungs(ct, method=card.input.get("lungs_method"))
        array, grid = model_input(card.architecture, ct, lungs, **input_options(card.architecture, card.input))
        cam, _ = hires_cam(model, torch.from_numpy(array)[None])
        top = float(cam.max())
        if top > 0:
            heat = heatmap_on_ct(cam, grid, ct, lungs, scale=top)  # 0..1, no clipping at this scale
            peaks.append(float(sitk.GetArrayViewFromImage(heat).max()) * top)
    return [float(np.round(p, 6)) for p in peaks]


def real_ct_results(run_model: str | Path, lungs_method: str | None = None) -> dict:
    """``{case: {"probability", "hottest_in_infection_slice"?}}`` of a classifier on every real CT of
    ``../shared/data`` (``Testing/real_cts.py``), lungs by ``lungs_method`` (default: its card's): the
    figures its card lists."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
    from real_cts import REAL_CTS, hottest_in_infection_slice

    from covidct.detection import detect

    loaded = load_model(run_model, device="cpu")
    results = {}
    for case in REAL_CTS:
        if not case.file.exists():
            continue
        result = detect(case.file, model=loaded, lungs_method=lungs_method)
        row = {"probability": round(result.probability, 4), "covid": case.covid}
        if case.labels_file is not None:
            row["hottest_in_infection_slice"] = hottest_in_infection_slice(result.heatmap, case.labels_file)
        results[case.name] = row
    return results


def average_best_and_last(run: str | Path, out: str | Path, last_share: float) -> Path:
    """A model whose weights are ``(1 - last_share)`` × the run's best-validation epoch (``run/model``) plus
    ``last_share`` × its last epoch (``run/last.pt``), saved into ``out`` with the best epoch's card; returns
    ``out``. Both epochs come from one fine-tuning run, so their average stays in the same basin (a "model
    soup"): it trades the early epoch's specificity against the late epoch's lesion coverage."""
    from covidct.train.checkpoint import load_checkpoint

    model, card = load_model(Path(run) / "model", device="cpu")
    last = load_checkpoint(Path(run) / "last.pt")["model"]
    note = f"Averaged with its last epoch ({last_share:.2f} of the weights)."
    return _save_average(model, card, [model.state_dict(), last], [1.0 - last_share, last_share], out, note)


def average_epochs(run: str | Path, checkpoints: list[str | Path], out: str | Path) -> Path:
    """The equal average of the weights in ``checkpoints`` (training checkpoints of the run, e.g. the
    ``epoch-N.pt`` copies of ``last.pt`` that ``make_demo_weights.sh`` keeps), batch-norm running statistics
    averaged too, saved into ``out`` with the card of the run's final model (``run/model``); returns ``out``.
    Consecutive epochs of one run lie in one basin, and their average moves less between epochs than any
    one of them (a "model soup")."""
    from covidct.train.checkpoint import load_checkpoint

    model, card = load_model(Path(run) / "model", device="cpu")
    states = [load_checkpoint(path)["model"] for path in checkpoints]
    note = f"The equal average of {len(states)} epochs' weights ({', '.join(Path(p).stem for p in checkpoints)})."
    return _save_average(model, card, states, [1.0 / len(states)] * len(states), out, note)


def _save_average(model, card, states: list[dict], shares: list[float], out: str | Path, note: str) -> Path:
    """Load ``sum(share × state)`` into ``model`` (integer entries, e.g. batch norm's step count, from the last
    state), add ``note`` to the card's description and save both into ``out``; returns ``out``."""
    model.load_state_dict(
        {
            key: sum(share * state[key] for share, state in zip(shares, states, strict=True))
            if value.is_floating_point()
            else states[-1][key]
            for key, value in states[0].items()
        }
    )
    card.sha256 = ""
    card.description = f"{card.description} {note}"
    return save_model(model, card, out).path.parent


def real_ct_lungs(lungs_method: str = "unet") -> dict:
    """``{case: {"right_ml", "left_ml", "thick_dense_ml", "tumour_thick_dense_ml"}}`` of a lung method on every
    real CT of ``../shared/data`` (``Testing/real_cts.py``), plus ``"CIP whole-lung Dice"`` against its real
    mask: the figures a lung model's card lists."""
    import sys

    import SimpleITK as sitk

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
    from real_cts import REAL_BY_NAME, REAL_CTS, SHARED_DATA, thick_dense_ml

    from covidct.io import load_ct, read_image
    from covidct.lungs import lung_volumes_ml, segment_lungs

    results = {}
    for case in REAL_CTS:
        if not case.file.exists():
            continue
        ct = load_ct(case.file)
        labels = segment_lungs(ct, method=lungs_method)
        volumes = lung_volumes_ml(labels)
        outside, tumour = thick_dense_ml(ct, labels, case.tumour_lps)
        results[case.name] = {
            "right_ml": round(volumes["right lung"]),
            "left_ml": round(volumes["left lung"]),
            "thick_dense_ml": round(outside, 1),
            "tumour_thick_dense_ml": round(tumour, 1),
        }
    truth = SHARED_DATA / "cip-copdgene-10002K-ct64" / "wholeLung-64.nrrd"
    if truth.exists():
        mask = sitk.GetArrayFromImage(segment_lungs(load_ct(REAL_BY_NAME["CIP"].file), method=lungs_method)) > 0
        real = sitk.GetArrayFromImage(read_image(truth)) > 0
        results["CIP whole-lung Dice"] = round(float(2 * (mask & real).sum() / (mask.sum() + real.sum())), 4)
    return results


def last_epoch_model(run: str | Path, out: str | Path) -> Path:
    """The run's last epoch (``run/last.pt``) saved as a model folder ``out`` with the card of its final
    model (``run/model``); returns ``out``."""
    from covidct.train.checkpoint import load_checkpoint

    model, card = load_model(Path(run) / "model", device="cpu")
    model.load_state_dict(load_checkpoint(Path(run) / "last.pt")["model"])
    card.sha256 = ""
    return save_model(model, card, out).path.parent


def select_on_real_cts(run: str | Path, out: str | Path, lungs_method: str) -> tuple[Path, dict]:
    """Model selection on the real CTs (the real-CT yardstick's validation set): of the run's best-validation
    model (``run/model``) and its last epoch (``run/last.pt``, saved as a model into ``out``), the one that puts
    more real CTs on the right side of the threshold, then the one whose closest call among those lies farthest
    from it (:func:`real_ct_score`), with the lungs by ``lungs_method`` (the method its card will name);
    returns its folder and its :func:`real_ct_results`."""
    threshold = find_model(Path(run) / "model").threshold
    last = last_epoch_model(run, out)
    scored = []
    for folder in (Path(run) / "model", last):
        results = real_ct_results(folder, lungs_method)
        scored.append((real_ct_score(results, threshold), str(folder), results))
    score, folder, results = max(scored)
    print(f"real-CT selection (CTs right, smallest margin among them): {[(s, f) for s, f, _ in scored]} -> {folder}")
    return Path(folder), results


def real_ct_score(results: dict, threshold: float) -> tuple[int, float]:
    """``(real CTs on the right side of threshold, the smallest margin among those)`` of :func:`real_ct_results`:
    what :func:`select_on_real_cts` maximises."""
    margins = [(r["probability"] - threshold) * (1 if r["covid"] else -1) for r in results.values()]
    right = [m for m in margins if m > 0]
    return len(right), round(min(right, default=0.0), 4)


#: the real CTs behind the domain-randomised training sets and their terms
DOMAIN_SOURCES = [
    "COVID-CT-MD normal001 (Afshar et al. 2021; research use, cite)",
    "POPI-model 4D-CT phase 00 (via ITKElastix history; free for research, cite the POPI model)",
    "CIP COPDGene 10002K ct-64 (Chest Imaging Platform, CIP licence, research use only)",
    "Lung-PET-CT-Dx Lung_Dx-A0001, kernels B and L (TCIA, CC BY 4.0)",
]
DOMAIN_LICENCE = (
    "Apache-2.0 for the weights; the training CTs' own terms apply to their use (COVID-CT-MD and POPI: cite; "
    "CIP: research purposes only, CIP licence; Lung-PET-CT-Dx: CC BY 4.0)."
)


def bundle_domain_classifier(
    work: Path,
    weights: Path,
    arch: str,
    description: str,
    recipe: str,
    run_name: str | None = None,
    average: list[int] | None = None,
) -> None:
    """Bundle the run ``work/<run_name>`` (default ``<arch>-domain``: ``make_demo_weights.sh`` step
    ``<arch>-domain``) as ``<arch>-demo``: the epoch :func:`select_on_real_cts` picks with the bundled UNet's
    lungs, or with ``average`` the equal average of those epochs' checkpoints ``epoch-N.pt``
    (:func:`average_epochs`); the heat-map scale from up to 20 validation positives (:func:`heatmap_peaks`),
    every real CT's probability on the card. ``recipe`` says how the run was trained (epochs, learning rate,
    starting point)."""
    import csv
    import statistics

    run_name = run_name or f"{arch}-domain"
    run = work / run_name
    history = read_json(run / "history.json")
    if average:
        chosen = average_epochs(run, [run / f"epoch-{e}.pt" for e in average], work / f"{run_name}-average")
        real = real_ct_results(chosen, "unet")
        kept = {"kept_epochs": list(average)}
        how = f"The equal average of epochs {', '.join(map(str, average))} kept (batch-norm statistics averaged too)."
    else:
        chosen, real = select_on_real_cts(run, work / f"{run_name}-last", "unet")
        best = read_json(run / "model" / "model.json")["metrics"]["epoch"]  # the loop's best-validation epoch
        kept = {"kept_epoch": best if chosen.name == "model" else history[-1]["epoch"]}
        how = (
            f"Epoch {kept['kept_epoch']} kept: of the best-validation and the last epoch, the one that put more real "
            "CTs of the yardstick on the right side of the threshold, then with the wider margin on those (model "
            "selection on the real CTs, whose negatives' anatomy the training copies share)."
        )
    with open(run / "split.csv", newline="") as stream:
        positives = [r for r in csv.DictReader(stream) if r["split"] == "val" and r["label"] == "1"]
    manifest = work / f"{run_name}-val-positives.csv"
    with open(manifest, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(positives[0]))
        writer.writeheader()
        writer.writerows(positives)
    scale = statistics.median(heatmap_peaks(chosen, manifest, 20))
    masks = {
        "unet": "lung masks by the bundled lung UNet, as detection makes them",
        "threshold": "threshold lung masks",
    }[read_json(run / "config.json")["lungs_method"]]
    training = (
        "Synthetic COVID-19-like lesions (ground-glass opacity, consolidation, crazy paving; 3-10 of 15-60 mm per "
        "positive) in four domain-randomised copies of each of five real non-COVID CTs (COVID-CT-MD normal001, POPI "
        "phase 00, CIP COPDGene 10002K, Lung-PET-CT-Dx A0001 kernels B and L); 300 positives and 400 negatives, 200 "
        f"of these holding a synthetic solid nodule or mass; {masks}; 15 % held out for validation. "
        f"{recipe} {how} Never trained on real COVID-19 (P001/P002)."
    )
    bundle(
        chosen,
        weights,
        f"{arch}-demo",
        lungs_method="unet",
        description=description,
        training_data=training,
        training_sources=DOMAIN_SOURCES,
        licence=DOMAIN_LICENCE,
        threshold=0.5,
        heatmap_scale=round(scale, 4),
        validated={"slice_mm": [0.5, 5.0], "pixel_mm": [0.5, 4.2], "contrast": False},
        metrics={
            "real_ct_probabilities": {k: v["probability"] for k, v in real.items()},
            "real_ct_hottest_in_infection_slice": {
                k: v["hottest_in_infection_slice"] for k, v in real.items() if "hottest_in_infection_slice" in v
            },
            **kept,
            "epochs": len(history),
            "best_validation_roc_auc": round(max(h["val_auc"] for h in history), 4),
        },
    )
