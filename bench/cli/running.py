"""Commands that make or import images: `run`, `score`, `sweep`, `generate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench.cli.common import (
    BackboneOption,
    BootstrapSeedOption,
    CIMethodOption,
    ConfidenceOption,
    ConventionOption,
    DataRootOption,
    DeviceOption,
    DtypeOption,
    GenerationBatchSizeOption,
    JsonOption,
    PackOption,
    PromptFileOption,
    PromptsOption,
    ReplicatesOption,
    ResamplesOption,
    RunsOption,
    ScorerOption,
    SetOption,
    SubjectsOption,
    SuiteOption,
    out,
    parse_replicates,
    progress_reporter,
    scorer_table,
    stats_options,
)
from bench.errors import BenchError


def run(
    method: Annotated[str, typer.Option("--method", "-m", help="Method name (`bench methods`).")],
    suite: SuiteOption = "smoke",
    set_: SetOption = None,
    runs: RunsOption = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    generation_batch_size: GenerationBatchSizeOption = 8,
    pack: PackOption = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="I/N: do only the units at positions I, I+N, ... (one Slurm array task's "
            "share; processes may run shards at once); run again without it to finish the run.",
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local, or ray: the units as Ray tasks over a cluster (pip install -e '.[ray]').",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="A running Ray cluster (default: a local one)."),
    ] = None,
    ray_gpus: Annotated[
        float | None,
        typer.Option(
            "--ray-gpus",
            help="GPUs per Ray task; a fraction lets tasks share a card (default: 1 on a "
            "cluster with GPUs, else 0).",
        ),
    ] = None,
    ray_cpus: Annotated[float, typer.Option("--ray-cpus", help="CPUs per Ray task.")] = 1.0,
    backbone: BackboneOption = None,
    data_root: DataRootOption = None,
    subject: SubjectsOption = None,
    prompt_file: PromptFileOption = None,
    replicates: ReplicatesOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan only: print the cells and what is left to do.")
    ] = False,
    scorer_option: ScorerOption = None,
    no_score: Annotated[
        bool, typer.Option("--no-score", help="Generate only; score later.")
    ] = False,
    convention: ConventionOption = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    bootstrap_seed: BootstrapSeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Fit METHOD on every subject of a suite, generate its images, score and store them."""
    from bench import api
    from bench.config import parse_assignments
    from bench.scorers.conventions import get_convention
    from bench.store.runner import ExecutionOptions, Shard

    # Checked before any work.
    ExecutionOptions(device, dtype, generation_batch_size, pack)
    if shard is not None:
        Shard.parse(shard)
    get_convention(convention)
    stats = stats_options(prompts, resamples, ci_method, confidence, bootstrap_seed)
    loaded = api.load_suite(
        suite,
        data_root=data_root,
        backbone=backbone,
        subjects=subject,
        prompt_file=prompt_file,
        replicates=parse_replicates(replicates),
    )
    options = parse_assignments(set_ or [])
    if dry_run:
        planned = api.plan(method, loaded, options=options, runs=runs)
        info = {
            "run_id": planned.run_id,
            "run_dir": str(planned.run_dir),
            "suite": loaded.name,
            "backbone": loaded.backbone,
            "subjects": len(loaded.subjects),
            "replicates": len(loaded.replicates),
            "cells": planned.cells,
            "units_total": planned.units_total,
            "units_pending": planned.units_pending,
        }
        if as_json:
            out.print_json(json.dumps(info))
        else:
            for key, value in info.items():
                out.print(f"{key}: {value}", highlight=False)
        return
    with progress_reporter() as reporter:
        result = api.run(
            method,
            loaded,
            options=options,
            runs=runs,
            device=device,
            dtype=dtype,
            generation_batch_size=generation_batch_size,
            pack=pack,
            score=not no_score,
            scorer_options=scorer_table(scorer_option),
            convention=convention,
            stats=stats,
            reporter=reporter,
            shard=shard,
            executor=executor,
            ray_address=ray_address,
            ray_gpus=ray_gpus,
            ray_cpus=ray_cpus,
        )
    info = {
        "run_id": result.run_id,
        "run_dir": str(result.run_dir),
        "fitted": result.fitted,
        "generated": result.generated,
        "skipped_units": result.skipped_units,
    }
    if shard is not None:
        info.update(shard=shard, scored_units=result.scored_units)
    if not as_json:
        part = f"shard {shard} of run" if shard is not None else "run"
        out.print(
            f"{part} {result.run_id}: fitted {result.fitted}, generated "
            f"{result.generated} images, {result.skipped_units} units already done",
            highlight=False,
        )
        out.print(f"run_id: {result.run_id}\nrun_dir: {result.run_dir}", highlight=False)
        if shard is not None:
            out.print(
                "run the same command without --shard once every shard is done: it finishes "
                "what is missing and summarizes the run",
                highlight=False,
            )
    if result.results is not None:
        info.update(_scores(result, as_json))
    if as_json:
        out.print_json(json.dumps(info))


def _scores(result, as_json: bool) -> dict:
    """The interval table, printed; or its JSON, returned."""
    from bench.reports.tables import score_json, score_table

    if as_json:
        return {
            "scored_units": result.scored_units,
            "scores": score_json(result.results, result.intervals),
        }
    out.print(score_table(result.results, result.intervals))
    return {"scored_units": result.scored_units}


