"""`bench run`: fit a method on every (subject, replicate) of a suite, generate every cell, and
store it all. Finished work is skipped, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bench import atomic, registry
from bench.config import config_dict, resolve_config
from bench.data.plan import batches, cells_for, initial_latents
from bench.data.suites import Suite
from bench.errors import BenchError, os_error_of
from bench.methods.limits import MAX_BATCH
from bench.methods.protocol import MethodContext, capabilities
from bench.paths import cache_dir
from bench.progress import Reporter, Silent
from bench.realness import REAL
from bench.store.integrity import is_whole, unit_problem
from bench.store.layout import RunPaths, provenance, run_id, subject_record
from bench.store.lock import STAGING, run_lock
from bench.store.records import FitLog, ImageEntry, RunRecord, UnitManifest


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run, not what: none of these enters the run id."""

    device: str = "auto"
    dtype: str = "auto"
    generation_batch_size: int = 8  # images per generation batch (RunRecord's too)

    def __post_init__(self) -> None:
        from bench.diffusion.backbone import check_device_name, check_dtype_name

        check_device_name(self.device)
        check_dtype_name(self.dtype)
        if not 1 <= self.generation_batch_size <= MAX_BATCH:
            raise BenchError(
                f"--generation-batch-size must be >= 1 and <= {MAX_BATCH}, got "
                f"{self.generation_batch_size}"
            )


@dataclass(frozen=True)
class PreparedRun:
    method_name: str
    method: Any
    config: Any
    suite: Suite
    run_id: str
    paths: RunPaths

    @property
    def is_reference(self) -> bool:
        """A reference method (`real`) stores the subject's own photos instead of generating."""
        return capabilities(self.method).is_reference

    def units(self) -> list[tuple[Any, int]]:
        # The photos do not change with the replicate seed: a reference method has one unit each.
        replicates = self.suite.replicates[:1] if self.is_reference else self.suite.replicates
        return [(s, r) for s in self.suite.subjects for r in replicates]

    def pending_units(self) -> list[tuple[Any, int]]:
        """Units not finished, or finished but damaged (they are redone)."""
        return [(s, r) for s, r in self.units() if not is_whole(self.paths.unit(s.id, r))]


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    run_dir: Path
    fitted: int  # units trained in this invocation
    generated: int  # images written in this invocation
    skipped_units: int  # units already complete


def prepare(
    method: str | type | Any, suite: Suite, overrides: dict[str, Any], runs_root: Path
) -> PreparedRun:
    """Resolve the method and its config, and name the run; loads no model.

    `method` is a registered name, or a method class or instance (a notebook's own method); a
    class or instance is known by its `name` attribute, which enters the run id.
    """
    if isinstance(method, str):
        instance = registry.load(registry.METHODS, method)()
    else:
        instance = method() if isinstance(method, type) else method
    name = method if isinstance(method, str) else getattr(instance, "name", None)
    if not isinstance(name, str) or not name:
        raise BenchError(f"method {method!r} has no `name` attribute: give it one")
    defaults = suite.method_defaults.get(name, {})
    config = resolve_config(instance.Config, defaults, overrides, where=f"method {name}")
    rid = run_id(name, config_dict(config), suite.identity())
    return PreparedRun(name, instance, config, suite, rid, RunPaths(runs_root / suite.name / rid))


def execute(
    prepared: PreparedRun, options: ExecutionOptions, reporter: Reporter | None = None
) -> RunSummary:
    from bench.diffusion.backbone import load_backbone

    progress = reporter or Silent()
    suite, paths = prepared.suite, prepared.paths
    units = prepared.units()
    pending = prepared.pending_units()
    if pending and paths.run_json.exists() and not prepared.is_reference:
        _check_batch_size(prepared, options)
    backbone = None
    if (pending or not paths.run_json.exists()) and not prepared.is_reference:
        backbone = load_backbone(
            suite.backbone,
            revision=suite.backbone_revision,
            scheduler=suite.generation.scheduler,
            device=options.device,
            dtype=options.dtype,
        )
    if not pending and paths.run_json.exists():
        return RunSummary(prepared.run_id, paths.root, 0, 0, len(units))
    if backbone is not None:  # options that cannot work on this backbone fail before any write
        check = getattr(prepared.method, "check", None)
        if check is not None:
            check(prepared.config, backbone, [s for s, _ in pending])
    with run_lock(paths.root):
        if not paths.run_json.exists():
            _run_record(prepared, options, backbone).write(paths.run_json)
        # Another process may have finished units while this one loaded the backbone.
        pending = prepared.pending_units()
        if prepared.is_reference:
            for subject, replicate in pending:
                _store_references(prepared, subject, replicate)
            return RunSummary(prepared.run_id, paths.root, 0, 0, len(units) - len(pending))
        fitted, generated = _execute_units(prepared, pending, options, backbone, progress)
    return RunSummary(prepared.run_id, paths.root, fitted, generated, len(units) - len(pending))


