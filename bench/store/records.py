"""What the store holds, as typed records: each has one writer (its `write`) and one reader (its
`read`), and every file is read through `read_json` / `read_jsonl`, which name the file and the
line when it is damaged and say what to do.

    run.json           RunRecord      what the run is (written first)
    manifest.json      UnitManifest   one (subject, replicate) unit, written last: the unit is done
                       ImageEntry     one image of a unit
    scores.jsonl       ScoreRow       one scored image
    fit.json           FitLog         the method's training log, written after its artifacts

`run.json` carries a format version. A store written by a newer bench is refused; a store from
before versioning (format 0) is read with the facts it did not record filled in here, once.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bench import atomic
from bench.errors import BenchError
from bench.paths import inside
from bench.realness import RANDOM_WEIGHTS, REAL, TOY_WORLD

# The convention scores are defined under unless a row says otherwise (bench.scorers.conventions).
DEFAULT_CONVENTION = "dreambooth"

FORMAT = 2
KINDS = ("generated", "reference", "external")  # how a run's images came to be


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from the store, or a one-line error naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        raise BenchError(
            f"{path}: damaged{where}; delete it (and for a unit, its folder) and run the same "
            "`bench run` again to redo that part"
        ) from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: not a JSON object; delete it and run `bench run` again")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line, or a one-line error naming the file and the line."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise BenchError(
            f"{path}:{line}: damaged line; delete the file and run `bench run` again to rescore"
        ) from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise BenchError(
                f"{path}:{n}: damaged line; delete the file and run `bench run` again to rescore"
            )
        rows.append(row)
    return rows


def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` present in `data` (later formats may add fields this bench ignores)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


# --------------------------------------------------------------------------- run.json


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    method: str
    kind: str  # one of KINDS
    config: dict[str, Any]  # the resolved method options
    method_defaults: dict[str, Any]  # the method's own defaults, when the run was made
    suite: dict[str, Any]  # the suite's identity (bench.data.suites.Suite.identity)
    units_total: int
    realness: str  # of the backbone it was generated on (bench.realness; scorers say their own)
    provenance: dict[str, Any]
    generation_batch_size: int | None = None  # None: nothing is generated (reference, external)
    format: int = FORMAT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BenchError(f"run {self.run_id}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def is_reference(self) -> bool:
        """The Real Images row: the subjects' own photos, scored leave-one-out."""
        return self.kind == "reference"

    def write(self, path: Path) -> None:
        atomic.write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        data = read_json(path)
        version = data.get("format", 0)
        if not isinstance(version, int) or version > FORMAT:
            raise BenchError(
                f"{path}: written by a newer bench (store format {version}; this bench reads up "
                f"to {FORMAT}); upgrade bench to read it"
            )
        if version == 0:
            data = _from_format_0(data)
        if data.get("format") == 1:
            data = _from_format_1(data)
        try:
            return cls(**_known(cls, data))
        except TypeError as e:
            raise BenchError(
                f"{path}: incomplete run record ({e}); run `bench run` again"
            ) from None


