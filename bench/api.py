"""bench as a library: everything the `bench` command does, as functions.

    import bench

    result = bench.run("dreambooth_lora", "smoke", options={"rank": 8})
    result.intervals["clip_i"]                       # mean and 95% interval
    other = bench.run("textual_inversion", "smoke")
    for c in bench.compare([result.run_dir, other.run_dir]):
        print(c.metric, c.result.diff, c.result.low, c.result.high, c.result.p_holm)
    bench.leaderboard(out="leaderboard/LEADERBOARD.md")

Runs live in a store (`runs`: a folder; default `$BENCH_RUNS` or `./runs`). A run is referred to
by its id, its directory, or the `RunResults` that `load_run` returns. Every statistic takes one
`StatsOptions`. Long operations report progress to a `bench.progress.Reporter` (default: none).
The CLI (`bench.cli`) is a thin layer over these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analysis.options import StatsOptions
from bench.analysis.results import RunResults, load_results
from bench.analysis.stats import Interval
from bench.data.subjects import check_photos
from bench.data.suites import Suite
from bench.errors import BenchError, MissingModel, MissingModels, raise_missing
from bench.paths import runs_dir
from bench.progress import Reporter, Silent
from bench.store.records import DEFAULT_CONVENTION

RunRef = str | Path | RunResults


@dataclass(frozen=True)
class RunResult:
    """What `run` did, and the run's scores when it scored them."""

    run_id: str
    run_dir: Path
    fitted: int  # units trained by this call
    generated: int  # images written by this call
    skipped_units: int  # units that were already complete
    scored_units: int = 0  # units scored by this call
    results: RunResults | None = None  # per-image scores (None with score=False)
    intervals: dict[str, Interval] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPlan:
    """What `run` would do (`bench run --dry-run`)."""

    run_id: str
    run_dir: Path
    suite: Suite
    cells: int
    units_total: int
    units_pending: int


# --------------------------------------------------------------------------- loading


def load_suite(
    suite: str | Path = "smoke",
    *,
    data_root: str | Path | None = None,
    backbone: str | None = None,
    subjects: list[str] | None = None,
    prompt_file: str | Path | None = None,
    replicates: list[int] | None = None,
) -> Suite:
    """A shipped suite by name, or a suite file; optionally on another backbone, on your own
    subjects (`bench subjects add`), with your own prompts, or with other fit seeds
    (`replicates`)."""
    from bench.data import suites

    return suites.load_suite(
        suite,
        data_root=Path(data_root) if data_root else None,
        backbone=backbone,
        subjects=subjects or None,
        prompt_file=Path(prompt_file) if prompt_file else None,
        replicates=replicates,
    )


def load_run(
    run: RunRef,
    *,
    runs: str | Path | None = None,
    checkpoint: int | None = None,
    convention: str | None = None,
) -> RunResults:
    """A run's per-image scores (of its final adapters, or of the checkpoint at that step) under
    a convention (`bench.scorers.conventions`; default: the DreamBooth paper's)."""
    if isinstance(run, RunResults):
        if checkpoint is None and convention in (None, run.convention):
            return run
        return load_results(run.root, checkpoint, convention)
    from bench.store.layout import find_run

    return load_results(find_run(runs_dir(runs), str(run)), checkpoint, convention)


def load_scorers(
    suite: Suite,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    device: str = "auto",
    convention: str | None = None,
) -> list:
    """The suite's scorers under a convention, with its `[scorer_options]` overridden by
    `scorer_options` ({"clip": {"pretrained": "/w.safetensors"}}: `clip` sets clip_i and
    clip_t)."""
    from bench.scorers.scoring import load_suite_scorers

    return load_suite_scorers(suite, scorer_options, device, convention)


def _suite(suite: str | Path | Suite) -> Suite:
    return suite if isinstance(suite, Suite) else load_suite(suite)


# --------------------------------------------------------------------------- running


