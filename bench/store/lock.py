"""Who writes what: one process per unit of work, many processes per run.

A unit (subject x replicate) is claimed before it is fitted, generated or scored, and the claim
is held until the unit is whole. Processes that run the same run at once (two `bench run`s, Slurm
array shards, Ray workers) each claim the units no one holds, so they share the work and no unit
is done twice. The run's own lock is held only briefly: to write `run.json`, or by a writer that
makes a whole run at once (`bench score --images`).

The mechanism is the kernel's advisory lock (`flock`) on a small file, `<unit>/.claim` or
`<run>/.lock`, which holds the holder's host and process id for the messages. The kernel
releases it when the holder exits or is killed, so a crashed process's units are taken over at
once. On NFS, Linux emulates `flock` with byte-range locks that the server keeps per client: a
node that dies loses its locks when its lease runs out (90 seconds by default on NFSv4). Lustre
needs its `flock` mount option. Without `fcntl` (Windows) nothing is locked.

Whoever claims a unit first removes the temporary files that killed writes left in it (nothing
else can be writing them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded against each other
    fcntl = None

LOCK = ".lock"
CLAIM = ".claim"
STAGING = ".fit-staging"  # bench.store.runner fits into it


class Claim:
    """A held lock file; `release` lets it go (closing the file releases it, as the kernel does
    for a process that dies)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # a free lock file is empty, released or killed before
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(path: Path, wait: bool = False) -> Claim | None:
    """Hold the lock file `path` (created if missing): a Claim, or None when another process
    holds it and `wait` is false."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
    return Claim(path, fd)


def holder(path: Path) -> str:
    """Who holds the lock file `path`, as its holder wrote it ("host pid N")."""
    try:
        return path.read_text(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


def claim_unit(unit: Path, wait: bool = False) -> Claim | None:
    """Claim a unit for this process (see the module's docstring); on success, the temporary
    files that killed writes left in it are removed."""
    claim = try_claim(unit / CLAIM, wait)
    if claim is not None:
        remove_leftovers(unit)
    return claim


@contextlib.contextmanager
def run_lock(run_root: Path, wait: bool = False) -> Iterator[None]:
    """Hold `run_root`'s own lock for the block; while another process holds it, wait for it
    (`wait`: it is held briefly) or raise a one-line error naming the holder."""
    claim = try_claim(run_root / LOCK, wait)
    if claim is None:
        raise BenchError(
            f"run {run_root.name} is being written by another bench process "
            f"({holder(run_root / LOCK)}); wait for it to finish, then run the same command again"
        )
    with claim:
        remove_leftovers(run_root, recursive=False)  # the units' own are their claimers'
        yield


def remove_leftovers(folder: Path, recursive: bool = True) -> list[Path]:
    """Delete the temporary files and folders of interrupted writes (bench.atomic names them
    `.<name>.<random>.tmp`) and unfinished fits in `folder`; returns what was removed."""
    search = folder.rglob if recursive else folder.glob
    found = [p for p in search(".*.tmp")] + list(search(STAGING))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
