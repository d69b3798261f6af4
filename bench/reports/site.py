"""`bench report`: a static site of runs, to browse their images beside their numbers.

The site is a folder of HTML pages with relative links and nothing fetched from elsewhere, so it
opens from a file or any static host:

- `index.html`: the runs' leaderboard per convention (intervals, per-subject tables), links to
  every subject, the plots of the sweeps the runs belong to, and a world report if given;
- `subjects/<subject>.html`: the subject's photos, its scores per run, then for each prompt a
  grid with one row per run and one column per cell (image index and fit seed). A cell's seed
  does not depend on the method, so a column holds the methods' images of the same noise.
  Clicking an image shows its scores, prompt, seed and provenance.

Thumbnails (`thumbs/`, JPEG, at most 256 px; `reports.thumbnails`) are made once: a report
written again into the same folder reuses every thumbnail whose source is unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench import __version__, atomic
from bench.analysis.options import StatsOptions
from bench.analysis.results import RunResults, load_results, run_subjects
from bench.analysis.stats import subject_means
from bench.data.prompts import PRIOR_PROMPT_ID
from bench.errors import BenchError
from bench.reports import html
from bench.reports.document import (
    Bullets,
    Code,
    Document,
    Figure,
    Image,
    ImageGrid,
    Number,
    Paragraph,
    Section,
    Table,
    mark_best,
)
from bench.reports.labels import metric_label, run_label, run_metrics
from bench.reports.leaderboard import convention_sections, how_to_read
from bench.reports.thumbnails import Thumbnails
from bench.store.layout import RunPaths, sweep_reports


@dataclass
class SiteReport:
    out: Path
    pages: list[Path] = field(default_factory=list)
    images: int = 0  # generated images shown
    thumbnails_made: int = 0
    thumbnails_reused: int = 0
    seconds: float = 0.0


def write_site(
    runs: list[RunResults],
    out: Path,
    *,
    runs_root: Path | None = None,
    stats: StatsOptions = StatsOptions(),
    world_report: Path | None = None,
    replicates: list[int] | None = None,
    images_per_prompt: int | None = None,
) -> SiteReport:
    """Write the site of `runs` (each loaded under the convention its grids show) into `out`;
    the image grids show the fit seeds in `replicates` and the first `images_per_prompt`
    images of each prompt (default: all)."""
    if not runs:
        raise BenchError("bench report: no scored runs to report; `bench run --method ...` first")
    if world_report is not None and not (world_report / "world-report.md").is_file():
        raise BenchError(
            f"--world-report {world_report}: no world-report.md in it; give the folder "
            "`bench world report --out` wrote"
        )
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    report = SiteReport(out)
    thumbs = Thumbnails(out, size=256)
    subjects = {s: record["images"] for s, record in run_subjects(runs).items()}
    nav = [("Leaderboard", "index.html")] + [(s, f"subjects/{s}.html") for s in subjects]

    for subject, photos in subjects.items():
        doc, shown = subject_document(
            subject, photos, runs, thumbs, "../", replicates, images_per_prompt
        )
        path = out / "subjects" / f"{subject}.html"
        path.parent.mkdir(exist_ok=True)
        sub_nav = [(label, _up(href)) for label, href in nav]
        atomic.write_text(path, html.render(doc, nav=sub_nav))
        report.pages.append(path)
        report.images += shown

    doc = index_document(runs, subjects, out, runs_root, stats, world_report)
    atomic.write_text(out / "index.html", html.render(doc, nav=nav))
    report.pages.insert(0, out / "index.html")
    report.thumbnails_made, report.thumbnails_reused = thumbs.made, thumbs.reused
    report.seconds = time.perf_counter() - started
    return report


def _up(href: str) -> str:
    return href.removeprefix("subjects/") if href.startswith("subjects/") else f"../{href}"


def subject_document(
    subject: str,
    photos: list[str],
    runs: list[RunResults],
    thumbs: Thumbnails,
    prefix: str = "",
    replicates: list[int] | None = None,
    images_per_prompt: int | None = None,
) -> tuple[Document, int]:
    """A subject's page: photos, scores per run, then one aligned grid per prompt (of the fit
    seeds in `replicates` and the first `images_per_prompt` images; default all)."""
    doc = Document(f"Subject `{subject}`")
    photo_cells = [
        Image(prefix + thumbs.of(Path(p)), caption=Path(p).name, details={"photo": Path(p).name})
        for p in photos
    ]
    doc.add(
        Section("Photos", anchor="photos").add(
            ImageGrid([f"photo {i + 1}" for i in range(len(photos))], [("photos", photo_cells)])
        )
    )
    generated = [r for r in runs if not r.record.is_reference]
    doc.add(_subject_scores(subject, runs))
    frames = {}
    for r in generated:
        mine = r.scores["subject"] == subject
        if replicates is not None:
            mine &= r.scores["replicate"].isin(replicates)
        if images_per_prompt is not None:
            mine &= r.scores["image_index"] < images_per_prompt
        if mine.any():
            frames[r.run_id] = r.scores[mine]
    shown = 0
    metrics = {r.run_id: run_metrics([r]) for r in generated}
    # run id -> prompt id -> (replicate, image index) -> its score row, in one pass per run
    by_prompt: dict[str, dict[str, dict[tuple[int, int], object]]] = {}
    for run_id, frame in frames.items():
        for row in frame.itertuples():
            cells_of = by_prompt.setdefault(run_id, {}).setdefault(row.prompt_id, {})
            cells_of[int(row.replicate), int(row.image_index)] = row
    for prompt_id, prompt in _prompts(frames.values()):
        cells = sorted({c for prompts in by_prompt.values() for c in prompts.get(prompt_id, {})})
        rows = []
        for results in generated:
            if results.run_id not in by_prompt:
                continue
            by_cell = by_prompt[results.run_id].get(prompt_id, {})
            images: list[Image | None] = []
            for cell in cells:
                row = by_cell.get(cell)
                if row is None:
                    images.append(None)
                    continue
                images.append(_image(results, row, thumbs, prefix, metrics[results.run_id]))
                shown += 1
            rows.append((f"{run_label(results.record)} · `{results.run_id}`", images))
        columns = [f"fit seed {r}, image {i}" for r, i in cells]
        title = "the class prompt (prior images)" if prompt_id == PRIOR_PROMPT_ID else prompt
        doc.add(Section(f"{title}", anchor=f"prompt-{prompt_id}").add(ImageGrid(columns, rows)))
    return doc, shown


def _prompts(frames) -> list[tuple[str, str]]:
    """(prompt id, prompt) in the order the runs hold them, the prior prompt last."""
    seen: dict[str, str] = {}
    for frame in frames:
        # The prompt as scored (identifier removed) reads the same for every method.
        for prompt_id, prompt in zip(frame["prompt_id"], frame["scoring_prompt"], strict=True):
            seen.setdefault(prompt_id, prompt or prompt_id)
    return sorted(seen.items(), key=lambda kv: kv[0] == PRIOR_PROMPT_ID)


def _image(results: RunResults, row, thumbs: Thumbnails, prefix: str, metrics: dict) -> Image:
    source = results.root / row.image
    scores = {
        metrics[m].name: "n.a." if pd.isna(getattr(row, m)) else f"{getattr(row, m):.4f}"
        for m in metrics
    }
    details = {
        "run": results.run_id,
        "method": run_label(results.record),
        "prompt": row.prompt or "",
        "scored as": row.scoring_prompt or "",
        "seed": str(row.seed),
        "fit seed (replicate)": str(row.replicate),
        "image": str(row.image_index),
        **scores,
        "convention": results.convention,
        "backbone": str(results.record.suite.get("backbone")),
        "backbone revision": str(results.record.suite.get("backbone_revision") or ""),
        "bench": str(results.record.provenance.get("versions", {}).get("bench") or ""),
        "bench commit": str(results.record.provenance.get("git_commit") or ""),
        "made": str(results.record.provenance.get("time", ""))[:19],
        "file": row.image,
    }
    caption = f"{results.record.method}: " + ", ".join(f"{k} {v}" for k, v in scores.items())
    return Image(
        prefix + thumbs.of(source),
        caption=caption,
        cell=f"{row.subject}/{row.prompt_id}/{row.image_index}/{row.replicate}",
        details=details,
    )


def _subject_scores(subject: str, runs: list[RunResults]) -> Section:
    """Each run's score of this subject (mean over prompts of the mean over images)."""
    metrics = run_metrics(runs)
    table = Table(
        ["run", "method"] + [metric_label(m, runs[0].convention) for m in metrics.values()],
        index=2,
    )
    for results in runs:
        frame = results.scores[results.scores["subject"] == subject]
        if frame.empty:
            continue
        row: list = [Code(results.run_id), run_label(results.record)]
        for m in metrics:
            if m not in frame:
                row.append(Number(None))
                continue
            means = subject_means(frame[m], frame["subject"], frame["prompt_id"])
            row.append(Number(means.get(subject)))
        table.rows.append(row)
    for j, m in enumerate(metrics.values()):
        mark_best(table.rows, table.index + j, m.higher_is_better)
    return Section("Scores", anchor="scores").add(table)


