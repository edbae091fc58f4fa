"""Logic of the CovidCTDetect module's detection, without Qt: CT volume node → probability, heat map, segments.

Single CT: the volume node is written to a temporary NRRD (with the lungs of an existing lung
segmentation, exported on the CT's grid, when one is given) and ``covidct detect`` runs in a
background process (:mod:`CovidCTDetectLib.process`). Its outputs become:

* one row of the results table node "CovidCT detection results" (created once, then reused):
  volume, model, probability, label, threshold, time (s);
* the heat map (0…1 on the CT grid) as a scalar volume node "<volume> COVID-19 heat map" with a warm
  colour table, shown as the foreground layer over the CT in every slice view;
* the lungs, when they were segmented here, as the segmentation node "<volume> lungs" (segments
  "Right lung", "Left lung"), and the suspicious region (heat ≥ 0.5 in regions ≥ 1 mL, see
  :mod:`covidct.explain`), when there is one, as the segmentation node "<volume> suspicious region"
  with the segment "Suspicious region";
* the files of :meth:`covidct.detection.Detection.save` (report.json, montage.png, ...) in the sub-folder
  named after the volume of an output folder that is kept (a new temporary folder unless one is given).

Batch: ``covidct detect FOLDER --out DIR`` (files and DICOM series; one sub-folder per case and
``results.csv``), whose ``results.csv`` becomes a table node, failed cases with their error.

Non-blocking for the widget (``job = logic.startDetection(...)``; ``job.poll()`` from a timer until
``job.done``; ``result = job.finish()``, or ``job.cancel()``), blocking for
``Slicer --python-script`` (``result = logic.detect(volumeNode, ...)``, ``logic.runBatch(...)``).
Nodes are added to the volume node's scene; the slice views shown are those of ``slicer.mrmlScene``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from covidct.batch import RESULT_COLUMNS, case_names
from covidct.device import DEVICE_CHOICES
from covidct.errors import CTInputError, ModelError, UsageError
from covidct.models.catalogue import CLASSIFIERS

from .heatmaps import HEAT_MAP_ATTRIBUTE, heat_map_volume, show_heat_map
from .jobs import CommandJob
from .lung_segmentation_logic import METHODS as SEGMENTATION_METHODS
from .lung_segmentation_logic import SEE_THROUGH_OPACITY_3D, show_segmentation
from .process import AUTO_LUNGS, BackgroundProcess, CommandFailed, lungs_method_args, start_covidct
from .segmentations import LUNG_SEGMENTS, SegmentSpec, labelmap_array_from_segmentation, segmentation_from_labelmap
from .tables import append_result_row
from .volumes import image_from_volume

#: Name of the table node that receives one row per single-CT detection.
RESULTS_TABLE_NAME = "CovidCT detection results"
#: Initial opacity of the heat map over the CT (0..1).
DEFAULT_OPACITY = 0.4
#: Devices offered for ``--device`` (``cuda:N`` is also accepted).
DEVICES = DEVICE_CHOICES
#: SNOMED CT codes of the lung and its lobes: segments with one of these terminology types are lungs.
LUNG_TYPE_CODES = ("39607008", "45653009", "90572001", "72481006")
#: The suspicious-region labelmap (1 = suspicious; made for positive results only) as a segment: DICOM
#: "Morphologically Altered Structure" / "Inflammation" (SCT 49755003 / 23583003, both in Slicer's DICOM
#: master list) in the lung (SCT 39607008), orange like the heat map's hot end.
SUSPICIOUS_SEGMENTS = (
    SegmentSpec(
        1,
        "suspicious_region",
        "Suspicious region",
        (1.0, 0.5, 0.0),
        "Segmentation category and type - DICOM master list~SCT^49755003^Morphologically Altered Structure"
        "~SCT^23583003^Inflammation~^^~Anatomic codes - DICOM master list~SCT^39607008^Lung~^^",
    ),
)
#: Columns of ``results.csv`` that hold numbers (empty for a failed case).
_NUMERIC_RESULT_COLUMNS = ("probability", "threshold", "seconds")

#: lung segmentation for detection without a lung segmentation: ``auto`` = the method the model's
#: training masks came from (its card's ``input.lungs_method``), else ``unet`` when installed, else
#: ``threshold`` — what ``covidct detect`` does without ``--lungs-method``; or a method by name.
LUNGS_METHODS = (AUTO_LUNGS, *SEGMENTATION_METHODS)


def classifier_models() -> list:
    """The installed COVID-19 classifiers (:class:`covidct.models.ModelCard`, bundled first), without the lung UNet."""
    from covidct.models import list_models

    return [card for card in list_models() if card.architecture in CLASSIFIERS]


def classifier_card(model=None):
    """The card of ``model``: a card (returned as is), a catalogue or architecture name, a model folder or
    card file (:func:`covidct.models.find_classifier`), or None for the default classifier
    (:data:`covidct.models.catalogue.DEFAULT_CLASSIFIER`, as the command line), else the first
    installed one. Raises :class:`ModelError` / :class:`UsageError` with one sentence."""
    from covidct.models import ModelCard, find_classifier
    from covidct.models.catalogue import DEFAULT_CLASSIFIER

    if isinstance(model, ModelCard):
        return model
    if model is None:
        models = classifier_models()
        if not models:
            raise ModelError(
                "No COVID-19 classifier is installed; train one with the CovidCT Train module or "
                "'covidct train', or copy a model folder into the user models folder."
            )
        default = [card for card in models if card.architecture == DEFAULT_CLASSIFIER]
        return find_classifier(DEFAULT_CLASSIFIER) if default else models[0]
    return find_classifier(model)


def lung_segment_ids(segmentation_node) -> list[str]:
    """IDs of the lung segments of a segmentation node, in segment order.

    A segment is a lung when its name contains "lung" (any case: "Right lung", "lung_upper_lobe_left")
    or its terminology type is the lung or a lung lobe (:data:`LUNG_TYPE_CODES`); a segmentation with
    a single segment is taken as the lungs. Raises :class:`CTInputError` when there is no lung segment.
    """
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    lungs = [segment_id for segment_id in ids if _is_lung(segmentation.GetSegment(segment_id))]
    if not lungs and len(ids) == 1:
        lungs = ids
    if not lungs:
        raise CTInputError(
            f"Segmentation '{segmentation_node.GetName()}' has no lung segment (a name with 'lung' or "
            "lung terminology); choose a lung segmentation, or none to segment the lungs."
        )
    return lungs


def _is_lung(segment) -> bool:
    if "lung" in (segment.GetName() or "").lower():
        return True
    terminology = vtk.reference("")
    if not segment.GetTag(segment.GetTerminologyEntryTagName(), terminology):
        return False
    fields = str(terminology).split("~")
    type_code = fields[2].split("^") if len(fields) > 2 else []
    return len(type_code) > 1 and type_code[1] in LUNG_TYPE_CODES


def lungs_from_segmentation(segmentation_node, volume_node, ct: sitk.Image) -> sitk.Image:
    """The lung segments of ``segmentation_node`` as a UInt8 labelmap on the CT's grid (``ct`` is
    ``image_from_volume(volume_node)``): segment n of :func:`lung_segment_ids` has value n."""
    specs = [
        SegmentSpec(n, segment_id, "", (0.0, 0.0, 0.0), "")
        for n, segment_id in enumerate(lung_segment_ids(segmentation_node), start=1)
    ]
    labels = labelmap_array_from_segmentation(segmentation_node, volume_node, specs)
    if not labels.any():
        raise CTInputError(
            f"The lung segments of '{segmentation_node.GetName()}' are empty on the grid of "
            f"'{volume_node.GetName()}'; choose the segmentation made for this CT."
        )
    lungs = sitk.GetImageFromArray(labels.astype(np.uint8))
    lungs.CopyInformation(ct)
    return lungs


@dataclass
class DetectionResult:
    """What one detection put into the scene, with the report of ``covidct detect``.

    ``probability``: P(COVID-19) 0…1; ``label``: "positive" when probability > ``threshold``;
    ``seconds``: wall time from start to the loaded result; ``features``: COVID-19Net's 64-d deep
    feature (None for DeCoVNet); ``report``: report.json; ``outputFolder``: the saved outputs;
    ``montagePath``: montage.png (None without a heat map); nodes are None when not made.
    """

    volumeNode: object
    probability: float
    label: str
    threshold: float
    model: str
    seconds: float
    features: list | None
    report: dict
    outputFolder: Path
    montagePath: Path | None
    tableNode: object
    heatMapNode: object = None
    lungSegmentationNode: object = None
    suspiciousSegmentationNode: object = None
    suspiciousRegions: dict = field(default_factory=dict)
    #: sentences about the input (outside the model's validated range, a resampled lung mask)
    warnings: list = field(default_factory=list)
    #: "absolute" (one scale for every CT) or "relative" (1 = this CT's maximum); "" without a heat map
    heatMapScaling: str = ""


class DetectionJob(CommandJob):
    """One running ``covidct detect`` for one volume node."""

    def __init__(
        self,
        logic: DetectionLogic,
        volume_node,
        process: BackgroundProcess,
        workdir: Path,
        case_folder: Path,
        lungs_given: bool,
        opacity: float,
    ):
        super().__init__(process, workdir)
        self.logic = logic
        self.volume_node = volume_node
        self.case_folder = case_folder
        self.lungs_given = lungs_given
        self.opacity = opacity

    def report(self) -> dict:
        """Once :attr:`done`: the command's report.json (see :meth:`covidct.detection.Detection.report`), or raise
        its one-sentence error. Nothing is added to the scene; the temporary input files are deleted."""
        try:
            self.process.check()
            return json.loads((self.case_folder / "report.json").read_text(encoding="utf-8"))
        finally:
            self.cleanup()

    def finish(self, show: bool = True) -> DetectionResult:
        """Once :attr:`done`: load the outputs into the scene and return the result, or raise the command's
        one-sentence error. ``show``: heat map over the CT in the slice views, segments shown.
        The temporary input files are deleted either way; the output folder stays."""
        return self._load(self.report(), show)

    def _load(self, report: dict, show: bool) -> DetectionResult:
        from covidct.io import read_image

        files = {kind: self.case_folder / name for kind, name in report.get("files", {}).items()}
        scene, name = self.volume_node.GetScene(), self.volume_node.GetName()
        result = DetectionResult(
            volumeNode=self.volume_node,
            probability=float(report["probability"]),
            label=report["label"],
            threshold=float(report["threshold"]),
            model=report["model"],
            seconds=self.elapsed,
            features=report.get("features"),
            report=report,
            outputFolder=self.case_folder,
            montagePath=files.get("montage"),
            tableNode=None,
            warnings=list(report.get("warnings", [])),
        )
        if "heatmap" in files:
            result.heatMapScaling = report["heatmap"].get("scaling", "relative")
            result.heatMapNode = heat_map_volume(
                read_image(files["heatmap"]), name=scene.GenerateUniqueName(f"{name} COVID-19 heat map"), scene=scene
            )
            result.suspiciousRegions = report["heatmap"]["suspicious"]
            suspicious = read_image(files["suspicious"])
            if sitk.GetArrayViewFromImage(suspicious).any():
                result.suspiciousSegmentationNode = segmentation_from_labelmap(
                    suspicious, SUSPICIOUS_SEGMENTS, f"{name} suspicious region", scene
                )
        if not self.lungs_given:
            result.lungSegmentationNode = segmentation_from_labelmap(
                read_image(files["lungs"]), LUNG_SEGMENTS, f"{name} lungs", scene
            )
        result.tableNode = self.logic.appendResultRow(result)
        if show:
            if result.heatMapNode is not None:
                show_heat_map(self.volume_node, result.heatMapNode, self.opacity)
            if result.lungSegmentationNode is not None:
                inside = result.suspiciousSegmentationNode is not None
                show_segmentation(
                    result.lungSegmentationNode,
                    fill=result.heatMapNode is None,
                    opacity_3d=SEE_THROUGH_OPACITY_3D if inside else 1.0,
                )
            if result.suspiciousSegmentationNode is not None:
                show_segmentation(result.suspiciousSegmentationNode, fill=False)
        return result

    def _note(self, event: dict) -> None:
        super()._note(event)
        if event.get("event") == "stage" and event.get("step"):
            self.stage = str(event["step"])


class BatchJob(CommandJob):
    """One running ``covidct detect FOLDER --out DIR``; :attr:`fraction` covers the whole batch."""

    def __init__(self, process: BackgroundProcess, input_path: Path, output_folder: Path, scene):
        super().__init__(process, None)
        self.input_path = input_path
        self.output_folder = output_folder
        self.scene = scene
        self.cases = None
        self.case_index = 0
        self.run = None  # the run's identifier in results.csv (its "run" event)

    def finish(self):
        """Once :attr:`done`: ``results.csv`` as a new table node (one row per case, the error of a failed
        case in its ``error`` column); raises the command's error when it wrote no results (bad options)."""
        if self.process.cancelled or not (self.output_folder / "results.csv").is_file():
            self.process.check()
            raise CommandFailed(
                f"The batch run wrote no results into {self.output_folder}; check the input folder.",
                self.process.returncode,
            )
        return results_table(
            self.output_folder / "results.csv", f"CovidCT batch {self.input_path.name}", self.scene, run=self.run
        )

    def _note(self, event: dict) -> None:
        if event.get("event") == "run":
            self.run = event.get("run")
        if event.get("event") != "stage":
            return
        done, total = event.get("done"), event.get("total")
        if event.get("stage") == "cases" and total:
            self.cases, self.case_index = total, done
            self.stage = f"case {min(done + 1, total)} of {total}" + (f": {event['case']}" if event.get("case") else "")
            self.fraction = done / total
        elif event.get("stage") == "detect" and self.cases and total:
            self.fraction = min((self.case_index + done / total) / self.cases, 1.0)


