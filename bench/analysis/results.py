"""Reading a run's per-image scores back, and summarizing them with intervals (`stats`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis.stats import Interval, bootstrap_interval
from bench.errors import BenchError
from bench.scorers.scoring import SCORES

KEY = ["subject", "prompt_id", "image_index", "replicate"]


@dataclass(frozen=True)
class RunResults:
    root: Path
    info: dict[str, Any]  # run.json
    scores: pd.DataFrame  # one row per image
    scorers: dict[str, dict[str, Any]]  # scorer id -> {"model", "random_weights"}

    @property
    def run_id(self) -> str:
        return self.info["run_id"]

    @property
    def metrics(self) -> list[str]:
        return list(self.scorers)

    @property
    def random_weights(self) -> bool:
        tiny_backbone = self.info["suite"]["backbone"] == "tiny"
        return tiny_backbone or any(s["random_weights"] for s in self.scorers.values())


def checkpoint_steps(run_root: Path) -> list[int]:
    """Training steps of the intermediate adapters that were generated and scored."""
    found = run_root.glob(f"*/replicate-*/checkpoints/step-*/{SCORES}")
    return sorted({int(p.parent.name.removeprefix("step-")) for p in found})


def load_results(run_root: Path, checkpoint: int | None = None) -> RunResults:
    """A run's per-image scores: of its final adapters, or of the checkpoint at that step."""
    run_json = run_root / "run.json"
    if not run_json.is_file():
        raise BenchError(f"{run_root}: not a run directory (no run.json)")
    info = json.loads(run_json.read_text())
    where = "" if checkpoint is None else f"checkpoints/step-{checkpoint:06d}/"
    files = sorted(run_root.glob(f"*/replicate-*/{where}{SCORES}"))
    if not files:
        raise BenchError(f"{run_root}: has no scores yet; run `bench run` again to score it")
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line]
    scorer_sets = {json.dumps(r["scorers"], sort_keys=True) for r in rows}
    if len(scorer_sets) > 1:
        raise BenchError(
            f"{run_root}: units were scored with different scorer models; "
            "rerun `bench run` with one set of --scorer-option values"
        )
    scorers = rows[0]["scorers"]
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "scorers"} for r in rows])
    return RunResults(run_root, info, frame, scorers)


def summarize(
    results: RunResults,
    *,
    prompt_mode: str = "fixed",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
) -> dict[str, Interval]:
    """One interval per metric over the whole run (subject-clustered bootstrap)."""
    frame = results.scores
    out = {}
    for metric in results.metrics:
        defined = frame[frame[metric].notna()]
        if defined["subject"].nunique() < 2:  # no between-subject spread: a mean, no interval
            cells = defined.groupby(["subject", "prompt_id"])[metric].mean()
            out[metric] = Interval(
                float(cells.mean()) if len(cells) else float("nan"),
                float("nan"),
                float("nan"),
                int(defined["subject"].nunique()),
                len(defined),
                0,
                confidence,
                method,
                prompt_mode,
            )
            continue
        try:
            out[metric] = bootstrap_interval(
                frame[metric].to_numpy(float),
                frame["subject"].to_numpy(),
                frame["prompt_id"].to_numpy(),
                prompt_mode=prompt_mode,
                n_resamples=n_resamples,
                confidence=confidence,
                method=method,
                seed=seed,
            )
        except ValueError as e:
            raise BenchError(f"{results.root}: {metric}: {e}") from None
    return out
