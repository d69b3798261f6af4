"""Commands about what is available: `methods`, `suites`, `subjects list|add`, `check-method`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench import registry
from bench.cli.common import DataRootOption, err, out, progress_reporter
from bench.errors import BenchError


def methods() -> None:
    """List the registered methods (built-in and plugins)."""
    table = Table("method", "entry point")
    for name, target in registry.describe(registry.METHODS):
        table.add_row(name, target)
    out.print(table)


def check_method(
    name: Annotated[str, typer.Argument(help="Method name (`bench methods`).")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite to check on.")] = "micro",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Check that a method (e.g. your plugin) follows the protocol, is deterministic and
    reloads from its saved artifacts."""
    from bench.tools.conformance import check_method as run_checks

    with progress_reporter() as reporter:
        checks = run_checks(name, suite, device=device, reporter=reporter)
    table = Table("check", "result", "detail", title=f"bench check-method {name}")
    for c in checks:
        table.add_row(c.name, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]", c.detail)
    out.print(table)
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


def suites() -> None:
    """List the shipped suites."""
    from bench.data.suites import list_suites

    table = Table("suite", "description")
    for name, description in list_suites():
        table.add_row(name, description)
    out.print(table)


def subjects_list(
    suite: Annotated[
        str | None, typer.Argument(help="Suite name or .toml path (default smoke).")
    ] = None,
    data_root: DataRootOption = None,
    user: Annotated[
        bool, typer.Option("--user", help="List the user subjects (`bench subjects add`).")
    ] = False,
) -> None:
    """List a suite's subjects, or with --user the subjects registered by `bench subjects add`."""
    from bench.data.suites import load_suite

    if user:
        if suite is not None:
            raise BenchError(f"give a SUITE ({suite}) or --user, not both")
        _list_user_subjects()
        return
    loaded = load_suite(suite or "smoke", data_root=data_root)
    table = Table("subject", "class", "kind", "images", "prompts", "source")
    for s in loaded.subjects:
        table.add_row(
            s.id,
            s.class_noun,
            s.kind,
            str(len(s.images)),
            str(len(loaded.prompts_for(s).prompts)),
            s.source,
        )
    out.print(table)


def _list_user_subjects() -> None:
    from bench.data.user_subjects import list_user_subjects, user_subjects_dir

    found = list_user_subjects()
    if not found:
        out.print(
            f"no user subjects in {user_subjects_dir()}; add one with "
            "`bench subjects add NAME --class NOUN --images DIR`",
            highlight=False,
        )
        return
    table = Table("subject", "class", "kind", "token", "images", "source")
    for s in found:
        table.add_row(s.id, s.class_noun, s.kind, s.token, str(len(s.images)), s.source)
    out.print(table)


def subjects_add(
    name: Annotated[str, typer.Argument(help="Id for the subject: letters, digits, _ - .")],
    class_noun: Annotated[
        str, typer.Option("--class", help="Class noun of the subject, e.g. dog, backpack.")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder of the subject's photos.")],
    kind: Annotated[
        str | None,
        typer.Option(help="object or live (default: live for cat and dog, else object)."),
    ] = None,
    token: Annotated[str, typer.Option(help="Identifier token in prompts.")] = "sks",
    force: Annotated[
        bool, typer.Option("--force", help="Replace a subject registered under NAME.")
    ] = False,
) -> None:
    """Register your own subject: its usable photos are copied to the user directory
    ($BENCH_HOME/subjects/NAME), where `bench run --subject NAME` finds it."""
    from bench.data.user_subjects import RECOMMENDED_IMAGES, register_subject

    done = register_subject(name, class_noun, images, kind=kind, token=token, force=force)
    for path, why in done.skipped:
        err.print(f"skipped {path}: {why}", highlight=False, soft_wrap=True, markup=False)
    subject = done.subject
    if len(subject.images) < RECOMMENDED_IMAGES:
        err.print(
            f"[yellow]warning:[/yellow] only {len(subject.images)} usable image(s) in {images}; "
            f"{RECOMMENDED_IMAGES} or more photos (DreamBench has 4-6) personalize better",
            highlight=False,
            soft_wrap=True,
        )
    out.print(
        f"{'replaced' if done.replaced else 'registered'} subject {subject.id} "
        f"({subject.class_noun}, {subject.kind}, token {subject.token}, "
        f"{len(subject.images)} images) in {subject.images[0].parent}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


COMMANDS = {"methods": methods, "check-method": check_method, "suites": suites}
SUBJECT_COMMANDS = {"list": subjects_list, "add": subjects_add}
