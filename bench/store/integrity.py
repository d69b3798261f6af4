"""Whether what a run holds can be trusted. A unit is whole when its manifest and fit log read
and every image it lists is there; its scores are whole when they read and score exactly those
images. A re-run redoes what is not whole (`bench run`), and `bench runs` reports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.store.layout import RunPaths, run_dirs
from bench.store.records import (
    DEFAULT_CONVENTION,
    FitLog,
    RunRecord,
    UnitManifest,
    read_scores,
)


def unit_problem(unit: Path) -> str | None:
    """Why a unit with a manifest cannot be trusted (a one-line reason), or None if it is whole.
    A unit without a manifest is unfinished, not damaged: None."""
    path = RunPaths.manifest(unit)
    if not path.exists():
        return None
    try:
        manifest = UnitManifest.read(path)
        if RunPaths.fit_log(unit).exists():
            FitLog.read(RunPaths.fit_log(unit))
    except BenchError as e:
        return str(e)
    missing = [e.file for e in manifest.images if not _nonempty(unit / e.file)]
    if missing:
        return f"{unit}: {len(missing)} image(s) its manifest lists are missing, e.g. {missing[0]}"
    return None


def is_whole(unit: Path) -> bool:
    """Finished, and nothing it lists is damaged or missing."""
    return RunPaths.manifest(unit).exists() and unit_problem(unit) is None


def scores_problem(unit: Path, convention: str = DEFAULT_CONVENTION) -> str | None:
    """Why a unit's scores under `convention` cannot be trusted, "unscored" when there are none,
    or None when they read and score exactly the manifest's images once each."""
    path = RunPaths.scores(unit, convention)
    if not path.exists():
        return "unscored"
    try:
        return rows_problem(path, read_scores(path))
    except BenchError as e:
        return str(e)


def rows_problem(path: Path, rows: list) -> str | None:
    """Why the score rows read from `path` (a unit's scores file) do not score exactly the
    images of the unit's manifest once each; None when they do. Raises a BenchError when the
    manifest cannot be read."""
    unit = path.parent
    manifest = UnitManifest.read(RunPaths.manifest(unit))
    run_root = _run_root(unit, manifest.checkpoint is not None)
    expected = sorted(str((unit / e.file).relative_to(run_root)) for e in manifest.images)
    if sorted(r.image for r in rows) != expected:
        return f"{path}: its rows do not match the images of {RunPaths.manifest(unit)}"
    return None


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _run_root(unit: Path, checkpoint: bool) -> Path:
    # <run>/<subject>/replicate-<r>[/checkpoints/step-<n>]
    return unit.parents[3] if checkpoint else unit.parents[1]


def list_runs(runs_root: Path) -> list[dict[str, Any]]:
    """Summary of every run in a store: id, suite, method, units finished and scored (under the
    default convention), and what is damaged (`problems`: one line each; a re-run redoes it)."""
    rows = []
    for root in run_dirs(runs_root):
        paths = RunPaths(root)
        try:
            record = RunRecord.read(paths.run_json)
        except BenchError as e:  # listed, not fatal: the other runs are still shown
            rows.append(_damaged_run(root, str(e)))
            continue
        units = paths.units()
        problems = {u: unit_problem(u) for u in units}
        damaged = [p for p in problems.values() if p]
        scores = [scores_problem(u) for u, p in problems.items() if not p]
        rows.append(
            {
                "run_id": record.run_id,
                "suite": record.suite["name"],
                "method": record.method,
                "kind": record.kind,
                "units_done": len(units) - len(damaged),
                "units_scored": scores.count(None),
                "units_total": record.units_total,
                "problems": damaged + [p for p in scores if p not in (None, "unscored")],
                "created": record.provenance["time"],
                "path": str(root),
            }
        )
    return rows


def _damaged_run(root: Path, problem: str) -> dict[str, Any]:
    return {
        "run_id": root.name,
        "suite": root.parent.name,
        "method": None,
        "kind": None,
        "units_done": 0,
        "units_scored": 0,
        "units_total": None,
        "problems": [problem],
        "created": None,
        "path": str(root),
    }