def plan(
    method: str | type | Any,
    suite: str | Path | Suite = "smoke",
    *,
    options: dict[str, Any] | None = None,
    runs: str | Path | None = None,
) -> RunPlan:
    """Resolve a run without running it: its id, directory, and how much is left to do."""
    from bench.data.plan import plan as plan_cells
    from bench.store.runner import prepare

    loaded = _suite(suite)
    prepared = prepare(method, loaded, options or {}, runs_dir(runs))
    return RunPlan(
        prepared.run_id,
        prepared.paths.root,
        loaded,
        len(plan_cells(loaded)),
        len(prepared.units()),
        len(prepared.pending_units()),
    )


def run(
    method: str | type | Any,
    suite: str | Path | Suite = "smoke",
    *,
    options: dict[str, Any] | None = None,
    runs: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    generation_batch_size: int = 8,
    pack: int | None = None,
    score: bool = True,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
    reporter: Reporter | None = None,
    shard: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    ray_gpus: float | None = None,
    ray_cpus: float = 1.0,
) -> RunResult:
    """Fit `method` on every subject of `suite`, generate its images, score them (under
    `convention`) and store them.

    `method` is a registered name or a method class or instance; `options` override its
    defaults (after the suite's). Finished work is skipped, so a call resumes an interrupted run.
    Processes that run the same run at once share its units. `shard="I/N"` does only the units
    at positions I, I + N, ... (a Slurm array task's share) and scores them, without the run's
    summary; a call without it afterwards finishes and summarizes the run.
    `executor="ray"` does the units as Ray tasks (`bench.tools.ray_executor`; `ray_address` of a
    running cluster, else a local one; `ray_gpus` and `ray_cpus` per task).
    """
    from bench.diffusion.backbone import check_available
    from bench.scorers.scoring import UnitScoring
    from bench.store.runner import ExecutionOptions, Shard, execute, prepare

    loaded = _suite(suite)
    execution = ExecutionOptions(device, dtype, generation_batch_size, pack)
    part = Shard.parse(shard) if shard is not None else None
    if executor not in ("local", "ray"):
        raise BenchError(f"--executor {executor!r}: use local or ray")
    if executor == "ray":
        from bench.tools.ray_executor import RayOptions, import_ray

        if part is not None:
            raise BenchError("--shard and --executor ray: give one (Ray spreads the units itself)")
        ray_options = RayOptions(ray_address, ray_gpus, ray_cpus)
        import_ray()  # a missing extra is said before any work
    check_photos(loaded.subjects)  # before any model loads or file is written
    prepared = prepare(method, loaded, options or {}, runs_dir(runs))
    # Every model is checked before any work, and one error names all that are missing.
    missing: list[MissingModel] = []
    work_left = prepared.pending_units(part) or not prepared.paths.run_json.exists()
    if not prepared.is_reference and work_left:
        try:
            check_available(loaded.backbone, loaded.backbone_revision)
        except MissingModel as e:
            missing.append(e)
    scorers = None
    if score and loaded.scorers:
        try:
            scorers = load_scorers(loaded, scorer_options, device, convention)
        except MissingModels as e:
            missing += e.errors
        except MissingModel as e:
            missing.append(e)
    raise_missing(missing)
    if executor == "ray":
        from bench.tools.ray_executor import run_on_ray

        units, pending = len(prepared.units()), len(prepared.pending_units())
        scoring = (loaded, scorer_options, convention) if scorers else None
        done = run_on_ray(prepared, execution, scoring, ray_options, reporter)
        result = RunResult(
            prepared.run_id,
            prepared.paths.root,
            done.fitted,
            done.generated,
            units - pending,
            scored_units=done.scored,
        )
    else:
        scoring = UnitScoring(scorers, prepared.paths.root) if scorers else None
        summary = execute(prepared, execution, reporter, part, scoring)
        result = RunResult(
            summary.run_id,
            summary.run_dir,
            summary.fitted,
            summary.generated,
            summary.skipped_units,
            scored_units=scoring.scored if scoring else 0,
        )
    if scorers is None or part is not None:
        return result
    return _scored(result, scorers, stats, reporter)


