"""`bench world`: the toy world's models (rebuilt from code) and how well they do."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench.cli.common import JsonOption, out


def train(
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Weights file to write (default: the shipped oracle's)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the training renders and weights.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="A seconds-long training (for CI), not the shipped one.")
    ] = False,
) -> None:
    """Rebuild the oracle's weights from renders (about 15 minutes on 2 CPU cores)."""
    from bench.world.oracle import WEIGHTS, save_oracle, train_oracle

    target = out_path or WEIGHTS
    sizes = {"n_train": 256, "epochs": 1} if quick else {}
    started = time.perf_counter()
    oracle = train_oracle(seed=seed, log=lambda line: out.print(line, highlight=False), **sizes)
    save_oracle(oracle, target)
    out.print(f"wrote {target} in {time.perf_counter() - started:.0f} s", highlight=False)


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
        raise BenchError(f"{path}: no oracle weights; run `bench world train --out {path}`")
    scores = accuracy(load_oracle(path), training_scenes(seed=20261126, n=renders))
    if as_json:
        out.print_json(json.dumps({"weights": str(path), "renders": renders, "accuracy": scores}))
        return
    table = Table("label", "accuracy", title=f"oracle on {renders} held-out renders")
    for label, value in scores.items():
        table.add_row(label, f"{value:.3f}")
    out.print(table)


COMMANDS = {"train": train, "check": check}
