"""What every command shares: the consoles, the one-line error handler, the progress bars, and
the option declarations, so an option means and reads the same in every command."""

from __future__ import annotations

import errno
import functools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from bench.errors import BenchError, os_error_of

if TYPE_CHECKING:
    from bench.analysis.options import StatsOptions

# Piped output (logs, CI) gets wide tables instead of 80 columns of wrapped cells.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def handles_errors(command):
    """A BenchError becomes one line on stderr and exit code 2. The message is printed as plain
    text: a path or value with [brackets] is not read as markup."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BenchError as e:
            _error_line(str(e))
            raise typer.Exit(2) from None
        except OSError as e:  # a full disk, a read-only store, a missing permission
            _error_line(os_error_message(e))
            raise typer.Exit(2) from None
        except Exception as e:  # a library's failed write, in its own error type
            system = os_error_of(e)
            if system is None:
                raise
            _error_line(os_error_message(system))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _error_line(
                "interrupted; what was finished is kept: run the same command again to go on"
            )
            raise typer.Exit(130) from None

    return wrapper


def _error_line(message: str) -> None:
    message = " ".join(message.split())  # one line, whatever the message held
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


FIXES = {
    errno.ENOSPC: "free some space, or point --runs (or BENCH_CACHE) at another disk",
    errno.EDQUOT: "free some space, or point --runs (or BENCH_CACHE) at another disk",
    errno.EFBIG: "a file would pass the size limit (`ulimit -f`) or the file system's largest; "
    "raise the limit, or point --runs (or BENCH_CACHE) at another disk",
    errno.EROFS: "the file system is read-only; point --runs at a writable folder",
    errno.EACCES: "check the folder's permissions, or point --runs at a folder you can write",
    errno.EPERM: "check the folder's permissions, or point --runs at a folder you can write",
}


def os_error_message(e: OSError) -> str:
    """One line for a failed read or write: the file, what the system said, and the fix."""
    where = f"{e.filename}: " if e.filename else ""
    fix = FIXES.get(e.errno, "check the path and run the same command again")
    return f"{where}{e.strerror or e}; {fix}"


class _RichTask:
    def __init__(self, progress: Progress, task_id) -> None:
        self.progress, self.id = progress, task_id

    def advance(self, steps: int = 1, info: str = "") -> None:
        self.progress.update(self.id, advance=steps, info=info)

    def finish(self) -> None:
        task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self.id)]
        if task.total is None:
            self.progress.update(self.id, total=task.completed)
        else:
            self.progress.update(self.id, completed=task.total)


class RichReporter:
    """Progress bars on stderr for the library's `bench.progress.Reporter` protocol."""

    def __init__(self, console: Console = err) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )

    def __enter__(self) -> RichReporter:
        return self  # the display starts with the first bar: an early error prints alone

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:  # the error is the one line left on the screen
            self.progress.live.transient = True
        if self.progress.live.is_started:
            self.progress.stop()

    def task(self, label: str, total: int | None) -> _RichTask:
        if not self.progress.live.is_started:
            self.progress.start()
        return _RichTask(self.progress, self.progress.add_task(label, total=total, info=""))

    def message(self, text: str) -> None:
        self.progress.console.print(Text(text, style="bold"))


class _LineTask:
    def __init__(self, reporter: LineReporter, label: str, total: int | None) -> None:
        self.reporter, self.label, self.total = reporter, label, total
        self.done, self.info, self.spoke = 0, "", False
        self.started = self.last = reporter.clock()

    def advance(self, steps: int = 1, info: str = "") -> None:
        self.done += steps
        self.info = info or self.info
        now = self.reporter.clock()
        if now - self.last >= self.reporter.every:
            self.last, self.spoke = now, True
            self.reporter.line(f"{self.label}: {self._count()}{self._took(now)}{self._info()}")

    def finish(self) -> None:
        now = self.reporter.clock()
        if self.spoke or now - self.started >= self.reporter.every:
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            self.reporter.line(f"{self.label}: done, {count}{self._took(now)}{self._info()}")

    def _count(self) -> str:
        if not self.total:
            return str(self.done)
        return f"{self.done}/{self.total} ({100 * self.done // self.total}%)"

    def _took(self, now: float) -> str:
        return f" in {_duration(now - self.started)}"

    def _info(self) -> str:
        return f", {self.info}" if self.info else ""


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


PROGRESS_SECONDS = "BENCH_PROGRESS_SECONDS"  # seconds between progress lines in a log


class LineReporter:
    """Progress as plain lines on stderr, for a log (a batch job, CI, `2> log`), where rich
    draws no bars and a long run would otherwise say nothing until it ends. A stage speaks once
    it has run `every` seconds (default: $BENCH_PROGRESS_SECONDS, else 30), then at most once
    per `every` seconds as it advances, and when it ends; a quicker stage says nothing, so a
    log is not a list of finished trifles and a quick failure is its one error line."""

    def __init__(
        self, console: Console = err, every: float | None = None, clock=time.monotonic
    ) -> None:
        self.console, self.clock = console, clock
        self.every = progress_seconds() if every is None else every

    def __enter__(self) -> LineReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def task(self, label: str, total: int | None) -> _LineTask:
        return _LineTask(self, label, total)

    def message(self, text: str) -> None:
        self.line(text)

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, emoji=False, soft_wrap=True)


