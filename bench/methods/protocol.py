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
        # (`render` does this under the suite's protocol). Called once per batch, after fit,
        # possibly in a later process: load from ctx.workdir.
    def release(self, ctx: MethodContext) -> None:
        # Optional: undo what generate loaded into the backbone.
    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        # Optional: the text generate feeds the pipeline for a cell; recorded in the manifest.

`Method` below states this as a `typing.Protocol` (`isinstance(obj, Method)` checks the required
part). Register a method under the `bench.methods` entry-point group of your package's
pyproject.toml; plugin authors import everything they need from `bench.plugin`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bench.data.plan import Cell
from bench.data.subjects import Subject
from bench.data.suites import Suite
from bench.diffusion.backbone import Backbone


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


@runtime_checkable
class Method(Protocol):
    """The required part of the method protocol (the module docstring has the optional hooks)."""

    name: str
    Config: type

    def fit(self, ctx: MethodContext) -> dict: ...

    def generate(self, ctx: MethodContext, cells: list[Cell], latents) -> list: ...