def _scored(result: RunResult, scorers, stats: StatsOptions, reporter) -> RunResult:
    """`result` with its run scored by `scorers` (a ScorerSet: one convention) and summarized."""
    from dataclasses import replace

    from bench.scorers.scoring import score_run

    scored = result.scored_units + score_run(result.run_dir, scorers, reporter)
    results = load_results(result.run_dir, convention=scorers.convention.name)
    return replace(
        result, scored_units=scored, results=results, intervals=summarize(results, stats=stats)
    )


def score(
    run: RunRef,
    suite: str | Path | Suite | None = None,
    *,
    runs: str | Path | None = None,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    device: str = "auto",
    convention: str | None = None,
    reporter: Reporter | None = None,
) -> int:
    """Score the units of a stored run that lack scores from the suite's scorers (with these
    options) under `convention`, from the stored images: nothing is generated. Returns how many
    units were scored. `suite` defaults to the shipped suite the run names."""
    from bench.scorers.scoring import score_run
    from bench.store.layout import RunPaths, find_run
    from bench.store.records import RunRecord

    root = run.root if isinstance(run, RunResults) else find_run(runs_dir(runs), str(run))
    if suite is None:
        suite = RunRecord.read(RunPaths(root).run_json).suite["name"]
    scorers = load_scorers(_suite(suite), scorer_options, device, convention)
    return score_run(root, scorers, reporter)


def rescore(
    run: RunRef,
    *,
    suite: str | Path | Suite | None = None,
    runs: str | Path | None = None,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    device: str = "auto",
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
    reporter: Reporter | None = None,
) -> RunResult:
    """`score` a stored run's images (under `convention`; nothing is generated), then load and
    summarize its scores under that convention, as `run` returns them."""
    from dataclasses import replace

    scored = score(
        run,
        suite,
        runs=runs,
        scorer_options=scorer_options,
        device=device,
        convention=convention,
        reporter=reporter,
    )
    results = load_run(run, runs=runs, convention=convention or DEFAULT_CONVENTION)
    result = RunResult(results.run_id, results.root, 0, 0, 0, scored_units=scored)
    return replace(result, results=results, intervals=summarize(results, stats=stats))


def import_images(
    images: str | Path,
    *,
    manifest: str | Path | None = None,
    suite: str | Path | Suite = "smoke",
    name: str = "external",
    runs: str | Path | None = None,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    device: str = "auto",
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
    reporter: Reporter | None = None,
) -> RunResult:
    """Bring images made by an outside tool into the store as a run named `NAME-<hash>`, and
    score it. The manifest (CSV or JSONL: image, subject, prompt, image_index[, replicate];
    default: manifest.csv or manifest.jsonl in `images`) is checked whole before anything is
    written."""
    from bench.store.external import import_run

    images = Path(images)
    if manifest is None:
        found = [images / f for f in ("manifest.csv", "manifest.jsonl") if (images / f).is_file()]
        if not found:
            raise BenchError(f"{images}: no manifest.csv or manifest.jsonl; pass --manifest FILE")
        manifest = found[0]
    if not name.replace("_", "").replace("-", "").isalnum():
        raise BenchError(f"--name {name!r}: use letters, digits, '_' or '-'")
    loaded = _suite(suite)
    check_photos(loaded.subjects)  # the scorers' references, before anything is written
    scorers = load_scorers(loaded, scorer_options, device, convention)
    run_dir = import_run(loaded, Path(manifest), images, name, runs_dir(runs))
    result = RunResult(run_dir.name, run_dir, 0, 0, 0)
    return _scored(result, scorers, stats, reporter)


