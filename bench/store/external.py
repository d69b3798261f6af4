"""`bench score`: bring images made by an outside tool into the store as a run of their own.

The manifest (CSV or JSONL) has one row per image with the columns `image` (a path inside the
images folder, relative to it), `subject` (a subject id of the suite), `prompt` (the prompt id,
its template, or its text with or without the identifier) and `image_index`; `replicate` is
optional (default: the suite's first replicate seed). Everything is checked before anything is
written, and every error names the manifest row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from bench import atomic
from bench.data.plan import cell_seed
from bench.data.suites import Suite
from bench.errors import BenchError
from bench.images import read_image
from bench.paths import inside
from bench.realness import REAL
from bench.store.layout import RunPaths, provenance, subject_record
from bench.store.lock import run_lock
from bench.store.records import ImageEntry, RunRecord, UnitManifest

REQUIRED = ("image", "subject", "prompt", "image_index")


def read_manifest(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BenchError(f"{path}: manifest not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(
            f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x}); save the "
            "manifest as UTF-8"
        ) from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    elif path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BenchError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    else:
        raise BenchError(f"{path}: manifest must be .csv or .jsonl")
    if not rows:
        raise BenchError(f"{path}: manifest has no rows")
    return rows


def _whole_number(value: Any, what: str) -> int:
    """An integer from JSON (not a bool or a float) or from CSV text of digits."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise BenchError(f"{what} must be a whole number, got {value!r}")


def _prompt_lookup(suite: Suite, subject) -> dict[str, str]:
    """Every accepted spelling of a prompt -> its id."""
    lookup = {}
    for p in suite.prompts_for(subject).prompts:
        for spelling in (
            p.id,
            p.template,
            p.render(subject.token, subject.class_noun),
            p.render(None, subject.class_noun),
        ):
            lookup[spelling.strip().lower()] = p.id
    return lookup


def plan_import(suite: Suite, manifest: Path, images_dir: Path) -> dict[tuple, dict[str, Any]]:
    """Validated rows keyed by (subject, replicate), each a list of image entries."""
    subjects = {s.id: s for s in suite.subjects}
    units: dict[tuple, dict[str, Any]] = {}
    seen = set()
    for n, row in enumerate(read_manifest(manifest), 1):
        where = f"{manifest} row {n}"
        if not isinstance(row, dict):
            raise BenchError(f"{where}: must be an object with {', '.join(REQUIRED)}")
        missing = [c for c in REQUIRED if row.get(c) in (None, "")]
        if missing:
            raise BenchError(
                f"{where}: missing {', '.join(missing)}; columns: {', '.join(REQUIRED)}"
            )
        subject = subjects.get(str(row["subject"]))
        if subject is None:
            raise BenchError(
                f"{where}: subject {row['subject']!r} is not in suite {suite.name} "
                f"({', '.join(subjects)})"
            )
        prompt_id = _prompt_lookup(suite, subject).get(str(row["prompt"]).strip().lower())
        if prompt_id is None:
            raise BenchError(
                f"{where}: prompt {row['prompt']!r} is not in the {subject.kind} "
                f"prompt set of suite {suite.name}; use its prompt id"
            )
        index = _whole_number(row["image_index"], f"{where}: image_index")
        if not 0 <= index < suite.images_per_prompt:
            raise BenchError(
                f"{where}: image_index {index} is out of range; suite {suite.name} has "
                f"{suite.images_per_prompt} image(s) per prompt, indexed from 0"
            )
        replicate = suite.replicates[0]
        if row.get("replicate") not in (None, ""):
            replicate = _whole_number(row["replicate"], f"{where}: replicate")
            if replicate not in suite.replicates:
                raise BenchError(
                    f"{where}: replicate {replicate} is not one of suite {suite.name}'s replicate "
                    f"seeds {list(suite.replicates)}"
                )
        key = (subject.id, prompt_id, index, replicate)
        if key in seen:
            raise BenchError(f"{where}: a second image for {key}; each cell takes one image")
        seen.add(key)
        image = inside(images_dir, str(row["image"]), f"{where}: image")
        try:  # fully decoded now: a truncated file is refused before the run is written
            read_image(image)
        except BenchError as e:
            raise BenchError(f"{where}: {e}") from None
        unit = units.setdefault((subject.id, replicate), {"subject": subject, "images": []})
        unit["images"].append((prompt_id, index, image))
    return units


def import_run(suite: Suite, manifest: Path, images_dir: Path, name: str, runs_root: Path) -> Path:
    """Validate, then copy the images into `<runs>/<suite>/<name>-<hash>/` with manifests."""
    units = plan_import(suite, manifest, images_dir)
    digest = hashlib.sha256(json.dumps(suite.identity(), sort_keys=True).encode())
    for (subject_id, replicate), unit in sorted(units.items()):
        for prompt_id, index, image in sorted(unit["images"]):
            digest.update(f"{subject_id}/{prompt_id}/{index}/{replicate}".encode())
            digest.update(hashlib.sha256(image.read_bytes()).digest())
    rid = f"{name}-{digest.hexdigest()[:8]}"
    paths = RunPaths(runs_root / suite.name / rid)
    with run_lock(paths.root):
        _write_import(suite, units, rid, name, manifest, images_dir, paths)
    return paths.root


def _write_import(suite, units, rid, name, manifest, images_dir, paths: RunPaths) -> None:
    RunRecord(
        run_id=rid,
        method=name,
        kind="external",
        config={"manifest": str(manifest), "images": str(images_dir)},
        method_defaults={},
        suite=suite.identity(),
        units_total=len(units),
        realness=REAL,  # made elsewhere; the scorers say whether theirs are random
        provenance=provenance(),
    ).write(paths.run_json)
    for (subject_id, replicate), unit in sorted(units.items()):
        workdir = paths.unit(subject_id, replicate)
        subject = unit["subject"]
        prompts = {p.id: p for p in suite.prompts_for(subject).prompts}
        entries = []
        for prompt_id, index, image in sorted(unit["images"]):
            name_in_store = f"{prompt_id}-{index}{image.suffix.lower()}"
            atomic.write_bytes(RunPaths.images(workdir) / name_in_store, image.read_bytes())
            prompt = prompts[prompt_id]
            entries.append(
                ImageEntry(
                    file=f"images/{name_in_store}",
                    prompt_id=prompt_id,
                    image_index=index,
                    template=prompt.template,
                    prompt=prompt.render(subject.token, subject.class_noun),
                    scoring_prompt=prompt.render(None, subject.class_noun),
                    seed=cell_seed(subject_id, prompt_id, index, replicate),
                    source=str(image),
                )
            )
        UnitManifest(
            run_id=rid,
            suite=suite.name,
            method=name,
            subject=subject_record(subject),
            replicate=replicate,
            images=entries,
            provenance=provenance(),
        ).write(RunPaths.manifest(workdir))
