"""The scorer protocol: what bench asks of CLIP-I, CLIP-T, DINO and any outside scorer.

An outside scorer registers a factory `make(options: dict) -> scorer` under the `bench.scorers`
entry-point group. The factory receives the suite's `[scorer_options]` merged with the user's
`--scorer-option ID.NAME=VALUE` (and `device`); the built-ins turn them into a frozen options
dataclass with `bench.config.resolve_config`, so an unknown or mistyped option is an error that
names it. A scorer returns one value per image, never an average: statistics are computed in
one place (bench.analysis.stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Scorer(Protocol):
    id: str  # the column in scores.jsonl, e.g. "clip_i"
    display_name: str  # how tables name it, e.g. "CLIP-I"
    higher_is_better: bool
    # "references": compared with the subject's photos; "prompt": with the prompt; "images": with
    # the other images of its prompt (DIV)
    needs: str
    model_id: str  # identifies the weights: scores from other weights are never mixed
    random_weights: bool  # labelled "random weights" wherever its numbers appear

    def score(
        self,
        images: Sequence[Image.Image],
        *,
        prompts: Sequence[str],
        references: Sequence[Image.Image],
        reference_key: str,
    ) -> np.ndarray:
        """One float per image (NaN where undefined). `prompts` are the identifier-free prompts,
        one per image; `references` the subject's photos, the same for every call with the same
        `reference_key` (so their embeddings can be cached). The images of one call are one
        subject's (and replicate's).

        An optional attribute `cells = "prior"` makes a scorer score the suite's prior images
        (the plain class prompt, `prior_images`) instead of its prompt images (PRES)."""
