"""Scoring a run: every stored image gets one value per scorer, written to `scores.jsonl` in its
(subject, replicate) directory. Statistics are computed elsewhere, from these per-image rows.

Scorer options come from the suite's `[scorer_options]` and then `--scorer-option KEY.OPT=VALUE`.
KEY is a scorer id (`clip_i`) or a prefix shared by several (`clip` sets clip_i and clip_t,
which then share one loaded CLIP model); an exact id wins over a prefix.

A convention (`bench.scorers.conventions`) picks the scorers and the models they use, and scales
their raw cosines; its scores go to a file of their own, so a run holds one set per convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench import registry
from bench.config import parse_assignments
from bench.data.prompts import PRIOR_PROMPT_ID
from bench.errors import BenchError, MissingModel, raise_missing
from bench.images import read_image
from bench.progress import Reporter, Silent
from bench.scorers.conventions import BUILT_IN_SCORERS, Convention, get_convention, scorer_ids
from bench.store.integrity import scores_problem
from bench.store.layout import RunPaths
from bench.store.lock import claim_unit
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


class ScorerSet(list):
    """The scorers of one convention, loaded together: whatever they score is that convention's
    (its scale, its file), so a convention is chosen once, when the set is loaded."""

    def __init__(self, scorers: list[Any], convention: Convention) -> None:
        super().__init__(scorers)
        self.convention = convention


def load_suite_scorers(
    suite, scorer_options: dict[str, dict[str, Any]] | None, device: str, convention: str | None
) -> ScorerSet:
    """The suite's scorers under a convention, with its `[scorer_options]` overridden by
    `scorer_options` ({"clip": {"pretrained": "/w.safetensors"}}: `clip` sets clip_i and
    clip_t)."""
    table = {**suite.scorer_options}
    for key, values in (scorer_options or {}).items():
        table[key] = {**table.get(key, {}), **values}
    return load_scorers(suite.scorers, table, device=device, convention=convention)


def load_scorers(
    ids: tuple[str, ...] | list[str],
    table: dict[str, dict[str, Any]],
    device: str = "auto",
    convention: str | None = None,
) -> ScorerSet:
    """The scorers a suite (scorer `ids`) is scored with under `convention` (default: the
    default convention), each given its options from `table` and the model the convention fixes."""
    profile = get_convention(convention)
    ids = scorer_ids(profile, ids)
    known = [*ids, *BUILT_IN_SCORERS]  # a suite may set options for every convention's scorers
    unknown_keys = [k for k in table if not any(i == k or i.startswith(k + "_") for i in known)]
    if unknown_keys:
        raise BenchError(
            f"scorer options for {unknown_keys} match no scorer of this suite ({', '.join(ids)})"
        )
    scorers, missing = [], []
    for scorer_id in ids:
        factory = registry.load(registry.SCORERS, scorer_id)
        options = {"device": device, **options_for(scorer_id, table)}
        if scorer_id in profile.models:
            fixed = profile.models[scorer_id]
            if options.get("model") not in (None, fixed):
                raise BenchError(
                    f"convention {profile.name} scores {scorer_id} with {fixed}, not "
                    f"{options['model']}: drop the {scorer_id}.model option or the convention"
                )
            options["model"] = fixed
        try:
            scorers.append(factory(options))
        except MissingModel as e:  # go on, so that one error names every missing model
            missing.append(e)
        except ValueError as e:
            raise BenchError(f"scorer {scorer_id}: {e}") from None
    raise_missing(missing)
    return ScorerSet(scorers, profile)


def scorer_info(scorers: list[Any]) -> dict[str, dict[str, Any]]:
    """What each score row records of its scorers: the weights (scores from other weights are
    never mixed) and the scorer's declarations, which name and rank the metric in every report."""
    return {
        s.id: {
            "model": s.model_id,
            "random_weights": s.random_weights,
            "display_name": s.display_name,
            "higher_is_better": bool(s.higher_is_better),
        }
        for s in scorers
    }


