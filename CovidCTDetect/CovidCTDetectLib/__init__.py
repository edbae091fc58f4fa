"""CovidCTDetectLib: the bridge between 3D Slicer's MRML scene and the ``covidct`` library.

Shared by the CovidCTLungSegmentation, CovidCTDetect and CovidCTTrain modules. It imports
``slicer`` (the application's, or the ``slicer-core`` wheel's MRML without Qt) and never imports
PyTorch: numerical work runs in ``covidct``, long work in a background ``covidct`` process.

Submodules (import them directly, e.g. ``from CovidCTDetectLib.volumes import image_from_volume``):

* :mod:`.volumes` — volume node ⇄ SimpleITK image (LPS), exact voxels and geometry;
* :mod:`.segmentations` — labelmap ⇄ segmentation node with named segments, colours, terminology;
* :mod:`.heatmaps` — heat map → scalar volume node with a warm colour table, shown over the CT;
* :mod:`.tables` — result rows in a table node, curves in plot chart nodes;
* :mod:`.process` — background ``covidct`` process: JSON-line progress, cancel, blocking wait (no Qt);
* :mod:`.jobs` — a running command with its temporary folder: progress stage/fraction, wait, cancel (no Qt);
* :mod:`.lung_segmentation_logic` — the CovidCTLungSegmentation module's logic (no Qt);
* :mod:`.detect_logic` — the CovidCTDetect module's detection logic: single CT and batch (no Qt);
* :mod:`.prognosis_logic` — the CovidCTDetect module's prognosis section and cohort view (no Qt);
* :mod:`.train_logic` — the CovidCTTrain module's logic: devices, synthetic data, training runs (no Qt), with
  :mod:`.train_dataset` (manifests, preview table) and :mod:`.train_evaluation` (ROC/PR charts, saving a model).
"""
