"""`bench run`: fit a method on every (subject, replicate) of a suite, generate every cell, and
store it all. Finished work is skipped, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bench import atomic, registry
from bench.config import config_dict, resolve_config
from bench.data.plan import batches, cells_for, initial_latents
from bench.data.suites import Suite
from bench.errors import BenchError, os_error_of
from bench.methods.limits import MAX_BATCH, MAX_PACK
from bench.methods.protocol import MethodContext, capabilities
from bench.paths import cache_dir
from bench.progress import Reporter, Silent
from bench.realness import REAL
from bench.store.integrity import is_whole, unit_problem
from bench.store.layout import RunPaths, provenance, run_id, subject_record
from bench.store.lock import CLAIM, STAGING, Claim, claim_unit, holder, run_lock
from bench.store.records import FitLog, ImageEntry, RunRecord, UnitManifest


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run, not what: none of these enters the run id."""

    device: str = "auto"
    dtype: str = "auto"
    generation_batch_size: int = 8  # images per generation batch (RunRecord's too)
    # Units fitted together in one loop by a method that fits packed (`fit_pack`); None: the
    # device's default (DEFAULT_PACK), halved while a pack does not fit in the device's memory.
    pack: int | None = None

    def __post_init__(self) -> None:
        from bench.diffusion.backbone import check_device_name, check_dtype_name

        check_device_name(self.device)
        check_dtype_name(self.dtype)
        if not 1 <= self.generation_batch_size <= MAX_BATCH:
            raise BenchError(
                f"--generation-batch-size must be >= 1 and <= {MAX_BATCH}, got "
                f"{self.generation_batch_size}"
            )
        if self.pack is not None and not 1 <= self.pack <= MAX_PACK:
            raise BenchError(f"--pack must be >= 1 and <= {MAX_PACK}, got {self.pack}")


# The pack size when --pack is not given, by device type. Measured (benchmarks/RESULTS.md): on
# the CPU a pack of 12 fits the world suite about twice as fast as one unit at a time; on a GPU
# a pack fills the card, and an auto-sized pack that does not fit is halved until it does.
DEFAULT_PACK = {"cpu": 12, "cuda": 8}


@dataclass(frozen=True)
class Shard:
    """`--shard I/N`: the units at positions I, I + N, I + 2N, ... of the run's unit list (subjects
    in the suite's order, then replicates), whatever order the shards start in."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
            raise BenchError(f"--shard {text!r}: use I/N with 0 <= I < N, e.g. --shard 0/4")
        return cls(int(index), int(count))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


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

    def units(
        self, shard: Shard | None = None, only: list[tuple[str, int]] | None = None
    ) -> list[tuple[Any, int]]:
        """(subject, replicate) of every unit, or of a shard's, or of those `only` names by
        (subject id, replicate)."""
        # The photos do not change with the replicate seed: a reference method has one unit each.
        replicates = self.suite.replicates[:1] if self.is_reference else self.suite.replicates
        units = [(s, r) for s in self.suite.subjects for r in replicates]
        if shard is not None:
            units = units[shard.index :: shard.count]
        if only is not None:
            units = [(s, r) for s, r in units if (s.id, r) in set(only)]
        return units

    def pending_units(
        self, shard: Shard | None = None, only: list[tuple[str, int]] | None = None
    ) -> list[tuple[Any, int]]:
        """Units not finished, or finished but damaged (they are redone)."""
        return [
            (s, r) for s, r in self.units(shard, only) if not is_whole(self.paths.unit(s.id, r))
        ]


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
    prepared: PreparedRun,
    options: ExecutionOptions,
    reporter: Reporter | None = None,
    shard: Shard | None = None,
    finish_unit: Callable[[Path], None] | None = None,
    only: list[tuple[str, int]] | None = None,
    backbone=None,
) -> RunSummary:
    """Do the run's pending units (or a shard's, or those `only` names) that no other process is
    doing, and wait for those another process holds (lock.py). `finish_unit(unit)` runs on each
    unit this process made whole, while it still holds the unit (scoring it, in `bench.run`).
    `backbone`: the suite's backbone, loaded already (a Ray worker loads it once)."""
    progress = reporter or Silent()
    suite, paths = prepared.suite, prepared.paths
    units = prepared.units(shard, only)
    pending = prepared.pending_units(shard, only)
    if pending and paths.run_json.exists() and not prepared.is_reference:
        _check_batch_size(prepared, options)
    if (pending or not paths.run_json.exists()) and not prepared.is_reference and not backbone:
        backbone = load_suite_backbone(suite, options)
    if not pending and paths.run_json.exists():
        return RunSummary(prepared.run_id, paths.root, 0, 0, len(units))
    if backbone is not None:  # options that cannot work on this backbone fail before any write
        check = getattr(prepared.method, "check", None)
        if check is not None:
            check(prepared.config, backbone, [s for s, _ in pending])
    with run_lock(paths.root, wait=True):  # held only to write the run's record
        if not paths.run_json.exists():
            _run_record(prepared, options, backbone).write(paths.run_json)
    contexts = [_context(prepared, backbone, subject, replicate) for subject, replicate in pending]
    if prepared.is_reference:
        for ctx in contexts:
            with claim_unit(ctx.workdir, wait=True):
                if not is_whole(ctx.workdir):
                    _store_references(prepared, ctx.subject, ctx.replicate)
        return RunSummary(prepared.run_id, paths.root, 0, 0, len(units) - len(pending))
    fitted, generated = _execute_units(prepared, contexts, options, progress, finish_unit)
    return RunSummary(prepared.run_id, paths.root, fitted, generated, len(units) - len(pending))


