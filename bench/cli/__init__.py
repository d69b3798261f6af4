"""The `bench` command line: a thin layer over `bench.api`, one module per command group.

    running.py   run, score, sweep, generate     (make or import images)
    analysis.py  compare, leaderboard, runs      (read the store)
    catalog.py   methods, suites, subjects, check-method
    world.py     world train, check, report         (the toy world's models)
    common.py    consoles, errors, progress bars, the shared option declarations

Every error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os

import typer

from bench.cli import analysis, catalog, running, world
from bench.cli.common import handles_errors

app = typer.Typer(
    help="An evaluation-first benchmark for subject-driven personalization of text-to-image "
    "models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subjects_app = typer.Typer(help="Inspect and add subjects.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")
world_app = typer.Typer(
    help="The toy world: rebuild its models from code, check them.", no_args_is_help=True
)
app.add_typer(world_app, name="world")

for module in (running, analysis, catalog):
    for name, command in module.COMMANDS.items():
        app.command(name)(handles_errors(command))
for name, command in catalog.SUBJECT_COMMANDS.items():
    subjects_app.command(name)(handles_errors(command))
for name, command in world.COMMANDS.items():
    world_app.command(name)(handles_errors(command))


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
