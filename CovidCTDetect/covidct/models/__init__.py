"""The networks and the model catalogue.

* :class:`~.decovnet.DeCoVNet` — CT + lung mask → 2 logits (Zheng et al. 2020, Table 1).
* :class:`~.covid19net.COVID19Net` — lung-ROI → 1 logit and a 64-d feature (Wang et al. 2020).
* ``UNet2D`` (:mod:`.unet`) — 2D lung segmentation, ``(N, 1, H, W) -> (N, 2, H, W)`` logits.
* :mod:`.catalogue` — :func:`build_model`, :class:`ModelCard`, :func:`list_models`,
  :func:`find_model`, :func:`find_classifier`, :func:`load_model`, :func:`save_model`.

Every classifier has ``forward(x) -> logits``, ``probability(logits) -> (N,)`` P(COVID-19),
``loss(logits, labels) -> scalar`` and ``cam_layer`` (the module HiResCAM hooks).
"""

from .catalogue import (
    ARCHITECTURES,
    CLASSIFIERS,
    ModelCard,
    build_model,
    default_lungs_method,
    find_classifier,
    find_model,
    list_models,
    load_model,
    model_class,
    save_model,
)

__all__ = [
    "ARCHITECTURES",
    "CLASSIFIERS",
    "COVID19Net",
    "DeCoVNet",
    "ModelCard",
    "build_model",
    "default_lungs_method",
    "find_classifier",
    "find_model",
    "list_models",
    "load_model",
    "model_class",
    "save_model",
]


def __getattr__(name):
    """``COVID19Net`` and ``DeCoVNet`` are imported on first use, so that reading the catalogue
    (:func:`list_models`, :func:`find_model`) does not import PyTorch (the Slicer panels list models
    before PyTorch is installed)."""
    if name == "COVID19Net":
        from .covid19net import COVID19Net

        return COVID19Net
    if name == "DeCoVNet":
        from .decovnet import DeCoVNet

        return DeCoVNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
