"""`bench leaderboard`: a markdown page of every scored run in a store, per-subject breakdowns,
and published reference numbers from `baselines/` (marked as published, not re-measured), grouped
by the convention the numbers were scored under: numbers of two conventions never share a table."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench import __version__
from bench.analysis.options import StatsOptions
from bench.analysis.results import RunResults, load_results, summarize
from bench.analysis.stats import subject_means
from bench.paths import data_dir
from bench.reports.labels import (
    CI_METHOD_NAMES,
    METRIC_ORDER,
    interval,
    interval_notes,
    metric_label,
    metric_name,
    ordered,
)
from bench.scorers.conventions import DEFAULT_CONVENTION, get_convention
from bench.store.layout import RunPaths, scored_run_dirs, sweep_reports
from bench.toml_files import read_toml

HOW_TO_READ = """\
- **Conventions**: each section holds the numbers of one scoring convention, named in its
  heading; published papers score differently, and numbers of two conventions are not
  comparable. Under `dreambooth` (the DreamBooth paper's, the default) metrics are raw cosine
  similarities in [-1, 1]: not multiplied by 100, not clamped at 0 (torchmetrics' CLIPScore does
  both, with ViT-L/14), with CLIP ViT-B/32 (OpenAI weights, open_clip) and DINO ViT-S/16 (timm);
  `dreambench-plus` multiplies by 100 and uses DINO ViT-S/8 and DINOv2-small; `cc101` reports
  CLIP-T as 2.5 x max(cosine, 0). CLIP-I and DINO: a generated image against each photo of its
  subject, averaged over the photos. CLIP-T: the image against its prompt with the identifier
  removed and the class noun kept ("a sks dog on the beach" is scored as "a dog on the beach").
- **Score** of a run: the mean over subjects of the mean over that subject's prompts of the mean
  over its images (equal weight per subject, and per prompt within a subject).
- **Intervals**: {confidence} {ci_method} intervals, {n_resamples:,} resamples, seed
  {seed}{prompts}; the notes under each table name the method. Below 5 subjects a run shows its
  mean without an interval: no interval method keeps its coverage there
  (`bench/analysis/stats.py`).
  Estimand: the expected score of a new subject from the same population, on this fixed prompt
  set. Subjects are resampled with replacement (their images move with them), so images of one
  subject are not treated as independent. With `--prompts random` prompts are resampled too
  (crossed with subjects), and the estimand is the mean over a population of prompts as well.
- **Rows marked random weights** come from the tiny random-weight models of the smoke and micro
  suites: they check the pipeline and mean nothing about any method.
- **Rows marked toy world** come from bench's drawn world (the smoke and world suites): images
  made by a text-to-image model, CLIP and DINO that bench trained on it, so that a method that
  learns shows it on a CPU; they say how methods and metrics behave there, not on photos.
- **Published rows** are copied from their papers, not re-measured, and carry no intervals.
- **`real`** is the Real Images row: each photo scored against the subject's other photos
  (leave-one-out); CLIP-T is not defined for it."""


def scored_runs(runs_root: Path, convention: str | None = None) -> list[RunResults]:
    """Every scored run of a store, once per convention it was scored under (or only under
    `convention`)."""
    return [
        load_results(run_dir, convention=c)
        for run_dir in scored_run_dirs(runs_root)
        for c in RunPaths(run_dir).conventions()
        if convention in (None, c)
    ]


def _marks(results: RunResults) -> str:
    return "" if results.realness == "real" else f" ({results.realness})"


def _config_summary(results: RunResults) -> str:
    """Options that differ from the method's defaults as the run recorded them (all options for
    a run that recorded none)."""
    defaults = results.record.method_defaults
    changed = {k: v for k, v in results.record.config.items() if defaults.get(k, object()) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"


def _metrics(runs: list[RunResults]) -> list[str]:
    return ordered(m for r in runs for m in r.metrics)


def run_rows(runs: list[RunResults], stats: StatsOptions) -> pd.DataFrame:
    metrics = _metrics(runs)
    rows = []
    notes = []
    for results in runs:
        intervals = summarize(results, stats)
        notes += [iv for iv in intervals.values() if iv.n_subjects]
        first = next(iter(intervals.values()))
        row = {
            "run": f"`{results.run_id}`" + _marks(results),
            "method": results.record.method,
            "options": _config_summary(results),
        }
        for m in metrics:
            iv = intervals.get(m)
            label = metric_label(m, results.convention)
            row[label] = interval(iv.mean, iv.low, iv.high) if iv else "n.a."
        row.update(
            {
                "subjects": first.n_subjects,
                "images": len(results.scores),
                "backbone": results.record.suite["backbone"],
                "scorer models": "; ".join(sorted({s["model"] for s in results.scorers.values()})),
                "date": results.record.provenance["time"][:10],
            }
        )
        rows.append(row)
    return pd.DataFrame(rows), interval_notes(notes)


def subject_table(runs: list[RunResults], metric: str) -> pd.DataFrame:
    columns = {}
    for results in runs:
        if metric not in results.metrics or results.scores[metric].isna().all():
            continue
        frame = results.scores
        means = subject_means(frame[metric], frame["subject"], frame["prompt_id"])
        columns[results.run_id] = pd.Series(means).sort_index().round(3)
    return pd.DataFrame(columns).rename_axis("subject")


def published_sections(convention: str) -> list[str]:
    """The published tables of `baselines/` scored under `convention`."""
    parts = []
    for path in sorted(data_dir("baselines").glob("*.toml")):
        table = read_toml(path)
        if "row" not in table or table.get("convention", DEFAULT_CONVENTION) != convention:
            continue
        frame = pd.DataFrame(table["row"])
        names = {m: metric_name(m) for m in METRIC_ORDER}
        ordered = [c for c in ["table", "method", *METRIC_ORDER] if c in frame.columns]
        for m in METRIC_ORDER:
            if m in frame.columns:
                frame[m] = [
                    f"{v:.3f}" if isinstance(v, float) and not math.isnan(v) else "n.a."
                    for v in frame[m]
                ]
        frame = frame[ordered].rename(columns=names)
        parts += [
            f"### {table['name']} (published, not re-measured)",
            "",
            f"Source: {table['source']}" + (f" ({table['url']})" if "url" in table else "") + ".",
            f"Setting: {table.get('suite', 'see source')}. {table.get('notes', '')}",
            "",
            frame.to_markdown(index=False),
            "",
        ]
    return parts


def sweep_links(runs_root: Path, out_dir: Path) -> list[str]:
    """Links to each sweep's tables and plots, relative to where the leaderboard is written."""
    lines = []
    for table in sweep_reports(runs_root):
        folder = Path(os.path.relpath(table.parent, out_dir))
        title = table.read_text().partition("\n")[0].lstrip("# ")
        plots = " · ".join(
            f"[{p.stem}]({folder / p.name})"
            for p in sorted(table.parent.glob("*.png"))
            if not p.name.startswith("contact_")
        )
        lines.append(f"- [{title}]({folder / 'sweep.md'})" + (f": {plots}" if plots else ""))
    return lines


