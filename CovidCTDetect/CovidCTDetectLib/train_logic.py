"""Logic of the CovidCTTrain module, without Qt: datasets, training runs, evaluation and saving models.

Everything long runs as a background ``covidct`` command (:mod:`CovidCTDetectLib.process`), so
Slicer's GUI never imports PyTorch and never freezes:

* ``covidct devices`` lists the GPUs PyTorch sees with their memory (:meth:`TrainLogic.startDeviceProbe`);
* ``covidct synth`` makes a synthetic-lesion dataset from chosen CTs (:meth:`TrainLogic.startSynthDataset`);
* ``covidct train ... --progress-json`` trains (:meth:`TrainLogic.startTraining`, :meth:`TrainLogic.resumeTraining`):
  the job reads its ``step``/``epoch``/``checkpoint``/``resume``/``done`` events, keeps the latest epoch,
  step, loss, validation metric and ETA, and grows two table nodes that a plot chart shows as loss
  and validation-metric curves; Cancel ends the process tree and keeps the last checkpoint;
* ``covidct evaluate`` evaluates a model on a test manifest, or released predictions
  (:mod:`.train_evaluation`), shown as ROC/PR plot charts and a threshold table node; the model is
  then saved with the chosen operating threshold into the user's model catalogue.

Each background step has a blocking variant for ``Slicer --python-script`` use (:meth:`TrainLogic.train`,
:meth:`TrainLogic.evaluate`). Method names follow Slicer's camelCase because the module's Logic class
inherits them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from covidct.data.manifest import read_manifest
from covidct.errors import UsageError

from .jobs import CommandJob
from .process import CommandCancelled, CommandFailed, start_covidct
from .tables import add_plot_series, append_result_row, new_chart, set_table_columns
from .train_dataset import dataset_manifest, preview_dataset
from .train_evaluation import (
    EvaluationJob,
    EvaluationNodes,
    EvaluationResult,
    save_model_to_catalogue,
    show_evaluation,
    show_operating_threshold,
    start_evaluation,
)
from .volumes import image_from_volume, scene_or_default

#: Architectures ``covidct train`` trains; the first is the default.
MODELS = ("decovnet", "covid19net", "unet")
#: Validation metric each architecture reports in its ``epoch`` events, and its column name in the curves table.
METRICS = {
    "decovnet": ("val_auc", "validation AUC"),
    "covid19net": ("val_auc", "validation AUC"),
    "unet": ("val_dice", "validation Dice"),
}
#: ``covidct train`` options (TrainConfig fields) the logic passes on; values None are left out (command default).
TRAIN_OPTIONS = (
    "epochs",
    "lr",
    "batch_size",
    "val_fraction",
    "seed",
    "augment",
    "device",
    "amp",
    "num_workers",
    "init_from",
    "pretrain_manifest",
    "pretrain_epochs",
    "input_size",
    "input_crop",
    "lungs_method",
    "cache_dir",
    "checkpoint_every",
    "lesion_augment",
    "name",
    "deterministic",
)
#: Options whose flag is given only when True (``store_true``), and the flags of the ones given only when False.
_SWITCHES = ("deterministic", "resume")
_OFF_FLAGS = {"augment": "--no-augment"}
#: A CUDA/MPS out-of-memory in the training process's stderr (PyTorch's messages and the training loop's).
_GPU_OUT_OF_MEMORY = re.compile(r"OutOfMemoryError|out of gpu memory|(cuda|mps)\b[^.]*out of memory", re.IGNORECASE)


def train_arguments(manifest, out, model: str, options: dict, resume: bool = False) -> list[str]:
    """The ``covidct train`` command line (without ``--progress-json``) for ``options`` (see :data:`TRAIN_OPTIONS`).

    ``augment=False`` gives ``--no-augment``, ``amp`` True/False ``--amp``/``--no-amp``, ``input_size`` a
    ``"HxW"`` string or a sequence of ints. Raises :class:`UsageError` for an unknown model or option.
    """
    if model not in MODELS:
        raise UsageError(f"Unknown model '{model}'; choose one of {', '.join(MODELS)}.")
    unknown = sorted(set(options) - set(TRAIN_OPTIONS))
    if unknown:
        raise UsageError(f"Unknown training option(s) {', '.join(unknown)}; use {', '.join(TRAIN_OPTIONS)}.")
    args = ["train", "--model", model, "--manifest", str(manifest), "--out", str(out)]
    for key, value in {**options, "resume": resume}.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if key == "amp":
            args.append("--amp" if value else "--no-amp")
        elif key in _OFF_FLAGS:
            args += [] if value else [_OFF_FLAGS[key]]
        elif key in _SWITCHES:
            args += [flag] if value else []
        elif key == "input_size" and not isinstance(value, str):
            args += [flag, "x".join(str(int(v)) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def run_options(out: str | os.PathLike) -> dict:
    """The settings of the training run in ``out`` (its ``config.json``) as ``model``, ``manifest`` and
    :data:`TRAIN_OPTIONS`."""
    path = Path(out) / "config.json"
    if not path.is_file():
        raise UsageError(f"Folder '{out}' holds no training run (no config.json); choose the output folder of a run.")
    config = json.loads(path.read_text(encoding="utf-8"))
    return {key: config.get(key) for key in ("model", "manifest", *TRAIN_OPTIONS)}


def can_resume(out: str | os.PathLike) -> bool:
    """True when ``out`` holds a training run with a checkpoint (``config.json`` and ``last.pt``)."""
    return (Path(out) / "config.json").is_file() and (Path(out) / "last.pt").is_file()


def training_failure(returncode: int | None, stderr: list[str], error: str | None) -> str | None:
    """One sentence saying why a training process died (None if it did not fail).

    Out of GPU memory anywhere in ``stderr`` gives the fix (smaller input or batch, or the CPU); death by a
    signal (e.g. the system's out-of-memory killer) says so; otherwise the command's own sentence ``error``.
    """
    if returncode in (None, 0):
        return None
    if any(_GPU_OUT_OF_MEMORY.search(line) for line in stderr):
        return (
            "Training ran out of GPU memory; lower the input size (e.g. 112x168) or the batch size, "
            "or train on the CPU."
        )
    if returncode < 0:
        return (
            f"The training process was killed by signal {-returncode} (for example when the computer ran out of "
            "memory); press Resume to continue from the last checkpoint."
        )
    return error


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3 h 05 min"``."""
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


class TrainingJob(CommandJob):
    """A running ``covidct train``: its latest progress, curves that grow as events arrive, cancel, finish.

    Attributes updated by :meth:`poll`/:meth:`wait`: ``epoch``/``epochs``, ``step``/``steps`` (within the
    epoch), ``global_step``/``total_steps``, ``loss`` (last step), ``metric`` (latest validation metric,
    e.g. AUC), ``best_epoch``, ``eta_s`` (seconds), ``last_checkpoint`` (the latest ``checkpoint`` event),
    ``resumed_from`` (the ``resume`` event), ``phase`` (``pretrain``/``finetune`` for COVID-19Net's two
    steps), ``model_dir`` (from the ``done`` event). ``history_table``: one row per epoch (``epoch``,
    ``training loss``, ``validation loss`` and the metric column); ``steps_table``: one row per step
    (``epoch`` as a fraction, ``loss``, ``global step``); ``chart_node`` plots both.
    """

    def __init__(self, process, out: Path, model: str, chart_node, history_table, steps_table):
        super().__init__(process, None)
        self.out = Path(out)
        self.model = model
        self.metric_key, self.metric_name = METRICS[model]
        self.chart_node, self.history_table, self.steps_table = chart_node, history_table, steps_table
        self.epoch = self.epochs = self.step = self.steps = self.global_step = self.total_steps = 0
        self.loss = self.metric = self.best_epoch = self.eta_s = None
        self.last_checkpoint = self.resumed_from = self.model_dir = None
        self.phase = None

    @property
    def progress(self) -> float:
        """Share of all training steps done (0..1); during preprocessing, the share of that stage."""
        if self.model_dir is not None:
            return 1.0
        return min(self.global_step / self.total_steps, 1.0) if self.total_steps else self.fraction

    @property
    def error(self) -> str | None:
        """One sentence saying why the process died (out of GPU memory → the fix); None while running or
        after success or cancel."""
        if not self.done or self.process.cancelled:
            return None
        return training_failure(self.process.returncode, self.process.stderr_tail, self.process.error)

    def status(self) -> str:
        """One line for the panel: epoch, step, loss, validation metric, time left."""
        if self.model_dir is not None:
            return f"Finished: the model is in {self.model_dir}."
        if not self.total_steps:
            return f"{self.stage} ({self.fraction:.0%})" if self.stage != "starting" else "Starting..."
        text = f"Epoch {self.epoch}/{self.epochs}, step {self.step}/{self.steps}"
        if self.loss is not None:
            text += f": loss {self.loss:.4f}"
        if self.metric is not None:
            text += f", {self.metric_name} {self.metric:.3f} (best epoch {self.best_epoch})"
        if self.eta_s is not None:
            text += f", about {format_duration(self.eta_s)} left"
        return text

    def checkpoint_text(self) -> str | None:
        """The run's last checkpoint, e.g. "the checkpoint at epoch 2, step 3" or "... at the end of epoch 1";
        None when there is none."""
        event = self.last_checkpoint
        if event is None:
            return "the last checkpoint" if (self.out / "last.pt").is_file() else None
        if event.get("step"):
            return f"the checkpoint at epoch {event['epoch']}, step {event['step']}"
        return f"the checkpoint at the end of epoch {event['epoch']}"

    def finish(self) -> Path:
        """Once :attr:`done`: the final model's folder (``out/model``), or raise why there is none.

        Raises :class:`CommandCancelled` (saying which checkpoint stays) or :class:`CommandFailed` (:attr:`error`).
        """
        if self.process.cancelled:
            checkpoint = self.checkpoint_text()
            if checkpoint is None:
                raise CommandCancelled("Training was cancelled before its first checkpoint; start it again.")
            raise CommandCancelled(
                f"Training was cancelled; {checkpoint} stays in '{self.out}', so press Resume to continue."
            )
        if self.process.returncode != 0:
            raise CommandFailed(self.error, self.process.returncode)
        return self.model_dir or self.out / "model"

    def _note(self, event: dict) -> None:
        super()._note(event)
        kind = event.get("event")
        if kind == "stage" and event.get("stage") == "train":
            self.total_steps = int(event.get("total") or 0)
        elif kind == "step":
            self.epoch, self.step, self.steps = event["epoch"], event["step"], event["steps"]
            self.global_step, self.loss, self.eta_s = event["global_step"], event["loss"], event.get("eta_s")
            append_result_row(
                {"epoch": self.epoch - 1 + self.step / self.steps, "loss": self.loss, "global step": self.global_step},
                self.steps_table,
            )
        elif kind == "epoch":
            self.epoch, self.epochs = event["epoch"], event["epochs"]
            self.metric, self.best_epoch = event.get(self.metric_key), event.get("best_epoch")
            self.eta_s = event.get("eta_s")
            append_result_row(self._history_row(event), self.history_table)
        elif kind == "checkpoint":
            self.last_checkpoint = event
        elif kind == "resume":
            self.resumed_from = event
            self.global_step = event["global_step"]
            _drop_rows(self.steps_table, "global step", lambda value: value > event["global_step"])
            _drop_rows(self.history_table, "epoch", lambda value: value >= event["epoch"])
        elif kind == "phase":
            self.phase = event.get("phase")
            if self.phase == "finetune":  # the pre-training curves stay in out/pretrain/history.json
                for table in (self.history_table, self.steps_table):
                    table.RemoveAllColumns()
                self.total_steps = 0
        elif kind == "done":
            self.model_dir = Path(event["model"])

    def _history_row(self, record: dict) -> dict:
        return {
            "epoch": record["epoch"],
            "training loss": record["loss"],
            "validation loss": record.get("val_loss"),
            self.metric_name: record.get(self.metric_key),
        }

    def load_history(self) -> None:
        """Fill :attr:`history_table` from the run's ``history.json`` (the epochs done before a resume)."""
        path = self.out / "history.json"
        records = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        if not records:
            self.history_table.RemoveAllColumns()
            return
        rows = [self._history_row(record) for record in records]
        set_table_columns(self.history_table, {key: [row[key] for row in rows] for key in rows[0]})


def _drop_rows(table_node, column_name: str, drop: Callable[[float], bool]) -> None:
    """Remove the rows of ``table_node`` whose numeric ``column_name`` value satisfies ``drop``."""
    column = table_node.GetTable().GetColumnByName(column_name)
    if column is None:
        return
    for row in reversed(range(table_node.GetNumberOfRows())):
        if drop(column.GetValue(row)):
            table_node.RemoveRow(row)


def training_curves(name: str, model: str, scene=None):
    """A chart ``"<name> training"`` with the loss per step, the loss per epoch, the validation loss and the
    validation metric, over two new tables; returns ``(chart, history table, steps table)``."""
    scene = scene_or_default(scene)
    metric_name = METRICS[model][1]
    history = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} epochs")
    steps = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} steps")
    chart = new_chart(f"{name} training", "epoch", f"loss / {metric_name}", scene)
    add_plot_series(chart, steps, "epoch", "loss", "training loss (steps)", color=(0.7, 0.75, 0.9))
    add_plot_series(chart, history, "epoch", "training loss", "training loss", color=(0.1, 0.3, 0.8), markers=True)
    add_plot_series(chart, history, "epoch", "validation loss", "validation loss", color=(0.9, 0.5, 0.1), markers=True)
    add_plot_series(chart, history, "epoch", metric_name, metric_name, color=(0.1, 0.6, 0.2), markers=True)
    return chart, history, steps


