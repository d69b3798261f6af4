"""`bench compare`: paired differences between runs of one suite, with intervals and p-values.

Generated runs are matched image by image on (subject, prompt, image index, replicate): the same
cell had the same initial noise in both, so the difference isolates the method. The same
resampling of subjects (and prompts) applies to both runs. The `real` reference row has no cells
in common with generated runs; it is matched per subject (subject means), and takes no part in
comparisons of metrics it does not define (CLIP-T).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bench.analysis.options import StatsOptions
from bench.analysis.results import KEY, RunResults, execution_options
from bench.analysis.stats import Comparison, holm, paired_comparison, subject_means
from bench.errors import BenchError


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    run_a: str
    run_b: str
    matched_on: str  # "images" or "subjects"
    result: Comparison
    # execution options whose values differ between the two runs: option -> (A's, B's)
    execution_differs: dict[str, tuple[list, list]] = field(default_factory=dict)
    # what the metric's scorer declared (its name, its direction), as the score rows recorded it
    scorer_info: dict = field(default_factory=dict)


def execution_differences(options_a: dict, options_b: dict) -> dict[str, tuple[list, list]]:
    """The execution options (not part of a run id; `execution_options` of each run) whose
    values differ between two runs that both generated images: pairing them compares that too,
    a little."""
    if not options_a or not options_b:  # the Real Images row or outside images
        return {}
    differences = {}
    for key in sorted(set(options_a) | set(options_b)):
        # None: the option did not apply (a method that does not fit packed has no pack size)
        a = [v for v in options_a.get(key, []) if v is not None]
        b = [v for v in options_b.get(key, []) if v is not None]
        if a and b and a != b:
            differences[key] = (a, b)
    return differences


def _is_reference(results: RunResults) -> bool:
    return results.record.is_reference


def check_comparable(runs: list[RunResults]) -> None:
    if len(runs) < 2:
        raise BenchError("compare needs at least two runs")
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise BenchError(f"a run is named twice: {ids}")
    first = runs[0]
    for other in runs[1:]:
        if other.convention != first.convention:
            raise BenchError(
                f"runs {first.run_id} and {other.run_id} are scored under different conventions "
                f"({first.convention} vs {other.convention}); compare them under one --convention"
            )
        if other.record.suite != first.record.suite:
            raise BenchError(
                f"runs {first.run_id} and {other.run_id} are of different suites "
                f"({first.record.suite['name']} vs {other.record.suite['name']}, "
                "or the same suite with different content); compare runs of one suite"
            )
        if other.scorers != first.scorers:
            raise BenchError(
                f"runs {first.run_id} and {other.run_id} were scored with different "
                "scorer models; rescore one with the other's --scorer-option values"
            )


def _subject_means(frame: pd.DataFrame, metric: str) -> pd.Series:
    return pd.Series(subject_means(frame[metric], frame["subject"], frame["prompt_id"]))


def _pair_arrays(a: RunResults, b: RunResults, metric: str):
    """Aligned values of both runs and their subject and prompt labels."""
    if _is_reference(a) or _is_reference(b):
        joined = pd.concat(
            [
                _subject_means(a.scores, metric).rename("a"),
                _subject_means(b.scores, metric).rename("b"),
            ],
            axis=1,
            join="inner",
        )
        labels = joined.index.to_numpy()
        return (
            "subjects",
            joined["a"].to_numpy(),
            joined["b"].to_numpy(),
            labels,
            np.zeros(len(labels), dtype=int),
        )
    left = a.scores.set_index(KEY)[metric]
    right = b.scores.set_index(KEY)[metric]
    if set(left.index) != set(right.index):
        raise BenchError(
            f"runs {a.run_id} and {b.run_id} do not cover the same images "
            f"({len(left)} vs {len(right)}); finish both with `bench run`"
        )
    right = right.reindex(left.index)
    subjects = left.index.get_level_values("subject").to_numpy()
    prompts = left.index.get_level_values("prompt_id").to_numpy()
    return "images", left.to_numpy(float), right.to_numpy(float), subjects, prompts


def compare(runs: list[RunResults], stats: StatsOptions = StatsOptions()) -> list[MetricComparison]:
    """Every pair of runs on every metric both define; Holm adjustment within each metric. Each
    comparison names the execution options its two runs differ in."""
    check_comparable(runs)
    options = {r.run_id: execution_options(r) for r in runs}  # read once per run
    differs = {
        (a.run_id, b.run_id): execution_differences(options[a.run_id], options[b.run_id])
        for a, b in itertools.combinations(runs, 2)
    }
    out: list[MetricComparison] = []
    for metric in runs[0].metrics:
        defined = [r for r in runs if r.scores[metric].notna().any()]
        family = []
        for a, b in itertools.combinations(defined, 2):
            matched_on, va, vb, subjects, prompts = _pair_arrays(a, b, metric)
            # Paired by subject means alone (no shared images): only subjects are resampled.
            mode = "fixed" if matched_on == "subjects" else stats.prompt_mode
            try:
                result = paired_comparison(
                    va, vb, subjects, prompts, **(stats.bootstrap_kwargs() | {"prompt_mode": mode})
                )
            except ValueError as e:
                raise BenchError(f"{metric}, {a.run_id} vs {b.run_id}: {e}") from None
            execution = differs[a.run_id, b.run_id]
            family.append(
                MetricComparison(
                    metric, a.run_id, b.run_id, matched_on, result, execution, a.scorers[metric]
                )
            )
        if family:
            adjusted = holm([c.result.p_value for c in family])
            for c, p in zip(family, adjusted, strict=True):
                out.append(replace(c, result=replace(c.result, p_holm=float(p))))
    return out
