"""Peak memory of the running process, for the benchmark scripts (each measures in a child process)."""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: ``VmHWM`` from /proc (``ru_maxrss`` would carry the
    parent's peak over through ``exec``); ``ru_maxrss`` where there is no /proc."""
    status = Path("/proc/self/status")
    match = re.search(r"VmHWM:\s+(\d+)", status.read_text()) if status.exists() else None
    if match:
        return int(match.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024 ** 2)
