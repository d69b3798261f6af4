"""`bench leaderboard`: a markdown page of every scored run in a store, per-subject breakdowns,
and published reference numbers from `baselines/` (marked as published, not re-measured), grouped
by the convention the numbers were scored under: numbers of two conventions never share a table."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench import __version__
from bench.analysis.options import StatsOptions
from bench.analysis.results import RunResults, load_results, summarize
from bench.analysis.stats import subject_means
from bench.paths import data_dir
from bench.reports import markdown
from bench.reports.document import (
    Bullets,
    Code,
    Document,
    IntervalValue,
    Number,
    Paragraph,
    Section,
    Table,
    mark_best,
)
from bench.reports.labels import (
    CI_METHOD_NAMES,
    METRIC_ORDER,
    Metric,
    changed_options,
    interval_notes,
    metric_label,
    metric_name,
    run_metrics,
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
- **Ranking**: each metric's heading says its direction, as its scorer declares it (↑ higher
  is better, ↓ lower, as for PRES); runs are ranked by the first metric, and the best value of
  each metric column is in bold (ties: each of them). A bold value is not a significant
  difference: `bench compare` tests those.
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
    changed = changed_options(results.record)
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"


def run_rows(runs: list[RunResults], stats: StatsOptions) -> Table:
    """One row per run: each metric's mean and interval, ranked by the first metric in its
    scorer's direction (runs without it last), the best of each metric column marked."""
    metrics = run_metrics(runs)
    table = Table(
        ["run", "method", "options"]
        + [metric_label(m, runs[0].convention) for m in metrics.values()]
        + ["subjects", "fit seeds", "images", "backbone", "scorer models", "date"],
        index=3,
    )
    notes = []
    for results in runs:
        intervals = summarize(results, stats)
        notes += [iv for iv in intervals.values() if iv.n_subjects]
        first = next(iter(intervals.values()))
        row: list = [
            Code(results.run_id, _marks(results)),
            results.record.method,
            _config_summary(results),
        ]
        for m in metrics:
            iv = intervals.get(m)
            row.append(IntervalValue(iv.mean, iv.low, iv.high) if iv else IntervalValue(None))
        row += [
            first.n_subjects,
            ", ".join(map(str, results.record.suite.get("replicates", []))),
            len(results.scores),
            results.record.suite["backbone"],
            "; ".join(sorted({s["model"] for s in results.scorers.values()})),
            results.record.provenance["time"][:10],
        ]
        table.rows.append(row)
    if metrics:
        lead = next(iter(metrics.values()))
        sign = 1.0 if lead.higher_is_better else -1.0
        table.rows.sort(key=lambda row: _rank_key(row[table.index], sign))
    for j, m in enumerate(metrics.values()):
        mark_best(table.rows, table.index + j, m.higher_is_better)
    table.notes = [f"{note[0].upper()}{note[1:]}." for note in interval_notes(notes)]
    return table


def _rank_key(cell: IntervalValue, sign: float) -> tuple[bool, float]:
    return (cell.missing, 0.0 if cell.missing else -sign * cell.mean)


def subject_table(runs: list[RunResults], metric: str) -> pd.DataFrame:
    columns = {}
    for results in runs:
        if metric not in results.metrics or results.scores[metric].isna().all():
            continue
        frame = results.scores
        means = subject_means(frame[metric], frame["subject"], frame["prompt_id"])
        columns[results.run_id] = pd.Series(means).sort_index().round(3)
    return pd.DataFrame(columns).rename_axis("subject")


def subject_block(runs: list[RunResults], m: Metric) -> Table | None:
    """Each subject's mean of one metric, one column per run; None where no run defines it."""
    frame = subject_table(runs, m.id)
    if frame.empty:
        return None
    table = Table(["subject", *frame.columns], title=f"{m.name}:", index=1)
    for subject, values in frame.iterrows():
        table.rows.append([subject, *(Number(v) for v in values)])
    return table


