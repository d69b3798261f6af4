"""The words and number formats every report uses: metric names and their order, how an interval
is written, and the caveats printed beside numbers that need them."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.realness import RANDOM_WEIGHTS, REAL, TOY_WORLD

METRIC_ORDER = ("dino", "dinov2", "clip_i", "clip_t", "pres", "div")  # DreamBench's order first

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


@dataclass(frozen=True)
class Metric:
    """What a scorer declares of its values (`display_name`, `higher_is_better`), as the score
    rows recorded it: every report names and ranks a metric from this, never from a table."""

    id: str
    name: str
    higher_is_better: bool

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


def metric(scorer_id: str, info: Mapping[str, Any] | None = None) -> Metric:
    """The metric a scorer declared in a score row's scorer info (`scoring.scorer_info`). Rows
    written before the declarations were stored take them from the built-in scorer classes; an
    outside scorer's old rows keep its id, higher taken as better."""
    info = info or {}
    if "display_name" in info and "higher_is_better" in info:
        return Metric(scorer_id, info["display_name"] or scorer_id, bool(info["higher_is_better"]))
    declared = _builtin_declarations().get(scorer_id)
    if declared is None:
        return Metric(scorer_id, scorer_id, True)
    return Metric(scorer_id, declared.display_name, declared.higher_is_better)


@functools.cache
def _builtin_declarations() -> dict[str, Any]:
    from bench.scorers.clip import ClipImageScorer, ClipTextScorer
    from bench.scorers.dino import DinoScorer, Dinov2Scorer, PresScorer
    from bench.scorers.diversity import DivScorer

    classes = (ClipImageScorer, ClipTextScorer, DinoScorer, Dinov2Scorer, PresScorer, DivScorer)
    return {cls.id: cls for cls in classes}


def run_metrics(runs: Iterable) -> dict[str, Metric]:
    """Every metric of these runs (RunResults), as their score rows declare it, in table order."""
    found: dict[str, Metric] = {}
    for r in runs:
        for scorer_id, info in r.scorers.items():
            found.setdefault(scorer_id, metric(scorer_id, info))
    return {m: found[m] for m in ordered(found)}


def changed_options(record) -> dict[str, Any]:
    """A run's options that differ from its method's defaults as the run recorded them (a
    RunRecord; all options for a run that recorded no defaults)."""
    defaults = record.method_defaults
    return {k: v for k, v in record.config.items() if defaults.get(k, object()) != v}


def run_label(record) -> str:
    """A run as a row names it: its method and the options it changed, "dreambooth_lora
    (rank=2)"."""
    options = ", ".join(f"{k}={v}" for k, v in changed_options(record).items())
    return record.method + (f" ({options})" if options else "")


def metric_name(scorer_id: str, info: Mapping[str, Any] | None = None) -> str:
    """ "clip_i" -> "CLIP-I", as its scorer declares it."""
    return metric(scorer_id, info).name


def off_scale(metric: str, convention: str) -> bool:
    """Whether `metric` keeps its raw value under a convention that rescales the others (PRES, a
    raw cosine, beside dreambench-plus's cosines x 100): its column says so."""
    from bench.scorers.conventions import get_convention

    profile = get_convention(convention)
    return profile.scale != 1.0 and metric not in profile.scorers


def metric_label(m: Metric, convention: str) -> str:
    """The metric's column heading in a table of `convention`'s scores, with its direction:
    "PRES ↓ (raw)" where the convention rescales the other metrics and not it."""
    return f"{m.name} {m.arrow}" + (" (raw)" if off_scale(m.id, convention) else "")


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
