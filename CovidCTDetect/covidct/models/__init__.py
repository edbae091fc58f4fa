"""The networks and the model catalogue.

* :class:`~.decovnet.DeCoVNet` — CT + lung mask → 2 logits (Zheng et al. 2020, Table 1).
* :class:`~.covid19net.COVID19Net` — lung-ROI → 1 logit and a 64-d feature (Wang et al. 2020).
* ``UNet2D`` (:mod:`.unet`) — 2D lung segmentation, ``(N, 1, H, W) -> (N, 2, H, W)`` logits.
* :mod:`.catalogue` — :func:`build_model`, :class:`ModelCard`, :func:`list_models`,
  :func:`find_model`, :func:`load_model`, :func:`save_model`.

Every classifier has ``forward(x) -> logits``, ``probability(logits) -> (N,)`` P(COVID-19),
``loss(logits, labels) -> scalar`` and ``cam_layer`` (the module Grad-CAM hooks).
"""

from .catalogue import (
    ARCHITECTURES,
    ModelCard,
    build_model,
    find_model,
    list_models,
    load_model,
    model_class,
    save_model,
)
from .covid19net import COVID19Net
from .decovnet import DeCoVNet

__all__ = [
    "ARCHITECTURES",
    "COVID19Net",
    "DeCoVNet",
    "ModelCard",
    "build_model",
    "find_model",
    "list_models",
    "load_model",
    "model_class",
    "save_model",
]
