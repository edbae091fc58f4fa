"""Training DeCoVNet, COVID-19Net and the lung UNet on a dataset manifest.

* :mod:`.config` — :class:`TrainConfig` (paper defaults), saved as ``config.json``.
* :mod:`.loop` — :func:`train`: the one training loop, checkpoints, exact resumption, validation.
* :mod:`.tasks` / :mod:`.unet_task` — what differs between classifiers and the segmentation UNet.
* :mod:`.checkpoint` — atomic checkpoints and RNG states; :mod:`.distributed` — DDP under ``torchrun``.
"""

from .config import TrainConfig, parse_arch_options, parse_hu_stats, parse_input_size
from .loop import train

__all__ = ["TrainConfig", "parse_arch_options", "parse_hu_stats", "parse_input_size", "train"]
