"""Convention profiles: the scorer models, preprocessing and scale each published source uses.

Published DreamBench numbers are not comparable across papers because each source scores
differently. A convention fixes everything that differs, so the same images can be scored under
each one and the results never share a column:

- ``dreambooth`` (the default): the DreamBooth paper. CLIP ViT-B/32 image-image and text-image
  cosines, DINO ViT-S/16 CLS cosine (resize 256 bicubic, crop 224, ImageNet normalisation); raw
  cosines in [-1, 1].
- ``dreambench-plus``: DreamBench++'s automatic metrics. The same CLIP ViT-B/32, DINO ViT-S/8
  (``dino_vits8``) in place of ViT-S/16, and DINOv2-small (CLS token) as a fourth metric; every
  cosine multiplied by 100. The other steps of its evaluation code (JPEG at quality 75, one
  photo per image, DINOv2's position embeddings interpolated without antialiasing) are not
  copied: docs/metrics.md lists where the numbers differ.
- ``cc101``: CustomConcept101. Text alignment in the CLIPScore convention, 2.5 x max(cosine, 0);
  image alignment the raw mean cosine over every generated x reference pair (CLIP ViT-B/32, DINO
  ViT-S/16), as in ``dreambooth``.

Each scorer still returns raw cosines; the convention's scale is applied to them when a unit is
scored (``Convention.apply``), and the rows carry the convention's name. The scores of each
convention live in a file of their own beside the images, so rescoring a run under another
convention reads its images and generates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bench.errors import BenchError
from bench.registry import did_you_mean
from bench.store.records import DEFAULT_CONVENTION

__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "Convention", "get_convention", "scorer_ids"]


@dataclass(frozen=True)
class Convention:
    name: str
    source: str  # where the convention is defined
    scorers: tuple[str, ...]  # the scorer ids it reports
    models: Mapping[str, str] = field(default_factory=dict)  # scorer id -> model it fixes
    scale: float = 1.0  # every cosine is multiplied by this
    clipscore_text: bool = False  # clip_t = 2.5 x max(cosine, 0) (CLIPScore), not the cosine

    def apply(self, scorer_id: str, values: np.ndarray) -> np.ndarray:
        """A built-in scorer's raw cosines as this convention reports them (others unchanged)."""
        values = np.asarray(values, dtype=np.float64)
        if scorer_id not in self.scorers:
            return values
        if scorer_id == "clip_t" and self.clipscore_text:
            return 2.5 * np.maximum(values, 0.0)
        return self.scale * values

    def describe(self) -> str:
        """One line for tables and the leaderboard."""
        scale = {1.0: "raw cosines", 100.0: "cosines x 100"}.get(self.scale, f"x {self.scale}")
        text = "; CLIP-T = 2.5 x max(cosine, 0)" if self.clipscore_text else ""
        models = ", ".join(f"{k}: {v}" for k, v in self.models.items())
        return f"{self.name} ({self.source}): {scale}{text}" + (f"; {models}" if models else "")


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            name="dreambooth",
            source="Ruiz et al., DreamBooth, CVPR 2023",
            scorers=("clip_i", "clip_t", "dino"),
        ),
        Convention(
            name="dreambench-plus",
            source="Peng et al., DreamBench++, ICLR 2025",
            scorers=("clip_i", "clip_t", "dino", "dinov2"),
            models={"dino": "vit_small_patch8_224.dino"},
            scale=100.0,
        ),
        Convention(
            name="cc101",
            source="Kumari et al., Custom Diffusion / CustomConcept101, CVPR 2023",
            scorers=("clip_i", "clip_t", "dino"),
            clipscore_text=True,
        ),
    )
}

BUILT_IN_SCORERS = frozenset(s for c in CONVENTIONS.values() for s in c.scorers)


def get_convention(name: str | None) -> Convention:
    """The convention called `name` (None: the default); an unknown name is a one-line error."""
    name = name or DEFAULT_CONVENTION
    if name not in CONVENTIONS:
        known = sorted(CONVENTIONS)
        raise BenchError(
            f"unknown convention {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
        )
    return CONVENTIONS[name]


def scorer_ids(convention: Convention, suite_scorers: tuple[str, ...] | list[str]) -> list[str]:
    """The scorers a suite is scored with under a convention: the suite's own list under the
    default, else the convention's, plus the suite's outside (plugin) scorers either way."""
    if convention.name == DEFAULT_CONVENTION:
        return list(suite_scorers)
    outside = [s for s in suite_scorers if s not in BUILT_IN_SCORERS]
    return [*convention.scorers, *outside]
