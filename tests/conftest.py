"""Test setup: no network, one throwaway cache for the whole session, paths to shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub, so an accidental hub call fails fast.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


@pytest.fixture(scope="session")
def smoke_dreambooth_run(tmp_path_factory) -> dict:
    """The README's first command, `bench run --method dreambooth_lora --suite smoke --json`,
    run once per session through the CLI: its printed result, `runs`, the run store, and
    `stderr`, its progress (lines, one a second: the CLI runner is not a terminal). The
    tests of the command and of what the run learned share it (minutes on 2 cores)."""
    from typer.testing import CliRunner

    from bench.cli import app

    runs = tmp_path_factory.mktemp("smoke") / "runs"
    command = ["run", "--method", "dreambooth_lora", "--suite", "smoke", "--runs", str(runs)]
    # A progress line a second, so that the test of its lines does not hang on the speed here.
    result = CliRunner().invoke(app, [*command, "--json"], env={"BENCH_PROGRESS_SECONDS": "1"})
    assert result.exit_code == 0, result.output
    return {"runs": runs, "stderr": result.stderr, **json.loads(result.stdout)}


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
