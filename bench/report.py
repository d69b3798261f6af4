"""Terminal tables for scores and comparisons (rich), and their JSON twins."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from rich.table import Table

from bench.results import RunResults
from bench.stats import Interval

RANDOM_NOTE = "RANDOM WEIGHTS: these numbers test the pipeline and mean nothing"


def fmt(x: float) -> str:
    return "n.a." if x is None or math.isnan(x) else f"{x:.4f}"


def score_table(results: RunResults, intervals: dict[str, Interval]) -> Table:
    first = next(iter(intervals.values()))
    title = (
        f"{results.run_id}: mean and {first.confidence:.0%} interval "
        f"(subjects resampled, prompts {first.prompt_mode})"
    )
    caption = RANDOM_NOTE if results.random_weights else None
    table = Table(
        "metric",
        "mean",
        "interval",
        "subjects",
        "images",
        "scorer model",
        title=title,
        caption=caption,
        caption_style="bold red",
    )
    for metric, iv in intervals.items():
        model = results.scorers[metric]["model"]
        if results.scorers[metric]["random_weights"]:
            model += " (random weights)"
        table.add_row(
            metric,
            fmt(iv.mean),
            f"[{fmt(iv.low)}, {fmt(iv.high)}]",
            str(iv.n_subjects),
            str(iv.n_images),
            model,
        )
    return table


def score_json(results: RunResults, intervals: dict[str, Interval]) -> dict[str, Any]:
    return {
        "run_id": results.run_id,
        "run_dir": str(results.root),
        "random_weights": results.random_weights,
        "scorers": results.scorers,
        "metrics": {m: _finite(asdict(iv)) for m, iv in intervals.items()},
    }


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: undefined bounds become null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
