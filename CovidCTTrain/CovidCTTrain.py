"""CovidCTTrain: train the lung UNet, DeCoVNet and COVID-19Net on the user's own labelled CTs, evaluate, save.

The panel is thin: everything it does is in :class:`CovidCTDetectLib.train_logic.TrainLogic` (no Qt),
which runs ``covidct synth``, ``devices``, ``train`` and ``evaluate`` as background processes. A
``qt.QTimer`` polls the running job; curves, tables and charts are MRML nodes shown in the plot and
table views. From a script (``Slicer --python-script``)::

    from CovidCTTrain import CovidCTTrainLogic
    logic = CovidCTTrainLogic()
    model = logic.train("cases.csv", "runs/decovnet", "decovnet", epochs=100, device="cuda:0")
    result, nodes = logic.evaluate("test.csv", "runs/decovnet/evaluation", weights=model)
    logic.saveModel(model, "decovnet-hospital-a", threshold=0.4, evaluation=result)
"""

import logging
import os
import shutil
import time
import traceback
from pathlib import Path

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from covidct.errors import CovidCTError
from CovidCTDetectLib import about, dependencies, testdata
from CovidCTDetectLib.process import CommandCancelled
from CovidCTDetectLib.train_logic import MODELS, TrainLogic, can_resume, device_label, training_curves

#: Choices of the "Start from" box besides the installed models: (text, what it means).
SCRATCH, FROM_PATH = "scratch (random weights)", "checkpoint or model folder..."
#: Choices of the "Mixed precision" box and the ``amp`` option they give.
AMP_CHOICES = {"default (on for CUDA)": None, "on": True, "off": False}


class CovidCTTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CovidCT Train"
        self.parent.categories = [about.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = list(about.CONTRIBUTORS)
        self.parent.helpText = about.help_text(
            "Training of the lung UNet, DeCoVNet and COVID-19Net on your own labelled chest CTs (one GPU or the CPU) "
            "in a background process, with live loss and validation curves, Cancel and Resume; evaluation with ROC/PR "
            "curves and the threshold table; saving the model with your operating threshold so that the CovidCT "
            "Detect module offers it."
        )
        self.parent.acknowledgementText = about.ACKNOWLEDGEMENT


class CovidCTTrainWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Panels: dataset, training (progress, Cancel, Resume), evaluation and saving. Polls jobs with a QTimer."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.trainingJob = None
        self.job = None  # the running synth, device probe or evaluation
        self.jobKind = None
        self.manifest = None
        self.previewTable = None
        self.curves = None  # (chart, history table, steps table) of the current run, reused by Resume
        self.evaluation = None
        self.evaluationNodes = None
        self.evaluatedModel = None

    def onReload(self):
        about.forget_libraries()
        super().onReload()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidCTTrain.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CovidCTTrainLogic()

        self.ui.modelComboBox.addItems(list(MODELS))
        for device in ("auto", "cpu", "cuda", "mps"):
            self.ui.deviceComboBox.addItem(device, device)
        self.ui.ampComboBox.addItems(list(AMP_CHOICES))
        self.updateStartFromChoices()
        self.ui.progressBar.hide()
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(250)
        self.pollTimer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.ui.loadDatasetButton.connect("clicked(bool)", self.onLoadDataset)
        self.ui.synthButton.connect("clicked(bool)", self.onGenerateDataset)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.updateStartFromChoices)
        self.ui.initFromComboBox.connect("currentIndexChanged(int)", self.updateButtons)
        self.ui.outputPathLineEdit.connect("currentPathChanged(QString)", self.updateButtons)
        self.ui.detectDevicesButton.connect("clicked(bool)", self.onDetectDevices)
        self.ui.trainButton.connect("clicked(bool)", self.onTrain)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.resumeButton.connect("clicked(bool)", self.onResume)
        self.ui.showCurvesButton.connect("clicked(bool)", lambda: self.curves and showChart(self.curves[0]))
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluate)
        self.ui.showRocButton.connect("clicked(bool)", lambda: showChart(self.evaluationNodes.roc_chart))
        self.ui.showPrButton.connect("clicked(bool)", lambda: showChart(self.evaluationNodes.pr_chart))
        self.ui.thresholdSliderWidget.connect("valueChanged(double)", self.onThresholdChanged)
        self.ui.evalModelPathLineEdit.connect("currentPathChanged(QString)", self.updateButtons)
        self.ui.modelNameLineEdit.connect("textChanged(QString)", self.updateButtons)
        self.ui.saveModelButton.connect("clicked(bool)", self.onSaveModel)
        self.ui.datasetFolderButton.connect("clicked(bool)", lambda: self.browseFolder(self.ui.datasetPathLineEdit))
        self.ui.initFromFolderButton.connect("clicked(bool)", lambda: self.browseFolder(self.ui.initFromPathLineEdit))
        self.updateButtons()

    def browseFolder(self, pathLineEdit):
        """Let the user pick a folder for a path field whose own browse button picks files."""
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), "Choose a folder", pathLineEdit.currentPath
        )
        if folder:
            pathLineEdit.currentPath = folder

    def cleanup(self):
        self.cancelJobs()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        """Closing the scene removes this module's nodes, not its background work: a training (which can run
        for hours) and any other job go on, writing to their folders. A running training's curves close
        with the scene; its ``history.json`` stays, and Resume shows them again."""
        self.previewTable = self.curves = self.evaluation = self.evaluationNodes = None
        if self.trainingJob is not None:
            self.ui.statusLabel.text = "The scene was closed; training goes on in the background (its curves closed)."
        self.updateButtons()

    # -- state -----------------------------------------------------------------------------------
    def updateStartFromChoices(self, *unused):
        model = self.ui.modelComboBox.currentText
        self.ui.initFromComboBox.clear()
        try:
            installed = self.logic.installedModels(model)
        except CovidCTError as error:  # e.g. a damaged model card: still offer scratch and a path
            logging.warning(str(error))
            installed = []
        self.ui.initFromComboBox.addItems([SCRATCH, *installed, FROM_PATH])
        self.ui.pretrainPathLineEdit.enabled = model == "covid19net"
        self.ui.inputCropCheckBox.enabled = model == "decovnet"
        self.updateButtons()

    def updateButtons(self, *unused):
        training = self.trainingJob is not None
        busy = self.job is not None
        out = self.ui.outputPathLineEdit.currentPath
        self.ui.initFromPathLineEdit.visible = self.ui.initFromComboBox.currentText == FROM_PATH
        self.ui.initFromFolderButton.visible = self.ui.initFromPathLineEdit.visible
        self.ui.trainButton.enabled = not training and self.manifest is not None and bool(out)
        self.ui.trainButton.toolTip = (
            "Start training in a background process." if self.manifest is not None else "Load a dataset first."
        )
        self.ui.cancelButton.enabled = training
        self.ui.resumeButton.enabled = not training and bool(out) and can_resume(out)
        self.ui.datasetCollapsibleButton.enabled = not training and not busy
        self.ui.progressBar.visible = training
        self.ui.showCurvesButton.enabled = self.curves is not None
        self.ui.evaluateButton.enabled = not busy
        self.ui.detectDevicesButton.enabled = not busy
        self.ui.synthButton.enabled = not busy
        shown = self.evaluationNodes is not None
        self.ui.showRocButton.enabled = self.ui.showPrButton.enabled = shown
        self.ui.saveModelButton.enabled = bool(
            self.ui.evalModelPathLineEdit.currentPath and self.ui.modelNameLineEdit.text.strip()
        )

    # -- dataset ---------------------------------------------------------------------------------
    def onLoadDataset(self):
        with self.reportErrors("Dataset"):
            self.loadManifest(self.logic.datasetManifest(self.ui.datasetPathLineEdit.currentPath))

    def loadManifest(self, manifest):
        """Preview ``manifest`` in the table view and make it the training set."""
        self.previewTable, summary = self.logic.previewDataset(
            manifest, self.ui.modelComboBox.currentText, self.ui.valFractionSpinBox.value, tableNode=self.previewTable
        )
        self.manifest = Path(manifest)
        self.ui.datasetSummaryLabel.text = f"{self.manifest.name}: {summary.text()}"
        showTable(self.previewTable)
        self.updateButtons()

    def onGenerateDataset(self):
        volumes = list(self.ui.synthVolumesComboBox.checkedNodes())
        out = self.ui.synthOutputPathLineEdit.currentPath
        if not volumes or not out:
            slicer.util.errorDisplay(
                "Check at least one lesion-free CT and choose an output folder.", windowTitle="Synthetic dataset"
            )
            return
        if not dependencies.ensure_requirements():
            return
        with self.reportErrors("Synthetic dataset"):
            self.startJob(
                "synth",
                self.logic.startSynthDataset(
                    volumes, out, self.ui.synthPositivesSpinBox.value, self.ui.synthNegativesSpinBox.value
                ),
                "Generating the synthetic dataset...",
            )

    # -- devices ---------------------------------------------------------------------------------
    def onDetectDevices(self):
        if dependencies.ensure_requirements():
            self.startJob("devices", self.logic.startDeviceProbe(), "Asking PyTorch which devices it sees...")

    def showDevices(self, devices):
        current = self.selectedDevice()
        self.ui.deviceComboBox.clear()
        self.ui.deviceComboBox.addItem("auto: the first GPU, else MPS, else the CPU", "auto")
        for device in devices:
            self.ui.deviceComboBox.addItem(device_label(device), device["device"])
        index = self.ui.deviceComboBox.findData(current)
        self.ui.deviceComboBox.setCurrentIndex(max(index, 0))
        gpus = [d for d in devices if d["device"].startswith("cuda")]
        self.ui.statusLabel.text = (
            f"PyTorch sees {len(gpus)} CUDA GPU(s)."
            if gpus
            else "PyTorch sees no CUDA GPU; training runs on the CPU (or Apple MPS)."
        )

    def selectedDevice(self):
        combo = self.ui.deviceComboBox
        return combo.itemData(combo.currentIndex) or combo.currentText

    # -- training --------------------------------------------------------------------------------
    def trainingOptions(self):
        """The Training panel's settings as ``covidct train`` options."""
        ui = self.ui
        start = ui.initFromComboBox.currentText
        initFrom = (
            None if start == SCRATCH else (ui.initFromPathLineEdit.currentPath or None) if start == FROM_PATH else start
        )
        try:
            lr = float(ui.lrLineEdit.text)
        except ValueError:
            raise CovidCTError(f"The learning rate '{ui.lrLineEdit.text}' is not a number; write e.g. 1e-5.") from None
        model = ui.modelComboBox.currentText
        return dict(
            epochs=ui.epochsSpinBox.value,
            lr=lr,
            batch_size=ui.batchSizeSpinBox.value or None,
            val_fraction=ui.valFractionSpinBox.value,
            augment=ui.augmentCheckBox.checked,
            device=self.selectedDevice(),
            amp=AMP_CHOICES[ui.ampComboBox.currentText],
            init_from=initFrom,
            pretrain_manifest=(ui.pretrainPathLineEdit.currentPath or None) if model == "covid19net" else None,
            input_size=ui.inputSizeLineEdit.text.strip() or None,
            input_crop="lung_box" if model == "decovnet" and ui.inputCropCheckBox.checked else None,
        )

    def onTrain(self):
        if not dependencies.ensure_requirements():
            return
        with self.reportErrors("Training"):
            out = self.ui.outputPathLineEdit.currentPath
            model = self.ui.modelComboBox.currentText
            self.curves = training_curves(Path(out).name, model)
            self.startTraining(
                self.logic.startTraining(self.manifest, out, model, *self.curves, **self.trainingOptions())
            )

    def onResume(self):
        if not dependencies.ensure_requirements():
            return
        with self.reportErrors("Training"):
            out = self.ui.outputPathLineEdit.currentPath
            curves = self.curves if self.curves and self.curves[0].GetScene() is slicer.mrmlScene else (None,) * 3
            options = self.trainingOptions()
            job = self.logic.resumeTraining(
                out, *curves, epochs=options["epochs"], device=options["device"], amp=options["amp"]
            )
            self.curves = (job.chart_node, job.history_table, job.steps_table)
            self.startTraining(job)

    def startTraining(self, job):
        self.trainingJob = job
        showChart(job.chart_node)
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = "Starting..."
        self.updateButtons()
        self.pollTimer.start()

    def onCancel(self):
        job = self.trainingJob
        if job is None:
            return
        job.cancel()
        self.finishTraining(job)

    def finishTraining(self, job):
        self.trainingJob = None
        try:
            modelDir = job.finish()
            self.ui.statusLabel.text = job.status()
            self.ui.evalModelPathLineEdit.currentPath = str(modelDir)
            if not self.ui.testDataPathLineEdit.currentPath and self.manifest is not None:
                self.ui.testDataPathLineEdit.currentPath = str(self.manifest)
        except CommandCancelled as message:
            self.ui.statusLabel.text = str(message)
        except CovidCTError as error:
            self.showError(error, "Training")
        self.updateButtons()

    # -- evaluation and saving -------------------------------------------------------------------
    def onEvaluate(self):
        testData = self.ui.testDataPathLineEdit.currentPath
        model = self.ui.evalModelPathLineEdit.currentPath or None
        if not testData:
            slicer.util.errorDisplay(
                "Choose the test data: a labelled manifest or a predictions file.", windowTitle="Evaluation"
            )
            return
        if not dependencies.ensure_requirements():
            return
        base = (
            Path(model).parent
            if model and Path(model).name == "model"
            else Path(slicer.app.temporaryPath) / "CovidCTTrain"
        )
        with self.reportErrors("Evaluation"):
            job = self.logic.startEvaluation(
                testData, base / "evaluation" / Path(testData).stem, weights=model, device=self.selectedDevice()
            )
            self.evaluatedModel = model
            self.startJob("evaluation", job, f"Evaluating {job.name}...")

    def showEvaluationResult(self, result):
        self.evaluation = result
        self.evaluationNodes = self.logic.showEvaluation(result)
        self.ui.evaluationSummaryLabel.text = f"{result.name}: {result.summary()}"
        showChart(self.evaluationNodes.roc_chart)
        showTable(self.evaluationNodes.threshold_table)
        self.onThresholdChanged(self.ui.thresholdSliderWidget.value)

    def onThresholdChanged(self, threshold):
        if self.evaluationNodes is None:
            return
        at = self.logic.setOperatingThreshold(self.evaluationNodes, self.evaluation, threshold)
        self.ui.operatingPointLabel.text = (
            f"At threshold {threshold:g}: accuracy {at['accuracy']:.3f}, sensitivity {at['sensitivity']:.3f}, "
            f"specificity {at['specificity']:.3f}, PPV {at['ppv']:.3f}, NPV {at['npv']:.3f} "
            f"(TP {at['tp']}, FP {at['fp']}, TN {at['tn']}, FN {at['fn']})."
        )

    def onSaveModel(self):
        model = self.ui.evalModelPathLineEdit.currentPath
        evaluation = self.evaluation if self.evaluation is not None and self.evaluatedModel == model else None
        with self.reportErrors("Save model"):
            card = self.logic.saveModel(
                model, self.ui.modelNameLineEdit.text.strip(), self.ui.thresholdSliderWidget.value, evaluation
            )
            self.ui.evaluationSummaryLabel.text = (
                f"Saved model '{card.name}' (threshold {card.threshold:g}) in "
                f"{card.path.parent}; the CovidCT Detect module lists it."
            )
            self.updateStartFromChoices()

    # -- background jobs -------------------------------------------------------------------------
    def startJob(self, kind, job, text):
        self.job, self.jobKind = job, kind
        self.ui.statusLabel.text = text
        self.updateButtons()
        self.pollTimer.start()

    def onPoll(self):
        job = self.trainingJob
        if job is not None:
            job.poll()
            self.ui.progressBar.value = int(100 * job.progress)
            self.ui.statusLabel.text = job.status()
            if job.done:
                self.finishTraining(job)
        if self.job is not None:
            self.job.poll()
            if self.job.done:
                self.finishJob()
        if self.trainingJob is None and self.job is None:
            self.pollTimer.stop()

    def finishJob(self):
        job, kind = self.job, self.jobKind
        self.job = None
        try:
            result = job.finish()
            if kind == "devices":
                self.showDevices(result)
            elif kind == "synth":
                self.ui.statusLabel.text = f"Synthetic dataset written: {result}"
                self.ui.datasetPathLineEdit.currentPath = str(result)
                self.loadManifest(result)
            else:
                self.ui.statusLabel.text = "Evaluation finished."
                self.showEvaluationResult(result)
        except CovidCTError as error:
            self.showError(error, kind.capitalize())
        self.updateButtons()

    def cancelJobs(self):
        self.pollTimer.stop()
        for job in (self.trainingJob, self.job):
            if job is not None:
                job.cancel()
        self.trainingJob = self.job = None

    # -- messages --------------------------------------------------------------------------------
    def reportErrors(self, title):
        return _ErrorReport(self, title)

    def showError(self, error, title, details=""):
        logging.error(str(error))
        self.ui.statusLabel.text = str(error)
        slicer.util.errorDisplay(str(error), windowTitle=title, detailedText=details or None)