def load_suite_backbone(suite: Suite, options: ExecutionOptions):
    """The suite's backbone, at its revision and with its sampler, on the options' device."""
    from bench.diffusion.backbone import load_backbone

    return load_backbone(
        suite.backbone,
        revision=suite.backbone_revision,
        scheduler=suite.generation.scheduler,
        device=options.device,
        dtype=options.dtype,
    )


def _execute_units(prepared, contexts, options, progress, finish_unit) -> tuple[int, int]:
    """Claim each unit no other process holds, and fit, generate and finish it: in packs of up
    to --pack units, each pack's units then generated one by one. Then the units another process
    held, once it lets them go: done here if it left them unfinished (it died). Returns (units
    fitted, images written)."""
    if not contexts:  # a shard with no units of its own
        return 0, 0
    size = _pack_size(prepared, options, contexts[0].backbone)
    counts = {"fitted": 0, "generated": 0}
    waiting = []  # units another process held when this one came to them

    def finish(ctx: MethodContext, claim: Claim) -> None:
        counts["generated"] += _generate_unit(prepared, ctx, options, progress)
        if finish_unit is not None:
            finish_unit(ctx.workdir)
        claim.release()

    def fit_and_finish(pack: list[tuple[MethodContext, Claim]]) -> None:
        counts["fitted"] += _fit(
            prepared, [ctx for ctx, _ in pack], progress, halve_if_too_big=options.pack is None
        )
        for ctx, claim in pack:
            finish(ctx, claim)
        pack.clear()

    with contextlib.ExitStack() as held:  # whatever happens, every claim is let go
        pack: list[tuple[MethodContext, Claim]] = []
        for ctx in contexts:
            claim = _claim(ctx, held, progress, wait=False)
            if claim is False:
                waiting.append(ctx)
            elif claim is None:
                continue  # another process finished it meanwhile
            elif _readable_fit_log(ctx.workdir):  # fitted by an earlier, interrupted run
                finish(ctx, claim)
            else:
                pack.append((ctx, claim))
                if len(pack) == size:
                    fit_and_finish(pack)
        if pack:
            fit_and_finish(pack)
        for ctx in waiting:
            if not is_whole(ctx.workdir):
                progress.message(
                    f"waiting for {_label(ctx)}: another bench process holds it "
                    f"({holder(ctx.workdir / CLAIM)})"
                )
            claim = _claim(ctx, held, progress, wait=True)
            if claim is None:
                continue
            if _readable_fit_log(ctx.workdir):
                finish(ctx, claim)
            else:
                fit_and_finish([(ctx, claim)])
    return counts["fitted"], counts["generated"]


