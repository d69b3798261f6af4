"""`bench study make` and `bench study import`: the pairwise human study (`bench.study`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import (
    BootstrapSeedOption,
    CIMethodOption,
    ConfidenceOption,
    JsonOption,
    PromptsOption,
    ResamplesOption,
    RunsOption,
    out,
    stats_options,
)


def make(
    run_refs: Annotated[
        list[str], typer.Argument(metavar="RUN_A RUN_B [RUN]...", help="Runs to compare.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder of the study page (index.html, img/).")
    ] = Path("study"),
    per_rater: Annotated[
        int, typer.Option("--per-rater", help="Pairs each rater answers.", min=1)
    ] = 25,
    checks: Annotated[
        int | None,
        typer.Option("--checks", help="Attention checks per rater (default: max(2, N/10)).", min=0),
    ] = None,
    pairs: Annotated[int, typer.Option("--pairs", help="Pairs in the study's pool.", min=1)] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the pool and the checks.")] = 0,
    runs: RunsOption = None,
) -> None:
    """Write a static page for a pairwise human study of these runs (the DreamBooth paper's):
    the subject's photos, two images of the same cell, subject and prompt fidelity."""
    from bench import api

    study = api.make_study(
        run_refs,
        runs=runs,
        out=out_dir,
        per_rater=per_rater,
        checks_per_rater=checks,
        pairs=pairs,
        seed=seed,
    )
    out.print(
        f"wrote {out_dir / 'index.html'}: study {study.study_id}, {len(study.pairs)} pairs, "
        f"{len(study.checks)} attention checks; each rater answers {study.per_rater} pairs and "
        f"{study.checks_per_rater} checks. Import the answer files with `bench study import`.",
        highlight=False,
    )


def import_(
    files: Annotated[
        list[Path], typer.Argument(metavar="ANSWERS...", help="Answer files the page saved.")
    ],
    runs: RunsOption = None,
    prompts: PromptsOption = "fixed",
    resamples: ResamplesOption = 10_000,
    ci_method: CIMethodOption = "auto",
    confidence: ConfidenceOption = 0.95,
    bootstrap_seed: BootstrapSeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Store raters' answers in the study, then report each pair of runs' win rates with
    intervals over subjects, rater agreement, and a Bradley-Terry ranking."""
    from bench.paths import runs_dir
    from bench.reports.terminal import print_document
    from bench.study.analysis import analyse, document, import_answers, stored_answers
    from bench.study.make import study_dir

    stats = stats_options(prompts, resamples, ci_method, confidence, bootstrap_seed)
    store = runs_dir(runs)
    studies = import_answers(files, store)
    results = [analyse(s, stored_answers(study_dir(store, s.study_id), s), stats) for s in studies]
    if as_json:
        out.print_json(json.dumps([r.to_json() for r in results]))
        return
    for r in results:
        print_document(document(r), out)


COMMANDS = {"make": make, "import": import_}
