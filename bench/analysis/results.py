"""Reading a run's per-image scores back, and summarizing them with intervals (`stats`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench import realness
from bench.analysis.options import StatsOptions
from bench.analysis.stats import Interval, bootstrap_interval
from bench.errors import BenchError
from bench.scorers.conventions import get_convention
from bench.store.integrity import rows_problem
from bench.store.layout import RunPaths
from bench.store.records import (
    DEFAULT_CONVENTION,
    ROW_FIELDS,
    RunRecord,
    UnitManifest,
    read_scores,
)

KEY = ["subject", "prompt_id", "image_index", "replicate"]


@dataclass(frozen=True)
class RunResults:
    root: Path
    record: RunRecord  # run.json: what the run is
    scores: pd.DataFrame  # one row per image: its ids, then one column per scorer
    # scorer id -> {"model", "random_weights", "display_name", "higher_is_better"}
    scorers: dict[str, dict[str, Any]]
    convention: str = DEFAULT_CONVENTION  # how the scores are defined (bench.scorers.conventions)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def metrics(self) -> list[str]:
        return list(self.scorers)

    @property
    def realness(self) -> str:
        """How real the numbers are (bench.realness): the backbone's it was made on, or "random
        weights" where a scorer's weights are random."""
        random = any(s["random_weights"] for s in self.scorers.values())
        scorers = realness.RANDOM_WEIGHTS if random else realness.REAL
        return realness.least_real([self.record.realness, scorers])


def least_real(runs) -> str:
    """The realness of numbers drawn from several runs: that of the least real."""
    return realness.least_real(r.realness for r in runs)


def execution_options(results: RunResults) -> dict[str, list]:
    """Every value each execution option (device, dtype, generation batch size, ...) took in the
    run's units, device and dtype as the backbone resolved them ("auto" -> "cuda:0"). They stay
    out of the run id, yet move pixels a little. Empty for runs that generated nothing."""
    found: dict[str, set] = {}
    for unit in RunPaths(results.root).units():
        path = RunPaths.manifest(unit)
        if not path.is_file():  # an unfinished unit: it holds no scores either
            continue
        manifest = UnitManifest.read(path)
        if manifest.execution is None:
            continue
        values = dict(manifest.execution)
        for key in ("device", "dtype"):
            if manifest.backbone and key in manifest.backbone:
                values[key] = manifest.backbone[key]
        for key, value in values.items():
            found.setdefault(key, set()).add(value)
    return {key: sorted(values, key=str) for key, values in found.items()}


def run_subjects(runs) -> dict[str, dict[str, Any]]:
    """Every subject these runs (RunResults) hold, as their unit manifests record it (id, class,
    kind, images: the photos' paths, ...), sorted by id; the first run's record of each wins."""
    found: dict[str, dict[str, Any]] = {}
    for results in runs:
        for unit in RunPaths(results.root).units():
            path = RunPaths.manifest(unit)
            if path.is_file():
                subject = UnitManifest.read(path).subject
                found.setdefault(subject["id"], subject)
    return dict(sorted(found.items()))


def checkpoint_steps(run_root: Path) -> list[int]:
    """Training steps of the intermediate adapters that were generated and scored."""
    return RunPaths(run_root).checkpoint_steps()


def load_results(
    run_root: Path, checkpoint: int | None = None, convention: str | None = None
) -> RunResults:
    """A run's per-image scores under a convention (default: the default convention): of its
    final adapters, or of the checkpoint at that step."""
    convention = get_convention(convention).name
    paths = RunPaths(run_root)
    if not paths.run_json.is_file():
        raise BenchError(f"{run_root}: not a run directory (no run.json)")
    record = RunRecord.read(paths.run_json)
    files = paths.score_files(checkpoint, convention)
    if not files:
        others = [c for c in paths.conventions() if c != convention]
        if others:
            raise BenchError(
                f"{run_root}: has no scores under convention {convention} (it has "
                f"{', '.join(others)}); `bench score --run {record.run_id} --convention "
                f"{convention}` scores its stored images"
            )
        raise BenchError(f"{run_root}: has no scores yet; run `bench run` again to score it")
    rows = []
    for path in files:  # every unit scored whole: no image missing from its scores, none twice
        unit_rows = read_scores(path)
        problem = rows_problem(path, unit_rows)
        if problem is not None:
            raise BenchError(
                f"{problem}; run the same `bench run` again (or `bench score --run "
                f"{record.run_id}`) to rescore it"
            )
        rows += unit_rows
    # Rows scored before the scorers' declarations were recorded may sit beside newer rows.
    scorer_sets = {
        json.dumps({k: (v["model"], v["random_weights"]) for k, v in r.scorers.items()})
        for r in rows
    }
    if len(scorer_sets) > 1:
        raise BenchError(
            f"{run_root}: units were scored with different scorer models; "
            "rerun `bench run` with one set of --scorer-option values"
        )
    scorers = rows[0].scorers
    frame = pd.DataFrame([{name: getattr(r, name) for name in ROW_FIELDS} | r.values for r in rows])
    return RunResults(run_root, record, frame, scorers, convention)


def summarize(results: RunResults, stats: StatsOptions = StatsOptions()) -> dict[str, Interval]:
    """One interval per metric over the whole run (subject-clustered bootstrap; none below
    `MIN_INTERVAL_SUBJECTS` subjects, see `bench.analysis.stats`)."""
    frame = results.scores
    out = {}
    for metric in results.metrics:
        if frame[metric].isna().all():  # a metric this run does not define (CLIP-T of `real`)
            nan = float("nan")
            note = "not defined for this run"
            out[metric] = Interval(
                nan, nan, nan, 0, 0, 0, stats.confidence, "none", stats.prompt_mode, note
            )
            continue
        try:
            out[metric] = bootstrap_interval(
                frame[metric].to_numpy(float),
                frame["subject"].to_numpy(),
                frame["prompt_id"].to_numpy(),
                **stats.bootstrap_kwargs(),
            )
        except ValueError as e:
            raise BenchError(f"{results.root}: {metric}: {e}") from None
    return out
