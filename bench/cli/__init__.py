"""The `bench` command line: a thin layer over `bench.api`, one module per command group.

    running.py   run, score, sweep, generate     (make or import images)
    analysis.py  compare, leaderboard, report, runs   (read the store)
    catalog.py   methods, suites, subjects, check-method
    study.py     study make, study import          (the pairwise human study)
    common.py    consoles, errors, progress bars, the shared option declarations

Outside packages add command groups through the `bench.commands` entry point (a typer.Typer):
the toy world's lab adds `bench world`. Every error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os

import typer

from bench import registry
from bench.cli import analysis, catalog, running, study
from bench.cli.common import handles_errors
from bench.errors import BenchError

app = typer.Typer(
    help="An evaluation-first benchmark for subject-driven personalization of text-to-image "
    "models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subjects_app = typer.Typer(help="Inspect and add subjects.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")
study_app = typer.Typer(
    help="A pairwise human study of runs' images: make its page, import its answers.",
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")

for module in (running, analysis, catalog):
    for name, command in module.COMMANDS.items():
        app.command(name)(handles_errors(command))
for name, command in catalog.SUBJECT_COMMANDS.items():
    subjects_app.command(name)(handles_errors(command))
for name, command in study.COMMANDS.items():
    study_app.command(name)(handles_errors(command))

# Command groups that packages outside bench's own may add, and how to get each one.
KNOWN_GROUPS = {
    "world": "the toy world's lab; install it with `pip install -e world` from a clone of bench"
}


def _add_command_groups() -> None:
    """Each `bench.commands` entry point's group, its commands' errors made one line. A group
    that fails to load, or a known one that is not installed, becomes a command that says so,
    so that one broken plugin never takes the other commands down with it."""
    installed = registry.names(registry.COMMANDS)
    for name in installed:
        try:
            group: typer.Typer = registry.load(registry.COMMANDS, name)
        except Exception as e:  # the plugin's own import error, whatever it is
            why = f"unavailable: its plugin failed to load ({type(e).__name__}: {e})"
            _add_unavailable(name, why)
            continue
        for info in group.registered_commands:
            info.callback = handles_errors(info.callback)
        app.add_typer(group, name=name)
    for name, what in KNOWN_GROUPS.items():
        if name not in installed:
            _add_unavailable(name, f"not installed: it is {what}")


def _add_unavailable(name: str, why: str) -> None:
    """`bench NAME ...`, whatever follows, as a one-line error saying why it is not there."""

    def unavailable(ctx: typer.Context) -> None:
        raise BenchError(f"`bench {name}` is {why}")

    unavailable.__doc__ = f"Unavailable: {why}."
    extra = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    app.command(name, context_settings=extra)(handles_errors(unavailable))


_add_command_groups()


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
