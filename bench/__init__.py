"""bench: an evaluation-first benchmark for subject-driven text-to-image personalization.

The library's entry points (`bench.run`, `bench.compare`, ...) live in `bench.api` and are
imported on first use, so `import bench` stays cheap.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("bench")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

API = (
    "StatsOptions",
    "RunResult",
    "RunPlan",
    "SweepResult",
    "load_suite",
    "load_run",
    "load_scorers",
    "plan",
    "run",
    "score",
    "rescore",
    "import_images",
    "summarize",
    "compare",
    "leaderboard",
    "report",
    "make_study",
    "import_study_answers",
    "sweep",
)

__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
