"""CovidCTDetect: COVID-19 detection on chest CT (DeCoVNet, COVID-19Net) with heat maps, batch runs, prognosis.

This folder also holds the core library ``covidct`` and the Slicer bridge ``CovidCTDetectLib``
shared by the three modules of the extension. The panel is thin: the work is done by the Qt-free
logic of :mod:`CovidCTDetectLib.detect_logic` and :mod:`CovidCTDetectLib.prognosis_logic`, in
background ``covidct`` processes polled by a QTimer.

From a script (``Slicer --no-main-window --python-script``)::

    import slicer, CovidCTDetect
    logic = CovidCTDetect.CovidCTDetectLogic()
    result = logic.detect(slicer.util.loadVolume("chest.nrrd"), model="decovnet", device="cpu")
    print(result.probability, result.label, result.montagePath)

See ``Resources/Examples/batch_detect.py`` for a folder of CTs.
"""

import logging
import math
import time
import traceback

import ctk
import numpy as np
import qt
import SimpleITK as sitk
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from covidct.errors import CovidCTError
from covidct.geometry import ijk_to_ras_matrix
from CovidCTDetectLib import about, dependencies, testdata
from CovidCTDetectLib.detect_logic import (
    DEFAULT_OPACITY,
    DEVICES,
    LUNGS_METHODS,
    SUSPICIOUS_SEGMENTS,
    DetectionLogic,
    classifier_models,
)
from CovidCTDetectLib.heatmaps import HEAT_COLOR_NODE_IDS, heat_map_volume, show_heat_map
from CovidCTDetectLib.lung_segmentation_logic import reset_3d_views
from CovidCTDetectLib.prognosis_logic import PrognosisLogic, clinical_fields, load_model
from CovidCTDetectLib.published_logic import DEFAULT_NAMES, PAPERS, import_published, licence
from CovidCTDetectLib.segmentations import SegmentSpec, labelmap_array_from_segmentation, segmentation_from_labelmap
from CovidCTDetectLib.volumes import image_from_volume, volume_from_image


