"""`bench run --executor ray`: a run's units as Ray tasks over a cluster, written straight into
one shared store.

The driver (this process) splits the pending units into tasks of `--pack` units (one each by
default), with the resources each task declares (`--ray-gpus`: fractional GPUs let several small
fits share a card; `--ray-cpus`). A task runs `bench.store.runner.execute` on its units in a Ray
worker process, which claims each unit (bench.store.lock), fits, generates and scores it, and
writes it whole; the backbone and the scorer networks are loaded once per worker process and kept
for its next tasks. A task that fails, or whose worker or node dies, is retried (Ray's
`max_retries`; a dead worker's claims were released with it), then reported in one line per
unit. Running the same command again does only what is missing. The driver shows progress over
all units; `bench.run` scores what is left and summarizes the run after it.

Ray is an optional extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.progress import Reporter, Silent

RETRIES = 2  # a failed task runs up to three times
# The environment a worker needs to find what the driver finds (models, caches, offline mode).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "OMP_NUM_THREADS")

# Per worker process: what was loaded for earlier tasks, by what loads it.
_BACKBONES: dict[tuple, Any] = {}
_SCORERS: dict[tuple, Any] = {}


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local cluster in this process
    gpus: float | None = None  # per task; None: 1 when the cluster has GPUs, else 0
    cpus: float = 1.0  # per task

    def __post_init__(self) -> None:
        if self.gpus is not None and not 0 <= self.gpus <= 64:
            raise BenchError(f"--ray-gpus must be >= 0 and <= 64, got {self.gpus}")
        if not 0 < self.cpus <= 1024:
            raise BenchError(f"--ray-cpus must be > 0 and <= 1024, got {self.cpus}")


@dataclass(frozen=True)
class RayResult:
    fitted: int
    generated: int
    scored: int


def import_ray():
    try:
        import ray
    except ImportError:
        raise BenchError(
            "--executor ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')"
        ) from None
    return ray


def run_on_ray(
    prepared, execution, scoring: tuple | None, ray_options: RayOptions, reporter: Reporter
) -> RayResult:
    """Do the run's pending units as Ray tasks; `scoring` is (suite, scorer options, convention)
    to score each unit in its task, or None."""
    ray = import_ray()
    reporter = reporter or Silent()
    connected = ray.is_initialized()
    # Ray prints its own notices ("a worker died ...") on stdout, which holds bench's output
    # (--json): they go to stderr while this process is connected to the cluster.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return _run(ray, prepared, execution, scoring, ray_options, reporter)
        finally:
            if not connected:
                ray.shutdown()


def _run(ray, prepared, execution, scoring, ray_options, reporter) -> RayResult:
    env = {k: v for k, v in os.environ.items() if k.startswith("BENCH_") or k in FORWARDED_ENV}
    ray.init(
        address=ray_options.address,
        runtime_env={"env_vars": env},
        include_dashboard=False,
        log_to_driver=False,
        ignore_reinit_error=True,
    )
    gpus = ray_options.gpus
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    pending = [(s.id, r) for s, r in prepared.pending_units()]
    size = execution.pack or 1
    tasks = [pending[i : i + size] for i in range(0, len(pending), size)]
    remote = ray.remote(
        num_cpus=ray_options.cpus,
        num_gpus=gpus,
        max_retries=RETRIES,
        retry_exceptions=True,
    )(_do_units)
    handles = {remote.remote(prepared, execution, units, scoring): units for units in tasks}
    progress = reporter.task(f"units on ray ({len(tasks)} tasks)", total=len(pending))
    fitted = generated = scored = 0
    failed = []
    while handles:
        done, _ = ray.wait(list(handles), num_returns=1)
        for handle in done:
            units = handles.pop(handle)
            try:
                result = ray.get(handle)
            except Exception as error:  # its last retry failed too
                failed.append((units, _first_line(error)))
                continue
            fitted += result.fitted
            generated += result.generated
            scored += result.scored
            progress.advance(len(units))
    progress.finish()
    if failed:
        for units, reason in failed:
            for subject, replicate in units:
                reporter.message(f"{subject}/replicate-{replicate}: failed on Ray: {reason}")
        count = sum(len(units) for units, _ in failed)
        raise BenchError(
            f"{count} unit(s) of run {prepared.run_id} failed on Ray after {RETRIES} retries "
            "(each named above); run the same command again to redo them"
        )
    return RayResult(fitted, generated, scored)


def _do_units(prepared, execution, units, scoring) -> RayResult:
    """A Ray task, in a worker process: execute these units, scoring each while it is held."""
    from bench.scorers.scoring import UnitScoring, load_suite_scorers
    from bench.store.runner import execute, load_suite_backbone

    suite = prepared.suite
    key = (suite.backbone, suite.backbone_revision, suite.generation.scheduler)
    key += (execution.device, execution.dtype)
    if key not in _BACKBONES and not prepared.is_reference:
        _BACKBONES[key] = load_suite_backbone(suite, execution)
    finish = None
    if scoring is not None:
        scored_suite, options, convention = scoring
        scorer_key = (repr(scored_suite.scorers), repr(options), convention, execution.device)
        if scorer_key not in _SCORERS:
            _SCORERS[scorer_key] = load_suite_scorers(
                scored_suite, options, execution.device, convention
            )
        finish = UnitScoring(_SCORERS[scorer_key], prepared.paths.root)
    summary = execute(
        prepared, execution, None, None, finish, only=units, backbone=_BACKBONES.get(key)
    )
    return RayResult(summary.fitted, summary.generated, finish.scored if finish else 0)


def _first_line(error: BaseException) -> str:
    """The cause of a task's failure in one line (Ray wraps it in its own error)."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
