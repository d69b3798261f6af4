"""`real`: the paper's "Real Images" row, an upper bound for subject fidelity.

Nothing is trained or generated: each of a subject's photos is scored against the subject's
other photos (leave-one-out) for CLIP-I and DINO. CLIP-T is not defined (there is no prompt), so
the row has no CLIP-T and takes no part in CLIP-T comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    pass


class Real:
    name = "real"
    Config = Config
    # A reference row: the runner stores the subject's photos as the unit's images, scored
    # leave-one-out; fit and generate are never called.
    is_reference = True

    def fit(self, ctx) -> dict:
        return {"trained": False}

    def generate(self, ctx, cells, latents):
        raise RuntimeError("the real method generates nothing; its images are the photos")