def published_sections(convention: str) -> list[Section]:
    """The published tables of `baselines/` scored under `convention`."""
    sections = []
    for path in sorted(data_dir("baselines").glob("*.toml")):
        published = read_toml(path)
        if "row" not in published or published.get("convention", DEFAULT_CONVENTION) != convention:
            continue
        rows = published["row"]
        present = [m for m in METRIC_ORDER if any(m in r for r in rows)]
        labels = [c for c in ("table", "method") if any(c in r for r in rows)]
        table = Table(labels + [metric_name(m) for m in present], index=len(labels))
        for r in rows:
            table.rows.append(
                [str(r.get(c, "")) for c in labels]
                + [Number(v if isinstance(v := r.get(m), float) else None) for m in present]
            )
        source = f"Source: {published['source']}" + (
            f" ({published['url']})" if "url" in published else ""
        )
        setting = f"Setting: {published.get('suite', 'see source')}. {published.get('notes', '')}"
        sections.append(
            Section(f"{published['name']} (published, not re-measured)").add(
                Paragraph(f"{source}.\n{setting}"), table
            )
        )
    return sections


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
        lines.append(f"[{title}]({folder / 'sweep.md'})" + (f": {plots}" if plots else ""))
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


def convention_sections(
    runs: list[RunResults], stats: StatsOptions, only: str | None = None
) -> list[Section]:
    """One section per convention: each suite's ranked runs, their per-subject means, then the
    published tables of that convention."""
    sections = []
    for name in _conventions(runs, only):
        section = Section(f"Convention `{name}`", anchor=f"convention-{name}")
        section.add(Paragraph(f"{get_convention(name).describe()}."))
        by_suite: dict[str, list[RunResults]] = {}
        for r in runs:
            if r.convention == name:
                by_suite.setdefault(r.record.suite["name"], []).append(r)
        for suite, suite_runs in sorted(by_suite.items()):
            table = run_rows(suite_runs, stats)
            per_subject = Section(f"Per subject, suite `{suite}` (subject means)")
            for m in run_metrics(suite_runs).values():
                if (block := subject_block(suite_runs, m)) is not None:
                    per_subject.add(block)
            section.add(
                Section(f"Suite `{suite}`", anchor=f"{name}-{suite}").add(table, per_subject)
            )
        section.add(*published_sections(name))
        sections.append(section)
    return sections


def how_to_read(stats: StatsOptions) -> Section:
    return Section("How to read it").add(
        Paragraph(
            HOW_TO_READ.format(
                confidence=f"{stats.confidence * 100:g}%",
                n_resamples=stats.n_resamples,
                seed=stats.seed,
                ci_method=CI_METHOD_NAMES[stats.ci_method.replace("auto", "studentized")],
                prompts="" if stats.prompt_mode == "fixed" else ", prompts resampled too",
            )
        )
    )


def document(
    runs_root: Path,
    out_dir: Path = Path("leaderboard"),
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
) -> Document:
    """The leaderboard of every scored run of a store (or only its scores under `convention`),
    one section per convention."""
    if convention is not None:
        get_convention(convention)  # an unknown name is an error, not an empty page
    runs = scored_runs(runs_root, convention)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = Document("Leaderboard").add(
        Paragraph(
            f"Written by `bench leaderboard` (bench {__version__}) on {now}, from the runs in "
            f"`{runs_root}`. Regenerate it; do not edit it by hand."
        ),
        how_to_read(stats),
    )
    if not runs:
        doc.add(
            Paragraph(f"No scored runs in `{runs_root}` yet: `bench run --method ...` adds some.")
        )
    doc.add(*convention_sections(runs, stats, convention))
    if links := sweep_links(runs_root, out_dir):
        doc.add(Section("Sweeps").add(Bullets(links)))
    return doc


def page(
    runs_root: Path,
    out_dir: Path = Path("leaderboard"),
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
) -> str:
    """The leaderboard's markdown (`document`, drawn by `reports.markdown`)."""
    return markdown.render(document(runs_root, out_dir, convention, stats))