class DeviceProbe(CommandJob):
    """A running ``covidct devices``: once done, :meth:`finish` gives the devices PyTorch sees."""

    def __init__(self, process):
        super().__init__(process, None)
        self.events: list[dict] = []

    def _note(self, event: dict) -> None:
        super()._note(event)
        self.events.append(event)

    def finish(self) -> list[dict]:
        """Devices as dicts (``device``, ``name``, for GPUs ``memory_gib``/``free_gib``); raises why the
        probe failed."""
        self.process.check()
        return [
            {k: v for k, v in e.items() if k not in ("event", "time")} for e in self.events if e["event"] == "device"
        ]


def device_label(device: dict) -> str:
    """``"cuda:0: NVIDIA H100 80GB HBM3, 79.1 GiB (78.6 GiB free)"``, ``"cpu: CPU (16 cores)"``."""
    memory = f", {device['memory_gib']:g} GiB ({device['free_gib']:g} GiB free)" if "memory_gib" in device else ""
    return f"{device['device']}: {device['name']}{memory}"


class SynthJob(CommandJob):
    """A running ``covidct synth``; :meth:`finish` gives the new dataset's manifest."""

    def __init__(self, process, out: Path):
        super().__init__(process, None)
        self.out = Path(out)

    def finish(self) -> Path:
        self.process.check()
        return self.out / "manifest.csv"


