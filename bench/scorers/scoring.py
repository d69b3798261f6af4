"""Scoring a run: every stored image gets one value per scorer, written to `scores.jsonl` in its
(subject, replicate) directory. Statistics are computed elsewhere, from these per-image rows.

Scorer options come from the suite's `[scorer_options]` and then `--scorer-option KEY.OPT=VALUE`.
KEY is a scorer id (`clip_i`) or a prefix shared by several (`clip` sets clip_i and clip_t,
which then share one loaded CLIP model); an exact id wins over a prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import registry
from bench.config import parse_assignments
from bench.errors import BenchError
from bench.progress import Reporter, Silent
from bench.store.layout import RunPaths
from bench.store.records import ScoreRow, UnitManifest, read_scores, write_scores


def parse_scorer_options(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """`["clip.pretrained=/w.safetensors"]` -> {"clip": {"pretrained": "/w.safetensors"}}."""
    table: dict[str, dict[str, Any]] = {}
    for key, value in parse_assignments(assignments).items():
        scorer, dot, option = key.partition(".")
        if not dot or not option:
            raise BenchError(
                f"--scorer-option {key!r}: expected SCORER.OPTION=VALUE, "
                "e.g. clip.pretrained=/path/to/weights.safetensors"
            )
        table.setdefault(scorer, {})[option] = str(value) if isinstance(value, str) else value
    return table


def options_for(scorer_id: str, table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    prefixes = sorted((k for k in table if scorer_id.startswith(k + "_")), key=len)
    merged: dict[str, Any] = {}
    for key in [*prefixes, scorer_id]:
        merged.update(table.get(key, {}))
    return merged


def load_scorers(
    ids: tuple[str, ...] | list[str], table: dict[str, dict[str, Any]], device: str = "auto"
) -> list[Any]:
    unknown_keys = [k for k in table if not any(i == k or i.startswith(k + "_") for i in ids)]
    if unknown_keys:
        raise BenchError(
            f"scorer options for {unknown_keys} match no scorer of this suite ({', '.join(ids)})"
        )
    scorers = []
    for scorer_id in ids:
        factory = registry.load(registry.SCORERS, scorer_id)
        options = {"device": device, **options_for(scorer_id, table)}
        try:
            scorers.append(factory(options))
        except ValueError as e:
            raise BenchError(f"scorer {scorer_id}: {e}") from None
    return scorers


def scorer_info(scorers: list[Any]) -> dict[str, dict[str, Any]]:
    return {s.id: {"model": s.model_id, "random_weights": s.random_weights} for s in scorers}


def score_unit(scorers: list[Any], unit: Path, run_root: Path) -> list[ScoreRow]:
    """Score one (subject, replicate) directory's images; one row per image."""
    manifest = UnitManifest.read(RunPaths.manifest(unit))
    subject = manifest.subject
    references = [Image.open(p).convert("RGB") for p in subject["images"]]
    entries = manifest.images
    images = [Image.open(unit / e.file).convert("RGB") for e in entries]
    prompts = [e.scoring_prompt for e in entries]
    key = f"{manifest.suite}/{subject['id']}"
    if manifest.leave_one_out:
        values = {s.id: _leave_one_out(s, images, key) for s in scorers}
    else:
        values = {
            s.id: s.score(images, prompts=prompts, references=references, reference_key=key)
            for s in scorers
        }
    info = scorer_info(scorers)
    return [
        ScoreRow(
            run_id=manifest.run_id,
            subject=subject["id"],
            prompt_id=e.prompt_id,
            prompt=e.prompt,
            scoring_prompt=e.scoring_prompt,
            image_index=e.image_index,
            replicate=manifest.replicate,
            checkpoint=manifest.checkpoint,
            seed=e.seed,
            image=str((unit / e.file).relative_to(run_root)),
            values={scorer_id: float(v[i]) for scorer_id, v in values.items()},
            scorers=info,
        )
        for i, e in enumerate(entries)
    ]


def _leave_one_out(scorer: Any, photos: list, key: str) -> np.ndarray:
    """Each photo against the subject's other photos; NaN for scorers that need a prompt."""
    if scorer.needs != "references" or len(photos) < 2:
        return np.full(len(photos), np.nan)
    return np.array(
        [
            scorer.score(
                [photo],
                prompts=[""],
                references=photos[:i] + photos[i + 1 :],
                reference_key=f"{key}/without-{i}",
            )[0]
            for i, photo in enumerate(photos)
        ]
    )


def is_scored(unit: Path, scorers: list[Any]) -> bool:
    """True when the unit's scores exist, are whole, and came from exactly these scorer models
    (damaged scores are redone, not trusted)."""
    path = RunPaths.scores(unit)
    if not path.is_file():
        return False
    try:
        rows = read_scores(path)
    except BenchError:
        return False
    return bool(rows) and all(r.scorers == scorer_info(scorers) for r in rows)


def score_run(run_root: Path, scorers: list[Any], reporter: Reporter | None = None) -> int:
    """Score every complete unit of a run that lacks scores from these scorers; returns how many."""
    todo = [u for u in RunPaths(run_root).units(checkpoints=True) if not is_scored(u, scorers)]
    if not todo:
        return 0
    task = (reporter or Silent()).task("score", total=len(todo))
    for unit in todo:
        write_scores(RunPaths.scores(unit), score_unit(scorers, unit, run_root))
        task.advance()
    task.finish()
    return len(todo)