class CovidCTDetect(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CovidCT Detect"
        self.parent.categories = [about.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = list(about.CONTRIBUTORS)
        self.parent.helpText = about.help_text(
            "COVID-19 detection on chest CT: the probability of COVID-19 from DeCoVNet or COVID-19Net, a HiResCAM heat "
            "map of the lung areas that drove it (shown over the CT) and the suspicious region as a segment; a results "
            "table with one row per run; batch runs over a folder of CTs; and, with a fitted Cox model, the patient's "
            "prognostic hazard and risk group and the model's Kaplan-Meier curves. Long work runs in a background "
            "process and can be cancelled."
        )
        self.parent.acknowledgementText = about.ACKNOWLEDGEMENT
        slicer.app.connect("startupCompleted()", testdata.register_sample_data)


class CovidCTDetectWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Panel: detection inputs and results, batch section, prognosis section. One QTimer polls the running jobs."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.jobs = {}  # kind ("detect", "batch", "features") -> (job, progress bar, function called when done)
        self.models = []  # model cards in the order of modelComboBox
        self.featureModels = []  # COVID-19Net cards in the order of featureModelComboBox
        self.features = {}  # (volume node ID, model name) -> 64-d deep feature
        self.clinicalEditors = {}  # clinical covariate -> its editor widget
        self.clinicalForm = None
        self.resultsTableShown = False  # the layout is switched to one with a table view once per session
        self._parameterNode = None
        self._updatingGUIFromParameterNode = False

    def onReload(self):
        about.forget_libraries()
        super().onReload()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidCTDetect.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CovidCTDetectLogic()

        self.ui.lungsMethodComboBox.addItems(list(LUNGS_METHODS))
        self.ui.deviceComboBox.addItems(list(DEVICES))
        self.ui.opacitySlider.value = DEFAULT_OPACITY
        for bar in (self.ui.progressBar, self.ui.batchProgressBar, self.ui.prognosisProgressBar):
            bar.hide()
        self.fillModelComboBoxes()
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(200)
        self.pollTimer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.lungSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        for comboBox in (self.ui.lungsMethodComboBox, self.ui.deviceComboBox):
            comboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.thresholdSpinBox.connect("valueChanged(double)", self.updateParameterNodeFromGUI)
        self.ui.opacitySlider.connect("valueChanged(double)", self.logic.setHeatMapOpacity)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", lambda: self.cancelJob("detect", self.ui.statusLabel))
        self.ui.batchInputPathLineEdit.connect("currentPathChanged(QString)", self.updateButtons)
        self.ui.batchOutputPathLineEdit.connect("currentPathChanged(QString)", self.updateButtons)
        self.ui.batchRunButton.connect("clicked(bool)", self.onBatchRunButton)
        self.ui.batchCancelButton.connect("clicked(bool)", lambda: self.cancelJob("batch", self.ui.batchStatusLabel))
        self.ui.prognosisModelPathLineEdit.connect("currentPathChanged(QString)", self.onPrognosisModelChanged)
        self.ui.prognosisComputeButton.connect("clicked(bool)", self.onPrognosisComputeButton)
        self.ui.prognosisCancelButton.connect(
            "clicked(bool)", lambda: self.cancelJob("features", self.ui.prognosisResultLabel)
        )
        self.ui.cohortButton.connect("clicked(bool)", self.onCohortButton)
        self.setupPublishedModels()
        self.initializeParameterNode()
        self.onPrognosisModelChanged()

    def cleanup(self):
        for kind in list(self.jobs):
            self.cancelJob(kind)
        self.removeObservers()

    def enter(self):
        self.fillModelComboBoxes()  # models saved by CovidCT Train (or imported) since the panel was built
        self.initializeParameterNode()
        self.updateGUIFromParameterNode()

    def exit(self):
        self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        for kind in list(self.jobs):
            self.cancelJob(kind)
        self.features.clear()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- models ----------------------------------------------------------------------------------
    def fillModelComboBoxes(self):
        """The installed classifiers (detection) and COVID-19Nets (prognosis features), from the model catalogue;
        the chosen models stay chosen when they are still installed."""
        chosen = [card.name if card else None for card in (self.selectedModel(), self.selectedFeatureModel())]
        try:
            self.models = classifier_models()
        except CovidCTError as error:  # e.g. a damaged model card in the user's models folder
            self.models = []
            self.ui.statusLabel.text = str(error)
        self.featureModels = [card for card in self.models if card.architecture == "covid19net"]
        for comboBox, cards in (
            (self.ui.modelComboBox, self.models),
            (self.ui.featureModelComboBox, self.featureModels),
        ):
            wasBlocked = comboBox.blockSignals(True)
            comboBox.clear()
            for card in cards:
                comboBox.addItem(f"{card.name} ({card.architecture})")
                comboBox.setItemData(comboBox.count - 1, card.description or card.training_data, qt.Qt.ToolTipRole)
            names = [card.name for card in cards]
            previous = chosen[0] if comboBox is self.ui.modelComboBox else chosen[1]
            if previous in names:
                comboBox.setCurrentIndex(names.index(previous))
            comboBox.blockSignals(wasBlocked)
        if not self.models:
            self.ui.modelComboBox.addItem("no classifier installed")
        if chosen[0] is None or chosen[0] not in [card.name for card in self.models]:
            self.onModelChanged()  # a new choice brings its card's threshold

    def selectedModel(self):
        index = self.ui.modelComboBox.currentIndex
        return self.models[index] if 0 <= index < len(self.models) else None

    def selectedFeatureModel(self):
        index = self.ui.featureModelComboBox.currentIndex
        return self.featureModels[index] if 0 <= index < len(self.featureModels) else None

    def onModelChanged(self, index=None):
        """A newly chosen model brings its card's operating threshold."""
        card = self.selectedModel()
        if card is not None:
            self.ui.thresholdSpinBox.value = card.threshold
        self.updateParameterNodeFromGUI()

    # -- parameter node --------------------------------------------------------------------------
    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.GetNodeReference("InputVolume"):
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.SetNodeReferenceID("InputVolume", firstVolumeNode.GetID())

    def setParameterNode(self, inputParameterNode):
        if inputParameterNode:
            self.logic.setDefaultParameters(inputParameterNode)
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode is not None:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        self._updatingGUIFromParameterNode = True
        parameters = self._parameterNode
        self.ui.inputVolumeSelector.setCurrentNode(parameters.GetNodeReference("InputVolume"))
        self.ui.lungSegmentationSelector.setCurrentNode(parameters.GetNodeReference("LungSegmentation"))
        self.ui.lungsMethodComboBox.setCurrentIndex(
            self.ui.lungsMethodComboBox.findText(parameters.GetParameter("LungsMethod"))
        )
        self.ui.deviceComboBox.setCurrentIndex(self.ui.deviceComboBox.findText(parameters.GetParameter("Device")))
        modelNames = [card.name for card in self.models]
        if parameters.GetParameter("Model") in modelNames:
            self.ui.modelComboBox.setCurrentIndex(modelNames.index(parameters.GetParameter("Model")))
        if parameters.GetParameter("Threshold"):
            self.ui.thresholdSpinBox.value = float(parameters.GetParameter("Threshold"))
        self._updatingGUIFromParameterNode = False
        self.updateButtons()

    def updateParameterNodeFromGUI(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        wasModified = self._parameterNode.StartModify()
        self._parameterNode.SetNodeReferenceID("InputVolume", self.ui.inputVolumeSelector.currentNodeID)
        self._parameterNode.SetNodeReferenceID("LungSegmentation", self.ui.lungSegmentationSelector.currentNodeID)
        self._parameterNode.SetParameter("LungsMethod", self.ui.lungsMethodComboBox.currentText)
        self._parameterNode.SetParameter("Device", self.ui.deviceComboBox.currentText)
        card = self.selectedModel()
        self._parameterNode.SetParameter("Model", card.name if card else "")
        self._parameterNode.SetParameter("Threshold", str(self.ui.thresholdSpinBox.value))
        self._parameterNode.EndModify(wasModified)
        self.updateButtons()

    # -- state -----------------------------------------------------------------------------------
    def updateButtons(self, *args):
        hasInput = self.ui.inputVolumeSelector.currentNode() is not None
        hasModel = self.selectedModel() is not None
        detecting, batching, featuring = ("detect" in self.jobs), ("batch" in self.jobs), ("features" in self.jobs)
        self.ui.applyButton.enabled = hasInput and hasModel and not detecting
        self.ui.applyButton.toolTip = (
            "Detect COVID-19 on the input CT in the background."
            if hasInput and hasModel
            else "Select an input CT volume."
            if hasModel
            else "Install a COVID-19 classifier."
        )
        self.ui.cancelButton.enabled = detecting
        self.ui.inputsCollapsibleButton.enabled = not (detecting or batching)
        self.ui.progressBar.visible = detecting
        batchReady = bool(self.ui.batchInputPathLineEdit.currentPath and self.ui.batchOutputPathLineEdit.currentPath)
        self.ui.batchRunButton.enabled = batchReady and hasModel and not batching
        self.ui.batchCancelButton.enabled = batching
        self.ui.batchProgressBar.visible = batching
        hasPrognosisModel = self.clinicalForm is not None
        self.ui.prognosisComputeButton.enabled = (
            hasInput and hasPrognosisModel and self.selectedFeatureModel() is not None and not featuring
        )
        self.ui.prognosisCancelButton.enabled = featuring
        self.ui.prognosisProgressBar.visible = featuring
        self.ui.cohortButton.enabled = hasPrognosisModel

    # -- jobs ------------------------------------------------------------------------------------
    def startJob(self, kind, job, progressBar, onDone):
        """Poll ``job`` until it is done, showing its progress on ``progressBar``; then call ``onDone(job)``."""
        self.jobs[kind] = (job, progressBar, onDone)
        progressBar.value = 0
        self.updateButtons()
        self.pollTimer.start()

    def onPoll(self):
        for kind, (job, progressBar, onDone) in list(self.jobs.items()):
            job.poll()
            progressBar.value = int(100 * job.fraction)
            progressBar.format = f"{job.stage}: %p%"
            if not job.done:
                continue
            del self.jobs[kind]
            try:
                onDone(job)
            except CovidCTError as error:
                self.showError(error, details=jobLog(job))
            except Exception as error:  # a bug or an unexpected failure: say so, with the details
                self.showError(
                    f"Unexpected error ({type(error).__name__}: {error}); see the details.",
                    details=traceback.format_exc() + jobLog(job),
                )
            finally:
                self.updateButtons()
        if not self.jobs:
            self.pollTimer.stop()

    def cancelJob(self, kind, statusLabel=None):
        entry = self.jobs.pop(kind, None)
        if entry is None:
            return
        entry[0].cancel()
        if statusLabel is not None:
            statusLabel.text = "Cancelled."
        if not self.jobs:
            self.pollTimer.stop()
        self.updateButtons()

    def showError(self, error, title="CovidCT Detect", details=""):
        """One error dialog: the sentence, and ``details`` (the background process's log) behind "Show Details"."""
        logging.error(str(error))
        slicer.util.errorDisplay(str(error), windowTitle=title, detailedText=details or None)

    def ready(self, statusLabel):
        """True when the required Python packages are installed (after asking the user, if needed)."""
        if dependencies.ensure_requirements():
            return True
        statusLabel.text = "The required Python packages are not installed."
        return False

    # -- detection -------------------------------------------------------------------------------
    def onApplyButton(self):
        if not self.ready(self.ui.statusLabel):
            return
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        try:
            job = self.logic.startDetection(
                volumeNode,
                self.selectedModel(),
                self.ui.lungSegmentationSelector.currentNode(),
                self.ui.lungsMethodComboBox.currentText,
                self.ui.deviceComboBox.currentText,
                self.ui.thresholdSpinBox.value,
                self.ui.heatmapCheckBox.checked,
            )
        except CovidCTError as error:
            self.showError(error)
            return
        self.ui.statusLabel.text = f"Detecting COVID-19 on '{volumeNode.GetName()}'..."
        self.startJob("detect", job, self.ui.progressBar, self.onDetectionDone)

    def onDetectionDone(self, job):
        try:
            result = job.finish()
        except CovidCTError as error:
            self.ui.statusLabel.text = str(error)
            raise
        reset_3d_views()
        if result.features is not None:
            self.features[(result.volumeNode.GetID(), result.model)] = result.features
        self.ui.statusLabel.text = f"Done in {result.seconds:.1f} s."
        lines = [
            f"<b>P(COVID-19) = {result.probability:.3f}</b>: <b>{result.label}</b> at threshold "
            f"{result.threshold:g} ({result.model}; research use only, not clinically validated)."
        ]
        lines += [f"<b>Warning:</b> {warning}" for warning in result.warnings]
        if result.heatMapNode is not None:
            regions = result.suspiciousRegions
            lines.append(
                f"Suspicious region: {regions.get('regions', 0)} region(s), {regions.get('volume_ml', 0):.1f} mL."
                if result.suspiciousSegmentationNode is not None
                else "No suspicious region."
            )
            lines.append(
                "Heat map: absolute scale, the same for every CT."
                if result.heatMapScaling == "absolute"
                else "Heat map: relative, 1 = this CT's maximum (a negative CT shows bright heat too)."
            )
        if result.montagePath is not None:
            lines.append(
                f'<a href="{qt.QUrl.fromLocalFile(str(result.montagePath)).toString()}">Montage</a> · '
                f'<a href="{qt.QUrl.fromLocalFile(str(result.outputFolder)).toString()}">all outputs</a>'
            )
        self.ui.resultLabel.text = "<br>".join(lines)
        self.logic.setHeatMapOpacity(self.ui.opacitySlider.value)
        showTable(result.tableNode, switchLayout=not self.resultsTableShown)  # the user's layout is kept later
        self.resultsTableShown = True

    # -- batch -----------------------------------------------------------------------------------
    def onBatchRunButton(self):
        if not self.ready(self.ui.batchStatusLabel):
            return
        try:
            job = self.logic.startBatch(
                self.ui.batchInputPathLineEdit.currentPath,
                self.ui.batchOutputPathLineEdit.currentPath,
                self.selectedModel(),
                self.ui.lungsMethodComboBox.currentText,
                self.ui.deviceComboBox.currentText,
                self.ui.thresholdSpinBox.value,
                self.ui.heatmapCheckBox.checked,
            )
        except CovidCTError as error:
            self.showError(error)
            return
        self.ui.batchStatusLabel.text = "Running the batch..."
        self.startJob("batch", job, self.ui.batchProgressBar, self.onBatchDone)

    def onBatchDone(self, job):
        try:
            tableNode = job.finish()
        except CovidCTError as error:
            self.ui.batchStatusLabel.text = str(error)
            raise
        table = tableNode.GetTable()
        errors = table.GetColumnByName("error")
        failed = sum(1 for row in range(table.GetNumberOfRows()) if errors is not None and errors.GetValue(row))
        csvUrl = qt.QUrl.fromLocalFile(str(job.output_folder / "results.csv")).toString()
        self.ui.batchStatusLabel.text = (
            f"{table.GetNumberOfRows() - failed} of {table.GetNumberOfRows()} CTs done "
            f"in {job.elapsed:.0f} s; table '{tableNode.GetName()}', "
            f'<a href="{csvUrl}">results.csv</a>.'
        )
        showTable(tableNode)

    # -- published models --------------------------------------------------------------------
    def setupPublishedModels(self):
        """The "Published models" section: the authors' released files (picked by the user) into the catalogue."""
        section = ctk.ctkCollapsibleButton()
        section.text = "Published models"
        section.collapsed = True
        self.layout.addWidget(section)
        form = qt.QFormLayout(section)
        self.paperComboBox = qt.QComboBox()
        for paper, (label, _) in PAPERS.items():
            self.paperComboBox.addItem(label, paper)
        form.addRow("Paper:", self.paperComboBox)
        self.publishedClassifierPathLineEdit = ctk.ctkPathLineEdit()
        self.publishedClassifierPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.publishedClassifierPathLineEdit.settingKey = "CovidCTDetect/PublishedClassifier"
        form.addRow("Classifier file:", self.publishedClassifierPathLineEdit)
        self.publishedLungsPathLineEdit = ctk.ctkPathLineEdit()
        self.publishedLungsPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.publishedLungsPathLineEdit.settingKey = "CovidCTDetect/PublishedLungs"
        form.addRow("Lung UNet file:", self.publishedLungsPathLineEdit)
        self.publishedNameLineEdit = qt.QLineEdit()
        form.addRow("Name:", self.publishedNameLineEdit)
        self.publishedLicenceLabel = qt.QLabel()
        self.publishedLicenceLabel.wordWrap = True
        form.addRow("Licence:", self.publishedLicenceLabel)
        self.addPublishedButton = qt.QPushButton("Add a published model...")
        self.addPublishedButton.toolTip = "Import the downloaded files as a model of this list (nothing is downloaded)."
        form.addRow(self.addPublishedButton)
        self.paperComboBox.connect("currentIndexChanged(int)", self.onPaperChanged)
        self.addPublishedButton.connect("clicked(bool)", self.onAddPublishedModel)
        self.onPaperChanged()

    def onPaperChanged(self, index=None):
        paper = self.paperComboBox.currentData
        self.publishedLungsPathLineEdit.enabled = PAPERS[paper][1]
        self.publishedNameLineEdit.placeholderText = DEFAULT_NAMES[paper]
        self.publishedLicenceLabel.text = licence(paper)

    def onAddPublishedModel(self):
        paper = self.paperComboBox.currentData
        classifier = self.publishedClassifierPathLineEdit.currentPath
        lungs = self.publishedLungsPathLineEdit.currentPath if PAPERS[paper][1] else None
        if not classifier or (PAPERS[paper][1] and not lungs):
            self.showError("Pick the downloaded file(s) first.")
            return
        if not slicer.util.confirmOkCancelDisplay(
            f"Licence of these weights:\n\n{licence(paper)}\n\nImport them under this licence?",
            windowTitle="Published model licence",
        ):
            return
        if not self.ready(self.ui.statusLabel):
            return
        try:
            with slicer.util.WaitCursor():
                name = import_published(paper, classifier, lungs, self.publishedNameLineEdit.text.strip() or None)
        except CovidCTError as error:
            self.showError(error)
            return
        self.fillModelComboBoxes()
        names = [card.name for card in self.models]
        if name in names:
            self.ui.modelComboBox.setCurrentIndex(names.index(name))
        self.ui.statusLabel.text = f"Added the published model '{name}'."

    # -- prognosis -------------------------------------------------------------------------------
    def onPrognosisModelChanged(self, path=None):
        """Rebuild the clinical-values form from the chosen prognosis model's clinical covariates."""
        if self.clinicalForm is not None:
            self.clinicalForm.setParent(None)
            self.clinicalForm.deleteLater()
        self.clinicalForm, self.clinicalEditors = None, {}
        folder = self.ui.prognosisModelPathLineEdit.currentPath
        self.ui.prognosisResultLabel.text = ""
        if folder and not dependencies.missing_requirements():
            try:
                model = load_model(folder)
            except CovidCTError as error:
                self.ui.prognosisResultLabel.text = str(error)
            else:
                self.clinicalForm = qt.QWidget()
                formLayout = qt.QFormLayout(self.clinicalForm)
                for field in clinical_fields(model):
                    formLayout.addRow(f"{field.name}:", self.clinicalEditor(field))
                if not self.clinicalEditors:
                    formLayout.addRow(qt.QLabel("The model uses deep features only."))
                self.ui.clinicalGroupBox.layout().addWidget(self.clinicalForm)
                self.ui.prognosisResultLabel.text = (
                    f"Model: hazard of '{model.event_column}' over '{model.time_column}'"
                    f"; {len(model.features)} covariate(s) selected."
                )
        if folder and dependencies.missing_requirements():
            self.ui.prognosisResultLabel.text = (
                "The Python packages the prognosis model needs are not installed yet: run a detection (Apply) to "
                "install them, then choose the model folder again."
            )
        self.ui.clinicalHintLabel.visible = self.clinicalForm is None
        self.updateButtons()

    def clinicalEditor(self, field):
        """A spin box (numeric: training mean as the start value) or a combo box (categorical: training levels)."""
        if field.kind == "categorical":
            editor = qt.QComboBox()
            editor.addItems(list(field.levels))
            editor.setCurrentIndex(list(field.levels).index(field.default))
        else:
            editor = qt.QDoubleSpinBox()
            editor.decimals = 2
            editor.setRange(-1e9, 1e9)
            editor.value = field.default
            editor.toolTip = f"Training mean {field.default:.4g}, SD {field.sd:.4g}."
        self.clinicalEditors[field.name] = editor
        return editor

    def clinicalValues(self):
        return {
            name: editor.currentText if isinstance(editor, qt.QComboBox) else editor.value
            for name, editor in self.clinicalEditors.items()
        }

    def onPrognosisComputeButton(self):
        if not self.ready(self.ui.prognosisResultLabel):
            return
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        card = self.selectedFeatureModel()
        features = self.features.get((volumeNode.GetID(), card.name))
        if features is not None:
            self.showPrognosis(features)
            return
        try:
            job = self.logic.prognosis.startFeatures(
                volumeNode,
                card,
                self.ui.lungSegmentationSelector.currentNode(),
                self.ui.lungsMethodComboBox.currentText,
                self.ui.deviceComboBox.currentText,
            )
        except CovidCTError as error:
            self.showError(error)
            return
        self.ui.prognosisResultLabel.text = f"Computing the deep feature of '{volumeNode.GetName()}' ({card.name})..."
        self.startJob(
            "features", job, self.ui.prognosisProgressBar, lambda job: self.onFeaturesDone(job, volumeNode, card)
        )

    def onFeaturesDone(self, job, volumeNode, card):
        features = self.logic.prognosis.featuresFromJob(job)
        self.features[(volumeNode.GetID(), card.name)] = features
        self.showPrognosis(features)

    def showPrognosis(self, features):
        try:
            result = self.logic.prognosis.predict(
                self.ui.prognosisModelPathLineEdit.currentPath, self.clinicalValues(), features
            )
        except CovidCTError as error:
            self.ui.prognosisResultLabel.text = str(error)
            self.showError(error)
            return
        side = "above" if result.highHazard else "at or below"
        median = "not reached" if math.isinf(result.medianTime) else f"{result.medianTime:g}"
        note = (
            f" (for the favourable event '{result.eventColumn}', a low hazard means a long wait: high risk)"
            if result.eventIsFavourable
            else ""
        )
        self.ui.prognosisResultLabel.text = (
            f"<b>{result.riskGroup}</b>{note}: hazard {result.hazard:.3g}, {side} the training median "
            f"{result.cutoff:.3g}; predicted median '{result.timeColumn}' to '{result.eventColumn}': {median}."
        )

    def onCohortButton(self):
        if not self.ready(self.ui.cohortLabel):
            return
        try:
            view = self.logic.prognosis.showCohort(self.ui.prognosisModelPathLineEdit.currentPath)
        except CovidCTError as error:
            self.showError(error)
            return
        p = "n/a" if view.logrankP is None else f"{view.logrankP:.2g}"
        self.ui.cohortLabel.text = (
            f"Training set: concordance {view.concordance:.3f}, log-rank p = {p}; chart "
            f"'{view.chartNode.GetName()}', table '{view.hazardRatioTableNode.GetName()}'."
        )
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:  # a layout with both a plot and a table view: curves and hazard ratios
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        slicer.modules.plots.logic().ShowChartInLayout(view.chartNode)
        showTable(view.hazardRatioTableNode, switchLayout=False)


def jobLog(job) -> str:
    """The last lines the background process wrote to stderr (its log), for an error's details."""
    process = getattr(job, "process", None)
    lines = list(getattr(process, "stderr_tail", []) or [])
    return ("\n\nLog of the background process:\n" + "\n".join(lines)) if lines else ""


def showTable(tableNode, switchLayout=True):
    """Show ``tableNode`` in the table view of the layout (switching to a layout with a table view if asked)."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:  # --no-main-window
        return
    if switchLayout:
        layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
    appLogic = slicer.app.applicationLogic()
    appLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
    appLogic.PropagateTableSelection()


class CovidCTDetectLogic(ScriptedLoadableModuleLogic, DetectionLogic):
    """``detect(volumeNode, ...)`` (blocking, for ``Slicer --python-script``), ``startDetection(...)`` (background
    job), ``runBatch``/``startBatch`` and ``setHeatMapOpacity`` come from :class:`DetectionLogic`;
    ``prognosis`` is a :class:`PrognosisLogic` (deep features, hazard and risk group, cohort view)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        DetectionLogic.__init__(self)
        self.prognosis = PrognosisLogic(self)

    def setDefaultParameters(self, parameterNode):
        if not parameterNode.GetParameter("LungsMethod"):
            parameterNode.SetParameter("LungsMethod", LUNGS_METHODS[0])  # auto: the model's own
        if not parameterNode.GetParameter("Device"):
            parameterNode.SetParameter("Device", "auto")


class CovidCTDetectTest(ScriptedLoadableModuleTest):
    """The bridge inside the application, then the whole single-CT flow on the small real CIP CT with the first
    installed classifier (skipped, with a message, when none is installed)."""

    def setUp(self):
        dependencies.skip_test_without_requirements(self)
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (
            self.test_slicer_reader_and_simpleitk_agree,
            self.test_heat_map_over_the_ct,
            self.test_detection_flow,
            self.test_widget_runs_in_background_and_cancels,
        ):
            self.setUp()
            test()

    def firstClassifier(self):
        """The first installed COVID-19 classifier's card, or None (after saying that the flow is skipped)."""
        models = classifier_models()
        if not models:
            self.delayDisplay(
                "Detection flow SKIPPED: no COVID-19 classifier weights are installed "
                "(covidct/weights or the user models folder)."
            )
        return models[0] if models else None

    def loadCT(self):
        return slicer.util.loadVolume(str(testdata.ct_path()))

    def lungSegmentation(self, volumeNode):
        """The CIP whole-lung mask as a segmentation (source checkout), or None (installed extension: the lungs
        are then segmented with the threshold method)."""
        maskPath = testdata.lung_mask_path()
        if maskPath is None:
            return None
        spec = SegmentSpec(1, "lungs", "Lungs", (0.77, 0.65, 0.57), "")
        return segmentation_from_labelmap(sitk.ReadImage(str(maskPath)), (spec,), "CIP lungs", volumeNode.GetScene())

    def test_slicer_reader_and_simpleitk_agree(self):
        self.delayDisplay("Volume node <-> SimpleITK on a CT read by Slicer")
        path = testdata.ct_path()
        volumeNode = slicer.util.loadVolume(str(path))
        fromSlicer = image_from_volume(volumeNode)
        fromFile = sitk.ReadImage(str(path))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(fromSlicer), sitk.GetArrayViewFromImage(fromFile))
        np.testing.assert_allclose(fromSlicer.GetOrigin(), fromFile.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(fromSlicer.GetSpacing(), fromFile.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(fromSlicer.GetDirection(), fromFile.GetDirection(), atol=1e-6)
        copyNode = volume_from_image(fromFile, name="SimpleITK copy")
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        np.testing.assert_allclose(ijk_to_ras_matrix(fromFile), slicer.util.arrayFromVTKMatrix(matrix), atol=1e-4)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(copyNode), slicer.util.arrayFromVolume(volumeNode))
        self.delayDisplay("Bridge test passed")

    def test_heat_map_over_the_ct(self):
        self.delayDisplay("Heat map volume shown over the CT")
        ctNode = slicer.util.loadVolume(str(testdata.ct_path()))
        ct = image_from_volume(ctNode)
        values = sitk.GetArrayFromImage(ct).astype(np.float32)
        heat = sitk.GetImageFromArray((values - values.min()) / (values.max() - values.min()))
        heat.CopyInformation(ct)
        heatNode = heat_map_volume(heat, name="heat map")
        self.assertEqual(heatNode.GetDisplayNode().GetColorNodeID(), HEAT_COLOR_NODE_IDS[0])
        show_heat_map(ctNode, heatNode, opacity=0.4)
        compositeNodes = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")  # none without slice views
        for compositeNode in compositeNodes:
            self.assertEqual(compositeNode.GetBackgroundVolumeID(), ctNode.GetID())
            self.assertEqual(compositeNode.GetForegroundVolumeID(), heatNode.GetID())
            self.assertAlmostEqual(compositeNode.GetForegroundOpacity(), 0.4)
        self.delayDisplay(f"Heat map test passed ({len(compositeNodes)} slice views checked)")

    def test_detection_flow(self):
        card = self.firstClassifier()
        if card is None:
            return
        self.delayDisplay(f"Detection on the CIP CT with '{card.name}' (CPU)")
        volumeNode = self.loadCT()
        lungs = self.lungSegmentation(volumeNode)
        logic = CovidCTDetectLogic()
        result = logic.detect(volumeNode, card, lungs, lungsMethod="threshold", device="cpu")
        self.assertTrue(0.0 <= result.probability <= 1.0)
        self.assertEqual(result.label, "positive" if result.probability > result.threshold else "negative")
        self.assertEqual(result.threshold, card.threshold)
        table = result.tableNode.GetTable()
        self.assertEqual(table.GetNumberOfRows(), 1)
        self.assertAlmostEqual(table.GetColumnByName("Probability").GetValue(0), result.probability, places=6)
        heatNode = result.heatMapNode
        self.assertEqual(heatNode.GetImageData().GetDimensions(), volumeNode.GetImageData().GetDimensions())
        heatMatrix, ctMatrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        heatNode.GetIJKToRASMatrix(heatMatrix)
        volumeNode.GetIJKToRASMatrix(ctMatrix)
        np.testing.assert_allclose(
            slicer.util.arrayFromVTKMatrix(heatMatrix), slicer.util.arrayFromVTKMatrix(ctMatrix), atol=1e-6
        )
        for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            self.assertEqual(compositeNode.GetForegroundVolumeID(), heatNode.GetID())
            self.assertAlmostEqual(compositeNode.GetForegroundOpacity(), DEFAULT_OPACITY)
        suspicious = sitk.GetArrayFromImage(sitk.ReadImage(str(result.outputFolder / "suspicious.nii.gz")))
        self.assertEqual(result.suspiciousSegmentationNode is not None, bool(suspicious.any()))
        if suspicious.any():
            np.testing.assert_array_equal(
                labelmap_array_from_segmentation(result.suspiciousSegmentationNode, volumeNode, SUSPICIOUS_SEGMENTS),
                suspicious,
            )
        self.assertEqual(result.lungSegmentationNode is None, lungs is not None)
        self.assertTrue(result.montagePath.is_file())
        self.delayDisplay(
            f"Detection flow passed: P(COVID-19) = {result.probability:.3f} ({result.label}), {result.seconds:.1f} s"
        )

    def test_widget_runs_in_background_and_cancels(self):
        card = self.firstClassifier()
        if card is None:
            return
        self.delayDisplay("Running the module panel: Apply, opacity, then Apply and Cancel")
        volumeNode = self.loadCT()
        lungs = self.lungSegmentation(volumeNode)
        widget = slicer.util.getModuleWidget("CovidCTDetect")
        widget.ui.inputVolumeSelector.setCurrentNode(volumeNode)
        widget.ui.lungSegmentationSelector.setCurrentNode(lungs)
        widget.ui.lungsMethodComboBox.setCurrentIndex(widget.ui.lungsMethodComboBox.findText("threshold"))
        widget.ui.deviceComboBox.setCurrentIndex(widget.ui.deviceComboBox.findText("cpu"))
        widget.ui.modelComboBox.setCurrentIndex([c.name for c in widget.models].index(card.name))
        self.assertAlmostEqual(widget.ui.thresholdSpinBox.value, card.threshold, places=3)
        widget.ui.applyButton.click()
        self.assertIn("detect", widget.jobs)
        self.assertTrue(widget.ui.cancelButton.enabled)
        self.assertFalse(widget.ui.applyButton.enabled)
        deadline = time.time() + 300
        while "detect" in widget.jobs and time.time() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertNotIn("detect", widget.jobs, "detection did not finish within 5 minutes")
        self.assertIn("P(COVID-19) =", widget.ui.resultLabel.text)
        self.assertIsNotNone(slicer.mrmlScene.GetFirstNodeByName(f"{volumeNode.GetName()} COVID-19 heat map"))
        widget.ui.opacitySlider.value = 0.8
        for compositeNode in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            self.assertAlmostEqual(compositeNode.GetForegroundOpacity(), 0.8)

        heatMapsBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
        widget.ui.applyButton.click()
        widget.ui.cancelButton.click()
        self.assertNotIn("detect", widget.jobs)
        self.assertTrue(widget.ui.applyButton.enabled)
        self.assertEqual(widget.ui.statusLabel.text, "Cancelled.")
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"), heatMapsBefore)
        self.delayDisplay("Widget test passed")
