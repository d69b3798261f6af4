"""How every interval and paired test of a report is computed: one value, passed whole from the
command line or the library down to the statistics, so that no layer falls back to a default."""

from __future__ import annotations

from dataclasses import dataclass

from bench.analysis.stats import CI_METHODS, PROMPT_MODES
from bench.errors import BenchError

MAX_RESAMPLES = 1_000_000  # bootstrap resamples: more only costs time and memory


@dataclass(frozen=True)
class StatsOptions:
    """How intervals and paired tests are computed (bench.analysis.stats has the definitions)."""

    prompt_mode: str = "fixed"  # fixed: the prompt set defines the benchmark; random: a sample
    n_resamples: int = 10_000
    confidence: float = 0.95
    ci_method: str = "auto"  # studentized bootstrap; or "studentized", "percentile", "bca"
    seed: int = 0

    def __post_init__(self) -> None:
        """Checked when made, so a bad option fails before a run does any work."""
        if self.prompt_mode not in PROMPT_MODES:
            raise BenchError(f"--prompts {self.prompt_mode!r}: use {' or '.join(PROMPT_MODES)}")
        if not isinstance(self.n_resamples, int) or not 1 <= self.n_resamples <= MAX_RESAMPLES:
            raise BenchError(
                f"--resamples {self.n_resamples!r}: use a whole number from 1 to "
                f"{MAX_RESAMPLES:_} (default 10_000)"
            )
        if not 0.0 < self.confidence < 1.0:
            raise BenchError(f"--confidence {self.confidence!r}: use a number between 0 and 1")
        if self.ci_method not in CI_METHODS:
            raise BenchError(f"--ci-method {self.ci_method!r}: use {', '.join(CI_METHODS)}")

    def bootstrap_kwargs(self) -> dict:
        """The keywords of `bootstrap_interval` and `paired_comparison`."""
        return {
            "prompt_mode": self.prompt_mode,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "method": self.ci_method,
            "seed": self.seed,
        }
