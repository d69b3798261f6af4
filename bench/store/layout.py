"""The run store: where a run's artifacts, images and manifests live, and how runs are named.

    <runs>/<suite>/<run id>/run.json                          what the run is (written first)
    <runs>/<suite>/<run id>/<subject>/replicate-<seed>/
        <artifact files>  fit.json                            the fitted method, its log
        images/<prompt id>-<image index>.png                  one PNG per cell
        manifest.json                                         written last: the unit is complete

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


def list_runs(runs_root: Path) -> list[dict[str, Any]]:
    """Summary of every run in a store: id, suite, method, units complete."""
    rows = []
    for run_json in sorted(runs_root.glob("*/*/run.json")):
        info = json.loads(run_json.read_text())
        root = run_json.parent
        done = len(list(root.glob("*/replicate-*/manifest.json")))
        rows.append(
            {
                "run_id": info["run_id"],
                "suite": info["suite"]["name"],
                "method": info["method"],
                "units_done": done,
                "units_total": info["units_total"],
                "created": info["provenance"]["time"],
                "path": str(root),
            }
        )
    return rows


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