class TrainLogic:
    """The CovidCTTrain panels' work (see the module docstring); nodes are added to ``slicer.mrmlScene``
    unless a ``scene`` is given."""

    def __init__(self, scene=None):
        self.scene = scene

    # -- dataset ---------------------------------------------------------------------------------
    def datasetManifest(self, source, out=None) -> Path:
        """A manifest CSV for ``source`` (manifest, class-folder layout or path,label CSV), see
        :func:`dataset_manifest`."""
        return dataset_manifest(source, out)

    def previewDataset(
        self, manifest, model: str = MODELS[0], valFraction: float = 0.15, seed: int = 0, tableNode=None
    ):
        """``(table node, DatasetSummary)``: the manifest's cases with labels, missing files and the training split."""
        return preview_dataset(
            manifest, valFraction, seed, needs_labels=model != "unet", table_node=tableNode, scene=self.scene
        )

    def startSynthDataset(
        self,
        cts,
        out,
        positives: int,
        negatives: int,
        seed: int = 0,
        lungs=None,
        lungsMethod: str = "threshold",
        device: str = "auto",
    ) -> SynthJob:
        """Start ``covidct synth``: lesion-free CTs (file paths or volume nodes, written to ``out/backgrounds``)
        → ``positives`` volumes with synthetic lesions and ``negatives`` without, in ``out``.

        ``lungs``: optional lung-mask files, one per CT (else segmented with ``lungsMethod``).
        """
        out = Path(out)
        paths = [self._ct_file(ct, out / "backgrounds") for ct in cts]
        args = [
            "synth",
            *paths,
            "--out",
            out,
            "--positives",
            int(positives),
            "--negatives",
            int(negatives),
            "--seed",
            int(seed),
            "--lungs-method",
            lungsMethod,
            "--device",
            device,
        ]
        if lungs:
            args += ["--lungs", *lungs]
        return SynthJob(start_covidct(args), out)

    @staticmethod
    def _ct_file(ct, folder: Path) -> Path:
        if isinstance(ct, (str, os.PathLike)):
            return Path(ct)
        import SimpleITK as sitk

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (re.sub(r"[^\w.-]+", "_", ct.GetName()).strip("_.") + ".nrrd")
        sitk.WriteImage(image_from_volume(ct), str(path), True)
        return path

    # -- devices ---------------------------------------------------------------------------------
    def startDeviceProbe(self) -> DeviceProbe:
        """Start ``covidct devices`` (PyTorch, and CUDA, initialised in a child process, not in Slicer)."""
        return DeviceProbe(start_covidct(["devices"]))

    def installedModels(self, architecture: str) -> list[str]:
        """Names of the catalogue's models (bundled and the user's) of ``architecture``: choices for "start from"."""
        from covidct.models.catalogue import list_models

        return [card.name for card in list_models() if card.architecture == architecture]

    # -- training --------------------------------------------------------------------------------
    def startTraining(
        self, manifest, out, model: str = MODELS[0], chartNode=None, historyTable=None, stepsTable=None, **options
    ) -> TrainingJob:
        """Start ``covidct train`` in the background and return its job.

        ``options``: :data:`TRAIN_OPTIONS` (e.g. ``epochs=3, device="cpu", input_size="32x48",
        init_from="decovnet-demo"``). The curves go to new nodes named after ``out``'s folder unless
        ``chartNode``/``historyTable``/``stepsTable`` (from :func:`training_curves`) are given.
        """
        read_manifest(manifest, require_label=model != "unet")  # a bad manifest: one sentence now, not in the log
        return self._start(
            train_arguments(manifest, out, model, options), out, model, chartNode, historyTable, stepsTable
        )

    def resumeTraining(self, out, chartNode=None, historyTable=None, stepsTable=None, **changes) -> TrainingJob:
        """Continue the run in ``out`` from its last checkpoint with its own settings (``config.json``).

        ``changes``: settings a resumed run may change, e.g. ``epochs`` (train longer) or ``device``.
        The history table is refilled from the run's ``history.json``.
        """
        if not can_resume(out):
            raise UsageError(f"Folder '{out}' holds no training checkpoint (config.json and last.pt); start a new run.")
        options = run_options(out)
        model, manifest = options.pop("model"), options.pop("manifest")
        options.update(changes)
        job = self._start(
            train_arguments(manifest, out, model, options, resume=True), out, model, chartNode, historyTable, stepsTable
        )
        job.load_history()
        return job

    def _start(self, args, out, model, chart, history, steps) -> TrainingJob:
        if chart is None or history is None or steps is None:
            chart, history, steps = training_curves(Path(out).name, model, self.scene)
        return TrainingJob(start_covidct(args), Path(out), model, chart, history, steps)

    def train(
        self, manifest, out, model: str = MODELS[0], onEvent: Callable[[dict], None] | None = None, **options
    ) -> Path:
        """Train and return the final model's folder (blocks; for ``Slicer --python-script``)."""
        job = self.startTraining(manifest, out, model, **options)
        try:
            job.wait(onEvent)
        except BaseException:  # e.g. KeyboardInterrupt: do not leave the process running
            job.cancel()
            raise
        return job.finish()

    # -- evaluation and saving -------------------------------------------------------------------
    def startEvaluation(
        self, testData, out, weights=None, device: str = "auto", lungsMethod: str = "auto", bootstrap: int = 2000
    ) -> EvaluationJob:
        """Start ``covidct evaluate`` of ``weights`` (model folder or name) on a test manifest, or of released
        predictions (``testData`` a predictions CSV/.txt; ``weights`` unused). Results go to ``out``."""
        return start_evaluation(testData, out, weights, device, lungsMethod, bootstrap)

    def showEvaluation(self, result: EvaluationResult, name: str | None = None) -> EvaluationNodes:
        """ROC and PR plot charts, the threshold table and the operating points of ``result`` as nodes."""
        return show_evaluation(result, name or result.name, self.scene)

    def evaluate(
        self,
        testData,
        out,
        weights=None,
        device: str = "auto",
        lungsMethod: str = "auto",
        bootstrap: int = 2000,
        name: str | None = None,
    ):
        """Evaluate and show the results (blocks): ``(EvaluationResult, EvaluationNodes)``."""
        job = self.startEvaluation(testData, out, weights, device, lungsMethod, bootstrap)
        try:
            job.wait()
        except BaseException:
            job.cancel()
            raise
        result = job.finish()
        return result, self.showEvaluation(result, name)

    def setOperatingThreshold(self, nodes: EvaluationNodes, result: EvaluationResult, threshold: float) -> dict:
        """Mark the operating point of ``threshold`` on the charts; returns its accuracy, sensitivity,
        specificity, ..."""
        return show_operating_threshold(nodes, result, threshold)

    def saveModel(
        self, modelDir, name: str, threshold: float, evaluation: EvaluationResult | None = None, overwrite: bool = False
    ):
        """Copy a trained model into the user's model catalogue as ``name`` with the operating ``threshold``.

        Returns the new :class:`covidct.models.ModelCard`; the CovidCTDetect module lists the model from then on.
        """
        return save_model_to_catalogue(modelDir, name, threshold, evaluation, overwrite)
