"""The words and number formats every report uses: metric names and their order, how an interval
is written, and the caveats printed beside numbers that need them."""

from __future__ import annotations

import math
from collections.abc import Iterable

METRIC_ORDER = ("dino", "clip_i", "clip_t")  # DreamBench's table order
METRIC_NAMES = {"dino": "DINO", "clip_i": "CLIP-I", "clip_t": "CLIP-T"}

RANDOM_WEIGHTS_NOTE = "RANDOM WEIGHTS: these numbers test the pipeline and mean nothing"
FEW_SUBJECTS_NOTE = "fewer than 10 subjects: bootstrap intervals are too narrow"
FEW_SUBJECTS = 10


def metric_name(metric: str) -> str:
    """ "clip_i" -> "CLIP-I"; an outside scorer keeps its id."""
    return METRIC_NAMES.get(metric, metric)


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


def caveats(random_weights: bool, n_subjects: int) -> list[str]:
    """The notes a table of these numbers must carry."""
    notes = [RANDOM_WEIGHTS_NOTE] if random_weights else []
    if 0 < n_subjects < FEW_SUBJECTS:
        notes.append(FEW_SUBJECTS_NOTE)
    return notes
