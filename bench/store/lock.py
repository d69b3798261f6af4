"""One writer per run: `bench run`, `bench score` and imports hold the run's lock while they
write, and a second process is told at once who holds it. Whoever takes the lock first removes
the temporary files that killed writes left behind (nothing else can be writing them)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded against each other
    fcntl = None

LOCK = ".lock"
STAGING = ".fit-staging"  # bench.store.runner fits into it


@contextlib.contextmanager
def run_lock(run_root: Path) -> Iterator[None]:
    """Hold `run_root`'s lock for the block, or raise a one-line error naming the holder."""
    run_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_root / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise BenchError(
                    f"run {run_root.name} is being written by another bench process (pid "
                    f"{holder}); wait for it to finish, then run the same command again"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_leftovers(run_root)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # an idle run's lock file is empty, killed or not before
    finally:
        os.close(fd)  # closing releases the lock, as the kernel does for a killed process


def remove_leftovers(run_root: Path) -> list[Path]:
    """Delete the temporary files and folders of interrupted writes (bench.atomic names them
    `.<name>.<random>.tmp`) and unfinished fits; returns what was removed."""
    found = [p for p in run_root.rglob(".*.tmp")] + list(run_root.rglob(STAGING))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