def score(
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of images made elsewhere.")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="A stored run (id or folder) to score from its images, e.g. under another "
            "--convention; nothing is generated.",
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="CSV or JSONL: image, subject, prompt, image_index [, replicate]. "
            "Default: DIR/manifest.csv or DIR/manifest.jsonl.",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Method name for the new run.")] = "external",
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            "-s",
            help="Suite the images answer (default: smoke; with --run, the run's own suite).",
        ),
    ] = None,
    runs: RunsOption = None,
    data_root: DataRootOption = None,
    device: DeviceOption = "auto",
    scorer_option: ScorerOption = None,
    convention: ConventionOption = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    bootstrap_seed: BootstrapSeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Score images made by an outside tool (they become a run of their own in the store), or
    a stored run's images again (--run), e.g. under another --convention."""
    from bench import api
    from bench.scorers.conventions import get_convention

    if (images is None) == (run is None):
        raise BenchError("bench score needs --images DIR (outside images) or --run RUN, not both")
    get_convention(convention)
    stats = stats_options(prompts, resamples, ci_method, confidence, bootstrap_seed)
    with progress_reporter() as reporter:
        if run is not None:
            result = api.rescore(
                run,
                suite=suite,
                runs=runs,
                scorer_options=scorer_table(scorer_option),
                device=device,
                convention=convention,
                stats=stats,
                reporter=reporter,
            )
        else:
            result = api.import_images(
                images,
                manifest=manifest,
                suite=api.load_suite(suite or "smoke", data_root=data_root),
                name=name,
                runs=runs,
                scorer_options=scorer_table(scorer_option),
                device=device,
                convention=convention,
                stats=stats,
                reporter=reporter,
            )
    info = {"run_id": result.run_id, "run_dir": str(result.run_dir)}
    if not as_json:
        out.print(f"run_id: {result.run_id}\nrun_dir: {result.run_dir}", highlight=False)
    info.update(_scores(result, as_json))
    if as_json:
        out.print_json(json.dumps(info))


def sweep(
    method: Annotated[str | None, typer.Option("--method", "-m", help="Method name.")] = None,
    suite: SuiteOption = "smoke",
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
    subject: SubjectsOption = None,
    backbone: BackboneOption = None,
    prompt_file: PromptFileOption = None,
    replicates: ReplicatesOption = None,
    runs: RunsOption = None,
    data_root: DataRootOption = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    generation_batch_size: GenerationBatchSizeOption = 8,
    pack: PackOption = None,
    scorer_option: ScorerOption = None,
    convention: ConventionOption = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    bootstrap_seed: BootstrapSeedOption = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs only.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a grid of method options; write tables and plots of the results."""
    from bench import api
    from bench.config import parse_assignments
    from bench.tools.sweep import list_presets, parse_grid

    if list_presets_:
        table = Table("preset", "description")
        for name, description in list_presets():
            table.add_row(name, description)
        out.print(table)
        return
    arguments = dict(
        grid=parse_grid(grid or []),
        options=parse_assignments(set_ or []),
        preset=preset,
        sweep_file=sweep_file,
        checkpoints=checkpoints,
        runs=runs,
        device=device,
        dtype=dtype,
        generation_batch_size=generation_batch_size,
        pack=pack,
        scorer_options=scorer_table(scorer_option),
        convention=convention,
        stats=stats_options(prompts, resamples, ci_method, confidence, bootstrap_seed),
        dry_run=dry_run,
    )
    loaded = api.load_suite(
        suite,
        data_root=data_root,
        backbone=backbone,
        subjects=subject,
        prompt_file=prompt_file,
        replicates=parse_replicates(replicates),
    )
    if dry_run:
        result = api.sweep(method, loaded, **arguments)
    else:
        with progress_reporter() as reporter:
            result = api.sweep(method, loaded, **arguments, reporter=reporter)
    info = {
        "sweep_dir": str(result.sweep_dir),
        "fitted": result.fitted,
        "generated": result.generated,
        "runs": [{"run_id": run_id, "options": o} for o, run_id in result.runs],
    }
    if as_json:
        out.print_json(json.dumps(info, default=str))
    elif dry_run:
        for o, run_id in result.runs:
            out.print(f"{run_id}  {o}", highlight=False)
    else:
        out.print((result.sweep_dir / "sweep.md").read_text(), highlight=False, markup=False)
        out.print(f"sweep_dir: {result.sweep_dir}", highlight=False)


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
        typer.Option("--run", help="A run (id or directory): render with what its method fitted."),
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
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the sidecar as JSON.")] = False,
) -> None:
    """Fixed-noise variations: the same noise per column under every prompt (one row each),
    with the base model or through a run's method; writes a grid PNG and a JSON sidecar."""
    from bench.paths import runs_dir
    from bench.tools.variations import generate_variations, run_unit, sidecar_path, suite_setting

    unit = None
    if run is not None:
        unit, setting = run_unit(runs_dir(runs), run, subject, replicate)
        if suite is not None:
            chosen = suite_setting(suite)
            if chosen.backbone != setting.backbone:
                raise BenchError(
                    f"--suite {suite} uses backbone {chosen.backbone}, but run "
                    f"{unit.run_id} was trained on {setting.backbone}; drop --suite"
                )
            setting = chosen
    else:
        if subject is not None or replicate is not None:
            raise BenchError("--subject and --replicate pick a run's unit: pass --run RUN too")
        setting = suite_setting(suite or "smoke")
    sidecar = generate_variations(
        prompt,
        setting,
        unit=unit,
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
    what = f"{unit.method} of {unit.subject['id']} from {unit.run_id}" if unit else "base model"
    out.print(
        f"wrote {out_path} ({len(prompt)} prompts x {images} images, "
        f"{setting.resolution} px, {what}) and {sidecar_path(out_path)}",
        highlight=False,
        soft_wrap=True,
    )


COMMANDS = {"run": run, "score": score, "sweep": sweep, "generate": generate}