# --------------------------------------------------------------------------- analysis


def summarize(
    run: RunRef,
    *,
    runs: str | Path | None = None,
    checkpoint: int | None = None,
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
) -> dict[str, Interval]:
    """One mean and interval per metric: the mean over subjects of the mean over prompts of the
    mean over images, with a subject-clustered bootstrap interval (bench.analysis.stats)."""
    from bench.analysis.results import summarize as summarize_results

    results = load_run(run, runs=runs, checkpoint=checkpoint, convention=convention)
    return summarize_results(results, stats)


def compare(
    runs_to_compare: list[RunRef],
    *,
    runs: str | Path | None = None,
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
) -> list:
    """Paired differences between runs of one suite, image by image, for every pair and metric,
    with intervals, p-values and Holm-adjusted p-values (`bench.analysis.compare`'s
    `MetricComparison`)."""
    from bench.analysis.compare import compare as compare_results

    loaded = [load_run(r, runs=runs, convention=convention) for r in runs_to_compare]
    return compare_results(loaded, stats)


def leaderboard(
    *,
    runs: str | Path | None = None,
    out: str | Path | None = Path("leaderboard/LEADERBOARD.md"),
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
) -> str:
    """The markdown leaderboard of every scored run in the store, with published rows, one
    section per scoring convention (or only `convention`); written to `out` unless it is None.
    Returns the text."""
    from bench import atomic
    from bench.reports.leaderboard import page

    out_dir = Path(out).parent if out is not None else Path("leaderboard")
    text = page(runs_dir(runs), out_dir, convention, stats)
    if out is not None:
        atomic.write_text(out, text)
    return text


def report(
    run_refs: list[RunRef] | None = None,
    *,
    runs: str | Path | None = None,
    out: str | Path = Path("report"),
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
    world_report: str | Path | None = None,
    replicates: list[int] | None = None,
    images_per_prompt: int | None = None,
):
    """Write the static HTML site of these runs (default: every scored run of the store) into
    `out` (`bench.reports.site`): the leaderboard, and per subject its photos and every run's
    images, aligned by cell. `replicates` and `images_per_prompt` limit the image grids to
    those fit seeds and the first images of each prompt. Returns a `SiteReport` (pages,
    images, thumbnails made and reused, seconds)."""
    from bench.reports.leaderboard import scored_runs
    from bench.reports.site import write_site
    from bench.scorers.conventions import get_convention

    name = get_convention(convention).name
    store = runs_dir(runs)
    if run_refs:
        loaded = [load_run(ref, runs=store, convention=name) for ref in run_refs]
    else:
        loaded = scored_runs(store, name)
    return write_site(
        loaded,
        Path(out),
        runs_root=store,
        stats=stats,
        world_report=Path(world_report) if world_report else None,
        replicates=replicates,
        images_per_prompt=images_per_prompt,
    )


def make_study(
    run_refs: list[RunRef],
    *,
    runs: str | Path | None = None,
    out: str | Path = Path("study"),
    per_rater: int = 25,
    checks_per_rater: int | None = None,
    pairs: int = 300,
    seed: int = 0,
):
    """Write a static page for a pairwise human study of these runs (`bench.study.make`) into
    `out`, and the study into the store (`<runs>/studies/<id>/study.json`). Returns the Study."""
    from bench.study.make import make_study as make

    store = runs_dir(runs)
    loaded = [load_run(ref, runs=store) for ref in run_refs]
    return make(
        loaded,
        Path(out),
        store,
        per_rater=per_rater,
        checks_per_rater=checks_per_rater,
        pairs=pairs,
        seed=seed,
    )


