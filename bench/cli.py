"""The `bench` command line. Every error is one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
import os
import sys
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
subjects_app = typer.Typer(help="Inspect and add subjects.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")

# Piped output (logs, CI) gets wide tables instead of 80 columns of wrapped cells.
out = Console(width=None if sys.stdout.isatty() else 160)
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
    subject: Annotated[
        list[str] | None,
        typer.Option(
            "--subject",
            help="A user subject (`bench subjects add`) in place of the suite's subjects; "
            "repeatable.",
        ),
    ] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option(
            "--prompt-file",
            help='A prompt-set TOML ([[prompt]] template = "a {token} {class} ...") in place '
            "of the suite's prompts.",
        ),
    ] = None,
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
    loaded = load_suite(
        suite, data_root=data_root, backbone=backbone, subjects=subject, prompt_file=prompt_file
    )
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
        scorers = _load_suite_scorers(loaded, scorer_option, device)
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
        result.update(
            _score_and_report(summary.run_dir, scorers, prompts, resamples, ci_method, as_json)
        )
    if as_json:
        out.print_json(json.dumps(result))


def _load_suite_scorers(suite, assignments: list[str] | None, device: str) -> list:
    from bench.scoring import load_scorers, parse_scorer_options

    table = {**suite.scorer_options}
    for key, values in parse_scorer_options(assignments or []).items():
        table[key] = {**table.get(key, {}), **values}
    return load_scorers(suite.scorers, table, device=device)


def _score_and_report(
    run_dir: Path, scorers: list, prompts: str, resamples: int, ci_method: str, as_json: bool
) -> dict:
    """Score what is unscored, then print the interval table (or return it for --json)."""
    from bench.report import score_json, score_table
    from bench.results import load_results, summarize
    from bench.scoring import score_run

    scored = score_run(run_dir, scorers, console=err)
    results = load_results(run_dir)
    intervals = summarize(results, prompt_mode=prompts, n_resamples=resamples, method=ci_method)
    if as_json:
        return {"scored_units": scored, "scores": score_json(results, intervals)}
    out.print(score_table(results, intervals))
    return {"scored_units": scored}


@app.command()
@handles_errors
def score(
    images: Annotated[Path, typer.Option("--images", help="Folder of images made elsewhere.")],
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="CSV or JSONL: image, subject, prompt, image_index [, replicate]. "
            "Default: DIR/manifest.csv or DIR/manifest.jsonl.",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Method name for the new run.")] = "external",
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite the images answer.")] = "smoke",
    runs: RunsOption = None,
    data_root: DataRootOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    scorer_option: Annotated[list[str] | None, typer.Option("--scorer-option")] = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "percentile",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score images made by an outside tool: they become a run of their own in the store."""
    from bench.external import import_run
    from bench.suites import load_suite

    if manifest is None:
        found = [images / f for f in ("manifest.csv", "manifest.jsonl") if (images / f).is_file()]
        if not found:
            raise BenchError(f"{images}: no manifest.csv or manifest.jsonl; pass --manifest FILE")
        manifest = found[0]
    if not name.replace("_", "").replace("-", "").isalnum():
        raise BenchError(f"--name {name!r}: use letters, digits, '_' or '-'")
    loaded = load_suite(suite, data_root=data_root)
    scorers = _load_suite_scorers(loaded, scorer_option, device)
    run_dir = import_run(loaded, manifest, images, name, runs_dir(runs))
    result = {"run_id": run_dir.name, "run_dir": str(run_dir)}
    if not as_json:
        out.print(f"run_id: {run_dir.name}\nrun_dir: {run_dir}", highlight=False)
    result.update(_score_and_report(run_dir, scorers, prompts, resamples, ci_method, as_json))
    if as_json:
        out.print_json(json.dumps(result))


