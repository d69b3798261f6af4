"""`bench leaderboard`: a markdown page of every scored run in a store, per-subject breakdowns,
and published reference numbers from `baselines/` (marked as published, not re-measured)."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench import __version__
from bench.analysis.results import RunResults, load_results, summarize
from bench.analysis.stats import subject_means
from bench.paths import data_dir
from bench.reports.labels import (
    CI_METHOD_NAMES,
    METRIC_ORDER,
    interval,
    interval_notes,
    metric_name,
    ordered,
)
from bench.store.layout import scored_run_dirs, sweep_reports
from bench.toml_files import read_toml

CONVENTIONS = """\
- **Metrics** are raw cosine similarities in [-1, 1]: not multiplied by 100, not clamped at 0
  (torchmetrics' CLIPScore does both, with ViT-L/14). CLIP-I and DINO: a generated image against
  each photo of its subject, averaged over the photos. CLIP-T: the image against its prompt with
  the identifier removed and the class noun kept ("a sks dog on the beach" is scored as "a dog on
  the beach"). Defaults: CLIP ViT-B/32 (OpenAI weights, open_clip), DINO ViT-S/16 (timm).
- **Score** of a run: the mean over subjects of the mean over that subject's prompts of the mean
  over its images (equal weight per subject, and per prompt within a subject).
- **Intervals**: 95% {ci_method} intervals, {n_resamples:,} resamples, seed 0; the notes
  under each table name the method. Below 5 subjects a run shows its mean without an interval:
  no interval method keeps its coverage there (`bench/analysis/stats.py`).
  Estimand: the expected score of a new subject from the same population, on this fixed prompt
  set. Subjects are resampled with replacement (their images move with them), so images of one
  subject are not treated as independent. With `--prompts random` prompts are resampled too
  (crossed with subjects), and the estimand is the mean over a population of prompts as well.
- **Rows marked random weights** come from the tiny random-weight models of the smoke and micro
  suites: they check the pipeline and mean nothing about any method.
- **Published rows** are copied from their papers, not re-measured, and carry no intervals.
- **`real`** is the Real Images row: each photo scored against the subject's other photos
  (leave-one-out); CLIP-T is not defined for it."""


def scored_runs(runs_root: Path) -> list[RunResults]:
    return [load_results(r) for r in scored_run_dirs(runs_root)]


def _config_summary(results: RunResults) -> str:
    """Options that differ from the method's defaults as the run recorded them (all options for
    a run that recorded none)."""
    defaults = results.record.method_defaults
    changed = {k: v for k, v in results.record.config.items() if defaults.get(k, object()) != v}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"


def _metrics(runs: list[RunResults]) -> list[str]:
    return ordered(m for r in runs for m in r.metrics)


def run_rows(runs: list[RunResults], **stats) -> pd.DataFrame:
    metrics = _metrics(runs)
    rows = []
    notes = []
    for results in runs:
        intervals = summarize(results, **stats)
        notes += [iv for iv in intervals.values() if iv.n_subjects]
        first = next(iter(intervals.values()))
        row = {
            "run": f"`{results.run_id}`" + (" (random weights)" if results.random_weights else ""),
            "method": results.record.method,
            "options": _config_summary(results),
        }
        for m in metrics:
            iv = intervals.get(m)
            row[metric_name(m)] = interval(iv.mean, iv.low, iv.high) if iv else "n.a."
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


def published_sections() -> list[str]:
    parts = []
    for path in sorted(data_dir("baselines").glob("*.toml")):
        table = read_toml(path)
        if "row" not in table:
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


def page(runs_root: Path, out_dir: Path = Path("leaderboard"), **stats) -> str:
    """The leaderboard's markdown for every scored run of a store."""
    runs = scored_runs(runs_root)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Leaderboard",
        "",
        f"Written by `bench leaderboard` (bench {__version__}) on {now}, from the runs in "
        f"`{runs_root}`. Regenerate it; do not edit it by hand.",
        "",
        "## How to read it",
        "",
        CONVENTIONS.format(
            n_resamples=stats.get("n_resamples", 10_000),
            ci_method=CI_METHOD_NAMES[stats.get("method", "auto").replace("auto", "studentized")],
        ),
        "",
        "## Measured runs",
        "",
    ]
    if not runs:
        lines += [f"No scored runs in `{runs_root}` yet: `bench run --method ...` adds some.", ""]
    by_suite: dict[str, list[RunResults]] = {}
    for r in runs:
        by_suite.setdefault(r.record.suite["name"], []).append(r)
    for suite, suite_runs in sorted(by_suite.items()):
        table, notes = run_rows(suite_runs, **stats)
        lines += [f"### Suite `{suite}`", "", table.to_markdown(index=False), ""]
        lines += [f"{note[0].upper()}{note[1:]}." for note in notes] + [""]
        lines += [f"#### Per subject, suite `{suite}` (subject means)", ""]
        for metric in _metrics(suite_runs):
            table = subject_table(suite_runs, metric)
            if not table.empty:
                lines += [
                    f"{metric_name(metric)}:",
                    "",
                    table.to_markdown(floatfmt=".3f"),
                    "",
                ]
    if links := sweep_links(runs_root, out_dir):
        lines += ["## Sweeps", "", *links, ""]
    lines += ["## Published reference numbers", "", *published_sections()]
    return "\n".join(lines).rstrip() + "\n"
