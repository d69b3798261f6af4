"""What bench hands a method, and what it expects back. This is the whole plugin protocol.

A method is any object (a class is simplest) with:

    name: str                      # the registry name, e.g. "dreambooth_lora"
    Config: type                   # a frozen dataclass of options, all with defaults
    def fit(self, ctx: MethodContext) -> dict:
        # Personalize for ctx.subject and save what generation needs (safetensors) in
        # ctx.workdir. Leave ctx.backbone as it was found. Return a small JSON-able log
        # (losses, step counts), which goes into fit.json.
    def generate(self, ctx: MethodContext, cells: list[Cell], latents) -> list[np.ndarray]:
        # One HxWx3 uint8 image per cell, denoised from the given initial latents
        # (`ctx.render` does this under the suite's protocol). Called once per batch, after
        # fit, possibly in a later process: load from ctx.workdir.

and may declare (`MethodBase` has the defaults):

    def release(self, ctx) -> None         # undo what generate loaded into the backbone
    def prompt(self, ctx, cell) -> str     # the text generate renders for a cell (manifest)
    def check(self, config, backbone, subjects) -> None
                                           # raise BenchError if the options cannot work on
                                           # this backbone or these subjects: called once the
                                           # backbone is loaded, before the run writes anything
    supports_checkpoints: bool = False     # fit saves intermediate adapters with
                                           # ctx.checkpoint(step) when its Config has
                                           # `steps` and `checkpoint_every` (sweeps use it)
    is_reference: bool = False             # a reference row: fit and generate are not called;
                                           # the subject's photos are stored and scored
                                           # leave-one-out (the `real` method)
    def fit_pack(self, ctxs: list[MethodContext]) -> list[dict]
                                           # packed fitting: fit several units (same backbone,
                                           # suite and config) in one loop, each into its own
                                           # ctx.workdir, as `fit` would one by one; returns
                                           # their logs in order. Declaring it lets the runner
                                           # fit up to --pack units at once (bench run --pack)

`Method` below states the required part as a `typing.Protocol` (`isinstance(obj, Method)`);
`capabilities(method)` reads the declared ones. Register a method under the `bench.methods`
entry-point group of your package's pyproject.toml; plugin authors import everything they need
from `bench.plugin`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bench.data.plan import Cell
from bench.data.subjects import Subject
from bench.data.suites import Suite
from bench.diffusion.backbone import Backbone
from bench.diffusion.generation import render


def checkpoint_folder(step: int) -> str:
    """Where a unit keeps the intermediate adapter of `step`, relative to the unit."""
    return f"checkpoints/step-{step:06d}"


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
    # Intermediate adapters saved through `checkpoint`, recorded by bench in fit.json.
    saved_checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def render(self, prompts: list[str], latents, cells: list[Cell]) -> list:
        """`prompts` rendered by the backbone from `latents` under the suite's protocol and
        resolution: what `generate` returns for most methods."""
        return render(
            self.backbone.pipe,
            prompts,
            latents,
            cells,
            self.suite.generation,
            self.suite.resolution,
        )

    def checkpoint(self, step: int) -> Path:
        """The folder for the intermediate adapter at `step` (save it there); bench generates and
        scores the suite's cells from it after fitting."""
        folder = self.workdir / checkpoint_folder(step)
        folder.mkdir(parents=True, exist_ok=True)
        self.saved_checkpoints.append({"step": step, "path": str(folder.relative_to(self.workdir))})
        return folder


@runtime_checkable
class Method(Protocol):
    """The required part of the method protocol (the module docstring has the optional part)."""

    name: str
    Config: type

    def fit(self, ctx: MethodContext) -> dict: ...

    def generate(self, ctx: MethodContext, cells: list[Cell], latents) -> list: ...


class MethodBase:
    """An optional base class: the optional part of the protocol with its defaults."""

    supports_checkpoints: bool = False
    is_reference: bool = False

    def release(self, ctx: MethodContext) -> None:
        pass

    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        return cell.text

    def check(self, config: Any, backbone: Backbone, subjects: list[Subject]) -> None:
        pass


@dataclass(frozen=True)
class Capabilities:
    supports_checkpoints: bool
    is_reference: bool
    fits_packed: bool = False  # it has `fit_pack`


def capabilities(method: Any) -> Capabilities:
    """What a method declares it can do (undeclared: no)."""
    return Capabilities(
        supports_checkpoints=bool(getattr(method, "supports_checkpoints", False)),
        is_reference=bool(getattr(method, "is_reference", False)),
        fits_packed=callable(getattr(method, "fit_pack", None)),
    )
