"""How much memory this process can still use, to refuse inputs that cannot fit before reading them.

No third-party package is needed: Linux reads ``/proc/meminfo`` (``MemAvailable``) and the cgroup
limit of a container, other POSIX systems use ``os.sysconf``, Windows ``GlobalMemoryStatusEx``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

GB = 1024**3


def available_memory_bytes() -> int | None:
    """Bytes of memory available to this process now, or ``None`` when the system does not say.

    Linux: ``MemAvailable`` (free plus reclaimable cache), lowered to the room left under a cgroup
    (container) limit. macOS and other POSIX systems: available pages from ``os.sysconf`` when the
    system has them, else the physical memory size (an upper bound). Windows: ``ullAvailPhys``.
    """
    candidates = [_linux_mem_available(), _cgroup_room()]
    candidates = [c for c in candidates if c is not None]
    if candidates:
        return min(candidates)
    if sys.platform == "win32":
        return _windows_available()
    return _sysconf_available()


def _linux_mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Limit minus usage of this process's cgroup (v2, then v1), or None when unlimited/unknown."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max":
                return None
            limit, usage = int(limit_text), int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # cgroup v1 writes a huge number for "no limit"
            return None
        return max(limit - usage, 0)
    return None


def _sysconf_available() -> int | None:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            pages = os.sysconf(name)
        except (ValueError, OSError):
            continue
        if pages > 0:
            return pages * page
    return None


def _windows_available() -> int | None:
    import ctypes

    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    try:
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return int(status.ullAvailPhys)
    except (AttributeError, OSError):
        pass
    return None
