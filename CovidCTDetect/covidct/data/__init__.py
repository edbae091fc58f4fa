"""Data for training and evaluation.

* :mod:`.manifest` — dataset manifests (CSV: CT path, label, optional lung mask, split, id).
* :mod:`.synth` — synthetic COVID-19 lesions (ground-glass opacity, consolidation, crazy paving)
  inserted into the real lungs of real CTs, and whole synthetic datasets (``covidct synth``).
* :mod:`.augment` — the DeCoVNet paper's online augmentation (one 2D affine for all slices, colour jitter).
* :mod:`.cache` — preprocessed model inputs cached on disk, keyed by file identity and preprocessing code.
"""
