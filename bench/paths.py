"""Where bench finds its shipped data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """A shipped data directory (`subjects`, `prompts`, `suites`, `baselines`).

    A built wheel carries them in `bench/_data/`; an editable install or a source checkout finds
    them at the top of the repository.
    """
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def cache_dir() -> Path:
    """Cache root for built tiny models, class images and reference embeddings.

    `BENCH_CACHE` overrides; otherwise `$XDG_CACHE_HOME/bench` or `~/.cache/bench`.
    """
    if env := os.environ.get("BENCH_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bench"


def runs_dir(cli_value: str | Path | None = None) -> Path:
    """The run store: `--runs`, else `BENCH_RUNS`, else `./runs`."""
    if cli_value:
        return Path(cli_value)
    return Path(os.environ.get("BENCH_RUNS", "runs"))


def user_dir() -> Path:
    """Where the user's own data lives (registered subjects): never inside the package.

    `BENCH_HOME` overrides; otherwise `$XDG_DATA_HOME/bench` or `~/.local/share/bench`.
    """
    if env := os.environ.get("BENCH_HOME"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "bench"


def inside(root: Path, name: str, what: str, fix: str = "put the file inside that folder") -> Path:
    """`name` (from a file a user or tool wrote) resolved against `root`, refused unless it stays
    inside `root`: no `..`, absolute path or link leads elsewhere."""
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise BenchError(f"{what} {name!r} is outside {root}; {fix}")
    return path