def import_study_answers(
    files: list[str | Path],
    *,
    runs: str | Path | None = None,
    stats: StatsOptions = StatsOptions(),
):
    """Store raters' answer files in their studies (all or none), then analyse each study
    they belong to over all its stored answers (`bench.study.analysis`): a list of
    StudyResults."""
    from bench.study.analysis import analyse, import_answers, stored_answers
    from bench.study.make import study_dir

    store = runs_dir(runs)
    studies = import_answers([Path(f) for f in files], store)
    return [analyse(s, stored_answers(study_dir(store, s.study_id), s), stats) for s in studies]


# --------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class SweepResult:
    sweep_dir: Path
    runs: list[tuple[dict[str, Any], str]]  # (the cell's options, its run id)
    fitted: int = 0
    generated: int = 0
    report: dict[str, Any] | None = None  # sweep.json's content (None for a dry run)


def sweep(
    method: str | None = None,
    suite: str | Path | Suite = "smoke",
    *,
    grid: dict[str, list] | None = None,
    options: dict[str, Any] | None = None,
    preset: str | None = None,
    sweep_file: str | Path | None = None,
    checkpoints: int | None = None,
    runs: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    generation_batch_size: int = 8,
    pack: int | None = None,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    convention: str | None = None,
    stats: StatsOptions = StatsOptions(),
    dry_run: bool = False,
    reporter: Reporter | None = None,
) -> SweepResult:
    """A grid of runs (the product of `grid`'s values, over `options`), each an ordinary run in
    the store, scored under `convention`, then tables and plots in `<runs>/<suite>/sweep-<id>/`.
    A preset or sweep file gives method, options, grids and checkpoints; arguments add to or
    override them."""
    from dataclasses import replace

    from bench.scorers.conventions import get_convention
    from bench.scorers.scoring import score_run
    from bench.store.runner import ExecutionOptions, execute
    from bench.tools.sweep import SweepSpec, load_spec, plan_sweep, preset_path, report, sweep_id

    if preset and sweep_file:
        raise BenchError("give --preset or --sweep-file, not both")
    spec = SweepSpec(method="", base={}, grids=[])
    if preset or sweep_file:
        spec = load_spec(preset_path(preset) if preset else Path(sweep_file))
    extra = grid or {}
    spec = replace(
        spec,
        method=method or spec.method,
        base={**spec.base, **(options or {})},
        grids=[{**g, **extra} for g in spec.grids] or [extra],
        checkpoints=spec.checkpoints if checkpoints is None else checkpoints,
    )
    if not spec.method:
        raise BenchError("no method: pass --method NAME (or a sweep file that names one)")
    if not any(spec.grids[0].values()) and len(spec.grids) == 1:
        raise BenchError("empty grid: pass --grid OPTION=v1,v2 (or --preset / --sweep-file)")
    convention = get_convention(convention).name
    loaded = _suite(suite)
    root = runs_dir(runs)
    planned = plan_sweep(spec, loaded, root)
    run_ids = [p.run_id for _, p in planned]
    sweep_dir = root / loaded.name / sweep_id(spec.method, loaded.name, run_ids, convention)
    cells = [(o, p.run_id) for o, p in planned]
    if dry_run:
        return SweepResult(sweep_dir, cells)
    check_photos(loaded.subjects)  # before any model loads or file is written
    progress = reporter or Silent()
    scorers = load_scorers(loaded, scorer_options, device, convention)
    execution = ExecutionOptions(device, dtype, generation_batch_size, pack)
    fitted = generated = 0
    for i, (_, prepared) in enumerate(planned, 1):
        progress.message(f"sweep run {i}/{len(planned)} {prepared.run_id}")
        summary = execute(prepared, execution, progress)
        score_run(summary.run_dir, scorers, progress)
        fitted += summary.fitted
        generated += summary.generated
    title = f"Sweep of {spec.method} on {loaded.name}" + (f" ({spec.name})" if spec.name else "")
    cells_done = [(o, p.paths.root) for o, p in planned]
    data = report(spec, cells_done, sweep_dir, title, stats, convention)
    return SweepResult(sweep_dir, cells, fitted, generated, data)