def _from_format_0(data: dict[str, Any]) -> dict[str, Any]:
    """run.json from before versioning recorded no kind, random-weight status or defaults."""
    kind = "external" if data.get("external") else "generated"
    if data.get("method") == "real":
        kind = "reference"
    return {
        **data,
        "kind": kind,
        "method_defaults": {},
        "random_weights": data.get("suite", {}).get("backbone") == "tiny",
        "format": 1,
    }


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1 said how real a run is in two flags, `random_weights` and `toy_world`."""
    realness = REAL
    if data.get("toy_world"):
        realness = TOY_WORLD
    if data.get("random_weights"):
        realness = RANDOM_WEIGHTS
    return {**data, "realness": realness, "format": FORMAT}


# --------------------------------------------------------------------------- manifest.json


@dataclass(frozen=True)
class ImageEntry:
    file: str  # relative to the unit folder: images/<prompt id>-<index>.png
    prompt_id: str
    image_index: int
    template: str | None = None
    prompt: str | None = None  # the text the method rendered (with the identifier)
    scoring_prompt: str | None = None  # what CLIP-T scores against (identifier dropped)
    seed: int | None = None  # the cell's seed; None for the subject's own photos
    source: str | None = None  # where an imported or reference image came from


@dataclass(frozen=True)
class UnitManifest:
    run_id: str
    suite: str
    method: str
    subject: dict[str, Any]  # id, class, kind, token, images (paths), source, license
    replicate: int
    images: list[ImageEntry]
    provenance: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: int | None = None  # training step of an intermediate adapter
    leave_one_out: bool = False  # the images are the subject's photos (the Real Images row)
    backbone: dict[str, Any] | None = None  # id, revision, path, random_weights, device, dtype
    generation: dict[str, Any] | None = None
    resolution: int | None = None
    execution: dict[str, Any] | None = None  # device, dtype, generation_batch_size
    timings: dict[str, Any] | None = None  # fit_seconds, generate_seconds

    def write(self, path: Path) -> None:
        atomic.write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> UnitManifest:
        data = read_json(path)
        try:
            images = [ImageEntry(**_known(ImageEntry, e)) for e in data.get("images", [])]
            manifest = cls(**{**_known(cls, data), "images": images})
            if manifest.execution and "batch_size" in manifest.execution:  # its former name
                execution = dict(manifest.execution)
                execution["generation_batch_size"] = execution.pop("batch_size")
                manifest = replace(manifest, execution=execution)
        except TypeError as e:
            raise BenchError(
                f"{path}: incomplete manifest ({e}); delete its unit folder and run `bench run` "
                "again"
            ) from None
        for entry in images:  # a manifest names files of its own unit, nothing elsewhere
            inside(
                path.parent,
                entry.file,
                f"{path}: image",
                "the manifest was altered; delete the unit folder and run `bench run` again",
            )
        return manifest


# --------------------------------------------------------------------------- scores.jsonl

ROW_FIELDS = (
    "run_id",
    "subject",
    "prompt_id",
    "prompt",
    "scoring_prompt",
    "image_index",
    "replicate",
    "checkpoint",
    "seed",
    "image",
)


@dataclass(frozen=True)
class ScoreRow:
    run_id: str
    subject: str
    prompt_id: str
    prompt: str | None
    scoring_prompt: str | None
    image_index: int
    replicate: int
    checkpoint: int | None
    seed: int | None
    image: str  # relative to the run folder
    values: dict[str, float | None]  # scorer id -> value (None: not defined for this image)
    # scorer id -> {"model", "random_weights", "display_name", "higher_is_better"}
    scorers: dict[str, dict[str, Any]]
    convention: str = DEFAULT_CONVENTION  # how the values are defined (bench.scorers.conventions)

    def to_json(self) -> dict[str, Any]:
        """Flat on disk: one column per scorer beside the image's ids."""
        row = {name: getattr(self, name) for name in ROW_FIELDS}
        for scorer, value in self.values.items():
            row[scorer] = None if value is None or math.isnan(value) else float(value)
        row["scorers"] = self.scorers
        row["convention"] = self.convention
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ScoreRow:
        scorers = row["scorers"]
        return cls(
            **{name: row.get(name) for name in ROW_FIELDS},
            values={s: row.get(s) for s in scorers},
            scorers=scorers,
            convention=row.get("convention") or DEFAULT_CONVENTION,  # rows from before conventions
        )


def write_scores(path: Path, rows: list[ScoreRow]) -> None:
    atomic.write_text(path, "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in rows))


def read_scores(path: Path) -> list[ScoreRow]:
    rows = []
    for n, raw in enumerate(read_jsonl(path), 1):
        try:
            rows.append(ScoreRow.from_json(raw))
        except (KeyError, TypeError, AttributeError):
            raise BenchError(
                f"{path}: row {n} is incomplete; delete the file and run `bench run` again to "
                "rescore"
            ) from None
    return rows


# --------------------------------------------------------------------------- fit.json


@dataclass(frozen=True)
class FitLog:
    """The method's log (losses and the like, kept as it returned them) and what bench needs
    from it: the intermediate adapters it saved."""

    log: dict[str, Any]
    seconds: float | None = None

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        """[{"step": n, "path": "checkpoints/step-000n"}, ...] (checkpoint_every)."""
        return list(self.log.get("checkpoints", []))

    def write(self, path: Path) -> None:
        atomic.write_json(path, {**self.log, "seconds": self.seconds})

    @classmethod
    def read(cls, path: Path) -> FitLog:
        data = read_json(path)
        return cls({k: v for k, v in data.items() if k != "seconds"}, data.get("seconds"))
