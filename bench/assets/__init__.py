"""Model files the library ships and loads itself: the toy world's backbone parts (VAE, UNet),
its CLIP (weights and open_clip config) and its DINO, which the smoke and world suites run on.
The world lab trains them (`bench world train`); the library only reads them, through
`world_asset`, so that no module reaches into another package's folder for a file."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def world_asset(name: str) -> Path:
    """A shipped toy-world file: `clip.safetensors`, `bench-world-clip.json` (its open_clip
    config), `dino.safetensors`, or `pipeline` (the backbone's `vae/` and `unet/`)."""
    return ASSETS / "world" / name