def score_unit(scorers: ScorerSet, unit: Path, run_root: Path) -> list[ScoreRow]:
    """Score one (subject, replicate) directory's images; one row per image, each value as the
    scorers' convention defines it."""
    convention = scorers.convention
    manifest = UnitManifest.read(RunPaths.manifest(unit))
    subject = manifest.subject
    references = [read_image(p) for p in subject["images"]]
    entries = manifest.images
    images = [read_image(unit / e.file) for e in entries]
    prompts = [e.scoring_prompt for e in entries]
    key = f"{manifest.suite}/{subject['id']}"
    if manifest.leave_one_out:
        raw = {s.id: _leave_one_out(s, images, key) for s in scorers}
    else:
        prior = np.array([e.prompt_id == PRIOR_PROMPT_ID for e in entries], dtype=bool)
        raw = {}
        for s in scorers:
            # A scorer scores either the suite's prompt images or its prior images; NaN elsewhere.
            mine = prior if cells_of(s) == "prior" else ~prior
            values = np.full(len(entries), np.nan)
            if mine.any():
                values[mine] = s.score(
                    [im for im, m in zip(images, mine, strict=True) if m],
                    prompts=[p for p, m in zip(prompts, mine, strict=True) if m],
                    references=references,
                    reference_key=key,
                )
            raw[s.id] = values
    values = {scorer_id: convention.apply(scorer_id, v) for scorer_id, v in raw.items()}
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
            convention=convention.name,
        )
        for i, e in enumerate(entries)
    ]


def cells_of(scorer: Any) -> str:
    """Which images a scorer scores: "prompts" (the suite's prompts; the default) or "prior"."""
    return getattr(scorer, "cells", "prompts")


def _leave_one_out(scorer: Any, photos: list, key: str) -> np.ndarray:
    """Each photo against the subject's other photos; NaN for scorers that need a prompt or
    score prior images."""
    if scorer.needs != "references" or cells_of(scorer) != "prompts" or len(photos) < 2:
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


def is_scored(unit: Path, scorers: ScorerSet) -> bool:
    """True when the unit's scores under the scorers' convention exist, are whole, and came from
    exactly these scorer models (damaged scores are redone, not trusted)."""
    name = scorers.convention.name
    if scores_problem(unit, name) is not None:
        return False
    info = scorer_info(scorers)
    rows = read_scores(RunPaths.scores(unit, name))
    return all(r.scorers == info and r.convention == name for r in rows)


def score_run(run_root: Path, scorers: ScorerSet, reporter: Reporter | None = None) -> int:
    """Score every complete unit of a run that lacks scores from these scorers under their
    convention (from its stored images: nothing is generated); returns how many."""
    todo = [u for u in RunPaths(run_root).units(checkpoints=True) if not is_scored(u, scorers)]
    if not todo:
        return 0
    scored = 0
    task = (reporter or Silent()).task("score", total=len(todo))
    for unit in todo:
        # The unit is claimed while it is scored (bench.store.lock), as while it is made; an
        # intermediate adapter's folder belongs to its unit.
        owner = unit.parent.parent if unit.parent.name == "checkpoints" else unit
        with claim_unit(owner, wait=True):
            if not is_scored(unit, scorers):  # another process may have scored it meanwhile
                score_and_write(scorers, unit, run_root)
                scored += 1
        task.advance()
    task.finish()
    return scored


def score_and_write(scorers: ScorerSet, unit: Path, run_root: Path) -> None:
    """Score a unit and write its scores file (its caller holds the unit)."""
    write_scores(
        RunPaths.scores(unit, scorers.convention.name), score_unit(scorers, unit, run_root)
    )


class UnitScoring:
    """What `bench run` does to each unit it makes whole, while it still holds it: score the unit
    and its intermediate adapters' folders. `scored` counts the folders scored."""

    def __init__(self, scorers: ScorerSet, run_root: Path) -> None:
        self.scorers, self.run_root, self.scored = scorers, run_root, 0

    def __call__(self, unit: Path) -> None:
        for folder in [unit, *sorted(p.parent for p in unit.glob("checkpoints/*/manifest.json"))]:
            if not is_scored(folder, self.scorers):
                score_and_write(self.scorers, folder, self.run_root)
                self.scored += 1
