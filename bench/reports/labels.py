"""The words and number formats every report uses: metric names and their order, how an interval
is written, and the caveats printed beside numbers that need them."""

from __future__ import annotations

import math
from collections.abc import Iterable

from bench.realness import RANDOM_WEIGHTS, REAL, TOY_WORLD

METRIC_ORDER = ("dino", "dinov2", "clip_i", "clip_t", "pres", "div")  # DreamBench's order first
METRIC_NAMES = {
    "dino": "DINO",
    "dinov2": "DINOv2",
    "clip_i": "CLIP-I",
    "clip_t": "CLIP-T",
    "pres": "PRES",
    "div": "DIV",
}
LOWER_IS_BETTER = frozenset({"pres"})  # prior collapse: the less the class looks like the subject

RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: these numbers test the pipeline and mean nothing"
TOY_WORLD_NOTE = (
    "TOY WORLD: made in bench's drawn world by models bench trained on it (docs/world.md); they "
    "show whether a method learns a subject and the metrics follow the truth there, not how it "
    "does on photos"
)
CI_METHOD_NAMES = {
    "studentized": "studentized bootstrap (bootstrap-t)",
    "percentile": "percentile bootstrap",
    "bca": "BCa bootstrap",
}


def metric_name(metric: str) -> str:
    """ "clip_i" -> "CLIP-I"; an outside scorer keeps its id."""
    return METRIC_NAMES.get(metric, metric)


def off_scale(metric: str, convention: str) -> bool:
    """Whether `metric` keeps its raw value under a convention that rescales the others (PRES, a
    raw cosine, beside dreambench-plus's cosines x 100): its column says so."""
    from bench.scorers.conventions import get_convention

    profile = get_convention(convention)
    return profile.scale != 1.0 and metric not in profile.scorers


def metric_label(metric: str, convention: str) -> str:
    """The metric's name in a table of `convention`'s scores: "PRES (raw)" where the convention
    rescales the other metrics and not it."""
    return metric_name(metric) + (" (raw)" if off_scale(metric, convention) else "")


def ordered(metrics: Iterable[str]) -> list[str]:
    """The known metrics in table order, then any others sorted."""
    seen = set(metrics)
    return [m for m in METRIC_ORDER if m in seen] + sorted(seen - set(METRIC_ORDER))


def interval(mean: float | None, low: float, high: float, digits: int = 3) -> str:
    """ "0.812 [0.790, 0.833]"; the mean alone without an interval; "n.a." without a mean."""
    if mean is None or math.isnan(mean):
        return "n.a."
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def interval_notes(results: Iterable) -> list[str]:
    """One line per way the intervals of these results (stats.Interval or stats.Comparison) were
    made, or why there are none."""
    lines = []
    for r in results:
        method = getattr(r, "ci_method", None) or r.method
        if method == "none":
            lines.append(r.note)
        else:
            name = CI_METHOD_NAMES.get(method, method)
            line = f"intervals: {r.confidence:.0%} {name}, subjects resampled"
            lines.append(f"{line} ({r.note})" if r.note else line)  # why not the default
    return list(dict.fromkeys(lines))


REALNESS_NOTES = {RANDOM_WEIGHTS: RANDOM_WEIGHTS_NOTE, TOY_WORLD: TOY_WORLD_NOTE, REAL: None}


def realness_fields(realness: str) -> dict[str, object]:
    """What JSON says of how real its numbers are: `realness`, and the two flags JSON readers had
    before it, derived from it."""
    return {
        "realness": realness,
        "random_weights": realness == RANDOM_WEIGHTS,
        "toy_world": realness == TOY_WORLD,
    }


def caveats(realness: str, results: Iterable = ()) -> list[str]:
    """The notes a table of these numbers must carry: how real they are (random weights, the toy
    world), and how its intervals were made (or why there are none)."""
    note = REALNESS_NOTES[realness]
    return ([note] if note else []) + interval_notes(results)
