"""Terminal tables for scores and comparisons (rich), and their JSON twins."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from rich.table import Table as RichTable

from bench.analysis.results import RunResults
from bench.analysis.stats import Interval
from bench.reports.document import Number, Table
from bench.reports.labels import caveats, metric, metric_label, realness_fields, run_metrics
from bench.reports.terminal import rich_table


def score_block(results: RunResults, intervals: dict[str, Interval]) -> Table:
    """A run's summary: one row per metric, its mean and interval."""
    first = next(iter(intervals.values()))
    metrics = run_metrics([results])
    table = Table(
        ["metric", "mean", "interval", "subjects", "images", "scorer model"],
        title=(
            f"{results.run_id}: mean and {first.confidence:.0%} interval "
            f"(subjects resampled, prompts {first.prompt_mode}; convention {results.convention})"
        ),
        notes=caveats(results.realness, intervals.values()),
        index=1,
    )
    for m in metrics:
        iv = intervals[m]
        model = results.scorers[m]["model"]
        if results.scorers[m]["random_weights"]:
            model += " (random weights)"
        table.rows.append(
            [
                metric_label(metrics[m], results.convention),
                Number(iv.mean, digits=4),
                "none" if math.isnan(iv.low) else f"[{fmt(iv.low)}, {fmt(iv.high)}]",
                iv.n_subjects,
                iv.n_images,
                model,
            ]
        )
    return table


def score_table(results: RunResults, intervals: dict[str, Interval]) -> RichTable:
    return rich_table(score_block(results, intervals))


def fmt(x: float) -> str:
    return "n.a." if x is None or math.isnan(x) else f"{x:.4f}"


def score_json(results: RunResults, intervals: dict[str, Interval]) -> dict[str, Any]:
    return {
        "run_id": results.run_id,
        "run_dir": str(results.root),
        **realness_fields(results.realness),
        "convention": results.convention,
        "scorers": results.scorers,
        "metrics": {m: _finite(asdict(iv)) for m, iv in intervals.items()},
    }


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: undefined bounds become null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def compare_block(comparisons: list, realness: str, convention: str) -> Table:
    """Paired differences, one row per (metric, pair of runs)."""
    first = comparisons[0].result
    metrics = {c.metric: metric(c.metric, c.scorer_info) for c in comparisons}
    table = Table(
        [
            "metric",
            "run A",
            "run B",
            "A",
            "B",
            "A - B",
            f"{first.confidence:.0%} interval",
            "p",
            "p (Holm)",
            "matched on",
        ],  # fmt: skip
        title=f"Paired differences (subjects resampled, prompts {first.prompt_mode}; "
        f"convention {convention})",
        notes=[f"p: {m}" for m in dict.fromkeys(c.result.p_method for c in comparisons)]
        + execution_notes(comparisons)
        + caveats(realness, [c.result for c in comparisons]),
        index=3,
    )
    for c in comparisons:
        r = c.result
        table.rows.append(
            [
                metric_label(metrics[c.metric], convention),
                c.run_a,
                c.run_b,
                Number(r.mean_a, digits=4),
                Number(r.mean_b, digits=4),
                Number(r.diff, digits=4, signed=True),
                "none" if math.isnan(r.low) else f"[{r.low:+.4f}, {r.high:+.4f}]",
                f"{r.p_value:.4f}",
                f"{r.p_holm:.4f}",
                f"{c.matched_on} ({r.n_subjects} subj.)",
            ]
        )
    return table


def compare_table(comparisons: list, realness: str, convention: str) -> RichTable:
    return rich_table(compare_block(comparisons, realness, convention))


def execution_notes(comparisons: list) -> list[str]:
    """One line per pair of runs made with different execution options (device, dtype, batch
    size, ...): they are not part of a run id, but they move pixels a little."""
    lines = {}
    for c in comparisons:
        if c.execution_differs:
            what = "; ".join(
                f"{key} {', '.join(map(str, a)) or '-'} vs {', '.join(map(str, b)) or '-'}"
                for key, (a, b) in c.execution_differs.items()
            )
            lines[c.run_a, c.run_b] = (
                f"{c.run_a} vs {c.run_b} were made with different execution options ({what}): "
                "the difference includes theirs"
            )
    return list(lines.values())


def compare_json(comparisons: list, realness: str, convention: str) -> dict[str, Any]:
    return {
        **realness_fields(realness),
        "convention": convention,
        "comparisons": [
            {
                "metric": c.metric,
                "run_a": c.run_a,
                "run_b": c.run_b,
                "matched_on": c.matched_on,
                "execution_differs": {k: list(v) for k, v in c.execution_differs.items()},
                **_finite(asdict(c.result)),
            }
            for c in comparisons
        ],
    }
