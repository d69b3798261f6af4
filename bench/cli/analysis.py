"""Commands that read the store: `compare`, `leaderboard`, `report`, `runs`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench.cli.common import (
    BootstrapSeedOption,
    CIMethodOption,
    ConfidenceOption,
    ConventionOption,
    JsonOption,
    PromptsOption,
    ReplicatesOption,
    ResamplesOption,
    RunsOption,
    out,
    parse_replicates,
    stats_options,
)
from bench.paths import runs_dir


def compare(
    run_refs: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="Run ids or run directories.")
    ],
    runs: RunsOption = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    seed: Annotated[
        int, typer.Option("--seed", "--bootstrap-seed", help="Seed of the bootstrap resamples.")
    ] = 0,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    convention: ConventionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Paired differences between runs of one suite, with intervals and p-values."""
    from bench import api
    from bench.analysis.results import least_real
    from bench.reports.tables import compare_json, compare_table

    loaded = [api.load_run(ref, runs=runs, convention=convention) for ref in run_refs]
    stats = stats_options(prompts, resamples, ci_method, confidence, seed)
    comparisons = api.compare(loaded, stats=stats)
    realness = least_real(loaded)
    convention = loaded[0].convention
    if as_json:
        out.print_json(json.dumps(compare_json(comparisons, realness, convention)))
    else:
        out.print(compare_table(comparisons, realness, convention))


def leaderboard(
    runs: RunsOption = None,
    out_path: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path(
        "leaderboard/LEADERBOARD.md"
    ),
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    bootstrap_seed: BootstrapSeedOption = 0,
    convention: Annotated[
        str | None,
        typer.Option("--convention", help="Only this convention's section (default: all)."),
    ] = None,
) -> None:
    """Write a markdown leaderboard of every scored run, with published reference rows."""
    from bench import api

    stats = stats_options(prompts, resamples, ci_method, confidence, bootstrap_seed)
    api.leaderboard(runs=runs, out=out_path, convention=convention, stats=stats)
    out.print(f"wrote {out_path}", highlight=False)


def report(
    run_refs: Annotated[
        list[str] | None,
        typer.Argument(metavar="[RUN]...", help="Run ids or run directories (default: all)."),
    ] = None,
    runs: RunsOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder of the site (index.html and its pages).")
    ] = Path("report"),
    convention: ConventionOption = None,
    replicates: ReplicatesOption = None,
    images_per_prompt: Annotated[
        int | None,
        typer.Option(
            "--images-per-prompt",
            help="Show the first N images of each prompt and fit seed (default: all).",
            min=1,
        ),
    ] = None,
    world_report: Annotated[
        Path | None,
        typer.Option("--world-report", help="A `bench world report` folder to include."),
    ] = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    bootstrap_seed: BootstrapSeedOption = 0,
) -> None:
    """Write a static HTML report: the leaderboard, and each subject's photos beside every
    run's images of each prompt, aligned so that one column holds one seed."""
    from bench import api

    stats = stats_options(prompts, resamples, ci_method, confidence, bootstrap_seed)
    made = api.report(
        run_refs or None,
        runs=runs,
        out=out_dir,
        convention=convention,
        stats=stats,
        world_report=world_report,
        replicates=parse_replicates(replicates),
        images_per_prompt=images_per_prompt,
    )
    out.print(
        f"wrote {made.out / 'index.html'}: {len(made.pages)} pages, {made.images} images "
        f"({made.thumbnails_made} thumbnails made, {made.thumbnails_reused} reused) "
        f"in {made.seconds:.1f} s",
        highlight=False,
    )


def list_runs(runs: RunsOption = None, as_json: JsonOption = False) -> None:
    """List the runs in a store."""
    from bench.store.integrity import list_runs as store_runs

    rows = store_runs(runs_dir(runs))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"runs in {runs_dir(runs)}")
    table.add_column("run id", no_wrap=True)
    for column in ("suite", "method", "done", "scored", "damaged", "created"):
        table.add_column(column)
    for r in rows:
        total = "?" if r["units_total"] is None else r["units_total"]
        table.add_row(
            r["run_id"],
            r["suite"],
            r["method"] or "?",
            f"{r['units_done']}/{total}",
            f"{r['units_scored']}/{total}",
            str(len(r["problems"])) if r["problems"] else "",
            (r["created"] or "")[:16],
        )
    out.print(table if rows else f"no runs in {runs_dir(runs)}")
    for r in rows:  # in full, as plain text: each names the file and what to do
        for problem in r["problems"]:
            out.print(f"damaged: {problem}", highlight=False, markup=False, soft_wrap=True)
    if any(r["problems"] for r in rows):
        out.print(
            "run the same `bench run` (or `bench score --run RUN`) again to redo what is damaged",
            highlight=False,
        )


COMMANDS = {
    "compare": compare,
    "leaderboard": leaderboard,
    "report": report,
    "runs": list_runs,
}
