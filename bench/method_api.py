"""What bench hands a method, and what it expects back. This is the whole plugin protocol.

A method is any object (a class is simplest) with:

    name: str                      # the registry name, e.g. "dreambooth_lora"
    Config: type                   # a frozen dataclass of options, all with defaults
    def fit(self, ctx: MethodContext) -> dict:
        # Personalize for ctx.subject and save what generation needs (safetensors) in
        # ctx.workdir. Leave ctx.backbone as it was found. Return a small JSON-able log
        # (losses, step counts), which goes into the manifest.
    def generate(self, ctx: MethodContext, cells: list[Cell], latents) -> list[np.ndarray]:
        # One HxWx3 uint8 image per cell, denoised from the given initial latents
        # (bench.generation.render does this under the suite's protocol). Called once per
        # batch, after fit, possibly in a later process: load from ctx.workdir.
    def release(self, ctx: MethodContext) -> None:
        # Optional: undo what generate loaded into the backbone.
    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        # Optional: the text generate feeds the pipeline for a cell; recorded in the manifest.

Register it under the `bench.methods` entry-point group of your package's pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backbone import Backbone
from bench.subjects import Subject
from bench.suites import Suite


@dataclass(frozen=True)
class MethodContext:
    backbone: Backbone
    suite: Suite
    subject: Subject
    config: Any  # the method's Config instance
    replicate: int  # the suite's replicate seed
    workdir: Path  # <runs>/<suite>/<run id>/<subject>/<replicate>/
    progress: Callable[[int, dict[str, float] | None], None] = lambda advance, info=None: None
    cache: Path | None = None  # shared cache root (class images and the like)
