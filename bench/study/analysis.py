"""`bench study import`: store raters' answers, then what they say.

- Raters who miss attention checks are dropped, and the report names them: a rater is kept
  when at least `PASS_SHARE` of the checks they answered picked the right side.
- Win rates: for each question and pair of runs, the share of answers that preferred run A,
  "cannot tell" counted as half. Like a score, it is the mean over subjects of the mean over
  prompts of the answers, and its interval resamples subjects (`bench.analysis.stats`).
- Agreement: on pairs two raters or more answered, the share of pairs of raters who gave the
  same answer (the run they preferred, or "cannot tell").
- With more than two runs, a Bradley-Terry ranking per question (choix's ILSR, with a small
  regularisation; a "cannot tell" counts as one win each way).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis.options import StatsOptions
from bench.analysis.stats import bootstrap_interval
from bench.errors import BenchError
from bench.reports.document import Bullets, Code, Document, IntervalValue, Number, Paragraph, Table
from bench.reports.labels import interval_notes
from bench.study.records import QUESTIONS, RaterAnswers, Study

PASS_SHARE = 0.8  # of attention checks answered right, to keep a rater
BT_REGULARISATION = 0.01


@dataclass(frozen=True)
class RaterStatus:
    rater: str
    answers: int
    checks: int
    checks_right: int
    kept: bool


def attention(study: Study, raters: list[RaterAnswers]) -> list[RaterStatus]:
    checks = {c.id: c for c in study.checks}
    statuses = []
    for r in raters:
        answered = [a for a in r.answers if a.item in checks]
        right = sum(a.chose("subject") == checks[a.item].expected for a in answered)
        kept = not answered or right >= PASS_SHARE * len(answered)
        statuses.append(RaterStatus(r.rater, len(r.answers), len(answered), right, kept))
    return statuses


def _preferences(study: Study, raters: list[RaterAnswers], question: str):
    """(pair, rater, side chosen: "a", "b" or None) for every answer to a pair."""
    pairs = {p.id: p for p in study.pairs}
    for r in raters:
        for a in r.answers:
            if a.item in pairs:
                yield pairs[a.item], r.rater, a.chose(question)


def win_rates(
    study: Study, raters: list[RaterAnswers], stats: StatsOptions
) -> list[dict[str, Any]]:
    rows = []
    for question in QUESTIONS:
        by_runs: dict[tuple[str, str], list] = {}
        for pair, _, side in _preferences(study, raters, question):
            by_runs.setdefault((pair.a, pair.b), []).append((pair, side))
        for (a, b), answers in sorted(by_runs.items()):
            values = np.array([{"a": 1.0, "b": 0.0, None: 0.5}[side] for _, side in answers])
            interval = bootstrap_interval(
                values,
                [p.subject for p, _ in answers],
                [p.prompt_id for p, _ in answers],
                **stats.bootstrap_kwargs(),
            )
            rows.append(
                {
                    "question": question,
                    "run_a": a,
                    "run_b": b,
                    "win_rate_a": interval,
                    "ties": float(np.mean([side is None for _, side in answers])),
                    "answers": len(answers),
                }
            )
    return rows


def agreement(study: Study, raters: list[RaterAnswers]) -> dict[str, dict[str, float]]:
    out = {}
    for question in QUESTIONS:
        by_pair: dict[str, list] = {}
        for pair, _, side in _preferences(study, raters, question):
            by_pair.setdefault(pair.id, []).append(side)
        shared = [sides for sides in by_pair.values() if len(sides) > 1]
        same = [x == y for sides in shared for x, y in itertools.combinations(sides, 2)]
        out[question] = {
            "pairs": len(shared),
            "rater_pairs": len(same),
            "agreement": float(np.mean(same)) if same else float("nan"),
        }
    return out


def bradley_terry(study: Study, raters: list[RaterAnswers]) -> dict[str, list[tuple[str, float]]]:
    """Per question, (run id, log-strength) from the strongest; empty with two runs."""
    import choix

    ids = [r["run_id"] for r in study.runs]
    if len(ids) < 3:
        return {}
    index = {run_id: i for i, run_id in enumerate(ids)}
    out = {}
    for question in QUESTIONS:
        data = []
        for pair, _, side in _preferences(study, raters, question):
            a, b = index[pair.a], index[pair.b]
            if side == "a":
                data.append((a, b))
            elif side == "b":
                data.append((b, a))
            else:
                data += [(a, b), (b, a)]
        if not data:
            continue
        strengths = choix.ilsr_pairwise(len(ids), data, alpha=BT_REGULARISATION)
        out[question] = sorted(
            ((ids[i], float(s)) for i, s in enumerate(strengths)), key=lambda t: -t[1]
        )
    return out


@dataclass
class StudyResults:
    study: Study
    raters: list[RaterStatus]
    win_rates: list[dict[str, Any]]
    agreement: dict[str, dict[str, float]]
    ranking: dict[str, list[tuple[str, float]]]

    def to_json(self) -> dict[str, Any]:
        def finite(x):
            return None if isinstance(x, float) and x != x else x

        return {
            "study_id": self.study.study_id,
            "raters": [asdict(r) for r in self.raters],
            "win_rates": [
                {
                    **{k: v for k, v in row.items() if k != "win_rate_a"},
                    "win_rate_a": {k: finite(v) for k, v in vars(row["win_rate_a"]).items()},
                }
                for row in self.win_rates
            ],
            "agreement": {
                q: {k: finite(v) for k, v in a.items()} for q, a in self.agreement.items()
            },
            "bradley_terry": self.ranking,
        }


def analyse(study: Study, raters: list[RaterAnswers], stats: StatsOptions) -> StudyResults:
    if not raters:
        raise BenchError(f"study {study.study_id} has no answers yet; `bench study import FILE`")
    statuses = attention(study, raters)
    kept_ids = {s.rater for s in statuses if s.kept}
    kept = [r for r in raters if r.rater in kept_ids]
    return StudyResults(
        study,
        statuses,
        win_rates(study, kept, stats),
        agreement(study, kept),
        bradley_terry(study, kept),
    )


def document(results: StudyResults) -> Document:
    study = results.study
    labels = {r["run_id"]: r["label"] for r in study.runs}
    doc = Document(f"Study `{study.study_id}`")
    kept = [s for s in results.raters if s.kept]
    dropped = [s for s in results.raters if not s.kept]
    doc.add(
        Paragraph(
            f"{len(kept)} of {len(results.raters)} raters kept, "
            f"{sum(s.answers - s.checks for s in kept)} answers to pairs. A rater is kept when "
            f"at least {PASS_SHARE:.0%} of the attention checks they answered are right."
        )
    )
    if dropped:
        doc.add(
            Bullets(
                [
                    f"dropped rater `{s.rater}`: {s.checks_right} of {s.checks} attention "
                    "checks right"
                    for s in dropped
                ]
            )
        )
    table = Table(
        [
            "question",
            "run A",
            "run B",
            "A preferred (ties half)",
            "cannot tell",
            "answers",
            "subjects",
        ],  # fmt: skip
        index=3,
        notes=[
            f"{n[0].upper()}{n[1:]}."
            for n in interval_notes(row["win_rate_a"] for row in results.win_rates)
        ],
    )
    for row in results.win_rates:
        iv = row["win_rate_a"]
        table.rows.append(
            [
                row["question"],
                Code(row["run_a"], f" ({labels[row['run_a']]})"),
                Code(row["run_b"], f" ({labels[row['run_b']]})"),
                IntervalValue(iv.mean, iv.low, iv.high),
                Number(row["ties"]),
                row["answers"],
                iv.n_subjects,
            ]
        )
    doc.add(table)
    agree = Table(["question", "pairs answered twice or more", "agreement"], index=1)
    for question, a in results.agreement.items():
        agree.rows.append([question, a["pairs"], Number(a["agreement"])])
    doc.add(agree)
    if results.ranking:
        ranking = Table(["question", "rank", "run", "Bradley-Terry log-strength"], index=2)
        for question, ranked in results.ranking.items():
            for rank, (run_id, strength) in enumerate(ranked, 1):
                ranking.rows.append(
                    [question, rank, Code(run_id, f" ({labels[run_id]})"), Number(strength)]
                )
        doc.add(ranking)
    return doc


def stored_answers(folder: Path, study: Study) -> list[RaterAnswers]:
    return [
        RaterAnswers.read(p).check_items(study, p)
        for p in sorted((folder / "answers").glob("*.json"))
    ]


def import_answers(files: list[Path], runs_root: Path) -> list[Study]:
    """Check every answers file against its study, then store them all (none if any is bad):
    one file per rater in the study's `answers/`. The same file imported again changes
    nothing; other answers under a rater id already stored are an error. Returns the studies
    the files belong to."""
    from bench.study.make import study_dir

    studies: dict[str, Study] = {}
    checked: list[tuple[Path, RaterAnswers]] = []
    for path in files:
        answers = RaterAnswers.read(path)
        if answers.study_id not in studies:
            study_file = study_dir(runs_root, answers.study_id) / "study.json"
            if not _is_study_id(answers.study_id) or not study_file.is_file():
                raise BenchError(
                    f"{path}: study {answers.study_id!r} is not in the store {runs_root}; pass "
                    "--runs with the store `bench study make` wrote it to"
                )
            studies[answers.study_id] = Study.read(study_file)
        checked.append((path, answers.check_items(studies[answers.study_id], path)))
    seen: dict[tuple[str, str], Path] = {}
    for path, answers in checked:
        key = (answers.study_id, answers.rater)
        if key in seen:
            raise BenchError(
                f"{path}: rater {answers.rater} answers study {answers.study_id} in "
                f"{seen[key]} too; import one of them"
            )
        seen[key] = path
        stored = study_dir(runs_root, answers.study_id) / "answers" / f"{answers.rater}.json"
        if stored.is_file() and RaterAnswers.read(stored) != answers:
            raise BenchError(
                f"{path}: rater {answers.rater} already has other answers in {stored}; "
                "give the new ones another rater id, or delete that file"
            )
    for _, answers in checked:
        folder = study_dir(runs_root, answers.study_id) / "answers"
        folder.mkdir(parents=True, exist_ok=True)
        answers.write(folder / f"{answers.rater}.json")
    return list(studies.values())


def _is_study_id(text: str) -> bool:
    return text.startswith("study-") and text[6:].isalnum() and len(text) <= 40
