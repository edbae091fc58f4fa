"""Progress reporting shared by every long-running step (segmentation, detection, training).

Library functions take an optional ``progress`` argument (a :class:`Progress`) and call
``progress.stage(...)`` / ``progress.event(...)``; they never print. The command line chooses the
reporter: a tqdm bar on a terminal, or JSON lines (``--progress-json``) that the Slicer modules read
from a background process. One JSON object per line, always with ``"event"`` and ``"time"``
(seconds since the epoch), e.g.::

    {"event": "stage", "time": 1700000000.1, "stage": "lungs", "done": 40, "total": 148}
    {"event": "epoch", "time": 1700000100.5, "epoch": 3, "epochs": 100, "loss": 0.41, "val_auc": 0.93}
    {"event": "result", "time": 1700000101.0, "probability": 0.97, "out": "runs/P001"}
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class Progress:
    """Silent reporter; the base class of the others. Use as a context manager or call ``close``."""

    def stage(self, stage: str, done: int | None = None, total: int | None = None, **info) -> None:
        """Report that ``done`` of ``total`` units of ``stage`` are finished (both may be None)."""

    def event(self, event: str, **fields) -> None:
        """Report a named event (``epoch``, ``step``, ``result``, ``warning``...) with JSON-able fields."""

    def close(self) -> None:
        """Finish any open bars."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JsonLinesProgress(Progress):
    """Writes one JSON object per line to ``stream`` (stdout by default) and flushes each line."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def stage(self, stage, done=None, total=None, **info):
        self.event("stage", stage=stage, done=done, total=total, **info)

    def event(self, event, **fields):
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self.stream.write(json.dumps(record, default=_plain) + "\n")
        self.stream.flush()


class BarProgress(Progress):
    """A tqdm bar per stage on stderr; other events are written above the bars as short lines."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._bars: dict = {}

    def stage(self, stage, done=None, total=None, **info):
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = tqdm(total=total, desc=stage, file=self.stream, leave=False, dynamic_ncols=True)
            self._bars[stage] = bar
        if total is not None and bar.total != total:
            bar.total = total
        if done is not None:
            bar.n = done
            bar.refresh()
        if info:
            bar.set_postfix({k: _short(v) for k, v in info.items()}, refresh=True)
        if total is not None and done is not None and done >= total:
            bar.close()
            del self._bars[stage]

    def event(self, event, **fields):
        from tqdm import tqdm

        text = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
        tqdm.write(f"{event}: {text}", file=self.stream)

    def close(self):
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def make_progress(json_lines: bool = False, quiet: bool = False) -> Progress:
    """The reporter for a command line run: JSON lines, bars (only when stderr is a terminal, so that
    a log file or a caller reading stderr gets the error sentences alone), or silence."""
    if json_lines:
        return JsonLinesProgress()
    if quiet or not sys.stderr.isatty():
        return Progress()
    return BarProgress()


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
