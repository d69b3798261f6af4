"""`bench world`: the toy world's models (rebuilt from code) and how well they do. bench finds
this command group through the `bench.commands` entry point of this package's pyproject; bench
turns a BenchError raised here into its one-line error and exit code 2."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench_world import REPORT_RUNS

out = Console(width=None if sys.stdout.isatty() else 160)  # as bench's own commands print
# bench's own declarations of these options, word for word
RunsOption = Annotated[
    Path | None, typer.Option("--runs", help="Run store (default $BENCH_RUNS or ./runs).")
]
SuiteOption = Annotated[str, typer.Option("--suite", "-s", help="Suite name or .toml path.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

MODELS = ("oracle", "clip", "dino", "pipeline")  # the pipeline's text encoder is the CLIP's


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
    """Rebuild the world's models from renders, in this order: the oracle (about 15 minutes on
    2 CPU cores), CLIP (about 25), DINO (about 7) and the text-to-image pipeline (VAE, then UNet,
    about 2 hours; its text encoder is the CLIP's). The pipeline keeps its training
    state in the cache: stopped, the same command resumes it to the same weights."""
    from bench.lab import BenchError
    from bench_world import clip, dino, oracle, pipeline

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
        elif name == "clip":
            target = (out_dir / clip.WEIGHTS.name) if out_dir else clip.WEIGHTS
            sizes = {"n_pairs": 128, "epochs": 1} if quick else {}
            clip.save_clip(clip.train_clip(seed=seed, log=log, **sizes), target)
        elif name == "dino":
            target = (out_dir / dino.WEIGHTS.name) if out_dir else dino.WEIGHTS
            sizes = {"n_instances": 64, "views": 2, "steps": 2} if quick else {}
            dino.save_dino(dino.train_dino(seed=seed, log=log, **sizes), target)
        else:
            target = (out_dir / pipeline.DIRECTORY.name) if out_dir else pipeline.DIRECTORY
            clip_file = out_dir / clip.WEIGHTS.name if out_dir else clip.WEIGHTS
            if not clip_file.is_file():
                clip_file = clip.WEIGHTS  # --only pipeline into --out: the shipped CLIP
            quick_sizes = {
                "n_scenes": 128,
                "vae_images": 64,
                "vae_epochs": 1,
                "unet_steps": 2,
                "refine_steps": 2,
            }
            sizes = quick_sizes if quick else {}
            pipeline.train_pipeline(target, seed=seed, clip_file=clip_file, log=log, **sizes)
        log(f"wrote {target} in {time.perf_counter() - started:.0f} s")


def check(
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Oracle weights (default: the shipped ones).")
    ] = None,
    renders: Annotated[int, typer.Option("--renders", help="Held-out renders to read.")] = 2000,
    as_json: JsonOption = False,
) -> None:
    """The oracle's accuracy per label on held-out renders (a seed training never uses), as
    drawn and blurred as soft as generated pictures are."""
    from bench.lab import BenchError
    from bench_world.oracle import WEIGHTS, accuracy, load_oracle, training_scenes
    from bench_world.render import render
    from bench_world.report import BLUR, HELD_OUT_SEED, blurred

    if renders < 1:
        raise BenchError(f"--renders {renders}: use a whole number >= 1")
    path = weights or WEIGHTS
    if not path.is_file():
        raise BenchError(
            f"{path}: no oracle weights; run `bench world train --only oracle --out {path.parent}`"
        )
    oracle, scenes = load_oracle(path), training_scenes(seed=HELD_OUT_SEED, n=renders)
    pictures = [render(s) for s in scenes]  # once, read as drawn and blurred
    scores = accuracy(oracle, scenes, pictures)
    soft = accuracy(oracle, scenes, blurred(pictures))
    if as_json:
        found = {"weights": str(path), "renders": renders, "accuracy": scores}
        out.print_json(json.dumps(found | {"blur_px": BLUR, "blurred": soft}))
        return
    title = f"oracle on {renders} held-out renders, as drawn and blurred by {BLUR:g} px"
    table = Table("label", "accuracy", "blurred", title=title)
    for label, value in scores.items():
        table.add_row(label, f"{value:.3f}", f"{soft[label]:.3f}")
    out.print(table)


def report(
    suite: SuiteOption = "world",
    runs: RunsOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for world-report.md, .json and the contact sheet.")
    ] = Path("world-report"),
    only: Annotated[
        str | None,
        typer.Option(
            "--only", help=f"Comma-separated rows (default all: {', '.join(REPORT_RUNS)})."
        ),
    ] = None,
    contact_prompt: Annotated[
        str, typer.Option("--contact-prompt", help="The prompt id the contact sheet shows.")
    ] = "on_the_beach",
    cases: Annotated[
        int,
        typer.Option("--cases", help="Held-out cases per trait for what the metrics can see."),
    ] = 300,
    oracle_cases: Annotated[
        int,
        typer.Option(
            "--oracle-cases",
            help="Held-out renders the oracle is checked on (half as many reconstructed and "
            "blurred).",
        ),
    ] = 2000,
    base_per_pair: Annotated[
        int,
        typer.Option(
            "--base-per-pair", help="Base-model images of each class and context it is read on."
        ),
    ] = 2,
    fit_seeds: Annotated[
        str | None,
        typer.Option(
            "--fit-seeds",
            help="Comma-separated seeds: each trained method is fitted at every one (its `seed` "
            "option), the first giving its row; the report adds each fit's subject share and "
            "all fits pooled (e.g. 0,1,2; default: the suite's one fit).",
        ),
    ] = None,
    device: DeviceOption = "auto",
) -> None:
    """The world report: run each method on a world suite (finished runs are reused), then
    read every image back with the oracle: the oracle's own accuracy, the base model's prompt
    following, each method's subject and prompt fidelity beside its metrics, and a contact
    sheet. With --fit-seeds, how much of a method's share is its fit's luck."""
    import bench
    from bench.lab import BenchError, load_backbone
    from bench_world.oracle import load_oracle
    from bench_world.report import run_report_rows, share, subject_share, write_report

    labels = [s.strip() for s in only.split(",")] if only else list(REPORT_RUNS)
    unknown = [label for label in labels if label not in REPORT_RUNS]
    if unknown:
        raise BenchError(f"--only {','.join(unknown)}: rows are {', '.join(REPORT_RUNS)}")
    if cases < 1:
        raise BenchError(f"--cases {cases}: use a whole number >= 1")
    if oracle_cases < 2:
        raise BenchError(f"--oracle-cases {oracle_cases}: use a whole number >= 2")
    if base_per_pair < 1:
        raise BenchError(f"--base-per-pair {base_per_pair}: use a whole number >= 1")
    seeds = _seeds(fit_seeds) if fit_seeds is not None else []
    loaded = bench.load_suite(suite)
    if loaded.backbone != "world":
        raise BenchError(
            f"--suite {suite}: its backbone is {loaded.backbone}; the report reads suites on the "
            'toy world\'s backbone (backbone = "world", e.g. --suite world)'
        )
    done, fits = run_report_rows(
        loaded,
        labels,
        seeds,
        runs,
        device,
        suite_ref=suite,
        say=lambda line: out.print(line, highlight=False),
    )
    backbone = load_backbone("world", device=device)
    subjects = [s.id for s in loaded.subjects][:6]
    data = write_report(
        out_dir,
        loaded.name,
        done,
        load_oracle(),
        backbone,
        contact_prompt,
        subjects,
        seen_cases=cases,
        oracle_cases=oracle_cases,
        base_per_pair=base_per_pair,
        fits={label: seeded for label, seeded in fits.items() if len(seeded) > 1},
    )
    for row in data["runs"]:
        found = f"subject {subject_share(row['subject'])}, prompt {share(row['prompt'])}"
        out.print(f"{row['label']}: {found}", highlight=False)
    for row in data["fit_seeds"]:
        each = ", ".join(f"seed {f['seed']} {subject_share(f['subject'])}" for f in row["fits"])
        pooled = subject_share(row["subject"])
        out.print(f"{row['label']}: subject {each}; pooled {pooled}", highlight=False)
    out.print(f"wrote {out_dir / 'world-report.md'}", highlight=False)


def _seeds(text: str) -> list[int]:
    """--fit-seeds "0,1,2" as distinct whole numbers, in order."""
    from bench.lab import BenchError

    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise BenchError(
            f"--fit-seeds {text!r}: use distinct whole numbers >= 0, comma-separated (e.g. 0,1,2)"
        )
    return seeds


app = typer.Typer(
    help="The toy world: rebuild its models from code, check them, report on them.",
    no_args_is_help=True,
)
app.command("train")(train)
app.command("check")(check)
app.command("report")(report)
