"""The background-process runner of the Slicer modules (CovidCTDetectLib.process) on real subprocesses.

Progress events are read from the real ``covidct.progress`` JSON-lines reporter in a child Python,
a failing ``covidct`` command gives its exit status 2 and its one sentence, and cancel ends the
whole process tree (a grandchild included).
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TEST_DATA

from covidct.errors import CovidCTError
from CovidCTDetectLib.process import (
    BackgroundProcess,
    CommandCancelled,
    CommandFailed,  # noqa: E402
    covidct_environment,
    python_executable,
    start_covidct,
)


def python(script: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script)]


def alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self").exists():
        return stat.exists() and stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0] != "Z"
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_events_from_the_real_json_lines_reporter_are_read_without_blocking():
    process = BackgroundProcess(
        python("""
        import sys, time
        from covidct.progress import JsonLinesProgress
        progress = JsonLinesProgress()
        for done in range(1, 4):
            progress.stage("lungs", done, 3, slice=done * 10)
            time.sleep(0.05)
        print("a plain line", flush=True)
        sys.stderr.write("a warning on stderr\\n")
        progress.event("result", out="lungs.nrrd")
        """),
        env=covidct_environment(),
    )
    first = process.poll()  # returns at once, whatever has arrived so far
    assert isinstance(first, list)
    seen = list(first)
    assert process.wait(seen.append) == 0
    seen += process.poll()
    assert [e["event"] for e in seen] == ["stage", "stage", "stage", "output", "result"]
    assert [(e["done"], e["total"], e["slice"]) for e in seen[:3]] == [(1, 3, 10), (2, 3, 20), (3, 3, 30)]
    assert seen[3]["text"] == "a plain line"
    assert seen[4]["out"] == "lungs.nrrd" and seen[4]["time"] > 0
    assert process.done and process.returncode == 0 and process.error is None
    assert process.stderr_tail == ["a warning on stderr"]


def test_output_lines_are_logged_by_the_poll_that_receives_them_not_the_progress_events(caplog):
    """What Slicer's console and log show while a command runs: its stderr and plain stdout lines, named by the
    command, logged from ``poll()`` (the GUI timer's thread), and no JSON progress line."""
    caplog.set_level("INFO", logger="CovidCTDetectLib.process")
    process = start_covidct(["info", str(TEST_DATA / "cip-ct64" / "ct-64.nrrd"), "-v"], progress_json=False)
    while not process.done:
        process.poll()
        time.sleep(0.05)
    process.poll()
    logged = [r.getMessage() for r in caplog.records if r.name == "CovidCTDetectLib.process"]
    assert logged and all(line.startswith("covidct info: ") for line in logged)
    assert any("loaded" in line for line in logged)  # the -v log line, written to stderr
    assert any("64" in line for line in logged if "loaded" not in line)  # the report, written to stdout
    assert not any('{"event"' in line for line in logged)


def test_failing_covidct_command_gives_exit_status_2_and_one_sentence(tmp_path):
    bad = tmp_path / "not-a-ct.nii.gz"
    bad.write_bytes(b"this is not an image\n" * 10)
    process = start_covidct(["info", bad], progress_json=False)
    assert process.argv[:3] == [python_executable(), "-m", "covidct"]
    with pytest.raises(CommandFailed) as failure:
        process.wait()
    assert failure.value.returncode == process.returncode == 2
    sentence = str(failure.value)
    assert sentence == process.error
    assert "\n" not in sentence and not sentence.startswith("covidct") and sentence.endswith(".")
    assert "not-a-ct.nii.gz" in sentence
    assert not any("Traceback" in line for line in process.stderr_tail)


def test_successful_covidct_command_on_the_real_ct():
    process = start_covidct(["info", TEST_DATA / "cip-ct64" / "ct-64.nrrd"], progress_json=False)
    output = []
    assert process.wait(output.append) == 0
    assert process.error is None
    assert {e["event"] for e in output} == {"output"}  # info prints a report, not progress events
    lines = [e["text"] for e in output]
    assert any(line.startswith("size") and "64 × 64 × 79" in line for line in lines)


def test_cancel_ends_the_whole_process_tree():
    process = BackgroundProcess(
        python("""
        import json, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(json.dumps({"event": "child", "pid": child.pid}), flush=True)
        time.sleep(60)
        """)
    )
    events, deadline = [], time.monotonic() + 30
    while not events and time.monotonic() < deadline:
        events = process.poll()
        time.sleep(0.02)
    grandchild = events[0]["pid"]
    assert alive(process.pid) and alive(grandchild)
    started = time.monotonic()
    process.cancel()
    print(f"cancel took {time.monotonic() - started:.2f} s")
    assert process.done and process.cancelled
    assert not alive(grandchild), "the grandchild survived cancel()"
    assert process.error is None
    with pytest.raises(CommandCancelled):
        process.check()


def test_blocking_wait_raises_the_commands_sentence():
    process = BackgroundProcess(
        python("""
        import sys
        sys.stderr.write("covidct: chose series 3\\n")
        sys.stderr.write("covidct segment: error: The CT has only 2 slices; use a CT with at least 16 slices.\\n")
        sys.exit(2)
        """)
    )
    with pytest.raises(CommandFailed, match=r"^The CT has only 2 slices; use a CT with at least 16 slices\.$"):
        process.wait()


def test_child_imports_the_same_covidct_package():
    import covidct

    env = covidct_environment({"PATH": os.environ.get("PATH", "")})
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(covidct.__file__).parent.parent)
    output = []
    BackgroundProcess(python("import covidct; print(covidct.__file__)"), env=env).wait(output.append)
    assert output == [{"event": "output", "text": covidct.__file__}]
    assert python_executable() == sys.executable


def test_python_executable_without_sys_executable_finds_pythonslicer_on_path(monkeypatch, tmp_path):
    """Slicer started without its launcher leaves ``sys.executable`` empty: PythonSlicer is found on PATH,
    and without it the error is one sentence."""
    monkeypatch.setattr(sys, "executable", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CovidCTError, match="PythonSlicer was not found"):
        python_executable()
    launcher = tmp_path / "PythonSlicer"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    assert python_executable() == str(launcher)
