"""The base model, not personalized: each prompt rendered with the class noun alone ("a dog on
the beach"). The lower bound for subject fidelity and a reference for prompt fidelity.

fit:      nothing is trained or saved.
generate: render the suite's prompts without the identifier token, from the given noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.plugin import Cell, MethodContext


@dataclass(frozen=True)
class Config:
    pass


class Base:
    name = "base"
    Config = Config

    def fit(self, ctx: MethodContext) -> dict:
        return {"trained": False}

    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        """The class noun alone: "a dog on the beach"."""
        return cell.prompt.render(None, cell.subject.class_noun)

    def generate(self, ctx: MethodContext, cells: list[Cell], latents):
        return ctx.render([self.prompt(ctx, cell) for cell in cells], latents, cells)
