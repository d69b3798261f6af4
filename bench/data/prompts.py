"""Prompt sets: templates with `{token}` and `{class}` placeholders, each with a stable id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.paths import data_dir
from bench.toml_files import read_toml, reject_unknown, require

_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
PRIOR_PROMPT_ID = "prior"  # reserved: the plain class prompt of a suite's prior images


@dataclass(frozen=True)
class Prompt:
    id: str
    template: str

    def render(self, token: str | None, class_noun: str) -> str:
        """The prompt text; `token=None` drops the identifier ("a dog on the beach")."""
        text = self.template.replace("{class}", class_noun).replace("{token}", token or "")
        return " ".join(text.split())


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[Prompt, ...]
    source: str = ""

    def __post_init__(self) -> None:
        where = f"prompt set '{self.name}'"
        if not self.prompts:
            raise BenchError(f"{where}: has no prompts")
        seen: set[str] = set()
        for p in self.prompts:
            if p.template.count("{token}") != 1 or p.template.count("{class}") != 1:
                raise BenchError(
                    f"{where}: prompt {p.template!r} must contain {{token}} and {{class}} once each"
                )
            rest = p.template.replace("{token}", "").replace("{class}", "")
            if "{" in rest or "}" in rest:  # an unknown placeholder or a stray brace
                raise BenchError(
                    f"{where}: prompt {p.template!r} may use only the placeholders {{token}} and "
                    "{class}; remove the other braces"
                )
            if not _ID.fullmatch(p.id):
                raise BenchError(
                    f"{where}: prompt id {p.id!r} must be lower-case a-z, 0-9, '_' "
                    "(give the prompt an `id`)"
                )
            if p.id in seen:
                raise BenchError(f"{where}: prompt id {p.id!r} appears twice; ids must be unique")
            if p.id == PRIOR_PROMPT_ID:
                raise BenchError(
                    f"{where}: prompt id {p.id!r} is reserved for the prior images; rename it"
                )
            seen.add(p.id)


def prompt_id_for(template: str) -> str:
    """A readable id from a template: 'a {token} {class} on the beach' -> 'on_the_beach'."""
    text = template.replace("{token}", " ").replace("{class}", " ")
    text = re.sub(r"^\s*an?\s+", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def load_prompt_set(name_or_path: str | Path) -> PromptSet:
    """A prompt set by name (a file in the shipped `prompts/`) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = data_dir("prompts") / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(p.stem for p in sorted(data_dir("prompts").glob("*.toml")))
            raise BenchError(f"unknown prompt set '{name_or_path}'; shipped sets: {known}")
    table = read_toml(path)
    reject_unknown(table, {"name", "source", "prompt"}, path)
    entries = require(table, "prompt", list, path)
    prompts = []
    for i, entry in enumerate(entries):
        where = f"{path} [[prompt]] #{i + 1}"
        if not isinstance(entry, dict):
            raise BenchError(f"{where}: must be a table with id and template")
        reject_unknown(entry, {"id", "template"}, where)
        template = require(entry, "template", str, where)
        prompts.append(Prompt(id=entry.get("id", prompt_id_for(template)), template=template))
    return PromptSet(
        name=table.get("name", path.stem), prompts=tuple(prompts), source=table.get("source", "")
    )
