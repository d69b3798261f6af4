"""Class images for prior preservation: generated once by the frozen backbone, cached on disk.

The cache key is (backbone id and revision, class prompt, resolution, number, seed, generation
protocol), so one set is shared by every subject, config and method that asks for the same
images. Written to a temporary folder and renamed, so a half-made set is never reused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from bench.atomic import atomic_dir
from bench.data.plan import noise, stable_seed
from bench.diffusion.generation import render


class _Seed(NamedTuple):
    seed: int


def class_images(
    backbone,
    protocol,
    prompt: str,
    resolution: int,
    count: int,
    seed: int,
    cache: Path,
    batch_size: int = 8,
) -> list[Path]:
    key = {
        "backbone": backbone.id,
        "revision": backbone.revision,
        "prompt": prompt,
        "resolution": resolution,
        "count": count,
        "seed": seed,
        "protocol": vars(protocol),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache / "class_images" / digest
    if not (folder / "meta.json").is_file():
        with atomic_dir(folder) as tmp:
            _generate(backbone, protocol, prompt, resolution, count, seed, tmp, batch_size)
            (tmp / "meta.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    return sorted(folder.glob("*.png"))


def _generate(backbone, protocol, prompt, resolution, count, seed, folder, batch_size) -> None:
    size = backbone.latent_size(resolution)
    for start in range(0, count, batch_size):
        seeds = [
            _Seed(stable_seed("class", prompt, i, seed))
            for i in range(start, min(count, start + batch_size))
        ]
        latents = noise([s.seed for s in seeds], backbone.latent_channels, size)
        images = render(backbone.pipe, [prompt] * len(seeds), latents, seeds, protocol, resolution)
        for offset, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{start + offset:04d}.png")
