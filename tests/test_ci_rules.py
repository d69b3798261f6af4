"""The rules CI relies on: under CI a skipped test fails the run, except the opt-in real-weights
tests (tests/conftest.py)."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()

SKIPPING = """
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("no data here")
"""

REAL_WEIGHTS_SKIP = """
import pytest

pytestmark = pytest.mark.real_weights

def test_needs_weights():
    pytest.skip("weights not in the cache")
"""


@pytest.mark.parametrize(
    "ci, body, exit_code, workers",
    [
        ("1", SKIPPING, 1, "0"),  # a skip under CI fails the run
        ("1", SKIPPING, 1, "2"),  # also when pytest-xdist's workers ran the tests (addopts)
        ("", SKIPPING, 0, "0"),  # on a developer's machine it is a skip
        ("1", REAL_WEIGHTS_SKIP, 0, "2"),  # the opt-in real-weights tests may skip under CI
    ],
)
def test_a_skip_fails_ci_unless_it_needs_real_weights(
    pytester, monkeypatch, ci, body, exit_code, workers
):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    real_weights: needs real weights\n")
    pytester.makepyfile(test_sample=body)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers)
    assert result.ret == exit_code, result.stdout.str()
    if exit_code:
        result.stdout.fnmatch_lines(["*CI: 1 test(s) skipped that must run here*test_skips*"])
