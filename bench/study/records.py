"""What a study stores: `Study` (study.json) and `RaterAnswers` (answers/<rater>.json), with the
checks that turn a malformed or forged answers file into a one-line error naming it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import atomic
from bench.errors import BenchError

FORMAT = 1
CHOICES = ("left", "right", "tie")  # "tie": the rater cannot tell
QUESTIONS = {
    "subject": "Which image shows the subject of the photos more faithfully?",
    "prompt": "Which image matches its text better?",
}
RATER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Pair:
    """Two runs' images of one cell (same subject, prompt, image index and fit seed)."""

    id: str
    subject: str
    prompt_id: str
    prompt: str  # as scored: the identifier removed, the class noun kept
    image_index: int
    replicate: int
    a: str  # run id
    b: str
    image_a: str  # relative to the study page
    image_b: str


@dataclass(frozen=True)
class Check:
    """An attention check: one side is the subject's own photo ("photo"), or a picture of a
    subject of another class ("wrong_class"); the subject question has one right answer."""

    id: str
    kind: str  # "photo" or "wrong_class"
    subject: str
    prompt: str
    image_a: str
    image_b: str
    expected: str  # "a" or "b": the side the subject question must pick


@dataclass(frozen=True)
class Study:
    study_id: str
    runs: list[dict[str, str]]  # run_id, method, label
    subjects: dict[str, dict[str, Any]]  # id -> {"class", "photos": [relative paths]}
    pairs: list[Pair]
    checks: list[Check]
    per_rater: int  # pairs shown to each rater
    checks_per_rater: int
    seed: int
    questions: dict[str, str] = field(default_factory=lambda: dict(QUESTIONS))
    provenance: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    def write(self, path: Path) -> None:
        atomic.write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Study:
        try:
            data = json.loads(path.read_text())
            return cls(
                **{
                    **data,
                    "pairs": [Pair(**p) for p in data["pairs"]],
                    "checks": [Check(**c) for c in data["checks"]],
                }
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BenchError(
                f"{path}: not a readable study ({type(e).__name__}: {e}); make it again with "
                "`bench study make`"
            ) from None

    def items(self) -> dict[str, Pair | Check]:
        return {p.id: p for p in self.pairs} | {c.id: c for c in self.checks}


@dataclass(frozen=True)
class Answer:
    item: str  # a pair's or a check's id
    left: str  # "a" or "b": which side of the item was shown on the left
    subject: str  # one of CHOICES
    prompt: str

    def chose(self, question: str) -> str | None:
        """The side ("a" or "b") the answer to `question` picked; None for "cannot tell"."""
        choice = getattr(self, question)
        if choice == "tie":
            return None
        right = "b" if self.left == "a" else "a"
        return self.left if choice == "left" else right


@dataclass(frozen=True)
class RaterAnswers:
    study_id: str
    rater: str
    answers: list[Answer]
    format: int = FORMAT

    def write(self, path: Path) -> None:
        atomic.write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> RaterAnswers:
        """Read and check an answers file's form: each answer names an item once, with known
        choices. Any problem is a one-line error naming the file."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as e:
            raise BenchError(f"{path}: cannot read it ({e.strerror})") from None
        except ValueError:
            raise BenchError(f"{path}: not JSON; give the file the study page downloaded") from None
        if not isinstance(data, dict) or not isinstance(data.get("answers"), list):
            raise BenchError(f"{path}: not a bench answers file (no list of answers)")
        rater = data.get("rater")
        if not isinstance(rater, str) or not RATER_ID.match(rater):
            raise BenchError(
                f"{path}: rater {rater!r} is not a rater id (letters, digits, '_', '.', '-'; "
                "at most 64)"
            )
        study_id = data.get("study_id")
        if not isinstance(study_id, str):
            raise BenchError(f"{path}: no study_id; give the file the study page downloaded")
        answers, seen = [], set()
        for n, raw in enumerate(data["answers"], 1):
            where = f"{path}: answer {n}"
            if not isinstance(raw, dict) or set(raw) != {"item", "left", "subject", "prompt"}:
                raise BenchError(f"{where} must have exactly item, left, subject and prompt")
            answer = Answer(**raw)
            if answer.item in seen:
                raise BenchError(f"{where} answers item {answer.item!r} a second time")
            seen.add(answer.item)
            if answer.left not in ("a", "b"):
                raise BenchError(f"{where}: left must be 'a' or 'b', got {answer.left!r}")
            for question in QUESTIONS:
                if getattr(answer, question) not in CHOICES:
                    raise BenchError(
                        f"{where}: {question} must be one of {', '.join(CHOICES)}, "
                        f"got {getattr(answer, question)!r}"
                    )
            answers.append(answer)
        return cls(study_id, rater, answers)

    def check_items(self, study: Study, path: Path) -> RaterAnswers:
        """Every answer names an item of `study` (a forged or foreign file does not)."""
        items = study.items()
        for n, answer in enumerate(self.answers, 1):
            if answer.item not in items:
                raise BenchError(
                    f"{path}: answer {n} names item {answer.item!r}, which study "
                    f"{study.study_id} has not"
                )
        return self
