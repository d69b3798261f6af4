"""`bench check-method NAME`: what any method, built-in or plugin, must satisfy.

1. protocol: `name` matches the registry name, `Config` is a frozen dataclass whose fields all
   have defaults, `fit` and `generate` exist;
2. output: one HxWx3 uint8 image per cell at the suite's resolution;
3. backbone: fit and release leave the backbone's weights and tokenizer as they were;
4. determinism: two runs in fresh stores give identical image bytes;
5. save/reload: a fresh process-like start (new method object, new backbone) that finds the fit
   artifacts regenerates identical images from them;
6. packing, for a method with `fit_pack`: two units fitted in one pack render what they render
   fitted one at a time.

Plugin authors run it from the command line or call `check_method` in their own tests.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import registry
from bench.errors import BenchError
from bench.methods.protocol import Method, capabilities
from bench.progress import Reporter
from bench.store.layout import RunPaths


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def _protocol(name: str, method_cls) -> list[Check]:
    checks = [
        Check(
            "name matches the registry",
            getattr(method_cls, "name", None) == name,
            f"name = {getattr(method_cls, 'name', None)!r}",
        )
    ]
    config_cls = getattr(method_cls, "Config", None)
    is_frozen = dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen
    checks.append(Check("Config is a frozen dataclass", bool(is_frozen)))
    if is_frozen:
        missing = [
            f.name
            for f in dataclasses.fields(config_cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        checks.append(
            Check(
                "every option has a default",
                not missing,
                f"no default: {', '.join(missing)}" if missing else "",
            )
        )
    for attr in ("fit", "generate"):
        checks.append(Check(f"has {attr}()", callable(getattr(method_cls, attr, None))))
    try:
        instance = method_cls()
    except Exception as e:  # a plugin's own error is a failed check, not a crash
        checks.append(Check("constructs with no arguments", False, f"{type(e).__name__}: {e}"))
        return checks
    checks.append(Check("implements bench.plugin.Method", isinstance(instance, Method)))
    declared = capabilities(instance)
    if declared.supports_checkpoints and is_frozen:
        names = {f.name for f in dataclasses.fields(config_cls)}
        checks.append(
            Check(
                "supports_checkpoints: Config has steps and checkpoint_every",
                {"steps", "checkpoint_every"} <= names,
            )
        )
    return checks


def _state(backbone) -> dict:
    pipe = backbone.pipe
    state = {
        f"{part}.{k}": v.detach().clone()
        for part in ("unet", "text_encoder", "vae")
        for k, v in getattr(pipe, part).state_dict().items()
    }
    state["tokenizer_length"] = len(pipe.tokenizer)
    return state


def _same_state(a: dict, b: dict) -> bool:
    import torch

    if a.keys() != b.keys():
        return False
    return all(torch.equal(a[k], b[k]) if hasattr(a[k], "shape") else a[k] == b[k] for k in a)


def _images(root: Path) -> dict[str, bytes]:
    units = RunPaths(root).units(checkpoints=True)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for unit in units
        for p in sorted(RunPaths.images(unit).iterdir())
    }


def check_method(
    name: str, suite_name: str = "micro", device: str = "cpu", reporter: Reporter | None = None
) -> list[Check]:
    """Run every check; returns them all (the first failing stage stops the later ones)."""
    import numpy as np

    from bench.data.plan import cells_for, initial_latents
    from bench.data.suites import load_suite
    from bench.diffusion.backbone import load_backbone
    from bench.store.runner import ExecutionOptions, execute, prepare

    method_cls = registry.load(registry.METHODS, name)
    checks = _protocol(name, method_cls)
    if not all(c.passed for c in checks):
        return checks
    suite = load_suite(suite_name)
    options = ExecutionOptions(device=device)
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        tmp = Path(tmp)
        # Output shape and backbone hygiene, driving fit and generate directly.
        prepared = prepare(name, suite, {}, tmp / "direct")
        backbone = load_backbone(
            suite.backbone, scheduler=suite.generation.scheduler, device=device
        )
        before = _state(backbone)
        subject = suite.subjects[0]
        from bench.methods.protocol import MethodContext

        workdir = prepared.paths.unit(subject.id, suite.replicates[0])
        workdir.mkdir(parents=True)
        ctx = MethodContext(
            backbone=backbone,
            suite=suite,
            subject=subject,
            config=prepared.config,
            replicate=suite.replicates[0],
            workdir=workdir,
            cache=tmp / "cache",
        )
        try:
            prepared.method.fit(ctx)
            checks.append(
                Check("fit leaves the backbone unchanged", _same_state(before, _state(backbone)))
            )
            if not prepared.is_reference:
                cells = cells_for(suite, subject, suite.replicates[0])
                latents = initial_latents(
                    cells, backbone.latent_channels, backbone.latent_size(suite.resolution)
                )
                images = prepared.method.generate(ctx, cells, latents)
                shape = (suite.resolution, suite.resolution, 3)
                ok = len(images) == len(cells) and all(
                    isinstance(i, np.ndarray) and i.dtype == np.uint8 and i.shape == shape
                    for i in images
                )
                checks.append(
                    Check(
                        "one HxWx3 uint8 image per cell",
                        ok,
                        f"{len(images)} images for {len(cells)} cells",
                    )
                )
                if hasattr(prepared.method, "release"):
                    prepared.method.release(ctx)
                checks.append(
                    Check(
                        "release leaves the backbone unchanged",
                        _same_state(before, _state(backbone)),
                    )
                )
        except Exception as e:  # a plugin's own error is a failed check, not a crash
            checks.append(Check("fit and generate run", False, f"{type(e).__name__}: {e}"))
            return checks
        if not all(c.passed for c in checks):
            return checks

        # Determinism: two fresh stores; save/reload: regenerate from stored artifacts only.
        stores = []
        for label in ("a", "b"):
            run = prepare(name, suite, {}, tmp / label)
            execute(run, options, reporter)
            stores.append(run.paths.root)
        first, second = _images(stores[0]), _images(stores[1])
        checks.append(
            Check(
                "same config and seed give identical images",
                bool(first) and first == second,
                f"{len(first)} images compared",
            )
        )
        for unit in RunPaths(stores[1]).units(checkpoints=True):
            RunPaths.manifest(unit).unlink()
            shutil.rmtree(RunPaths.images(unit))
        rerun = prepare(name, suite, {}, tmp / "b")
        summary = execute(rerun, options, reporter)
        checks.append(
            Check(
                "saved artifacts reload to identical images",
                summary.fitted == 0 and _images(stores[1]) == first,
                f"refitted {summary.fitted} units",
            )
        )
        if capabilities(prepared.method).fits_packed:
            checks.append(_packed_check(name, suite, device, tmp, reporter))
    return checks


def _packed_check(name: str, suite, device: str, tmp: Path, reporter) -> Check:
    """A method with `fit_pack`: two units (two replicates) fitted in one pack render what they
    render fitted one at a time, to 2 grey levels (docs/store.md: how tightly packs agree)."""
    import numpy as np

    from bench.images import read_image
    from bench.store.runner import ExecutionOptions, execute, prepare

    two = dataclasses.replace(suite, replicates=(0, 1))
    roots = []
    for pack in (1, 2):
        run = prepare(name, two, {}, tmp / f"pack-{pack}")
        execute(run, ExecutionOptions(device=device, pack=pack), reporter)
        roots.append(run.paths.root)
    separate, packed = _images(roots[0]), _images(roots[1])
    worst = 0
    for key in separate.keys() & packed.keys():
        a, b = (np.asarray(read_image(root / key)).astype(int) for root in roots)
        worst = max(worst, int(np.abs(a - b).max()))
    same_cells = bool(separate) and separate.keys() == packed.keys()
    return Check(
        "a pack of two units fits each as fitting it alone does",
        same_cells and worst <= 2,
        f"{len(separate)} images compared, largest difference {worst} grey levels",
    )


def raise_on_failure(checks: list[Check]) -> None:
    failed = [c for c in checks if not c.passed]
    if failed:
        raise BenchError(
            "; ".join(f"{c.name} failed" + (f" ({c.detail})" if c.detail else "") for c in failed)
        )