def _execute_units(prepared, pending, options, backbone, progress) -> tuple[int, int]:
    """Fit, generate and record each pending unit; returns (units fitted, images written)."""
    suite, paths = prepared.suite, prepared.paths
    fitted = generated = 0
    for subject, replicate in pending:
        unit = paths.unit(subject.id, replicate)
        _redo_if_damaged(unit, progress)
        ctx = MethodContext(
            backbone=backbone,
            suite=suite,
            subject=subject,
            config=prepared.config,
            replicate=replicate,
            workdir=unit,
            cache=cache_dir(),
        )
        label = f"{subject.id}/replicate-{replicate}"
        fit_seconds = None
        if not _readable_fit_log(unit):
            fit_seconds = _fit(prepared, ctx, progress, label)
            fitted += 1
        cells = cells_for(suite, subject, replicate)
        started = time.perf_counter()
        try:
            generated += _generate(prepared, ctx, cells, options, progress, f"generate {label}")
            # Intermediate adapters the method kept (checkpoint_every): the same cells again.
            for checkpoint in FitLog.read(RunPaths.fit_log(unit)).checkpoints:
                ck_ctx = dataclasses.replace(ctx, workdir=unit / checkpoint["path"])
                if is_whole(ck_ctx.workdir):
                    continue
                _redo_if_damaged(ck_ctx.workdir, progress)
                ck_started = time.perf_counter()
                generated += _generate(
                    prepared, ck_ctx, cells, options, progress, f"  step {checkpoint['step']}"
                )
                _write_manifest(
                    prepared,
                    ck_ctx,
                    cells,
                    backbone,
                    options,
                    None,
                    time.perf_counter() - ck_started,
                    checkpoint=checkpoint["step"],
                )
        finally:
            # Even after a failure: the method must not think its adapter is still loaded
            # when the same method object renders again (a resumed run in one process).
            if hasattr(prepared.method, "release"):
                prepared.method.release(ctx)
        _write_manifest(
            prepared, ctx, cells, backbone, options, fit_seconds, time.perf_counter() - started
        )
    return fitted, generated


def _redo_if_damaged(unit: Path, progress: Reporter) -> None:
    """Say so when a finished unit is redone because it is damaged. Its missing images are made
    again and its manifest rewritten; its adapter and remaining images are kept (they would come
    out the same), and its scores are redone if they no longer match the manifest."""
    problem = unit_problem(unit)
    if problem is not None:
        progress.message(f"redoing a damaged unit: {problem}")


def _readable_fit_log(unit: Path) -> bool:
    """fit.json is written last by a fit: when it reads, the fit is complete. A damaged one is
    removed and the unit is fitted again."""
    path = RunPaths.fit_log(unit)
    if not path.exists():
        return False
    try:
        FitLog.read(path)
    except BenchError:
        path.unlink()
        return False
    return True


def _run_record(prepared: PreparedRun, options: ExecutionOptions, backbone) -> RunRecord:
    reference = prepared.is_reference
    return RunRecord(
        run_id=prepared.run_id,
        method=prepared.method_name,
        kind="reference" if reference else "generated",
        config=config_dict(prepared.config),
        method_defaults=_defaults(prepared.config),
        suite=prepared.suite.identity(),
        units_total=len(prepared.units()),
        realness=backbone.realness if backbone else REAL,
        provenance=provenance(),
        generation_batch_size=None if reference else options.generation_batch_size,
    )


def _defaults(config) -> dict[str, Any]:
    """The method's own option defaults (what the leaderboard lists changes against)."""
    try:
        return config_dict(type(config)())
    except (TypeError, ValueError):  # a plugin Config with a required option has none
        return {}


def _check_batch_size(prepared: PreparedRun, options: ExecutionOptions) -> None:
    """A run's images are rendered at one batch size: batched and single matrix products round
    differently and sampling amplifies it, so another size would give other images."""
    recorded = RunRecord.read(prepared.paths.run_json).generation_batch_size
    if recorded is not None and recorded != options.generation_batch_size:
        raise BenchError(
            f"run {prepared.run_id} was generated with --generation-batch-size {recorded}, not "
            f"{options.generation_batch_size}: resume it with --generation-batch-size {recorded} "
            "(another batch size renders different images)"
        )


