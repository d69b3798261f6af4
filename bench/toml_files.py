"""Reading the TOML files of subjects, prompt sets and suites, with errors naming the file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise BenchError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{path}: invalid TOML ({e}); fix the syntax") from None


def parse_toml_value(text: str) -> Any:
    """Parse one TOML literal (`1e-4`, `true`, `"a robot"`, `[1, 2]`); raises ValueError."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ValueError(str(e)) from None


def require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path | str):
    """`table[key]`, checked for presence and type."""
    if key not in table:
        raise BenchError(f"{where}: missing required key '{key}'")
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BenchError(f"{where}: '{key}' must be {names}, got {value!r}")
    return value


def reject_unknown(table: dict[str, Any], allowed: set[str], where: Path | str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BenchError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
