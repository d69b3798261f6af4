"""The `bench` command line. Every error is one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench import registry
from bench.errors import BenchError
from bench.paths import runs_dir

app = typer.Typer(
    help="An evaluation-first benchmark for subject-driven personalization of text-to-image "
    "models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subjects_app = typer.Typer(help="Inspect subjects.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")

out = Console()
err = Console(stderr=True)

RunsOption = Annotated[
    Path | None, typer.Option("--runs", help="Run store (default $BENCH_RUNS or ./runs).")
]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="DreamBench folder (default $BENCH_DREAMBENCH_ROOT)."),
]
PromptsOption = Annotated[
    str,
    typer.Option(
        "--prompts",
        help="fixed: the prompt set defines the benchmark (default); "
        "random: prompts are a sample too.",
    ),
]
ResamplesOption = Annotated[int, typer.Option("--resamples", help="Bootstrap resamples.")]
CIMethodOption = Annotated[str, typer.Option("--ci-method", help="percentile or bca.")]


def handles_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BenchError as e:
            err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@handles_errors
def run(
    method: Annotated[str, typer.Option("--method", "-m", help="Method name (`bench methods`).")],
    suite: Annotated[
        str, typer.Option("--suite", "-s", help="Suite name or .toml path.")
    ] = "smoke",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Method option as key=value (TOML literal); repeatable."),
    ] = None,
    runs: RunsOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp16 on CUDA, fp32 on CPU), float32, float16 or bfloat16.")
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Images per generation batch.")
    ] = 8,
    backbone: Annotated[
        str | None,
        typer.Option(help="Override the suite's backbone (hub id, local dir or `tiny`)."),
    ] = None,
    data_root: DataRootOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan only: print the cells and what is left to do.")
    ] = False,
    scorer_option: Annotated[
        list[str] | None,
        typer.Option(
            "--scorer-option",
            help="SCORER.OPTION=VALUE, e.g. clip.pretrained=FILE "
            "(`clip` sets clip_i and clip_t); repeatable.",
        ),
    ] = None,
    no_score: Annotated[
        bool, typer.Option("--no-score", help="Generate only; score later.")
    ] = False,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "percentile",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit METHOD on every subject of a suite, generate its images, score and store them."""
    from bench.config import parse_assignments
    from bench.plan import plan
    from bench.runner import ExecutionOptions, execute, prepare
    from bench.suites import load_suite

    options = ExecutionOptions(device=device, dtype=dtype, batch_size=batch_size)
    loaded = load_suite(suite, data_root=data_root, backbone=backbone)
    prepared = prepare(method, loaded, parse_assignments(set_ or []), runs_dir(runs))
    if dry_run:
        cells = plan(loaded)
        pending = prepared.pending_units()
        info = {
            "run_id": prepared.run_id,
            "run_dir": str(prepared.paths.root),
            "suite": loaded.name,
            "backbone": loaded.backbone,
            "subjects": len(loaded.subjects),
            "replicates": len(loaded.replicates),
            "cells": len(cells),
            "units_total": len(prepared.units()),
            "units_pending": len(pending),
        }
        if as_json:
            out.print_json(json.dumps(info))
        else:
            for key, value in info.items():
                out.print(f"{key}: {value}", highlight=False)
        return
    scorers = None
    if not no_score and loaded.scorers:  # load scorers first: a missing model fails fast
        from bench.scoring import load_scorers, parse_scorer_options

        table = {**loaded.scorer_options}
        for key, values in parse_scorer_options(scorer_option or []).items():
            table[key] = {**table.get(key, {}), **values}
        scorers = load_scorers(loaded.scorers, table, device=device)
    summary = execute(prepared, options, console=err)
    result = {
        "run_id": summary.run_id,
        "run_dir": str(summary.run_dir),
        "fitted": summary.fitted,
        "generated": summary.generated,
        "skipped_units": summary.skipped_units,
    }
    if not as_json:
        out.print(
            f"run {summary.run_id}: fitted {summary.fitted}, generated "
            f"{summary.generated} images, {summary.skipped_units} units already done",
            highlight=False,
        )
        out.print(f"run_id: {summary.run_id}\nrun_dir: {summary.run_dir}", highlight=False)
    if scorers is not None:
        from bench.report import score_json, score_table
        from bench.results import load_results, summarize
        from bench.scoring import score_run

        result["scored_units"] = score_run(summary.run_dir, scorers, console=err)
        results = load_results(summary.run_dir)
        intervals = summarize(results, prompt_mode=prompts, n_resamples=resamples, method=ci_method)
        if as_json:
            result["scores"] = score_json(results, intervals)
        else:
            out.print(score_table(results, intervals))
    if as_json:
        out.print_json(json.dumps(result))


@app.command("runs")
@handles_errors
def list_runs_command(
    runs: RunsOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the runs in a store."""
    from bench.store import list_runs

    rows = list_runs(runs_dir(runs))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("run id", "suite", "method", "done", "created", "path")
    for r in rows:
        table.add_row(
            r["run_id"],
            r["suite"],
            r["method"],
            f"{r['units_done']}/{r['units_total']}",
            r["created"],
            r["path"],
        )
    out.print(table if rows else f"no runs in {runs_dir(runs)}")


@app.command()
@handles_errors
def methods() -> None:
    """List the registered methods (built-in and plugins)."""
    table = Table("method", "entry point")
    for name, target in registry.describe(registry.METHODS):
        table.add_row(name, target)
    out.print(table)


@app.command()
@handles_errors
def suites() -> None:
    """List the shipped suites."""
    from bench.suites import list_suites

    table = Table("suite", "description")
    for name, description in list_suites():
        table.add_row(name, description)
    out.print(table)


@subjects_app.command("list")
@handles_errors
def subjects_list(
    suite: Annotated[str, typer.Argument(help="Suite name or .toml path.")] = "smoke",
    data_root: DataRootOption = None,
) -> None:
    """List a suite's subjects."""
    from bench.suites import load_suite

    loaded = load_suite(suite, data_root=data_root)
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


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