def _claim(ctx: MethodContext, held: contextlib.ExitStack, progress, wait: bool):
    """The unit's claim, registered to be let go with `held`; False when another process holds
    it (and not `wait`), None when the unit is whole by the time it is held."""
    claim = claim_unit(ctx.workdir, wait)
    if claim is None:
        return False
    held.callback(claim.release)
    if is_whole(ctx.workdir):
        claim.release()
        return None
    _redo_if_damaged(ctx.workdir, progress)
    return claim


def _context(prepared: PreparedRun, backbone, subject, replicate: int) -> MethodContext:
    return MethodContext(
        backbone=backbone,
        suite=prepared.suite,
        subject=subject,
        config=prepared.config,
        replicate=replicate,
        workdir=prepared.paths.unit(subject.id, replicate),
        cache=cache_dir(),
    )


def _label(ctx: MethodContext) -> str:
    return f"{ctx.subject.id}/replicate-{ctx.replicate}"


def _pack_size(prepared: PreparedRun, options: ExecutionOptions, backbone) -> int:
    """How many units one fit takes: 1 for a method without `fit_pack`."""
    if not capabilities(prepared.method).fits_packed:
        return 1
    if options.pack is not None:
        return options.pack
    return DEFAULT_PACK.get(backbone.device.type, 1)


def _generate_unit(prepared: PreparedRun, ctx: MethodContext, options, progress) -> int:
    """Generate a fitted unit's cells (and its intermediate adapters'), then its manifest."""
    unit, label = ctx.workdir, _label(ctx)
    cells = cells_for(prepared.suite, ctx.subject, ctx.replicate)
    fit_log = FitLog.read(RunPaths.fit_log(unit))
    started = time.perf_counter()
    generated = 0
    try:
        generated += _generate(prepared, ctx, cells, options, progress, f"generate {label}")
        # Intermediate adapters the method kept (checkpoint_every): the same cells again.
        for checkpoint in fit_log.checkpoints:
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
                options,
                fit_log,
                time.perf_counter() - ck_started,
                checkpoint=checkpoint["step"],
            )
    finally:
        # Even after a failure: the method must not think its adapter is still loaded
        # when the same method object renders again (a resumed run in one process).
        if hasattr(prepared.method, "release"):
            prepared.method.release(ctx)
    _write_manifest(prepared, ctx, cells, options, fit_log, time.perf_counter() - started)
    return generated


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
            try:
                images = prepared.method.generate(ctx, chunk, latents)
            except _out_of_memory_error() as error:
                raise BenchError(
                    f"out of device memory generating {len(chunk)} images at once for "
                    f"{_label(ctx)} of run {prepared.run_id}: try a smaller "
                    "--generation-batch-size"
                ) from error
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


