"""A running ``covidct`` command seen from a module: progress, blocking wait, cancel, temporary folder.

The modules' logic classes start a :class:`~CovidCTDetectLib.process.BackgroundProcess` on files
they wrote into a temporary folder and wrap both in a :class:`CommandJob`. The widget calls
:meth:`CommandJob.poll` from a ``qt.QTimer`` and shows :attr:`~CommandJob.stage` and
:attr:`~CommandJob.fraction`; scripts call :meth:`CommandJob.wait`. Subclasses add ``finish()``,
which turns the command's output files into MRML nodes. No Qt here.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .process import BackgroundProcess


class CommandJob:
    """One running command with its temporary folder ``workdir`` (deleted by :meth:`cancel` and :meth:`cleanup`,
    with any other folder in :attr:`temporary`; None when the command needs none).

    :attr:`stage` is the name of the latest progress stage and :attr:`fraction` (0..1) how much of
    it is done; :attr:`elapsed` is the wall time in seconds since the job was made.
    """

    def __init__(self, process: BackgroundProcess, workdir: Path | None):
        self.process = process
        self.workdir = None if workdir is None else Path(workdir)
        #: folders deleted by :meth:`cleanup` (the workdir, and any a caller adds)
        self.temporary = [] if self.workdir is None else [self.workdir]
        self.stage = "starting"
        self.fraction = 0.0
        self.started = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.process.done

    @property
    def elapsed(self) -> float:
        """Seconds since the job started (wall time)."""
        return time.perf_counter() - self.started

    def poll(self) -> list[dict]:
        """New progress events; updates :attr:`stage` (name) and :attr:`fraction` (0..1 of that stage)."""
        events = self.process.poll()
        for event in events:
            self._note(event)
        return events

    def wait(self, on_event: Callable[[dict], None] | None = None) -> None:
        """Block until the command ends (``on_event`` is called for each progress event)."""

        def note(event):
            self._note(event)
            if on_event is not None:
                on_event(event)

        self.process.wait(note, check=False)

    def cancel(self) -> None:
        """Stop the computation (its whole process tree) and delete the temporary files."""
        self.process.cancel()
        self.cleanup()

    def cleanup(self) -> None:
        """Delete the temporary folders."""
        for folder in self.temporary:
            shutil.rmtree(folder, ignore_errors=True)

    def _note(self, event: dict) -> None:
        if event.get("event") == "stage":
            self.stage = str(event.get("stage", self.stage))
            done, total = event.get("done"), event.get("total")
            self.fraction = min(max(done / total, 0.0), 1.0) if done is not None and total else 0.0
