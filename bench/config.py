"""Method options: dataclass defaults, then the suite's `[method_defaults.NAME]`, then `--set`.

Every value is checked against the config dataclass's field types, so a typo or a wrong type is
an error that names the key, never a silently ignored option.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from bench.errors import BenchError
from bench.registry import did_you_mean
from bench.toml_files import parse_toml_value


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["lr=1e-4", "class_prompt='a robot'"]` -> {"lr": 0.0001, "class_prompt": "a robot"}.

    Values are TOML literals. A value that is not valid TOML is kept as text, so
    `--set class_prompt="a robot"` works after the shell has eaten the quotes; the field's type
    then decides whether text is acceptable.
    """
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BenchError(f"--set {item!r}: expected key=value, e.g. --set lr=1e-4")
        try:
            values[key] = parse_toml_value(text.strip())
        except ValueError:
            values[key] = _Text(text.strip())
    return values


class _Text(str):
    """A --set value that did not parse as TOML; accepted only where a string is expected."""


def _accepts(hint: Any, value: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, _Text):
        return hint is str
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _coerce(hint: Any, value: Any) -> Any:
    if isinstance(value, _Text):
        return str(value)
    if hint is float or (float in typing.get_args(hint) and isinstance(value, int)):
        return float(value) if not isinstance(value, bool) else value
    if isinstance(value, list):
        return tuple(value)
    return value


def resolve_config(config_cls: type, *layers: dict[str, Any], where: str = "--set") -> Any:
    """An instance of `config_cls` with each layer of values applied in order."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in fields:
                raise BenchError(
                    f"{where}: unknown option '{key}'{did_you_mean(key, sorted(fields))} "
                    f"for {config_cls.__name__}; options: {', '.join(sorted(fields))}"
                )
            if not _accepts(hints[key], value):
                shown = typing.get_args(hints[key]) or hints[key]
                raise BenchError(f"{where}: option '{key}' expects {shown}, got {value!r}")
            merged[key] = _coerce(hints[key], value)
    try:
        return config_cls(**merged)
    except (ValueError, TypeError) as e:
        raise BenchError(f"{where}: {e}") from None


def config_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
