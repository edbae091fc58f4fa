"""For the benchmark scripts, which measure in a child process: the child/parent split and peak memory."""

from __future__ import annotations

import json
import os
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)


def rss_mb() -> float | None:
    """Current resident memory of this process in MiB (``VmRSS``), or None where there is no /proc."""
    status = Path("/proc/self/status")
    match = re.search(r"VmRSS:\s+(\d+)", status.read_text()) if status.exists() else None
    return int(match.group(1)) / 1024 if match else None


def child_or_environment(args, measure, data_dir) -> dict:
    """In the child (``args.child``, a JSON dict of ``measure``'s arguments): print ``measure``'s result as
    JSON and exit. In the parent: exit with one sentence when ``args.ct`` is missing, else return the
    environment for the children, with ``args.threads`` applied to OpenMP and MKL."""
    if args.child:
        print(json.dumps(measure(**json.loads(args.child))))
        sys.exit(0)
    if not Path(args.ct).exists():
        sys.exit(f"CT not found: {args.ct} (real data lives under {data_dir}; set COVIDCT_SHARED_DATA)")
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    return env
