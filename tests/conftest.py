"""Test setup: no network, one throwaway cache for the whole session, paths to shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub, so an accidental hub call fails fast.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist each worker gets one thread (set before torch is imported): two workers of
# two threads each on two cores would oversubscribe, and spinning threads are slower than
# sharing the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
DREAMBENCH = Path(
    os.environ.get("BENCH_DREAMBENCH_ROOT", REPO.parent / "shared/datasets/dreambench")
)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Tiny models are built once per test session, in a cache no other process uses."""
    cache = tmp_path_factory.mktemp("bench-cache")
    old = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("BENCH_CACHE", None)
    else:
        os.environ["BENCH_CACHE"] = old


# The runs of the two-subject suite (helpers.DUO) that several modules read: label -> (method,
# options).
DUO_RUNS = {
    "base": ("base", {}),
    "rank4": ("dreambooth_lora", {}),  # the suite's defaults: the method's rank 4
    "rank2": ("dreambooth_lora", {"rank": 2}),
    "real": ("real", {}),
}


@pytest.fixture(scope="session")
def duo_store(tmp_path_factory) -> dict:
    """The two-subject suite run once per session through the library, each of DUO_RUNS fitted,
    generated and scored once (`made`: what `run` returned, fresh). No test writes to this
    store: a module that adds runs, rescores or damages one takes `helpers.copy_runs`."""
    import bench

    from helpers import DUO

    root = tmp_path_factory.mktemp("duo")
    suite = root / "duo.toml"
    suite.write_text(DUO)
    runs = root / "runs"
    stats = bench.StatsOptions(n_resamples=500)
    made = {
        label: bench.run(method, suite, options=options, runs=runs, stats=stats)
        for label, (method, options) in DUO_RUNS.items()
    }
    return {"suite": suite, "runs": runs, "stats": stats, "made": made}


@pytest.fixture(scope="session")
def lower_store(tmp_path_factory) -> dict:
    """The duo suite with two images per prompt (so a report's grids have two columns), scored
    by the example plugin's pixel distance alone, a metric where lower is better: `base`, and a
    sweep of DreamBooth-LoRA over rank 2 and 4 with one checkpoint. Made once per session and
    worker; no test writes to it."""
    import bench

    from helpers import LOWER

    root = tmp_path_factory.mktemp("lower")
    suite = root / "duo.toml"
    suite.write_text(LOWER)
    runs = root / "runs"
    stats = bench.StatsOptions(n_resamples=100)
    base = bench.run("base", suite, runs=runs, stats=stats)
    sweep = bench.sweep(
        suite=bench.load_suite(suite),
        method="dreambooth_lora",
        grid={"rank": [2, 4]},
        checkpoints=1,
        runs=runs,
        stats=stats,
    )
    return {"root": root, "runs": runs, "base": base, "sweep": sweep, "suite": suite}


@pytest.fixture(scope="session")
def micro_base_store(tmp_path_factory) -> Path:
    """A store with one finished, scored micro run of `base`, made once per session through the
    CLI. Tests copy it before they change anything, or check that nothing changed it."""
    from typer.testing import CliRunner

    from bench.cli import app

    runs = tmp_path_factory.mktemp("finished") / "runs"
    command = ["run", "--method", "base", "--suite", "micro", "--runs", str(runs)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    return runs


@pytest.fixture
def dreambench_root() -> Path:
    """The real DreamBench copy. Under CI its absence is a failure, elsewhere a skip."""
    if not (DREAMBENCH / "prompts_and_classes.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"DreamBench dataset missing at {DREAMBENCH}; set BENCH_DREAMBENCH_ROOT")
        pytest.skip(f"DreamBench dataset not found at {DREAMBENCH}")
    return DREAMBENCH


# --------------------------------------------------------------------------- CI: no silent skips

# Under CI a skipped test fails the run, except the opt-in tests that need real weights: CI must
# not pass on tests it did not run.
ALLOWED_SKIP_MARKERS = {"real_weights"}
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    allowed = ALLOWED_SKIP_MARKERS & set(report.keywords)
    if report.skipped and not hasattr(report, "wasxfail") and not allowed:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("CI") and _skipped:
        terminalreporter.write_line(
            f"CI: {len(_skipped)} test(s) skipped that must run here: {', '.join(_skipped)}",
            red=True,
        )
