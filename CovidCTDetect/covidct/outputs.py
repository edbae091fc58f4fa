"""Atomic, verified output files: write to a temporary name in the target folder, check, then rename.

A crash, Ctrl-C, a kill or a full disk therefore never leaves half a file under the final name:

* the temporary file (``.<name>.<pid>.<random>.tmp<suffixes>``, hidden, in the same folder so that the
  rename is atomic) is flushed to disk and checked before the rename: not empty, and whatever the
  caller's ``verify`` checks (an image's header read back, a PNG's end chunk, a zip's directory);
* a failure (``OSError`` such as "no space left on device", or a failed check) removes the temporary
  file and raises :class:`~covidct.errors.OutputError` with one sentence naming the file;
* temporary files left by a killed run (their process is gone) are removed by the next write into
  that folder;
* files get the permissions of a normal ``open()`` (0666 less the umask), not the temporary file's 0600.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import OutputError

#: a temporary output's name: ``.<final name>.<pid>.<random hex>.tmp<suffixes>``
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?P<suffix>.*)$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, check the file and rename it onto
    ``path``.

    The temporary name keeps the file's suffixes (``.nii.gz``, ``.png``, ...) so that writers that choose
    a format from the file name (SimpleITK, matplotlib, torch) behave as for the final name. ``verify``
    (optional) gets the written temporary file and raises any exception when it is not complete. On any
    exception the temporary file is removed; write errors and failed checks become
    :class:`~covidct.errors.OutputError`, anything else propagates.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Could not create the folder {final.parent} ({exc.strerror}); choose another output."
        ) from exc
    remove_stale_temporaries(final.parent)
    suffix = "".join(final.suffixes)
    tmp = final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}"
    try:
        yield tmp
        _check(tmp, final, verify)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"Could not write {final}: {exc.strerror or exc}.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check(tmp: Path, final: Path, verify: Callable[[Path], None] | None) -> None:
    """Flush ``tmp`` to disk, then refuse it when it is empty or ``verify`` fails."""
    with open(tmp, "rb+") as stream:
        os.fsync(stream.fileno())
    failed = tmp.stat().st_size == 0
    if not failed and verify is not None:
        try:
            verify(tmp)
        except Exception:  # each writer's reader fails its own way
            failed = True
    if failed:
        raise OutputError(f"Could not write {final}: {_why_incomplete(final.parent)}.")


def _why_incomplete(folder: Path) -> str:
    """Why a written file came out short: no space left, or (with space left) an I/O error."""
    import shutil

    try:
        full = shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        full = False
    return "no space left on device" if full else "the file came out incomplete (an I/O error?)"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary outputs in ``folder`` whose writing process no longer runs (a killed run's
    leftovers); returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and not _running(int(match["pid"])):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def check_output_folder(folder: str | os.PathLike, needed_mb: float = 0.0) -> Path:
    """Make sure outputs can go into ``folder`` before any work starts: it is (or can be made) a folder, it
    is writable, and at least ``needed_mb`` MB are free; else :class:`~covidct.errors.UsageError` with
    one sentence. Returns the folder (created)."""
    import shutil

    from .errors import UsageError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"The output '{folder}' is a file, not a folder; give a folder for the results.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot create the output folder '{folder}' ({exc.strerror}); choose another one.") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"The output folder '{folder}' is not writable; choose another one or fix its permissions.")
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < needed_mb:
        raise UsageError(
            f"Only {free_mb:.0f} MB are free where '{folder}' is, and the outputs need about {needed_mb:.0f} MB; "
            "free some space or choose another output folder."
        )
    return folder


def check_output_file(path: str | os.PathLike, suffixes) -> Path:
    """Make sure ``path`` can be written before any work starts: its suffix is one of ``suffixes`` (e.g.
    ``(".nii.gz", ".nrrd")``), it is not a folder, and its folder is writable (:func:`check_output_folder`)."""
    from .errors import UsageError

    path = Path(path)
    name = path.name.lower()
    if not any(name.endswith(suffix) for suffix in suffixes):
        raise UsageError(f"Cannot write '{path.name}': choose a name ending in {', '.join(suffixes)}.")
    if path.is_dir():
        raise UsageError(f"The output '{path}' is a folder; give a file name such as lungs{suffixes[0]}.")
    check_output_folder(path.parent if str(path.parent) else ".")
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (verified: the size read back) and return the path."""

    def same_size(tmp: Path) -> None:
        if tmp.stat().st_size != len(data):
            raise OutputError(f"Could not write {path}: only part of it reached the disk (is the disk full?).")

    with atomic_path(path, verify=same_size) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically and return the path."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    """Serialise numpy scalars/arrays and paths, which ``json`` does not know."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def json_safe(value):
    """``value`` (nested dicts/lists) with every NaN or ±inf float replaced by None, which JSON can hold.

    ``json`` would otherwise write ``NaN``/``Infinity``, which strict JSON readers reject.
    """
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def verify_png(path: Path) -> None:
    """Raise unless ``path`` is a whole PNG (signature at the start, IEND chunk at the end)."""
    with open(path, "rb") as stream:
        head = stream.read(8)
        stream.seek(-12, os.SEEK_END)
        tail = stream.read(12)
    if head != b"\x89PNG\r\n\x1a\n" or tail[4:8] != b"IEND":
        raise OutputError(f"Could not write {path.name}: the PNG came out incomplete (is the disk full?).")


def verify_zip(path: Path) -> None:
    """Raise unless ``path`` is a readable zip archive (torch's weight and checkpoint files)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        if archive.testzip() is not None:
            raise OutputError(f"Could not write {path.name}: the archive came out damaged (is the disk full?).")
