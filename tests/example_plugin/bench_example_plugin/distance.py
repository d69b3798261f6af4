"""`example_distance`: a scorer where lower is better, added through the `bench.scorers` entry
point: each image's mean absolute pixel difference from the subject's photos (each resized to
the image), on a 0-1 scale. It needs no weights; its point is its direction, which bench must
read from `higher_is_better` wherever it ranks or marks the best."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image


class PixelDistance:
    id = "example_distance"
    display_name = "Pixel distance"
    higher_is_better = False
    needs = "references"
    model_id = "example:pixel-l1"
    random_weights = False

    def score(
        self,
        images: Sequence[Image.Image],
        *,
        prompts: Sequence[str],
        references: Sequence[Image.Image],
        reference_key: str,
    ) -> np.ndarray:
        del prompts, reference_key
        out = []
        for image in images:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
            distances = [
                np.abs(
                    pixels
                    - np.asarray(ref.convert("RGB").resize(image.size), dtype=np.float64) / 255.0
                ).mean()
                for ref in references
            ]
            out.append(float(np.mean(distances)))
        return np.array(out)


def make_distance(options: Mapping[str, Any] | None = None) -> PixelDistance:
    unknown = set(options or {}) - {"device"}
    if unknown:
        raise ValueError(f"example_distance takes no options, got {sorted(unknown)}")
    return PixelDistance()