class _ErrorReport:
    """``with widget.reportErrors(title):`` shows a :class:`CovidCTError`'s sentence instead of raising it,
    and any other exception (a bug or an unexpected failure) as such, with its traceback behind "Show
    Details" — a slot's exception would otherwise reach only the Python console."""

    def __init__(self, widget, title):
        self.widget, self.title = widget, title

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if isinstance(error, CovidCTError):
            self.widget.showError(error, self.title)
            return True
        if isinstance(error, Exception):
            details = "".join(traceback.format_exception(kind, error, trace))
            self.widget.showError(
                f"Unexpected error ({kind.__name__}: {error}); see the details.", self.title, details=details
            )
            return True
        return False


def showChart(chartNode):
    """Show ``chartNode`` in a plot view, switching to a layout with one only when the current layout has none
    (Slicer's own rule: ``vtkSlicerPlotsLogic::ShowChartInLayout``)."""
    slicer.modules.plots.logic().ShowChartInLayout(chartNode)


def showTable(tableNode):
    """Show ``tableNode`` in a table view, switching to a layout with one only when the current layout has
    none (``vtkSlicerTablesLogic::GetLayoutWithTable``)."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None:
        layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
    slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()


class CovidCTTrainLogic(ScriptedLoadableModuleLogic, TrainLogic):
    """Datasets, training, evaluation and saving: the methods of :class:`TrainLogic` (see the module docstring)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        TrainLogic.__init__(self)


