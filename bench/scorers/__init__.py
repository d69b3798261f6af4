"""Image scorers for DreamBench-style evaluation; each returns one raw cosine per generated image.

Scorer ids:

- ``clip_i``: mean cosine between the CLIP image embedding of a generated image and those of the
  subject's reference images (`bench.scorers.clip`).
- ``clip_t``: cosine between the CLIP image embedding and the CLIP text embedding of its prompt
  (`bench.scorers.clip`; shares the loaded CLIP model with ``clip_i``).
- ``dino``: like ``clip_i`` with the CLS embedding of DINO ViT-S/16 (`bench.scorers.dino`).
- ``dinov2``: like ``dino`` with DINOv2-small (DreamBench++'s convention).
- ``pres``: DINO of the prior images (the plain class prompt) against the subject's photos; lower
  is better (DreamBooth's prior preservation metric, `bench.scorers.dino`).
- ``div``: each image's mean LPIPS distance to the other images of its prompt (DreamBooth's
  diversity metric, `bench.scorers.diversity`).

Conventions (`bench.scorers.conventions`) fix the models and scale of the CLIP and DINO scorers.

A scorer follows ``bench.scorers.protocol.Scorer``: ``id``, ``display_name``,
``higher_is_better``, ``needs``, ``model_id``, ``random_weights`` and ``score(images, *, prompts,
references, reference_key) -> np.ndarray`` (one value per image). Outside scorers register a
factory ``f(options: dict) -> scorer`` under the ``bench.scorers`` entry-point group.

Importing this package is cheap: torch, open_clip and timm are imported only when a scorer is built.
"""

from __future__ import annotations

from bench.errors import BenchError, MissingModel

SCORER_IDS: tuple[str, ...] = ("clip_i", "clip_t", "dino", "dinov2", "pres", "div")


class ScorerWeightsError(BenchError):
    """A scorer's weights are neither cached nor downloadable, or a weights file would not load;
    the message says what to do."""


class MissingScorerWeights(ScorerWeightsError, MissingModel):
    """A scorer's weights are not cached and cannot be downloaded."""