@app.command()
@handles_errors
def sweep(
    method: Annotated[str | None, typer.Option("--method", "-m", help="Method name.")] = None,
    suite: Annotated[
        str, typer.Option("--suite", "-s", help="Suite name or .toml path.")
    ] = "smoke",
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="OPTION=v1,v2,... (or a TOML array); repeatable: the grid is their product.",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Option shared by every cell, key=value; repeatable."),
    ] = None,
    sweep_file: Annotated[
        Path | None,
        typer.Option("--sweep-file", help="TOML with method, [set] and [[grid]] tables."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="A shipped sweep (`--list-presets`), e.g. seed-study."),
    ] = None,
    list_presets_: Annotated[
        bool, typer.Option("--list-presets", help="List the shipped presets.")
    ] = False,
    checkpoints: Annotated[
        int | None,
        typer.Option(
            help="Intermediate checkpoints per run, evenly spaced, each generated and scored."
        ),
    ] = None,
    subject: Annotated[
        list[str] | None,
        typer.Option(
            "--subject", help="Run on these subjects (`bench subjects add`) instead of the suite's."
        ),
    ] = None,
    runs: RunsOption = None,
    data_root: DataRootOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    scorer_option: Annotated[list[str] | None, typer.Option("--scorer-option")] = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a grid of method options; write tables and plots of the results."""
    from dataclasses import replace

    from bench.config import parse_assignments
    from bench.runner import ExecutionOptions, execute
    from bench.scoring import score_run
    from bench.suites import load_suite
    from bench.sweep import (
        SweepSpec,
        list_presets,
        load_spec,
        parse_grid,
        plan_sweep,
        preset_path,
        report,
        sweep_id,
    )

    if list_presets_:
        table = Table("preset", "description")
        for name, description in list_presets():
            table.add_row(name, description)
        out.print(table)
        return
    if preset and sweep_file:
        raise BenchError("give --preset or --sweep-file, not both")
    spec = SweepSpec(method="", base={}, grids=[])
    if preset or sweep_file:
        spec = load_spec(preset_path(preset) if preset else sweep_file)
    extra_grid = parse_grid(grid or [])
    spec = replace(
        spec,
        method=method or spec.method,
        base={**spec.base, **parse_assignments(set_ or [])},
        grids=[{**g, **extra_grid} for g in spec.grids] or [extra_grid],
        checkpoints=spec.checkpoints if checkpoints is None else checkpoints,
    )
    if not spec.method:
        raise BenchError("no method: pass --method NAME (or a sweep file that names one)")
    if not any(spec.grids[0].values()) and len(spec.grids) == 1:
        raise BenchError("empty grid: pass --grid OPTION=v1,v2 (or --preset / --sweep-file)")
    loaded = load_suite(suite, data_root=data_root, subjects=subject or None)
    root = runs_dir(runs)
    planned = plan_sweep(spec, loaded, root)
    sweep_dir = (
        root / loaded.name / sweep_id(spec.method, loaded.name, [p.run_id for _, p in planned])
    )
    result: dict = {
        "sweep_dir": str(sweep_dir),
        "fitted": 0,
        "generated": 0,
        "runs": [{"run_id": p.run_id, "options": o} for o, p in planned],
    }
    if dry_run:
        if as_json:
            out.print_json(json.dumps(result, default=str))
        else:
            for o, p in planned:
                out.print(f"{p.run_id}  {o}", highlight=False)
        return
    scorers = _load_suite_scorers(loaded, scorer_option, device)
    options = ExecutionOptions(device=device, dtype=dtype, batch_size=batch_size)
    for i, (_, prepared) in enumerate(planned, 1):
        err.print(f"[bold]sweep run {i}/{len(planned)}[/bold] {prepared.run_id}")
        summary = execute(prepared, options, console=err)
        score_run(summary.run_dir, scorers, console=err)
        result["fitted"] += summary.fitted
        result["generated"] += summary.generated
    title = f"Sweep of {spec.method} on {loaded.name}" + (f" ({spec.name})" if spec.name else "")
    report(
        spec,
        [(o, p.paths.root) for o, p in planned],
        sweep_dir,
        title,
        prompt_mode=prompts,
        n_resamples=resamples,
    )
    if as_json:
        out.print_json(json.dumps(result, default=str))
    else:
        out.print((sweep_dir / "sweep.md").read_text(), highlight=False, markup=False)
        out.print(f"sweep_dir: {sweep_dir}", highlight=False)


@app.command()
@handles_errors
def compare(
    run_refs: Annotated[
        list[str], typer.Argument(metavar="RUN...", help="Run ids or run directories.")
    ],
    runs: RunsOption = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Paired differences between runs of one suite, with intervals and p-values."""
    from bench.compare import compare as compare_runs
    from bench.report import compare_json, compare_table
    from bench.results import load_results
    from bench.store import find_run

    loaded = [load_results(find_run(runs_dir(runs), ref)) for ref in run_refs]
    comparisons = compare_runs(loaded, prompt_mode=prompts, n_resamples=resamples, seed=seed)
    random_weights = any(r.random_weights for r in loaded)
    if as_json:
        out.print_json(json.dumps(compare_json(comparisons, random_weights)))
    else:
        out.print(compare_table(comparisons, random_weights))


@app.command()
@handles_errors
def leaderboard(
    runs: RunsOption = None,
    out_path: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path(
        "leaderboard/LEADERBOARD.md"
    ),
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
) -> None:
    """Write a markdown leaderboard of every scored run, with published reference rows."""
    from bench import atomic
    from bench.leaderboard import render

    text = render(runs_dir(runs), out_path.parent, prompt_mode=prompts, n_resamples=resamples)
    atomic.write_text(out_path, text)
    out.print(f"wrote {out_path}", highlight=False)


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
    table = Table(title=f"runs in {runs_dir(runs)}")
    table.add_column("run id", no_wrap=True)
    for column in ("suite", "method", "done", "created"):
        table.add_column(column)
    for r in rows:
        done = f"{r['units_done']}/{r['units_total']}"
        table.add_row(r["run_id"], r["suite"], r["method"], done, r["created"][:16])
    out.print(table if rows else f"no runs in {runs_dir(runs)}")


