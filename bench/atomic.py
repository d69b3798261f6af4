"""Atomic file writes: write to a temporary name in the same directory, then rename.

A reader (or a resumed run) never sees a half-written file: either the old state or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`, renamed onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp (and writers that replace the file, as safetensors does) make it owner-only;
        # a store a team shares needs the umask's permissions.
        tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes `path` only if the block succeeds. Its name
    carries this host and process, so that the temporary folders of processes killed while
    building `path` (a kill skips every cleanup) are removed by the next builder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_dirs(path)
    owner = f".{path.name}.{_HOST}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=owner, suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():  # another process finished first: keep theirs
            return
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_HOST = socket.gethostname().replace(".", "-")


def remove_abandoned_dirs(path: Path) -> list[Path]:
    """Remove the temporary folders of `atomic_dir(path)` whose process, on this host, is gone;
    returns them. Those of live processes, or of other hosts sharing the folder, are kept."""
    removed = []
    for tmp in path.parent.glob(f".{path.name}.{_HOST}.*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.{_HOST}.").split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def append_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Rewrite a JSONL file with `rows` added: atomic, so a crash never leaves a torn line."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    write_text(path, old + new)


def apply_umask(folder: str | Path) -> None:
    """Give every file and folder under `folder` the umask's permissions (what a method wrote
    with its own tools may be owner-only)."""
    mask = _umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
