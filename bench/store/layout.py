"""The run store's layout: every path and glob of the store is here, and how runs are named.
What the files hold is in `bench.store.records`.

    <runs>/<suite>/<run id>/run.json                          what the run is (written first)
    <runs>/<suite>/<run id>/<subject>/replicate-<seed>/
        <artifact files>  fit.json                            the fitted method, its log
        images/<prompt id>-<image index>.png                  one PNG per cell
        manifest.json                                         written last: the unit is complete
        scores.jsonl                                          one row per scored image
        scores.<convention>.jsonl                             ... under another convention
        checkpoints/step-<6 digits>/                          an intermediate adapter's unit
    <runs>/<suite>/sweep-<id>/sweep.md, sweep.json, *.png     a sweep's report

The run id is `<method>-<first 8 hex of sha256(method, resolved config, suite identity)>`.
Execution options (device, dtype, batch size) do not enter it: they go into the manifests.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.methods.protocol import checkpoint_folder
from bench.store.records import DEFAULT_CONVENTION

LIBRARIES = (
    "bench",
    "torch",
    "diffusers",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "open_clip_torch",
    "timm",
    "numpy",
    "scipy",
    "pandas",
)


def run_id(method: str, config: dict[str, Any], suite_identity: dict[str, Any]) -> str:
    payload = json.dumps(
        {"method": method, "config": config, "suite": suite_identity},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return f"{method}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class RunPaths:
    root: Path  # <runs>/<suite>/<run id>

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    def unit(self, subject_id: str, replicate: int) -> Path:
        return self.root / subject_id / f"replicate-{replicate}"

    @staticmethod
    def images(unit: Path) -> Path:
        return unit / "images"

    @staticmethod
    def manifest(unit: Path) -> Path:
        return unit / "manifest.json"

    @staticmethod
    def fit_log(unit: Path) -> Path:
        return unit / "fit.json"

    @staticmethod
    def scores(unit: Path, convention: str = DEFAULT_CONVENTION) -> Path:
        return unit / scores_name(convention)

    def units(self, *, checkpoints: bool = False) -> list[Path]:
        """The complete units (those with a manifest), and with `checkpoints` their
        intermediate-adapter units too."""
        units = sorted(p.parent for p in self.root.glob("*/replicate-*/manifest.json"))
        if checkpoints:
            units += sorted(
                p.parent for p in self.root.glob("*/replicate-*/checkpoints/*/manifest.json")
            )
        return units

    def score_files(
        self, checkpoint: int | None = None, convention: str = DEFAULT_CONVENTION
    ) -> list[Path]:
        """The scores of the final units, or of the checkpoint units at that step."""
        where = "" if checkpoint is None else f"{checkpoint_folder(checkpoint)}/"
        return sorted(self.root.glob(f"*/replicate-*/{where}{scores_name(convention)}"))

    def checkpoint_steps(self, convention: str = DEFAULT_CONVENTION) -> list[int]:
        """Training steps of the intermediate adapters that were generated and scored."""
        found = self.root.glob(f"*/replicate-*/checkpoints/step-*/{scores_name(convention)}")
        return sorted({int(p.parent.name.removeprefix("step-")) for p in found})

    def conventions(self) -> list[str]:
        """The conventions the run's final units were scored under, the default first."""
        found = {convention_of(p.name) for p in self.root.glob("*/replicate-*/scores*.jsonl")}
        return sorted(found, key=lambda c: (c != DEFAULT_CONVENTION, c))


SCORES = "scores.jsonl"  # the default convention's file keeps the name it had before conventions


def scores_name(convention: str) -> str:
    """scores.jsonl under the default convention, scores.<convention>.jsonl under another."""
    return SCORES if convention == DEFAULT_CONVENTION else f"scores.{convention}.jsonl"


def convention_of(file_name: str) -> str:
    """The convention a scores file name holds (the inverse of `scores_name`)."""
    middle = file_name.removeprefix("scores").removesuffix(".jsonl")
    return middle.removeprefix(".") or DEFAULT_CONVENTION


def run_dirs(runs_root: Path) -> list[Path]:
    """Every run of a store (a folder with a run.json, under its suite's folder)."""
    return sorted(p.parent for p in runs_root.glob("*/*/run.json"))


def scored_run_dirs(runs_root: Path) -> list[Path]:
    """The runs of a store with at least one scored unit."""
    found = runs_root.glob("*/*/*/replicate-*/scores*.jsonl")
    return sorted({p.parent.parent.parent for p in found})


def sweep_reports(runs_root: Path) -> list[Path]:
    """The sweep.md of every sweep in a store."""
    return sorted(runs_root.glob("*/sweep-*/sweep.md"))


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the bench checkout that ran (with '+dirty' for local changes), if any."""
    source = Path(__file__).resolve().parents[2]  # bench/store/layout.py -> the checkout
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", "bench"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def provenance() -> dict[str, Any]:
    return {
        "versions": library_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def find_run(runs_root: Path, run: str) -> Path:
    """A run directory from a path or a run id (searched in every suite of the store)."""
    path = Path(run)
    if (path / "run.json").is_file():
        return path
    matches = sorted(runs_root.glob(f"*/{run}/run.json"))
    if len(matches) == 1:
        return matches[0].parent
    if len(matches) > 1:
        raise BenchError(
            f"run id '{run}' is in several suites: "
            f"{', '.join(str(m.parent) for m in matches)}; pass the directory"
        )
    raise BenchError(f"no run '{run}' in {runs_root}; `bench runs --runs {runs_root}` lists them")


def subject_record(subject) -> dict[str, Any]:
    """The subject as manifests record it."""
    return {
        "id": subject.id,
        "class": subject.class_noun,
        "kind": subject.kind,
        "token": subject.token,
        "images": [str(p) for p in subject.images],
        "source": subject.source,
        "license": subject.license,
    }
