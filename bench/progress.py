"""Progress reporting: the library says what it is doing; the caller decides how to show it.

Long operations (fitting, generating, scoring, sweeping) take a `Reporter` and open one task per
stage. The default, `Silent`, shows nothing, which is what a notebook or a test wants; the CLI
passes `bench.cli.common.progress_reporter()`: rich progress bars on a terminal, plain lines in
a log.
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, steps: int = 1, info: str = "") -> None:
        """`steps` more units of work done; `info` is a short status (e.g. "loss 0.1234")."""

    def finish(self) -> None:
        """The stage is over (mark it complete, whatever its count)."""


class Reporter(Protocol):
    def task(self, label: str, total: int | None) -> Task:
        """Open a stage of `total` units (None: unknown)."""

    def message(self, text: str) -> None:
        """A line of narration between stages ("sweep run 2/4 ...")."""


class _SilentTask:
    def advance(self, steps: int = 1, info: str = "") -> None:
        pass

    def finish(self) -> None:
        pass


class Silent:
    """Reports nothing."""

    def task(self, label: str, total: int | None) -> Task:
        return _SilentTask()

    def message(self, text: str) -> None:
        pass