def _generate(
    prepared: PreparedRun,
    ctx: MethodContext,
    cells,
    options: ExecutionOptions,
    progress: Reporter,
    label: str,
) -> int:
    """Render the cells whose PNG is missing in ctx.workdir/images; returns how many."""
    backbone, suite, written = ctx.backbone, ctx.suite, 0
    task = progress.task(label, total=len(cells))
    for chunk in batches(cells, options.generation_batch_size):
        missing = [c for c in chunk if not (RunPaths.images(ctx.workdir) / c.image_name).exists()]
        if missing:
            # The whole chunk is rendered, so batches match an uninterrupted run.
            latents = initial_latents(
                chunk, backbone.latent_channels, backbone.latent_size(suite.resolution)
            )
            images = prepared.method.generate(ctx, chunk, latents)
            if len(images) != len(chunk):
                raise BenchError(
                    f"method {prepared.method_name} returned {len(images)} "
                    f"images for {len(chunk)} cells"
                )
            for cell, image in zip(chunk, images, strict=True):
                if cell in missing:
                    _write_png(RunPaths.images(ctx.workdir) / cell.image_name, image)
                    written += 1
        task.advance(len(chunk))
    task.finish()
    return written


def _fit(prepared: PreparedRun, ctx: MethodContext, progress: Reporter, label: str) -> float:
    """Fit into a staging folder, then move the artifacts in and write fit.json last."""
    staging = ctx.workdir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    task = progress.task(f"fit {label}", total=getattr(prepared.config, "steps", None))

    def report(advance: int, info: dict[str, float] | None = None) -> None:
        task.advance(advance, "  ".join(f"{k} {v:.4f}" for k, v in (info or {}).items()))

    started = time.perf_counter()
    staged = dataclasses.replace(ctx, workdir=staging, progress=report)
    try:
        log = prepared.method.fit(staged) or {}
    except BaseException as e:  # a failed fit leaves nothing behind; the next run starts afresh
        shutil.rmtree(staging, ignore_errors=True)
        # A library's failed write (safetensors' own error type) names the disk's error and
        # the unit it was writing, as bench's own writes do.
        system = None if isinstance(e, OSError) else os_error_of(e, str(ctx.workdir))
        if system is not None:
            raise system from None
        raise
    seconds = time.perf_counter() - started
    atomic.apply_umask(staging)
    for item in staging.iterdir():
        target = ctx.workdir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()
    if staged.saved_checkpoints:  # bench records them; the method only saved them
        log = {**log, "checkpoints": staged.saved_checkpoints}
    FitLog(log, seconds).write(RunPaths.fit_log(ctx.workdir))
    task.finish()
    return seconds


def _store_references(prepared: PreparedRun, subject, replicate: int) -> None:
    """Copy the subject's photos in as the unit's images, to be scored leave-one-out."""
    unit = prepared.paths.unit(subject.id, replicate)
    entries = []
    for index, photo in enumerate(subject.images):
        name = f"reference-{index}{photo.suffix.lower()}"
        atomic.write_bytes(RunPaths.images(unit) / name, photo.read_bytes())
        entries.append(
            ImageEntry(
                file=f"images/{name}", prompt_id="reference", image_index=index, source=str(photo)
            )
        )
    UnitManifest(
        run_id=prepared.run_id,
        suite=prepared.suite.name,
        method=prepared.method_name,
        subject=subject_record(subject),
        replicate=replicate,
        images=entries,
        provenance=provenance(),
        config=config_dict(prepared.config),
        leave_one_out=True,
    ).write(RunPaths.manifest(unit))


def _method_prompt(method, ctx: MethodContext, cell) -> str:
    """The text the method fed the pipeline, where it says (the optional `prompt` hook)."""
    return method.prompt(ctx, cell) if hasattr(method, "prompt") else cell.text


def _write_png(path: Path, array) -> None:
    with atomic.atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _write_manifest(
    prepared: PreparedRun,
    ctx: MethodContext,
    cells,
    backbone,
    options: ExecutionOptions,
    fit_seconds,
    generate_seconds,
    checkpoint: int | None = None,
) -> None:
    UnitManifest(
        run_id=prepared.run_id,
        suite=prepared.suite.name,
        method=prepared.method_name,
        subject=subject_record(ctx.subject),
        replicate=ctx.replicate,
        images=[
            ImageEntry(
                file=f"images/{c.image_name}",
                prompt_id=c.prompt.id,
                image_index=c.image_index,
                template=c.prompt.template,
                prompt=_method_prompt(prepared.method, ctx, c),
                scoring_prompt=c.scoring_text,
                seed=c.seed,
            )
            for c in cells
        ],
        provenance=provenance(),
        config=config_dict(prepared.config),
        checkpoint=checkpoint,
        backbone=backbone.provenance(),
        generation=vars(prepared.suite.generation),
        resolution=prepared.suite.resolution,
        execution=vars(options),
        timings={"fit_seconds": fit_seconds, "generate_seconds": generate_seconds},
    ).write(RunPaths.manifest(ctx.workdir))
