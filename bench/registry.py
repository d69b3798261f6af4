"""Name -> plugin registries, loaded lazily from entry points.

Built-in methods and scorers are declared in bench's own pyproject under the same entry-point
groups that outside packages use, so there is one way in: listing names imports nothing heavy,
and a plugin's module is imported only when its name is asked for.
"""

from __future__ import annotations

import difflib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from bench.errors import BenchError

METHODS = "bench.methods"
SCORERS = "bench.scorers"
COMMANDS = "bench.commands"  # command groups of the `bench` command line (a typer.Typer each)
_KIND = {METHODS: "method", SCORERS: "scorer", COMMANDS: "command group"}


def did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        if ep.name in found and found[ep.name].value != ep.value:
            raise BenchError(
                f"two plugins register the {_KIND[group]} '{ep.name}': "
                f"{found[ep.name].value} and {ep.value}; uninstall one"
            )
        found[ep.name] = ep
    return found


def names(group: str) -> list[str]:
    return sorted(_entry_points(group))


def describe(group: str) -> list[tuple[str, str]]:
    """(name, 'module:object') for every registered plugin, without importing any."""
    return [(name, ep.value) for name, ep in sorted(_entry_points(group).items())]


def load(group: str, name: str) -> Any:
    """The object an entry point names; an unknown name lists the known ones."""
    eps = _entry_points(group)
    if name not in eps:
        known = sorted(eps)
        raise BenchError(
            f"unknown {_KIND[group]} '{name}'{did_you_mean(name, known)}; "
            f"available: {', '.join(known) or 'none'}"
        )
    return eps[name].load()
