"""Importer for the public DreamBench layout: `<root>/<subject>/*.jpg` + `prompts_and_classes.txt`.

The dataset is not shipped with bench: get it from https://github.com/google/dreambooth (its
`dataset/` folder) and point `--data-root` or `BENCH_DREAMBENCH_ROOT` at it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench.data.prompts import Prompt, PromptSet, prompt_id_for
from bench.data.subjects import Subject, images_in, kind_for_class
from bench.errors import BenchError

ENV_VAR = "BENCH_DREAMBENCH_ROOT"
SOURCE = "https://github.com/google/dreambooth (dataset/)"
LICENSE = "CC BY 4.0 (see the dataset's references_and_licenses.txt for each photo)"
_TEMPLATE = re.compile(r"'(.*?)'\.format\(unique_token, class_token\)")


def data_root(cli_value: str | Path | None = None) -> Path:
    value = cli_value or os.environ.get(ENV_VAR)
    if not value:
        raise BenchError(
            f"the DreamBench dataset is needed: download it from {SOURCE} and pass "
            f"--data-root DIR or set {ENV_VAR}"
        )
    root = Path(value)
    if not (root / "prompts_and_classes.txt").is_file():
        raise BenchError(
            f"{root}: not a DreamBench folder (no prompts_and_classes.txt); download the "
            f"dataset from {SOURCE} and pass its folder with --data-root or {ENV_VAR}"
        )
    return root


def _sections(text: str) -> tuple[list[str], list[str], list[str]]:
    class_lines, object_lines, live_lines = [], [], []
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "Classes":
            current = class_lines
        elif stripped == "Object Prompts":
            current = object_lines
        elif stripped == "Live Subject Prompts":
            current = live_lines
        elif stripped == "Prompts":  # the heading above both prompt lists
            current = None
        elif current is not None and stripped:
            current.append(stripped)
    return class_lines, object_lines, live_lines


def _prompt_set(name: str, lines: list[str], where: Path) -> PromptSet:
    templates = [
        m.group(1).replace("{0}", "{token}").replace("{1}", "{class}")
        for line in lines
        if (m := _TEMPLATE.search(line))
    ]
    if not templates:
        raise BenchError(f"{where}: no prompt templates found in the '{name}' section")
    prompts = tuple(Prompt(id=prompt_id_for(t), template=t) for t in templates)
    return PromptSet(name=name, prompts=prompts, source=SOURCE)


def read_dreambench(root: Path) -> tuple[tuple[Subject, ...], PromptSet, PromptSet]:
    """Subjects (with kind from the class: cats and dogs are live) and the two prompt sets."""
    listing = root / "prompts_and_classes.txt"
    class_lines, object_lines, live_lines = _sections(listing.read_text(encoding="utf-8"))
    subjects = []
    for line in class_lines:
        if line == "subject_name,class":
            continue
        subject_id, _, class_noun = line.partition(",")
        folder = root / subject_id
        if not folder.is_dir():
            raise BenchError(f"{folder}: listed in {listing} but missing; re-download the dataset")
        subjects.append(
            Subject(
                id=subject_id,
                class_noun=class_noun,
                kind=kind_for_class(class_noun),
                images=images_in(folder),
                source=SOURCE,
                license=LICENSE,
            )
        )
    if not subjects:
        raise BenchError(f"{listing}: no subjects found under 'Classes'")
    return (
        tuple(subjects),
        _prompt_set("dreambench_object", object_lines, listing),
        _prompt_set("dreambench_live", live_lines, listing),
    )
