"""Run a ``covidct`` command in a background process; read its progress; cancel it.

Long work (lung segmentation on a CPU, detection in batch, training) must not freeze Slicer, so
the modules run the ``covidct`` command line in a separate Python process (Slicer's own
``PythonSlicer``) with ``--progress-json``. The command writes one JSON object per line to stdout
(see :mod:`covidct.progress`); two reader threads move stdout events and stderr lines into
thread-safe containers so that :meth:`BackgroundProcess.poll` never blocks. The Slicer widgets call
``poll()`` from a ``qt.QTimer``; scripts call the blocking :meth:`BackgroundProcess.wait`. Both also
log every line the command writes that is not a progress event (stderr, plain stdout) at INFO on the
``CovidCTDetectLib.process`` logger, on the calling thread, as the command runs: in Slicer they appear
in the Python console and the application log, so a crash (CUDA, memory, DICOM) can be diagnosed.

:meth:`BackgroundProcess.cancel` ends the whole process tree (data-loader workers included): on
POSIX the child leads a new session and its process group is signalled; on Windows it starts a new
process group and ``taskkill /T`` ends the tree. When a command fails, the last line it wrote to
stderr is the one-sentence error (``covidct`` exits with status 2 for a user error and prints
``covidct <command>: error: <sentence>``).

No Qt here: this module is used by the widgets, by batch scripts and by pytest alike.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from covidct.errors import CovidCTError

#: ``covidct <command>: error: ``, ``covidct: error: `` (argparse) or ``covidct <command>: `` (``internal error``,
#: ``interrupted``): the prefix that :attr:`BackgroundProcess.error` drops from the last stderr line.
_ERROR_PREFIX = re.compile(r"^covidct( [\w-]+)?: (error: )?")

log = logging.getLogger(__name__)


class CommandFailed(CovidCTError):
    """A background command ended with a non-zero exit status; ``str()`` is its one-sentence error."""

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode


class CommandCancelled(CovidCTError):
    """A background command was cancelled by the user."""


def python_executable() -> str:
    """The Python interpreter that runs ``covidct`` commands.

    Outside Slicer this is the running interpreter; inside Slicer 5.10 ``sys.executable`` is Slicer's
    ``PythonSlicer``. When ``sys.executable`` names the Slicer application instead, or is empty (the
    application started without its launcher, e.g. in a debugger), ``PythonSlicer`` beside it or on
    ``PATH`` is used.
    """
    current = Path(sys.executable) if sys.executable else None
    if current is not None and current.name.lower().startswith("python"):
        return str(current)
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    beside = current.with_name(name) if current is not None else None
    found = str(beside) if beside is not None and beside.is_file() else shutil.which("PythonSlicer")
    if not found:
        raise CovidCTError("PythonSlicer was not found beside the Slicer application or on PATH; reinstall Slicer.")
    return found


def covidct_environment(base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) with the folder holding the ``covidct`` package
    first on ``PYTHONPATH``, so the child imports the same ``covidct`` as this process (inside Slicer the
    package sits in the extension's module folder, which is on ``sys.path`` but not on ``PYTHONPATH``)."""
    env = dict(os.environ if base is None else base)
    package_parent = str(Path(importlib.util.find_spec("covidct").origin).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: the Slicer modules' lung method that leaves the choice to ``covidct`` (no ``--lungs-method``): the
#: method the model's training masks came from (its card), else unet when installed, else threshold
AUTO_LUNGS = "auto"


def lungs_method_args(lungs_method: str) -> list[str]:
    """The ``covidct detect``/``evaluate`` option for a lung method: none for :data:`AUTO_LUNGS`."""
    return [] if lungs_method == AUTO_LUNGS else ["--lungs-method", lungs_method]


def start_covidct(args: Sequence[str], progress_json: bool = True, python: str | None = None) -> BackgroundProcess:
    """Start ``python -m covidct <args> --progress-json`` in the background and return its handle.

    ``args`` is the command and its arguments, e.g. ``["segment", "ct.nrrd", "--out", "lungs.nii.gz"]``;
    ``progress_json=False`` leaves out ``--progress-json`` for commands without progress (``info``).
    """
    argv = [python or python_executable(), "-m", "covidct", *map(str, args)] + (
        ["--progress-json"] if progress_json else []
    )
    return BackgroundProcess(argv, env=covidct_environment())


class BackgroundProcess:
    """A child process whose stdout is JSON-line events and whose stderr is kept for error messages.

    ``argv``: the full command line; ``env``: its environment (default: inherited); ``cwd``: its folder.
    Lines of stdout that are not JSON objects become ``{"event": "output", "text": line}`` events.
    """

    #: stderr lines kept for :attr:`stderr_tail` and :attr:`error`
    STDERR_LINES = 50

    def __init__(self, argv: Sequence[str], env: dict | None = None, cwd: str | os.PathLike | None = None):
        self.argv = [str(a) for a in argv]
        self.cancelled = False
        self._events: queue.Queue = queue.Queue()
        self._stderr = collections.deque(maxlen=self.STDERR_LINES)
        self._log_lines: queue.Queue = queue.Queue()  # output lines not yet logged
        self.name = _command_name(self.argv)
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
            cwd=cwd,
            **_new_process_group(),
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, name="covidct-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="covidct-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    # -- state -----------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def done(self) -> bool:
        """True once the process has exited and all its output has been read."""
        return self._process.poll() is not None and not any(r.is_alive() for r in self._readers)

    @property
    def returncode(self) -> int | None:
        """Exit status once :attr:`done` (negative: killed by that signal on POSIX); None while running."""
        return self._process.returncode if self.done else None

    @property
    def stderr_tail(self) -> list[str]:
        """The last :attr:`STDERR_LINES` non-empty lines the process wrote to stderr."""
        return list(self._stderr)

    @property
    def error(self) -> str | None:
        """One sentence saying why the command failed; None while running, after success or after cancel."""
        if not self.done or self.returncode == 0 or self.cancelled:
            return None
        if not self._stderr:
            return f"The command '{' '.join(self.argv[:4])}' ended with exit status {self.returncode}."
        return _ERROR_PREFIX.sub("", self._stderr[-1], count=1)

    # -- events ----------------------------------------------------------------------------------
    def poll(self) -> list[dict]:
        """The events received since the last call (never blocks); logs the new output lines."""
        self._log_output()
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def wait(self, on_event: Callable[[dict], None] | None = None, check: bool = True) -> int:
        """Block until the process is :attr:`done`, calling ``on_event`` for each event; return the exit status.

        With ``check``, a cancelled run raises :class:`CommandCancelled` and a failed one
        :class:`CommandFailed` carrying :attr:`error`.
        """
        while not self.done or not self._events.empty():
            self._log_output()
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if on_event is not None:
                on_event(event)
        self._log_output()
        if check:
            self.check()
        return self.returncode

    def check(self) -> None:
        """Raise :class:`CommandCancelled` or :class:`CommandFailed` if the finished command did not succeed."""
        if self.cancelled:
            raise CommandCancelled("The computation was cancelled.")
        if self.returncode != 0:
            raise CommandFailed(self.error, self.returncode)

    # -- cancel ----------------------------------------------------------------------------------
    def cancel(self, grace_seconds: float = 3.0) -> None:
        """End the process and all its children: terminate, then kill after ``grace_seconds``; blocks until done."""
        if self._process.poll() is None:
            self.cancelled = True
            _end_tree(self._process, grace_seconds)
        for reader in self._readers:
            reader.join()

    # -- readers ---------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        for line in self._process.stdout:
            line = line.strip()
            if line:
                event = _parse_event(line)
                if event["event"] == "output":
                    self._log_lines.put(line)
                self._events.put(event)
        self._process.stdout.close()

    def _read_stderr(self) -> None:
        for line in self._process.stderr:
            line = line.rstrip()
            if line.strip():
                self._stderr.append(line)
                self._log_lines.put(line)
        self._process.stderr.close()

    def _log_output(self) -> None:
        """Log (INFO) the output lines the readers received since the last call, on the calling thread."""
        while True:
            try:
                line = self._log_lines.get_nowait()
            except queue.Empty:
                return
            log.info("%s: %s", self.name, line)


def _command_name(argv: list[str]) -> str:
    """``"covidct <command>"`` for a covidct command line, else the program's file name."""
    if "covidct" in argv[:-1]:
        return f"covidct {argv[argv.index('covidct') + 1]}"
    return Path(argv[0]).name if argv else "process"


def _parse_event(line: str) -> dict:
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    return event if isinstance(event, dict) and "event" in event else {"event": "output", "text": line}


def _new_process_group() -> dict:
    """``Popen`` arguments that put the child at the head of its own process group (and no console window)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _end_tree(process: subprocess.Popen, grace_seconds: float) -> None:
    """Terminate ``process`` and its descendants; kill whatever is left after ``grace_seconds``."""
    if os.name == "nt":
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(process.pid)],
            capture_output=True,
            creationflags=subprocess.CREATE_NO_WINDOW,
        )
        process.wait()
        return
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_seconds)
    _signal_group(process.pid, signal.SIGKILL)  # children that ignored SIGTERM or outlived the leader
    process.wait()
    deadline = time.monotonic() + grace_seconds  # signals are asynchronous: let the children finish dying
    while _signal_group(process.pid, 0) and time.monotonic() < deadline:
        time.sleep(0.01)


def _signal_group(group_id: int, signum: int) -> bool:
    """Send ``signum`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(group_id, signum)
    except ProcessLookupError:
        return False
    return True
