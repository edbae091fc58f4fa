"""One training loop for DeCoVNet, COVID-19Net and the lung UNet.

Paper defaults (:class:`~.config.TrainConfig`): Adam, constant learning rate 1e-5, batch size 1,
100 epochs, 15 % of the cases held out for validation, cross-entropy (the model's ``loss``).
Each epoch ends with validation (ROC AUC for classifiers, Dice for the UNet); the best epoch's
weights are kept in ``best.pt``.

Run folder ``out``::

    config.json    the settings (a resumed run must keep the fixed ones)
    split.csv      the training/validation cases (a manifest with the split column filled)
    last.pt        atomic checkpoint: weights, optimizer, epoch, position in the epoch, sampler order,
                   RNG states; written at every epoch end and every ``checkpoint_every`` steps
    best.pt        weights of the best validation epoch
    history.json   per-epoch training loss and validation metrics
    model/         the final model (best epoch) with its ModelCard, loadable by covidct.models.load_model
    cache/         preprocessed inputs (unless --cache-dir)

Exact resumption: every random draw is a function of (seed, epoch, step/sample, rank): the epoch's
order comes from ``DistributedSampler(seed)``, each sample's augmentation from its own generator
seeded by (seed, epoch, index), and the global torch generator (dropout) is reseeded from (seed,
epoch, step, rank) before every step. So a run killed at any point and resumed from ``last.pt``
(weights, Adam moments, position) computes exactly what the uninterrupted run computes; on the CPU
deterministic algorithms are enforced (with the same number of threads the sums are identical).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path

import torch

from ..data.cache import TensorCache
from ..data.manifest import Case, read_manifest, split_cases, write_manifest
from ..errors import ModelError, UsageError
from ..outputs import write_json
from ..progress import Progress
from . import distributed
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .tasks import collate, sample_seed

log = logging.getLogger(__name__)
#: a run folder holding one of these has trained (a folder with only config.json is a start that failed)
RUN_FILES = ("last.pt", "model/model.json")


def train(config: TrainConfig, progress: Progress | None = None) -> Path:
    """Train (or, with ``config.resume``, continue) a model.

    Under ``torchrun`` every process calls this; rank 0 writes files and reports progress.
    With ``config.pretrain_manifest`` (COVID-19Net's two-step transfer learning) an auxiliary task is
    trained first in ``out/pretrain`` and the main run starts from its weights.

    Parameters
    ----------
    config : TrainConfig
        The run: manifest, model, epochs, output folder, device, resume (:class:`covidct.TrainConfig`).
    progress : Progress or None
        Receives a report per epoch and batch (rank 0 only).

    Returns
    -------
    pathlib.Path
        The final model's folder ``config.out/model`` (``model.json`` and weights), ready for
        :func:`covidct.models.load_model`.

    Raises
    ------
    DatasetError, UsageError
        A bad manifest or options; nothing is left behind that blocks the corrected rerun.
    """
    ctx = distributed.setup(config.device)
    progress = progress if (progress is not None and ctx.is_main) else Progress()
    try:
        _check_out(config, ctx)
        if config.pretrain_manifest:
            pretrain = dataclasses.replace(
                config,
                manifest=config.pretrain_manifest,
                out=str(Path(config.out) / "pretrain"),
                pretrain_manifest=None,
                epochs=config.pretrain_epochs or config.epochs,
                name=f"{config.name or config.model}-pretrain",
                resume=config.resume and (Path(config.out) / "pretrain" / "config.json").exists(),
            )
            if ctx.is_main:
                pretrain.save(Path(pretrain.out) / "config.json")
            progress.event("phase", phase="pretrain", manifest=pretrain.manifest)
            model_dir = Path(pretrain.out) / "model"
            if not (config.resume and (model_dir / "model.json").exists()):
                model_dir = _Run(pretrain, ctx, progress).run()
            config = dataclasses.replace(config, init_from=str(model_dir))
            progress.event("phase", phase="finetune", manifest=config.manifest, init_from=str(model_dir))
        return _Run(config, ctx, progress).run()
    except torch.OutOfMemoryError as exc:
        size = "x".join(map(str, config.input_size)) if config.input_size else "the paper's size"
        raise UsageError(
            f"Out of GPU memory training {config.model} at input size {size}; lower --input-size or use --device cpu."
        ) from exc
    finally:
        distributed.teardown(ctx)


def _check_out(config: TrainConfig, ctx) -> None:
    """Refuse to overwrite a run that has trained; check that a resumed run keeps its fixed settings.

    The manifest is read first, so that a bad one fails before anything is written. A folder holding
    only the settings of a start that failed (``config.json``, no checkpoint) does not block a fresh
    start, which says so; ``--resume`` of such a folder starts from the beginning and says so too.
    """
    out = Path(config.out)
    read_manifest(config.manifest, require_label=config.model != "unet")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not config.resume:
        raise UsageError(
            f"Output folder '{out}' already holds a training run ({existing[0]}); pass --resume to "
            "continue it or choose another --out."
        )
    if not existing and (out / "config.json").exists():
        log.warning(
            "'%s' holds the settings of a run that never saved a checkpoint; %s",
            out,
            "starting it from the beginning" if config.resume else "starting afresh with the new settings",
        )
        if not config.resume:
            (out / "config.json").unlink()
    if config.resume:
        if not (out / "config.json").exists():
            raise UsageError(f"Output folder '{out}' holds no training run to resume; run without --resume.")
        saved = TrainConfig.load(out / "config.json")
        changed = config.differences(saved)
        if changed:
            raise UsageError(
                f"--resume must keep the run's settings, but {', '.join(changed)} changed (saved: "
                f"{', '.join(f'{k}={getattr(saved, k)}' for k in changed)}); use the same options."
            )
    distributed.barrier(ctx)
    if ctx.is_main:
        config.save(out / "config.json")


class _Run:
    """One phase of training (the whole run, or the pre-training step) in ``config.out``."""

    def __init__(self, config: TrainConfig, ctx, progress: Progress):
        self.config = config
        self.ctx = ctx
        self.progress = progress
        self.out = Path(config.out)
        self.device = ctx.device
        self.task = _make_task(config, ctx.device)
        self.amp = config.amp if config.amp is not None else self.device.type == "cuda"

    # ---- set-up -------------------------------------------------------------------------------
    def run(self) -> Path:
        config = self.config
        with _deterministic(self.device.type == "cpu" or config.deterministic):
            cases = read_manifest(config.manifest, require_label=self.task.needs_labels)
            train_cases, val_cases = split_cases(
                cases, config.val_fraction, config.seed, need_both_labels=self.task.needs_labels
            )
            if self.ctx.is_main:
                write_manifest(
                    self.out / "split.csv",
                    [dataclasses.replace(c, split="train") for c in train_cases]
                    + [dataclasses.replace(c, split="val") for c in val_cases],
                    relative=False,
                )
            self.train_items = self._prepare(train_cases, "train", True)
            self.val_items = self._prepare(val_cases, "val", False)
            self.train_cases, self.val_cases = train_cases, val_cases
            model = self._build_model()
            return self._loop(model)

    def _prepare(self, cases: list[Case], name: str, train: bool) -> list[dict]:
        """Cache every case's model input (ranks share the work), then list the items."""
        cache = TensorCache(self.config.cache_folder)
        for i, case in enumerate(cases):
            if i % self.ctx.world_size == self.ctx.rank:
                self.task.prepare(case, cache, train)
                self.progress.stage(f"preprocess {name}", i + 1, len(cases))
        distributed.barrier(self.ctx)
        return [item for case in cases for item in self.task.prepare(case, cache, train)]

    def _build_model(self) -> torch.nn.Module:
        from ..models import build_model

        torch.manual_seed(self.config.seed)
        model = build_model(self.config.model, **self.config.arch_options)
        if self.config.init_from:
            model.load_state_dict(_initial_weights(self.config.init_from, self.config.model))
        return model.to(self.device)

    # ---- the loop -----------------------------------------------------------------------------
    def _loop(self, model: torch.nn.Module) -> Path:
        config, ctx = self.config, self.ctx
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        batch = config.effective_batch_size
        steps = math.ceil(math.ceil(len(self.train_items) / ctx.world_size) / batch)
        state = {
            "epoch": 0,
            "position": 0,
            "global_step": 0,
            "history": [],
            "best": None,
            "loss_sum": 0.0,
            "loss_count": 0,
            "orders": None,
        }
        last = self.out / "last.pt"
        if config.resume and last.exists():
            state = self._restore(last, model, optimizer, steps)
        wrapped = distributed.wrap(model, ctx)
        start_step, start_time = state["global_step"], time.monotonic()
        total_steps = steps * config.epochs

        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            if state["orders"] is None:
                state["orders"] = _epoch_orders(len(self.train_items), epoch, config.seed, ctx.world_size)
            order = state["orders"][ctx.rank]
            model.train()
            batches = [
                [(i, sample_seed(config.seed, epoch, i)) for i in order[p * batch : (p + 1) * batch]]
                for p in range(state["position"], steps)
            ]
            for position, loaded in zip(
                range(state["position"], steps), self._loader(self.train_items, batches, True), strict=False
            ):
                torch.manual_seed(sample_seed(config.seed, epoch, position, ctx.rank, 1))
                loss = self._step(wrapped, model, optimizer, loaded)
                state["position"] = position + 1
                state["global_step"] += 1
                state["loss_sum"] += loss
                state["loss_count"] += 1
                done = state["global_step"]
                elapsed = time.monotonic() - start_time
                eta = elapsed / max(done - start_step, 1) * (total_steps - done)
                self.progress.stage("train", done, total_steps, epoch=epoch + 1, loss=round(loss, 4))
                self.progress.event(
                    "step",
                    epoch=epoch + 1,
                    step=position + 1,
                    steps=steps,
                    global_step=done,
                    loss=round(loss, 6),
                    eta_s=round(eta, 1),
                )
                if config.checkpoint_every and (position + 1) % config.checkpoint_every == 0 and position + 1 < steps:
                    self._save(last, model, optimizer, state)
            metrics = self._validate(model)
            record = {"epoch": epoch + 1, "loss": state["loss_sum"] / max(state["loss_count"], 1), **metrics}
            state["history"].append(record)
            improved = self._is_better(record, state["best"])
            if improved:
                state["best"] = record
            state.update(epoch=epoch + 1, position=0, loss_sum=0.0, loss_count=0, orders=None)
            if ctx.is_main:
                # last.pt is written last: once it says the epoch is done, best.pt and history.json are too
                if improved:
                    save_checkpoint(
                        self.out / "best.pt",
                        {"model": model.state_dict(), "arch": config.model, "epoch": epoch + 1, "metrics": record},
                    )
                write_json(self.out / "history.json", state["history"])
                self._save(last, model, optimizer, state)
            elapsed = time.monotonic() - start_time
            eta = elapsed / max(state["global_step"] - start_step, 1) * (total_steps - state["global_step"])
            self.progress.event(
                "epoch", epochs=config.epochs, **record, best_epoch=state["best"]["epoch"], eta_s=round(eta, 1)
            )
        distributed.barrier(ctx)
        return self._finish(model, state)

    def _step(self, wrapped, model, optimizer, batch: dict) -> float:
        x, y = self.task.inputs(batch, train=True)
        with self._autocast():
            logits = wrapped(x)
        loss = self.task.loss(model, logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def _loader(self, items: list[dict], batches: list[list[tuple[int, int]]], train: bool):
        """Batches of loaded items in the given order (``num_workers`` processes prefetch them)."""
        from torch.utils.data import DataLoader

        return DataLoader(
            _Items(self.task, items, train),
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),
        )

    @torch.no_grad()
    def _validate(self, model) -> dict:
        """Validation metrics over every rank's share of the validation items (gathered)."""
        model.eval()
        records: dict = {}
        indices = list(range(self.ctx.rank, len(self.val_items), self.ctx.world_size))
        size = self.task.val_batch
        batches = [[(i, 0) for i in indices[start : start + size]] for start in range(0, len(indices), size)]
        for done, batch in enumerate(self._loader(self.val_items, batches, False), start=1):
            x, y = self.task.inputs(batch, train=False)
            with self._autocast():
                logits = model(x)
            for key, values in self.task.outputs(model, logits, y, batch).items():
                records.setdefault(key, []).extend(values)
            self.progress.stage("validate", done, len(batches))
        merged: dict = {}
        for part in distributed.gather(self.ctx, records):
            for key, values in part.items():
                merged.setdefault(key, []).extend(values)
        model.train()
        return self.task.score(merged)

    def _is_better(self, record: dict, best: dict | None) -> bool:
        metric = self.task.metric
        if best is None:
            return True
        return (record[metric], -record["val_loss"]) > (best[metric], -best["val_loss"])

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # ---- checkpoints --------------------------------------------------------------------------
    def _save(self, path: Path, model, optimizer, state: dict) -> None:
        if not self.ctx.is_main:
            return
        save_checkpoint(
            path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "arch": self.config.model,
                "world_size": self.ctx.world_size,
                "rng": rng_state(),
                **state,
            },
        )
        self.progress.event(
            "checkpoint",
            path=str(path),
            epoch=state["epoch"] + (1 if state["position"] else 0),
            step=state["position"],
            global_step=state["global_step"],
        )

    def _restore(self, path: Path, model, optimizer, steps: int) -> dict:
        saved = load_checkpoint(path, device="cpu")
        if saved.get("world_size") != self.ctx.world_size:
            raise UsageError(
                f"Checkpoint {path} was written by {saved.get('world_size')} process(es) but this run "
                f"has {self.ctx.world_size}; resume with the same number of processes."
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        set_rng_state(saved["rng"])
        state = {
            key: saved[key]
            for key in ("epoch", "position", "global_step", "history", "best", "loss_sum", "loss_count", "orders")
        }
        if state["position"] > steps:
            raise UsageError(
                f"Checkpoint {path} is at step {state['position']} of an epoch that now has {steps} "
                "steps; the data changed, so start a new run."
            )
        self.progress.event(
            "resume", path=str(path), epoch=state["epoch"] + 1, step=state["position"], global_step=state["global_step"]
        )
        return state

    # ---- the final model ----------------------------------------------------------------------
    def _finish(self, model, state: dict) -> Path:
        from ..models import save_model

        folder = self.out / "model"
        if self.ctx.is_main:
            best = load_checkpoint(self.out / "best.pt", device="cpu")
            model.load_state_dict(best["model"])
            save_model(model, self._card(state), folder)
            self.progress.event(
                "done",
                model=str(folder),
                best_epoch=state["best"]["epoch"],
                **{k: v for k, v in state["best"].items() if k.startswith("val_")},
            )
        distributed.barrier(self.ctx)
        return folder

    def _card(self, state: dict):
        from ..models import ModelCard
        from ..models.catalogue import default_input

        config, best = self.config, state["best"]
        spec = default_input(config.model)
        if config.input_size:
            shape = list(spec["shape"])
            shape[-len(config.input_size) :] = list(config.input_size)
            spec["shape"] = shape
        if config.input_crop:
            spec["crop"] = config.input_crop
        if config.lungs_method and config.model != "unet":
            # the lung segmentation of the training masks: detection without lungs segments the same way
            spec["lungs_method"] = config.lungs_method
        if config.input_slice_mm:
            spec["slice_mm"] = config.input_slice_mm
            spec["slices"] = (
                f"canonical LPS order (inferior to superior), resized along z to {config.input_slice_mm:g} mm"
            )
        if config.input_hu_stats:
            spec["hu_mean_std"] = list(config.input_hu_stats)
            spec["normalisation"] = "z-score with the fixed statistics hu_mean_std (HU): (x - mean) / sd"
        if config.input_antialias:
            spec["antialias"] = True
            spec["channels"] = [
                "CT, HU window -1200..600 HU mapped to 0..1, averaged over each input cell",
                "lung fraction 0..1 of each input cell (the mask averaged)",
            ]
        cases = self.train_cases + self.val_cases
        labels = [c.label for c in cases if c.label is not None]
        described = (
            f"{len(cases)} cases of manifest {Path(config.manifest).name} ({len(self.train_cases)} training, "
            f"{len(self.val_cases)} validation"
        )
        if labels:
            described += f"; {sum(labels)} positive, {len(labels) - sum(labels)} negative"
        described += ")"
        if config.pretrain_manifest:
            described += (
                f", fine-tuned after pre-training on manifest {Path(config.pretrain_manifest).name} "
                "(two-step transfer learning)"
            )
        elif config.init_from:
            described += f", starting from the weights of {config.init_from}"
        return ModelCard(
            name=config.name or f"{config.model}-{self.out.name}",
            architecture=config.model,
            description=f"{config.model} trained with 'covidct train' for {len(state['history'])} epoch(s) "
            f"(lr {config.lr}, batch {config.effective_batch_size}, seed {config.seed}, "
            f"augmentation {'on' if config.augment else 'off'}); weights of the best validation "
            f"epoch ({best['epoch']}).",
            input=spec,
            config=dict(config.arch_options),
            threshold=0.5,
            licence="Weights trained by the user; the licences of the training data apply.",
            training_data=described,
            training_sources=[c.id for c in cases],
            metrics={k: v for k, v in best.items()},
        )


class _Items:
    """A map-style dataset over a task's items, indexed by ``(index, sample seed)`` keys."""

    def __init__(self, task, items: list[dict], train: bool):
        self.task, self.items, self.train = task, items, train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        return self.task.load(self.items[index], index, seed, self.train)


def _make_task(config: TrainConfig, device):
    if config.model == "unet":
        from .unet_task import SegmentationTask

        return SegmentationTask(config, device)
    from .tasks import ClassifierTask

    return ClassifierTask(config, device)


def _epoch_orders(n: int, epoch: int, seed: int, world_size: int) -> list[list[int]]:
    """Every rank's sample order for ``epoch``: ``DistributedSampler`` (shuffled with ``seed + epoch``,
    padded to equal shares); one process gets the whole permutation."""
    from torch.utils.data.distributed import DistributedSampler

    orders = []
    for rank in range(world_size):
        sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    return orders


def _initial_weights(source: str, arch: str) -> dict:
    """State dict to start from: a covidct checkpoint (``.pt``) or a model folder/name/card."""
    path = Path(source)
    if path.is_file() and path.suffix == ".pt":
        saved = load_checkpoint(path, device="cpu")
        found = saved.get("arch", arch)
        state = saved["model"]
    else:
        from ..models import load_model

        model, card = load_model(source, device="cpu")
        found, state = card.architecture, model.state_dict()
    if found != arch:
        raise ModelError(
            f"--init-from '{source}' holds a {found} model, not {arch}; start from weights of the same architecture."
        )
    return state


@contextlib.contextmanager
def _deterministic(enabled: bool):
    """Deterministic algorithms while training (restoring the previous setting afterwards)."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
