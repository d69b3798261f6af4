"""`example_suffix`: no fine-tuning; every prompt loses the identifier and gains a style suffix.

The smallest complete method: a frozen Config, a fit that saves what generation needs (here a
one-tensor safetensors file recording the suffix's token count, to show where artifacts go), and
a generate that renders the cells from the noise bench hands it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.plugin import Cell, MethodContext

ARTIFACT = "suffix.safetensors"


@dataclass(frozen=True)
class Config:
    suffix: str = "a high quality photo"

    def __post_init__(self) -> None:
        if not self.suffix.strip():
            raise ValueError("suffix must not be empty")


class SuffixPrompt:
    name = "example_suffix"
    Config = Config

    def fit(self, ctx: MethodContext) -> dict:
        import torch
        from safetensors.torch import save_file

        ids = ctx.backbone.pipe.tokenizer(ctx.config.suffix).input_ids
        save_file({"suffix_tokens": torch.tensor([len(ids)])}, str(ctx.workdir / ARTIFACT))
        return {"suffix_tokens": len(ids)}

    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        """What this method feeds the pipeline for a cell (bench records it in the manifest)."""
        return f"{cell.scoring_text}, {ctx.config.suffix}"

    def generate(self, ctx: MethodContext, cells: list[Cell], latents):
        return ctx.render([self.prompt(ctx, cell) for cell in cells], latents, cells)
