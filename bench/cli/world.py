"""`bench world`: the toy world's models (rebuilt from code) and how well they do."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench.cli.common import JsonOption, out

MODELS = ("oracle", "clip")


def train(
    only: Annotated[
        str | None, typer.Option("--only", help=f"One model: {' or '.join(MODELS)}.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write the weights to (default: the shipped ones)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the training renders and weights.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A seconds-long training (for CI), not the shipped one.")
    ] = False,
) -> None:
    """Rebuild the world's models from renders: the oracle (about 15 minutes on 2 CPU cores)
    and CLIP (about 12)."""
    from bench.errors import BenchError
    from bench.world import clip, oracle

    if only is not None and only not in MODELS:
        raise BenchError(f"--only {only!r}: use {' or '.join(MODELS)}")

    def log(line: str) -> None:
        out.print(line, highlight=False)

    for name in [only] if only else MODELS:
        started = time.perf_counter()
        if name == "oracle":
            target = (out_dir / oracle.WEIGHTS.name) if out_dir else oracle.WEIGHTS
            sizes = {"n_train": 256, "epochs": 1} if quick else {}
            oracle.save_oracle(oracle.train_oracle(seed=seed, log=log, **sizes), target)
        else:
            target = (out_dir / clip.WEIGHTS.name) if out_dir else clip.WEIGHTS
            sizes = {"n_pairs": 128, "epochs": 1} if quick else {}
            clip.save_clip(clip.train_clip(seed=seed, log=log, **sizes), target)
        log(f"wrote {target} in {time.perf_counter() - started:.0f} s")


def check(
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Oracle weights (default: the shipped ones).")
    ] = None,
    renders: Annotated[int, typer.Option("--renders", help="Held-out renders to read.")] = 2000,
    as_json: JsonOption = False,
) -> None:
    """The oracle's accuracy per label on held-out renders (a seed training never uses)."""
    from bench.errors import BenchError
    from bench.world.oracle import WEIGHTS, accuracy, load_oracle, training_scenes

    if renders < 1:
        raise BenchError(f"--renders {renders}: use a whole number >= 1")
    path = weights or WEIGHTS
    if not path.is_file():
        raise BenchError(
            f"{path}: no oracle weights; run `bench world train --only oracle --out {path.parent}`"
        )
    scores = accuracy(load_oracle(path), training_scenes(seed=20261126, n=renders))
    if as_json:
        out.print_json(json.dumps({"weights": str(path), "renders": renders, "accuracy": scores}))
        return
    table = Table("label", "accuracy", title=f"oracle on {renders} held-out renders")
    for label, value in scores.items():
        table.add_row(label, f"{value:.3f}")
    out.print(table)


COMMANDS = {"train": train, "check": check}