def progress_seconds() -> float:
    text = os.environ.get(PROGRESS_SECONDS, "30")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise BenchError(f"{PROGRESS_SECONDS}={text!r}: use a number of seconds >= 0")
    return seconds


def progress_reporter() -> RichReporter | LineReporter:
    """Bars on a terminal, lines in a log. Asked of stderr itself: rich also calls a log a
    terminal where FORCE_COLOR is set, as it often is in CI, and would draw bars into it."""
    return RichReporter() if sys.stderr.isatty() else LineReporter()


def scorer_table(assignments: list[str] | None) -> dict[str, dict[str, Any]]:
    from bench.scorers.scoring import parse_scorer_options

    return parse_scorer_options(assignments or [])


def stats_options(
    prompts: str, resamples: int, ci_method: str, confidence: float, seed: int
) -> StatsOptions:
    """A command's statistics options as one value, made once and passed whole."""
    from bench.analysis.options import StatsOptions

    return StatsOptions(
        prompt_mode=prompts,
        n_resamples=resamples,
        confidence=confidence,
        ci_method=ci_method,
        seed=seed,
    )


# --------------------------------------------------------------------------- options

RunsOption = Annotated[
    Path | None, typer.Option("--runs", help="Run store (default $BENCH_RUNS or ./runs).")
]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="DreamBench folder (default $BENCH_DREAMBENCH_ROOT)."),
]
SuiteOption = Annotated[str, typer.Option("--suite", "-s", help="Suite name or .toml path.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DtypeOption = Annotated[
    str,
    typer.Option(
        help="auto (bf16 on a CUDA GPU that has it, else fp16; fp32 on CPU), float32, float16 or "
        "bfloat16."
    ),
]
GenerationBatchSizeOption = Annotated[
    int,
    typer.Option(
        "--generation-batch-size",
        "--batch-size",
        help="Images per generation batch (recorded in the manifests, not in the run id; "
        "--batch-size is its short name).",
    ),
]
PackOption = Annotated[
    int | None,
    typer.Option(
        "--pack",
        min=1,
        help="Units fitted together in one loop by a method that fits packed (recorded in the "
        "manifests, not in the run id; --pack 1 fits one at a time). Default: 12 on a CPU, 8 on "
        "a GPU, halved while it does not fit.",
    ),
]
BackboneOption = Annotated[
    str | None,
    typer.Option(
        help="Override the suite's backbone: a hub id or local dir, or a built-in one: "
        "`world` (the toy world's, the smoke suite's), `tiny` or `sd15-random`."
    ),
]
SubjectsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--subject",
        help="A user subject (`bench subjects add`) in place of the suite's subjects; repeatable.",
    ),
]
PromptFileOption = Annotated[
    Path | None,
    typer.Option(
        "--prompt-file",
        help='A prompt-set TOML ([[prompt]] template = "a {token} {class} ...") in place '
        "of the suite's prompts.",
    ),
]
ReplicatesOption = Annotated[
    str | None,
    typer.Option(
        "--replicates",
        help="Fit seeds in place of the suite's, comma-separated (0,1,2): each subject is "
        "fitted and rendered once per seed, and intervals resample subjects with their seeds.",
    ),
]


def parse_replicates(text: str | None) -> list[int] | None:
    """ "0,1,2" -> [0, 1, 2]; a bad list is a one-line error."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise BenchError(
            f"--replicates {text!r}: give whole numbers separated by commas, e.g. 0,1,2"
        ) from None


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Method option as key=value (TOML literal); repeatable."),
]
ScorerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scorer-option",
        help="SCORER.OPTION=VALUE, e.g. clip.pretrained=FILE "
        "(`clip` sets clip_i and clip_t); repeatable.",
    ),
]
PromptsOption = Annotated[
    str,
    typer.Option(
        "--prompts",
        help="fixed: the prompt set defines the benchmark (default); "
        "random: prompts are a sample too.",
    ),
]
ResamplesOption = Annotated[int, typer.Option("--resamples", help="Bootstrap resamples.")]
CIMethodOption = Annotated[
    str,
    typer.Option(
        "--ci-method",
        help="auto (the studentized bootstrap), studentized, percentile or bca; "
        "no interval below 5 subjects.",
    ),
]
ConfidenceOption = Annotated[
    float, typer.Option("--confidence", help="Confidence level of every interval (0 to 1).")
]
BootstrapSeedOption = Annotated[
    int, typer.Option("--bootstrap-seed", help="Seed of the bootstrap resamples.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ConventionOption = Annotated[
    str | None,
    typer.Option(
        "--convention",
        help="How scores are defined: dreambooth (default: raw cosines, CLIP ViT-B/32, DINO "
        "ViT-S/16), dreambench-plus (x100, DINO ViT-S/8, DINOv2-small) or cc101 (CLIP-T = "
        "2.5 x max(cos, 0)).",
    ),
]