class CovidCTTrainTest(ScriptedLoadableModuleTest):
    """The flow of Testing/test_train_module_logic.py inside Slicer, through the panel: a synthetic dataset from
    the bundled CIP CT, a tiny DeCoVNet run on the CPU cancelled and resumed, evaluation, saving with a
    threshold, and the released DeCoVNet predictions when the source tree's shared reference folder is present."""

    RELEASED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "decovnet-released-test-predictions.csv"
    PAPER_ACCURACY = [0.893, 0.908, 0.908, 0.901, 0.901, 0.878, 0.870, 0.855, 0.847]

    def setUp(self):
        dependencies.skip_test_without_requirements(self)
        slicer.mrmlScene.Clear()
        self.workdir = Path(slicer.app.temporaryPath) / "CovidCTTrainSelfTest"
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)

    def runTest(self):
        self.setUp()
        self.test_train_cancel_resume_evaluate_save()
        self.setUp()
        self.test_released_predictions()

    def waitFor(self, condition, seconds=600):
        deadline = time.time() + seconds
        while not condition() and time.time() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertTrue(condition(), "timed out")

    def test_train_cancel_resume_evaluate_save(self):
        widget = slicer.util.getModuleWidget("CovidCTTrain")
        logic = widget.logic
        self.delayDisplay("Making a synthetic dataset from the CIP CT (covidct synth)")
        ctNode = slicer.util.loadVolume(str(testdata.ct_path()))
        mask = testdata.lung_mask_path()
        job = logic.startSynthDataset([ctNode], self.workdir / "synth", 2, 2, seed=3, lungs=[mask] if mask else None)
        job.wait()
        manifest = job.finish()
        widget.ui.datasetPathLineEdit.currentPath = str(manifest)
        widget.ui.valFractionSpinBox.value = 0.5
        widget.ui.loadDatasetButton.click()
        self.assertTrue(widget.ui.datasetSummaryLabel.text.startswith("manifest.csv: 4 cases (2 COVID-19, 2 not)"))

        # 5 epochs, so that the run cannot end between the first epoch's row and the cancel on a fast machine
        self.delayDisplay("Training DeCoVNet for 5 epochs at 32x48 on the CPU; cancel after epoch 1, then resume")
        ui = widget.ui
        ui.modelComboBox.setCurrentIndex(ui.modelComboBox.findText("decovnet"))
        ui.epochsSpinBox.value = 5
        ui.lrLineEdit.text = "1e-4"
        ui.inputSizeLineEdit.text = "32x48"
        ui.deviceComboBox.setCurrentIndex(ui.deviceComboBox.findData("cpu"))
        ui.initFromComboBox.setCurrentIndex(ui.initFromComboBox.findText(SCRATCH))
        ui.outputPathLineEdit.currentPath = str(self.workdir / "run")
        ui.trainButton.click()
        self.assertIsNotNone(widget.trainingJob)
        job = widget.trainingJob
        self.waitFor(lambda: job.history_table.GetNumberOfRows() >= 1 or job.done)
        self.assertFalse(job.done, job.process.stderr_tail)
        ui.cancelButton.click()
        self.assertIsNone(widget.trainingJob)
        self.assertIn("press Resume", ui.statusLabel.text)
        self.assertTrue(ui.resumeButton.enabled)
        ui.resumeButton.click()
        self.waitFor(lambda: widget.trainingJob is None)
        self.assertTrue(ui.statusLabel.text.startswith("Finished"), ui.statusLabel.text)
        self.assertEqual(widget.curves[1].GetNumberOfRows(), 5)
        self.assertEqual(ui.evalModelPathLineEdit.currentPath, str(self.workdir / "run" / "model"))

        self.delayDisplay("Evaluating the model on the manifest and saving it with threshold 0.4")
        ui.evaluateButton.click()
        self.waitFor(lambda: widget.job is None)
        self.assertTrue(
            ui.evaluationSummaryLabel.text.startswith("run on manifest: ROC AUC "), ui.evaluationSummaryLabel.text
        )
        ui.thresholdSliderWidget.value = 0.4
        self.assertTrue(ui.operatingPointLabel.text.startswith("At threshold 0.4: accuracy "))
        previous = os.environ.get("COVIDCT_MODELS_DIR")
        os.environ["COVIDCT_MODELS_DIR"] = str(self.workdir / "models")
        try:
            ui.modelNameLineEdit.text = "decovnet-selftest"
            ui.saveModelButton.click()
            from covidct.models import list_models

            cards = {card.name: card for card in list_models()}
            self.assertAlmostEqual(cards["decovnet-selftest"].threshold, 0.4)
            self.assertEqual(cards["decovnet-selftest"].metrics["test_cases"], 4)
        finally:
            if previous is None:
                os.environ.pop("COVIDCT_MODELS_DIR")
            else:
                os.environ["COVIDCT_MODELS_DIR"] = previous
        self.delayDisplay("Training flow test passed")

    def test_released_predictions(self):
        if not self.RELEASED.is_file():
            self.delayDisplay(f"Skipping the released predictions: {self.RELEASED} is absent (installed extension)")
            return
        widget = slicer.util.getModuleWidget("CovidCTTrain")
        widget.ui.evalModelPathLineEdit.currentPath = ""
        widget.ui.testDataPathLineEdit.currentPath = str(self.RELEASED)
        widget.ui.evaluateButton.click()
        self.waitFor(lambda: widget.job is None)
        self.assertIn("ROC AUC 0.959 ", widget.ui.evaluationSummaryLabel.text)
        accuracy = slicer.util.arrayFromTableColumn(widget.evaluationNodes.threshold_table, "accuracy")
        self.assertEqual([round(float(a), 3) for a in accuracy], self.PAPER_ACCURACY)
        self.delayDisplay("Released predictions test passed")