def _fit(
    prepared: PreparedRun, pack: list[MethodContext], progress: Reporter, halve_if_too_big: bool
) -> int:
    """Fit a pack of units together (one unit: `fit`; more: `fit_pack`), each into a staging
    folder; then move each unit's artifacts in and write its fit.json last. Returns how many
    units were fitted. A pack that does not fit in the device's memory is halved when its size
    was the default, and is a one-line error naming --pack when it was asked for."""
    stagings = [ctx.workdir / STAGING for ctx in pack]
    for staging in stagings:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    tasks = [
        progress.task(f"fit {_label(ctx)}", total=getattr(prepared.config, "steps", None))
        for ctx in pack
    ]
    staged = [
        dataclasses.replace(ctx, workdir=staging, progress=_report_to(task))
        for ctx, staging, task in zip(pack, stagings, tasks, strict=True)
    ]
    started = time.perf_counter()
    try:
        if len(pack) == 1:
            logs = [prepared.method.fit(staged[0]) or {}]
        else:
            logs = prepared.method.fit_pack(staged)
            if len(logs) != len(pack):
                raise BenchError(
                    f"method {prepared.method_name}: fit_pack returned {len(logs)} logs for "
                    f"{len(pack)} units"
                )
    except _out_of_memory_error():
        for staging in stagings:  # a failed fit leaves nothing behind
            shutil.rmtree(staging, ignore_errors=True)
        if halve_if_too_big and len(pack) > 1:
            half = len(pack) // 2
            progress.message(f"a pack of {len(pack)} units does not fit: {half} at a time")
            return _fit(prepared, pack[:half], progress, True) + _fit(
                prepared, pack[half:], progress, True
            )
        raise BenchError(_out_of_memory(prepared, pack)) from None
    except BaseException as e:  # a failed fit leaves nothing behind; the next run starts afresh
        for staging in stagings:
            shutil.rmtree(staging, ignore_errors=True)
        # A library's failed write (safetensors' own error type) names the disk's error and
        # the unit it was writing, as bench's own writes do.
        system = None if isinstance(e, OSError) else os_error_of(e, str(pack[0].workdir))
        if system is not None:
            raise system from None
        raise
    seconds = time.perf_counter() - started
    together = [_label(ctx) for ctx in pack]
    for ctx, staging, stage, log, task in zip(pack, stagings, staged, logs, tasks, strict=True):
        atomic.apply_umask(staging)
        for item in staging.iterdir():
            target = ctx.workdir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
        staging.rmdir()
        log = dict(log or {})
        if stage.saved_checkpoints:  # bench records them; the method only saved them
            log["checkpoints"] = stage.saved_checkpoints
        if len(pack) > 1:  # provenance: who it was fitted with, and the pack's own time
            log["pack"] = {"units": together, "seconds": seconds}
        # Each unit's share of the pack's time, so that fit times add up to the run's.
        FitLog(log, seconds / len(pack)).write(RunPaths.fit_log(ctx.workdir))
        task.finish()
    return len(pack)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _out_of_memory_error() -> type[BaseException]:
    import torch

    return torch.OutOfMemoryError


def _report_to(task):
    def report(advance: int, info: dict[str, float] | None = None) -> None:
        task.advance(advance, "  ".join(f"{k} {v:.4f}" for k, v in (info or {}).items()))

    return report


def _out_of_memory(prepared: PreparedRun, pack: list[MethodContext]) -> str:
    if len(pack) == 1:
        where, fix = _label(pack[0]), ""
    else:
        where, fix = f"a pack of {len(pack)} units", f"--pack {len(pack) // 2}, "
    if getattr(prepared.config, "gradient_checkpointing", True) is False:
        fix += "--set gradient_checkpointing=true, "
    return (
        f"out of device memory fitting {where} of run {prepared.run_id}: try {fix}"
        "or a smaller batch_size or resolution"
    )


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
    options: ExecutionOptions,
    fit_log: FitLog,
    generate_seconds,
    checkpoint: int | None = None,
) -> None:
    # The size of the pack the unit was fitted in (None: the method does not fit packed).
    pack = None
    if capabilities(prepared.method).fits_packed:
        pack = len(fit_log.log.get("pack", {}).get("units", [ctx]))
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
        backbone=ctx.backbone.provenance(),
        generation=vars(prepared.suite.generation),
        resolution=prepared.suite.resolution,
        # The CPU threads torch used: another count rounds sums otherwise (bits of the images).
        execution={**vars(options), "pack": pack, "threads": _threads()},
        timings={
            "fit_seconds": None if checkpoint is not None else fit_log.seconds,
            "generate_seconds": generate_seconds,
        },
    ).write(RunPaths.manifest(ctx.workdir))