def _conventions(runs: list[RunResults], only: str | None) -> list[str]:
    """The conventions with measured or published numbers, the default first."""
    published = {
        read_toml(p).get("convention", DEFAULT_CONVENTION)
        for p in data_dir("baselines").glob("*.toml")
    }
    found = {r.convention for r in runs} | published
    if only is not None:
        found &= {only}
    return sorted(found, key=lambda c: (c != DEFAULT_CONVENTION, c))


def page(
    runs_root: Path,
    out_dir: Path = Path("leaderboard"),
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
) -> str:
    """The leaderboard's markdown for every scored run of a store (or only its scores under
    `convention`), one section per convention."""
    if convention is not None:
        get_convention(convention)  # an unknown name is an error, not an empty page
    runs = scored_runs(runs_root, convention)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Leaderboard",
        "",
        f"Written by `bench leaderboard` (bench {__version__}) on {now}, from the runs in "
        f"`{runs_root}`. Regenerate it; do not edit it by hand.",
        "",
        "## How to read it",
        "",
        HOW_TO_READ.format(
            confidence=f"{stats.confidence * 100:g}%",
            n_resamples=stats.n_resamples,
            seed=stats.seed,
            ci_method=CI_METHOD_NAMES[stats.ci_method.replace("auto", "studentized")],
            prompts="" if stats.prompt_mode == "fixed" else ", prompts resampled too",
        ),
        "",
    ]
    if not runs:
        lines += [f"No scored runs in `{runs_root}` yet: `bench run --method ...` adds some.", ""]
    for name in _conventions(runs, convention):
        lines += [f"## Convention `{name}`", "", f"{get_convention(name).describe()}.", ""]
        by_suite: dict[str, list[RunResults]] = {}
        for r in runs:
            if r.convention == name:
                by_suite.setdefault(r.record.suite["name"], []).append(r)
        for suite, suite_runs in sorted(by_suite.items()):
            table, notes = run_rows(suite_runs, stats)
            lines += [f"### Suite `{suite}`", "", table.to_markdown(index=False), ""]
            lines += [f"{note[0].upper()}{note[1:]}." for note in notes] + [""]
            lines += [f"#### Per subject, suite `{suite}` (subject means)", ""]
            for metric in _metrics(suite_runs):
                subjects = subject_table(suite_runs, metric)
                if not subjects.empty:
                    lines += [
                        f"{metric_name(metric)}:",
                        "",
                        subjects.to_markdown(floatfmt=".3f"),
                        "",
                    ]
        lines += published_sections(name)
    if links := sweep_links(runs_root, out_dir):
        lines += ["## Sweeps", "", *links, ""]
    return "\n".join(lines).rstrip() + "\n"