def results_table(csv_path: Path, name: str, scene, run: str | None = None):
    """A new table node holding the rows of a ``results.csv`` of ``covidct detect`` (of one ``run`` when
    given: the folder may hold earlier runs' rows), probability, threshold and seconds as numbers, NaN for
    a failed case."""
    from covidct.batch import read_results

    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    for row in read_results(csv_path, run):
        values = {column: row.get(column, "") for column in RESULT_COLUMNS}
        for column in _NUMERIC_RESULT_COLUMNS:
            values[column] = float(values[column]) if values[column] else math.nan
        append_result_row(values, table_node)
    return table_node


class DetectionLogic:
    """COVID-19 detection of CT volume nodes through ``covidct detect`` in a background process.

    Methods follow Slicer's camelCase convention because the module's Logic class
    (``CovidCTDetectLogic``, also a ``ScriptedLoadableModuleLogic``) inherits them.
    """

    def __init__(self):
        self.resultsTableNode = None
        self.heatMapOpacity = DEFAULT_OPACITY

    # -- single CT -------------------------------------------------------------------------------
    def startDetection(
        self,
        volumeNode,
        model=None,
        lungSegmentationNode=None,
        lungsMethod: str = LUNGS_METHODS[0],
        device: str = "auto",
        threshold: float | None = None,
        heatmap: bool = True,
        outputFolder=None,
    ) -> DetectionJob:
        """Start detecting COVID-19 on ``volumeNode`` in the background and return the job.

        ``model``: see :func:`classifier_card`; ``lungSegmentationNode``: a segmentation with lung
        segments (:func:`lung_segment_ids`), or None to segment the lungs with ``lungsMethod``
        (:data:`LUNGS_METHODS`: ``auto``, ``unet`` or ``threshold``); ``threshold``: operating threshold in (0, 1),
        None for the model
        card's; ``heatmap``: compute the HiResCAM heat map; ``outputFolder``: where the outputs are
        kept, in the sub-folder named after the volume (letters, digits, ``-_.``; default: a new temporary
        folder). Raises a :class:`covidct.errors.CovidCTError` with
        one sentence for a bad input or option.
        """
        if volumeNode.GetAttribute(HEAT_MAP_ATTRIBUTE):
            raise UsageError(f"'{volumeNode.GetName()}' is a COVID-19 heat map, not a CT; select the CT volume.")
        card = classifier_card(model)
        _check_options(lungsMethod, device)
        threshold = _checked_threshold(threshold)
        ct = image_from_volume(volumeNode)
        lungs = None if lungSegmentationNode is None else lungs_from_segmentation(lungSegmentationNode, volumeNode, ct)
        out = Path(outputFolder) if outputFolder else Path(tempfile.mkdtemp(prefix="covidct-detect-", dir=_temporary()))
        workdir = Path(tempfile.mkdtemp(prefix="covidct-detect-input-", dir=_temporary()))
        safe = re.sub(r"[/\\]+", "_", volumeNode.GetName())  # "CT CHEST W/O" must not become a path
        case = case_names([Path(f"{safe}.nrrd")])[0]  # the volume's name, as a safe file name
        try:
            ct_path = workdir / f"{case}.nrrd"
            sitk.WriteImage(ct, str(ct_path))
            args = ["detect", ct_path, "--out", out, "--model", card.path, "--device", device]
            if lungs is not None:
                sitk.WriteImage(lungs, str(workdir / "lungs.nrrd"))
                args += ["--lungs", workdir / "lungs.nrrd"]
            else:
                args += lungs_method_args(lungsMethod)
            if threshold is not None:
                args += ["--threshold", repr(threshold)]
            if not heatmap:
                args.append("--no-heatmap")
            process = start_covidct(args)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return DetectionJob(self, volumeNode, process, workdir, out / case, lungs is not None, self.heatMapOpacity)

    def detect(
        self,
        volumeNode,
        model=None,
        lungSegmentationNode=None,
        lungsMethod: str = LUNGS_METHODS[0],
        device: str = "auto",
        threshold: float | None = None,
        heatmap: bool = True,
        outputFolder=None,
        onEvent: Callable[[dict], None] | None = None,
        show: bool = True,
    ) -> DetectionResult:
        """Detect COVID-19 on ``volumeNode`` and return the :class:`DetectionResult` (blocks until done).

        For ``Slicer --python-script`` use; arguments as :meth:`startDetection`, ``onEvent`` receives the
        progress events. Raises :class:`covidct.errors.CovidCTError` with one sentence on failure.
        """
        job = self.startDetection(
            volumeNode, model, lungSegmentationNode, lungsMethod, device, threshold, heatmap, outputFolder
        )
        _wait(job, onEvent)
        return job.finish(show)

    def appendResultRow(self, result: DetectionResult):
        """Add ``result`` as a row of the results table node (created on first use, reused after) and return it."""
        scene = result.volumeNode.GetScene()
        if self.resultsTableNode is None or self.resultsTableNode.GetScene() is not scene:
            self.resultsTableNode = scene.AddNewNodeByClass(
                "vtkMRMLTableNode", scene.GenerateUniqueName(RESULTS_TABLE_NAME)
            )
        row = {
            "Volume": result.volumeNode.GetName(),
            "Model": result.model,
            "Probability": result.probability,
            "Label": result.label,
            "Threshold": result.threshold,
            "Time (s)": round(result.seconds, 2),
        }
        return append_result_row(row, self.resultsTableNode)

    def setHeatMapOpacity(self, opacity: float) -> None:
        """Foreground opacity 0..1 of the slice views whose foreground is a CovidCT heat map (another
        foreground, e.g. the user's own PET, keeps its opacity); later results use it too."""
        self.heatMapOpacity = float(opacity)
        scene = slicer.mrmlScene
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
            foreground = scene.GetNodeByID(composite.GetForegroundVolumeID() or "")
            if foreground is not None and foreground.GetAttribute(HEAT_MAP_ATTRIBUTE):
                composite.SetForegroundOpacity(self.heatMapOpacity)

    # -- batch -----------------------------------------------------------------------------------
    def startBatch(
        self,
        inputPath,
        outputFolder,
        model=None,
        lungsMethod: str = LUNGS_METHODS[0],
        device: str = "auto",
        threshold: float | None = None,
        heatmap: bool = True,
        scene=None,
    ) -> BatchJob:
        """Start ``covidct detect`` on every CT of ``inputPath`` (a CT file, a DICOM folder, or a folder of
        CT files and DICOM sub-folders) with outputs in ``outputFolder``; returns the job, whose
        ``finish()`` gives the results table node (added to ``scene``, default ``slicer.mrmlScene``)."""
        card = classifier_card(model)
        if not inputPath or not Path(inputPath).exists():
            raise UsageError(f"The batch input '{inputPath}' does not exist; choose a folder of CTs or DICOM series.")
        if not outputFolder:
            raise UsageError("Choose an output folder for the batch results.")
        _check_options(lungsMethod, device)
        threshold = _checked_threshold(threshold)
        args = [
            "detect",
            inputPath,
            "--out",
            outputFolder,
            "--model",
            card.path,
            "--device",
            device,
            *lungs_method_args(lungsMethod),
        ]
        if threshold is not None:
            args += ["--threshold", repr(threshold)]
        if not heatmap:
            args.append("--no-heatmap")
        return BatchJob(
            start_covidct(args), Path(inputPath), Path(outputFolder), scene if scene is not None else slicer.mrmlScene
        )

    def runBatch(
        self,
        inputPath,
        outputFolder,
        model=None,
        lungsMethod: str = LUNGS_METHODS[0],
        device: str = "auto",
        threshold: float | None = None,
        heatmap: bool = True,
        onEvent: Callable[[dict], None] | None = None,
        scene=None,
    ):
        """Run :meth:`startBatch` to the end and return the results table node (blocks until done)."""
        job = self.startBatch(inputPath, outputFolder, model, lungsMethod, device, threshold, heatmap, scene)
        _wait(job, onEvent)
        return job.finish()


def _check_options(lungs_method: str, device: str) -> None:
    if lungs_method not in LUNGS_METHODS:
        raise UsageError(
            f"Unknown lung segmentation method '{lungs_method}'; choose one of {', '.join(LUNGS_METHODS)}."
        )
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"Unknown device '{device}'; choose one of {', '.join(DEVICES)} or cuda:N.")


def _temporary() -> str | None:
    """Slicer's temporary folder (Application Settings → Temporary directory, where Slicer users look
    for and clear such files), or None for the system's outside Slicer."""
    app = getattr(slicer, "app", None)
    path = getattr(app, "temporaryPath", None) if app is not None else None
    return path or None


def _checked_threshold(threshold):
    """None, or ``threshold`` checked by :func:`covidct.detection.check_threshold` (one-sentence UsageError)."""
    if threshold is None:
        return None
    from covidct.detection import check_threshold

    return check_threshold(threshold)


def _wait(job: CommandJob, on_event) -> None:
    """Block until ``job`` ends; an interrupt (e.g. Ctrl-C) cancels it instead of leaving it running."""
    try:
        job.wait(on_event)
    except BaseException:
        job.cancel()
        raise
