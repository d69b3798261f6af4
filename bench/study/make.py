"""`bench study make`: the pairs a study asks about, its attention checks, and its static page.

The DreamBooth paper's protocol: a rater sees the subject's photos and two generated images of
the same prompt, and answers which image shows the subject more faithfully, and which matches
the text better, or that they cannot tell. Here the two images render the same cell (subject,
prompt, image index, fit seed), so they differ in the method alone.

- The pool: every cell both runs of a pair rendered, for every pair of runs, shuffled with the
  study's seed and drawn round robin over subjects, `pairs` of them.
- Each rater answers `per_rater` consecutive pairs of the pool, starting where their rater id
  hashes to, so raters overlap (for agreement) and the pool is covered. The page puts each
  pair's images on sides it draws at random, and records which.
- Attention checks, mixed in: a pair whose one image is the subject's own photo ("photo"), or a
  picture of a subject of another class ("wrong_class"). Raters who miss them are dropped.
- The page is one HTML file with its images beside it; answers are saved to a JSON file the
  rater downloads. Nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import __version__, atomic
from bench.analysis.results import RunResults, run_subjects
from bench.data.prompts import PRIOR_PROMPT_ID
from bench.errors import BenchError
from bench.reports import html
from bench.reports.labels import run_label
from bench.reports.thumbnails import Thumbnails
from bench.study.records import QUESTIONS, Check, Pair, Study

IMAGE_SIZE = 512  # px, the longer side of the page's copies
DEFAULT_PAIRS = 300


def study_dir(runs_root: Path, study_id: str) -> Path:
    return runs_root / "studies" / study_id


def make_study(
    runs: list[RunResults],
    out: Path,
    runs_root: Path,
    *,
    per_rater: int = 25,
    checks_per_rater: int | None = None,
    pairs: int = DEFAULT_PAIRS,
    seed: int = 0,
) -> Study:
    """Write the study page into `out` and the study into the store; returns the study."""
    if len(runs) < 2:
        raise BenchError("bench study make: give two runs or more to compare")
    if len({r.run_id for r in runs}) != len(runs):
        raise BenchError("bench study make: a run is given twice")
    for r in runs:
        if r.record.is_reference:
            raise BenchError(
                f"{r.run_id}: the Real Images row has no generated images to judge; leave it out"
            )
    suites = {r.record.suite["name"] for r in runs}
    if len(suites) > 1:
        raise BenchError(
            f"bench study make: the runs are of different suites ({', '.join(sorted(suites))}); "
            "a pair must show the same cell"
        )
    if per_rater < 1 or pairs < 1:
        raise BenchError("bench study make: --per-rater and --pairs must be >= 1")
    checks_per_rater = max(2, per_rater // 10) if checks_per_rater is None else checks_per_rater

    images = {r.run_id: _cell_images(r) for r in runs}
    shared = set.intersection(*(set(cells) for cells in images.values()))
    if not shared:
        raise BenchError(
            "bench study make: the runs share no cell (same subject, prompt, image and seed); "
            "give runs of one suite"
        )
    subjects = {
        s: {"class": record["class"], "photos": record["images"]}
        for s, record in run_subjects(runs).items()
    }
    rng = np.random.default_rng(seed)
    candidates = [
        (cell, a.run_id, b.run_id)
        for cell in sorted(shared)
        for a, b in itertools.combinations(runs, 2)
    ]
    chosen = _round_robin(candidates, rng, pairs)
    copies = Thumbnails(out, size=IMAGE_SIZE, folder="img")
    pair_items = []
    for n, (cell, a, b) in enumerate(chosen, 1):
        subject, prompt_id, image_index, replicate = cell
        pair_items.append(
            Pair(
                id=f"p{n:04d}",
                subject=subject,
                prompt_id=prompt_id,
                prompt=images[a][cell][1],
                image_index=image_index,
                replicate=replicate,
                a=a,
                b=b,
                image_a=copies.of(images[a][cell][0]),
                image_b=copies.of(images[b][cell][0]),
            )
        )
    checks = _checks(pair_items, subjects, copies, rng)
    page_subjects = {
        s: {"class": info["class"], "photos": [copies.of(Path(p)) for p in info["photos"]]}
        for s, info in subjects.items()
        if any(p.subject == s for p in pair_items)
    }
    key = json.dumps([sorted(images), seed, per_rater, checks_per_rater, pairs])
    study = Study(
        study_id="study-" + hashlib.sha256(key.encode()).hexdigest()[:8],
        runs=[
            {"run_id": r.run_id, "method": r.record.method, "label": run_label(r.record)}
            for r in runs
        ],
        subjects=page_subjects,
        pairs=pair_items,
        checks=checks,
        per_rater=min(per_rater, len(pair_items)),
        checks_per_rater=min(checks_per_rater, len(checks)),
        seed=seed,
        questions=dict(QUESTIONS),
        provenance={
            "bench": __version__,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runs_root": str(runs_root),
        },
    )
    folder = study_dir(runs_root, study.study_id)
    (folder / "answers").mkdir(parents=True, exist_ok=True)
    study.write(folder / "study.json")
    atomic.write_text(out / "index.html", page(study))
    return study


def page(study: Study) -> str:
    """The study page: the study's items inline, the rater's pairs drawn by the page."""
    from dataclasses import asdict

    data = json.dumps(asdict(study), ensure_ascii=False).replace("</", "<\\/")
    return html.render_template("study.html.j2", study=study, data=data)


def _cell_images(results: RunResults) -> dict[tuple, tuple[Path, str]]:
    """(subject, prompt id, image index, replicate) -> (image file, prompt as scored), without
    the prior images (they have no subject to judge)."""
    frame = results.scores[results.scores["prompt_id"] != PRIOR_PROMPT_ID]
    return {
        (r.subject, r.prompt_id, int(r.image_index), int(r.replicate)): (
            results.root / r.image,
            r.scoring_prompt or r.prompt or r.prompt_id,
        )
        for r in frame.itertuples()
    }


def _round_robin(candidates: list, rng: np.random.Generator, n: int) -> list:
    """`n` candidates, shuffled, taken in turn from each subject so that every subject is
    asked about (the intervals resample subjects)."""
    order = rng.permutation(len(candidates))
    by_subject: dict[str, list] = {}
    for i in order:
        by_subject.setdefault(candidates[i][0][0], []).append(candidates[i])
    queues = [by_subject[s] for s in sorted(by_subject)]
    chosen = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop())
    return chosen


def _checks(
    pairs: list[Pair],
    subjects: dict[str, dict],
    copies: Thumbnails,
    rng: np.random.Generator,
) -> list[Check]:
    """Per subject of the pool: its own photo against a generated image of it, and, where the
    study has a subject of another class, a picture of that subject against an image of it."""
    checks = []
    for subject in sorted({p.subject for p in pairs}):
        mine = [p for p in pairs if p.subject == subject]
        pair = mine[int(rng.integers(len(mine)))]
        photos = subjects[subject]["photos"]
        photo = photos[int(rng.integers(len(photos)))]
        checks.append(
            Check(
                id=f"c{len(checks) + 1:03d}",
                kind="photo",
                subject=subject,
                prompt=pair.prompt,
                image_a=copies.of(Path(photo)),
                image_b=pair.image_a,
                expected="a",
            )
        )
        others = [p for p in pairs if subjects[p.subject]["class"] != subjects[subject]["class"]]
        if others:
            other = others[int(rng.integers(len(others)))]
            checks.append(
                Check(
                    id=f"c{len(checks) + 1:03d}",
                    kind="wrong_class",
                    subject=subject,
                    prompt=pair.prompt,
                    image_a=other.image_b,
                    image_b=pair.image_b,
                    expected="b",
                )
            )
    return checks