@app.command()
@handles_errors
def methods() -> None:
    """List the registered methods (built-in and plugins)."""
    table = Table("method", "entry point")
    for name, target in registry.describe(registry.METHODS):
        table.add_row(name, target)
    out.print(table)


@app.command("check-method")
@handles_errors
def check_method_command(
    name: Annotated[str, typer.Argument(help="Method name (`bench methods`).")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite to check on.")] = "micro",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Check that a method (e.g. your plugin) follows the protocol, is deterministic and
    reloads from its saved artifacts."""
    from bench.conformance import check_method

    checks = check_method(name, suite, device=device, console=err)
    table = Table("check", "result", "detail", title=f"bench check-method {name}")
    for c in checks:
        table.add_row(c.name, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]", c.detail)
    out.print(table)
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


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
    suite: Annotated[
        str | None, typer.Argument(help="Suite name or .toml path (default smoke).")
    ] = None,
    data_root: DataRootOption = None,
    user: Annotated[
        bool, typer.Option("--user", help="List the user subjects (`bench subjects add`).")
    ] = False,
) -> None:
    """List a suite's subjects, or with --user the subjects registered by `bench subjects add`."""
    from bench.suites import load_suite

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
    from bench.user_subjects import list_user_subjects, user_subjects_dir

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


@subjects_app.command("add")
@handles_errors
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
    from bench.user_subjects import RECOMMENDED_IMAGES, register_subject

    done = register_subject(name, class_noun, images, kind=kind, token=token, force=force)
    for path, why in done.skipped:
        err.print(f"skipped {path}: {why}", highlight=False, soft_wrap=True)
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
    )


@app.command()
@handles_errors
def generate(
    prompt: Annotated[
        list[str],
        typer.Option(
            "--prompt",
            help="One grid row; repeatable. {token} and {class} take the --run subject's.",
        ),
    ],
    run: Annotated[
        str | None,
        typer.Option(
            "--run", help="A dreambooth_lora run (id or directory): use a subject's adapter."
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="The run's subject (default: its only one)."),
    ] = None,
    replicate: Annotated[
        int | None, typer.Option("--replicate", help="The run's replicate (default: its first).")
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            "-s",
            help="Suite whose backbone, resolution and protocol to use "
            "(default: the run's, else smoke).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Noise seed: column c uses seed/c.")] = 0,
    images: Annotated[int, typer.Option("--images", help="Images (columns) per prompt.")] = 4,
    out_path: Annotated[Path, typer.Option("--out", help="Grid PNG to write.")] = Path("grid.png"),
    labels: Annotated[
        bool, typer.Option("--labels", help="Write each row's prompt above it.")
    ] = False,
    runs: RunsOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp16 on CUDA, fp32 on CPU), float32, float16 or bfloat16.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the sidecar as JSON.")] = False,
) -> None:
    """Fixed-noise variations: the same noise per column under every prompt (one row each),
    with the base model or a run's adapter; writes a grid PNG and a JSON sidecar."""
    from bench.variations import generate_variations, run_adapter, sidecar_path, suite_setting

    adapter = None
    if run is not None:
        adapter, setting = run_adapter(runs_dir(runs), run, subject, replicate)
        if suite is not None:
            chosen = suite_setting(suite)
            if chosen.backbone != setting.backbone:
                raise BenchError(
                    f"--suite {suite} uses backbone {chosen.backbone}, but run "
                    f"{adapter.run_id} was trained on {setting.backbone}; drop --suite"
                )
            setting = chosen
    else:
        if subject is not None or replicate is not None:
            raise BenchError("--subject and --replicate pick an adapter: pass --run RUN too")
        setting = suite_setting(suite or "smoke")
    sidecar = generate_variations(
        prompt,
        setting,
        adapter=adapter,
        seed=seed,
        images=images,
        out=out_path,
        device=device,
        dtype=dtype,
        labels=labels,
    )
    if as_json:
        info = {**sidecar, "grid": str(out_path), "sidecar": str(sidecar_path(out_path))}
        out.print_json(json.dumps(info))
        return
    what = f"adapter of {adapter.subject['id']} from {adapter.run_id}" if adapter else "base model"
    out.print(
        f"wrote {out_path} ({len(prompt)} prompts x {images} images, "
        f"{setting.resolution} px, {what}) and {sidecar_path(out_path)}",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