def index_document(
    runs: list[RunResults],
    subjects: dict[str, list[str]],
    out: Path,
    runs_root: Path | None,
    stats: StatsOptions,
    world_report: Path | None,
) -> Document:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = Document("bench report").add(
        Paragraph(
            f"Written by `bench report` (bench {__version__}) on {now}: "
            + ", ".join(f"`{r.run_id}`" for r in runs)
            + f". Image grids show convention `{runs[0].convention}`; "
            "click an image for its scores, prompt, seed and provenance."
        )
    )
    everything = [
        load_results(r.root, convention=c) if c != r.convention else r
        for r in runs
        for c in RunPaths(r.root).conventions()
    ]
    doc.add(*convention_sections(everything, stats))
    doc.add(
        Section("Subjects", anchor="subjects").add(
            Bullets([f"[{s}](subjects/{s}.html)" for s in subjects])
        )
    )
    if runs_root is not None and (sweeps := _sweep_sections(runs, runs_root, out)):
        doc.add(Section("Sweeps", anchor="sweeps").add(*sweeps))
    if world_report is not None:
        doc.add(_world_section(world_report, out))
    return doc.add(how_to_read(stats))


def _sweep_sections(runs: list[RunResults], runs_root: Path, out: Path) -> list[Section]:
    """The plots of every sweep of the store that holds one of the runs, copied into the site."""
    ids = {r.run_id for r in runs}
    sections = []
    for table in sweep_reports(runs_root):
        data_path = table.parent / "sweep.json"
        if not data_path.is_file():
            continue
        data = json.loads(data_path.read_text())
        if not ids & {r["run_id"] for r in data.get("runs", [])}:
            continue
        folder = out / "sweeps" / table.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        section = Section(data.get("title", table.parent.name))
        for plot in sorted(table.parent.glob("*.png")):
            if plot.name.startswith("contact_"):
                continue
            shutil.copyfile(plot, folder / plot.name)
            section.add(Figure(f"sweeps/{table.parent.name}/{plot.name}", plot.stem))
        sections.append(section)
    return sections


def _world_section(folder: Path, out: Path) -> Section:
    """A world report (`bench world report`'s folder): its text, and its contact sheet."""
    text_path = folder / "world-report.md"
    if not text_path.is_file():
        raise BenchError(
            f"--world-report {folder}: no world-report.md in it (`bench world report`)"
        )
    text = text_path.read_text()
    # Its own title becomes the section's; its headings move one level down.
    title, _, body = text.partition("\n")
    body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
    section = Section(title.lstrip("# ").strip() or "The toy world report", anchor="world")
    section.add(Paragraph(body))
    sheet = folder / "contact-sheet.png"
    if sheet.is_file():
        (out / "world").mkdir(exist_ok=True)
        shutil.copyfile(sheet, out / "world" / sheet.name)
        section.add(Figure(f"world/{sheet.name}", "contact sheet"))
    return section
