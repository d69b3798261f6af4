"""Packed fitting: K subjects' DreamBooth-LoRA fitted in one loop against one at a time, how fast
and how equal; and, on a GPU, the full DreamBench protocol projected from the fastest pack.

    python benchmarks/packing.py suite --packs 1,4,12 --steps 100     # CPU: the world suite
    python benchmarks/packing.py steps --backbone sd15-random --resolution 512 --dtype bfloat16 \\
        --device cuda --packs 1,2,4,8,16,30 --steps 12                 # GPU: SD-1.5's architecture

`suite`: fits every subject of a suite (the world suite's 12 by default) with the suite's
DreamBooth-LoRA options (`--steps` to shorten them) at each pack size, the pack sizes interleaved
over `--reps`, all in this process on one loaded backbone; prints the wall time of the whole
fit, its speed-up over pack 1, and each adapter's largest difference from pack 1's, relative to
the tensor's largest entry (the tolerance `tests/test_packing.py` states is 1e-2).

`steps`: for each K, one pack of K subjects fits `--steps` steps of DreamBooth-LoRA with prior
preservation as the DreamBench suite sets it (batch 1 plus 1 class image, rank 4); the step time
is the median over the steps after the first three (timed at each step's progress call), with
peak GPU memory and subject-steps per second. A pack that does not fit is reported, and tried
again with gradient checkpointing. Then, with `--protocol`: generation's images/s at each
`--generation-batches` size (the suite's sampling steps), scoring's images/s with the real-size
scorer networks (random weights: same cost), and the projection of the protocol: 30 subjects x
1,000 steps at the fastest pack, 3,000 images, class images, scoring. Subjects are DreamBench's
when `$BENCH_DREAMBENCH_ROOT` holds the dataset, else the toy world's photos under K names.

Results are printed and appended to benchmarks/RESULTS.md (`--results` for another file).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from perf import SUITE  # noqa: E402  (a script beside this one)


def fit_pack(backbone, suite, subjects, options, folder, on_step=None):
    """One pack of `subjects` fitted by DreamBooth-LoRA into folder/<subject>; its logs."""
    from bench.config import resolve_config
    from bench.methods.dreambooth_lora import DreamBoothLoRA
    from bench.methods.protocol import MethodContext

    method = DreamBoothLoRA()
    config = resolve_config(DreamBoothLoRA.Config, options)
    contexts = []
    for index, subject in enumerate(subjects):
        (folder / subject.id).mkdir(parents=True, exist_ok=True)
        progress = on_step if index == 0 and on_step else (lambda advance, info=None: None)
        contexts.append(
            MethodContext(
                backbone=backbone,
                suite=suite,
                subject=subject,
                config=config,
                replicate=0,
                workdir=folder / subject.id,
                cache=folder.parent / "cache",
                progress=progress,
            )
        )
    return method.fit_pack(contexts) if len(contexts) > 1 else [method.fit(contexts[0])]


def largest_difference(a: Path, b: Path) -> float:
    """The largest difference between two adapter files, relative to each tensor's largest
    entry."""
    from safetensors.torch import load_file

    first, second = load_file(a), load_file(b)
    return max(
        ((first[k] - second[k]).abs().max() / first[k].abs().max().clamp(min=1e-30)).item()
        for k in first
    )


def whole_suite(args) -> str:
    from bench.data.suites import load_suite
    from bench.diffusion.backbone import load_backbone
    from bench.methods.dreambooth_lora import ARTIFACT

    suite = load_suite(args.suite)
    backbone = load_backbone(
        suite.backbone, scheduler=suite.generation.scheduler, device=args.device, dtype=args.dtype
    )
    options = {**suite.method_defaults.get("dreambooth_lora", {})}
    if args.steps:
        options["steps"] = args.steps
    packs = [int(k) for k in args.packs.split(",")]
    seconds: dict[int, list[float]] = {k: [] for k in packs}
    work = Path(tempfile.mkdtemp(prefix="packing-"))
    for rep in range(args.reps):
        for k in packs:
            folder = work / f"pack-{k}-{rep}"
            started = time.perf_counter()
            for start in range(0, len(suite.subjects), k):
                fit_pack(backbone, suite, suite.subjects[start : start + k], options, folder)
            seconds[k].append(time.perf_counter() - started)
            print(f"pack {k}, repetition {rep}: {seconds[k][-1]:.1f} s", flush=True)
    base = statistics.median(seconds[packs[0]])
    lines = [
        f"## Packed fitting, {args.suite} suite ({len(suite.subjects)} subjects), "
        f"{backbone.device}, {args.dtype}",
        "",
        f"{now()}; {machine()}; DreamBooth-LoRA with the suite's options, {options.get('steps')} "
        f"steps; {args.reps} repetition(s), pack sizes interleaved; the whole fit of every "
        "subject, in one process on one loaded backbone.",
        "",
        f"| pack | fit time (median) | speed-up over pack {packs[0]} | largest adapter "
        f"difference from pack {packs[0]} (relative) |",
        "|---|---|---|---|",
    ]
    for k in packs:
        median = statistics.median(seconds[k])
        difference = max(
            largest_difference(
                work / f"pack-{packs[0]}-0" / s.id / ARTIFACT,
                work / f"pack-{k}-0" / s.id / ARTIFACT,
            )
            for s in suite.subjects
        )
        lines.append(
            f"| {k} | {median:.1f} s [{min(seconds[k]):.1f}, {max(seconds[k]):.1f}] | "
            f"{base / median:.2f}x | {difference:.1e} |"
        )
    return "\n".join(lines)


def subjects_for(count: int, fallback_suite):
    """DreamBench's first `count` subjects where the dataset is found, else the fallback suite's
    subjects repeated under new names (the same photos: the same cost)."""
    from bench.data.suites import load_suite
    from bench.errors import BenchError

    try:
        found = load_suite("dreambench").subjects
    except BenchError:
        found = fallback_suite.subjects
    return [
        dataclasses.replace(found[i % len(found)], id=f"{found[i % len(found)].id}-{i}")
        for i in range(count)
    ]


def step_times(args) -> str:
    import torch

    from bench.data.suites import load_suite, suite_path
    from bench.diffusion.backbone import load_backbone
    from bench.toml_files import read_toml

    suite = dataclasses.replace(load_suite("smoke"), resolution=args.resolution)
    backbone = load_backbone(
        args.backbone, scheduler=suite.generation.scheduler, device=args.device, dtype=args.dtype
    )
    protocol = read_toml(suite_path("dreambench"))["method_defaults"]["dreambooth_lora"]
    options = {
        **protocol,
        "prior_preservation": True,
        "num_class_images": args.class_images,
        "steps": args.steps,
    }
    packs = [int(k) for k in args.packs.split(",")]
    work = Path(tempfile.mkdtemp(prefix="packing-"))
    rows, best, first_rate = [], None, None
    for k in packs:
        for checkpointing in (False, True):
            stamps = []
            if backbone.device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            try:
                fit_pack(
                    backbone,
                    suite,
                    subjects_for(k, suite),
                    {**options, "gradient_checkpointing": checkpointing},
                    work / f"k{k}-{checkpointing}",
                    on_step=lambda advance, info=None, stamps=stamps: stamps.append(
                        time.perf_counter()
                    ),
                )
            except torch.OutOfMemoryError:
                rows.append(f"| {k} | {'on' if checkpointing else 'off'} | does not fit | | | |")
                continue
            steady = [b - a for a, b in zip(stamps[3:], stamps[4:], strict=False)]
            step = statistics.median(steady) if steady else math.nan
            peak = (
                f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
                if backbone.device.type == "cuda"
                else "n.a."
            )
            rate = k / step
            first_rate = first_rate or rate
            rows.append(
                f"| {k} | {'on' if checkpointing else 'off'} | {step * 1000:.0f} ms | "
                f"{rate:.2f} | {rate / first_rate:.2f}x | {peak} |"
            )
            print(rows[-1], flush=True)
            if best is None or rate > best[1]:
                best = (k, rate, checkpointing)
            break  # checkpointing only where the pack does not fit without it
    lines = [
        f"## Packed fitting, {args.backbone} at {args.resolution} px, {args.dtype}, "
        f"{backbone.device}",
        "",
        f"{now()}; {machine()}; DreamBooth-LoRA as the DreamBench suite sets it, with prior "
        f"preservation (batch {options.get('batch_size', 1)} + class images, rank "
        f"{options.get('rank', 4)}); {args.steps} steps per pack, the step time the median after "
        "the first three.",
        "",
        f"| pack K | gradient checkpointing | step time | subject-steps/s | over pack {packs[0]} "
        "| peak memory |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    if args.protocol and best:
        lines += ["", protocol_projection(args, best)]
    return "\n".join(lines)


def protocol_projection(args, best) -> str:
    """Generation's and scoring's rates through bench's runner and scorers (the `base` method:
    the same sampling as every method), then the DreamBench protocol projected from them."""
    import json

    import bench
    from bench.data.suites import suite_path
    from bench.errors import BenchError
    from bench.scorers.scoring import load_scorers, score_unit
    from bench.toml_files import read_toml

    dreambench = read_toml(suite_path("dreambench"))
    sizes = [int(b) for b in args.generation_batches.split(",")]
    work = Path(tempfile.mkdtemp(prefix="packing-generation-"))
    suite = work / "suite.toml"
    suite.write_text(  # perf.py's one-subject, one-prompt suite
        SUITE.format(
            backbone=args.backbone,
            resolution=args.resolution,
            images=max(sizes),
            sampling_steps=dreambench["generation"]["steps"],
        )
    )
    per_image, lines, unit = {}, [], None
    for size in sizes:
        try:
            made = bench.run(
                "base",
                suite,
                runs=work / f"runs-{size}",
                device=args.device,
                dtype=args.dtype,
                generation_batch_size=size,
                score=False,
            )
        except BenchError as error:  # out of memory, or the like: said, and the next
            lines.append(f"- generation batch {size}: {error}")
            break
        unit = next(made.run_dir.glob("*/replicate-0"))
        seconds = json.loads((unit / "manifest.json").read_text())["timings"]["generate_seconds"]
        per_image[size] = seconds / max(sizes)
        lines.append(f"- generation, batch {size}: {per_image[size]:.3f} s/image")
        print(lines[-1], flush=True)
    if not per_image:
        return "\n".join(lines)
    spec = "random:0" if args.backbone == "tiny" else "random-full:0"
    scorers = load_scorers(
        ["clip_i", "clip_t", "dino"],
        {"clip": {"pretrained": spec}, "dino": {"pretrained": spec}},
        device=args.device,
    )
    started = time.perf_counter()
    score_unit(scorers, unit, made.run_dir)
    score_seconds = (time.perf_counter() - started) / max(sizes)
    lines.append(f"- scoring (clip_i, clip_t, dino at real sizes): {score_seconds:.3f} s/image")
    k, rate, checkpointing = best
    lora = dreambench["method_defaults"]["dreambooth_lora"]
    subjects, steps = 30, lora.get("steps", 1000)
    images = subjects * 25 * dreambench["images_per_prompt"]
    class_images = 15 * lora.get("num_class_images", 100)  # DreamBench's 15 class nouns
    fastest = min(per_image.values())
    fit, generate = subjects * steps / rate, (images + class_images) * fastest
    score = images * score_seconds
    lines.append(
        f"- projection of the DreamBench protocol, DreamBooth-LoRA with prior preservation: "
        f"{(fit + generate + score) / 60:.1f} min = fit {fit / 60:.1f} min ({subjects} x "
        f"{steps} steps at pack {k}{' with checkpointing' if checkpointing else ''}, "
        f"{rate:.2f} subject-steps/s) + generation {generate / 60:.1f} min ({images} images + "
        f"{class_images} class images at {fastest:.3f} s/image) + scoring {score / 60:.1f} min"
    )
    return "\n".join(lines)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    import os
    import platform

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["suite", "steps"])
    parser.add_argument("--suite", default="world")
    parser.add_argument("--backbone", default="sd15-random")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--packs", default="1,4,12")
    parser.add_argument("--steps", type=int, default=0, help="0: the suite's (suite mode)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--class-images", type=int, default=4)
    parser.add_argument("--protocol", action="store_true")
    parser.add_argument("--generation-batches", default="8,16,32")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if args.mode == "steps" and not args.steps:
        args.steps = 12
    text = whole_suite(args) if args.mode == "suite" else step_times(args)
    print(text)
    with open(args.results, "a") as f:
        f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
