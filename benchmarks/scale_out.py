"""A run spread over Ray workers against one process: wall time, efficiency, overhead per unit.

    python benchmarks/scale_out.py --subjects 4 --steps 40 --images 1     # this 2-core machine
    python benchmarks/scale_out.py --backbone sd15-random --resolution 512 --device cuda \\
        --gpu-fractions 1,0.5,0.25 --subjects 8 --steps 20                # one GPU, shared

CPU: the world suite's first `--subjects` subjects (DreamBooth-LoRA at `--steps`, `--images` per
prompt, scored), made four ways in fresh stores: one local process with one thread, a local Ray
cluster with one CPU (one worker), and one with `--workers` CPUs (that many one-thread workers),
each on tasks of one unit, and one local process with as many threads as workers. Efficiency is
the one-worker time over (workers x the many-worker time); the overhead per unit is what one
worker costs over one local process of one thread, per unit. The stores are checked to hold the
same bytes (images, adapters, score rows) as the one-thread local run.

GPU (`--gpu-fractions`): the same run on a local Ray cluster with one GPU, tasks declaring each
fraction of it (1: one fit at a time; 0.5: two share the card; ...), against one local process.

Results are printed and appended to benchmarks/RESULTS.md (`--results` for another file).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from packing import machine, now  # noqa: E402  (a script beside this one)

PORT = 6392


def made(runs: Path) -> dict[str, str]:
    found = {}
    for path in sorted(runs.rglob("*")):
        if path.suffix in (".png", ".safetensors") or path.name.startswith("scores"):
            found[str(path.relative_to(runs))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def suite_file(args, folder: Path) -> Path:
    """The world suite cut to the first subjects and fewer images, as a suite file of its own."""
    from bench.data.suites import suite_path
    from bench.toml_files import read_toml

    data = read_toml(suite_path("world"))
    ids = data["subjects"]["ids"][: args.subjects]
    text = suite_path("world").read_text()
    text = text.replace('name = "world"', 'name = "world-scale"', 1)
    text = text.replace(
        f"images_per_prompt = {data['images_per_prompt']}", f"images_per_prompt = {args.images}"
    )
    start = text.index("ids = [")
    end = text.index("]", start) + 1
    text = text[:start] + f"ids = {ids!r}".replace("'", '"') + text[end:]
    if args.backbone:
        text = text.replace('backbone = "world"', f'backbone = "{args.backbone}"', 1)
    if args.resolution:
        text = text.replace("resolution = 64", f"resolution = {args.resolution}", 1)
    path = folder / "suite.toml"
    path.write_text(text)
    return path


def bench_run(args, suite: Path, runs: Path, threads: int, extra: list[str]) -> float:
    command = [
        sys.executable, "-m", "bench", "run", "--method", "dreambooth_lora",
        "--suite", str(suite), "--runs", str(runs), "--device", args.device,
        "--set", f"steps={args.steps}", "--pack", "1", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "RAY_AUTH_MODE": "disabled"}
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def cluster(cpus: int, gpus: int = 0):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    subprocess.run([*ray, "stop", "--force"], env=env, capture_output=True)
    subprocess.run(
        [*ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}",
         f"--num-cpus={cpus}", f"--num-gpus={gpus}", "--include-dashboard=false",
         "--disable-usage-stats"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return lambda: subprocess.run([*ray, "stop", "--force"], env=env, capture_output=True)


def cpu_scaling(args) -> str:
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    suite = suite_file(args, work)
    units = args.subjects
    ray = ["--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}"]
    times, stores = {}, {}
    for label, threads, cpus in (
        ("local, 1 thread", 1, None),
        ("ray, 1 worker", 1, 1),
        (f"ray, {args.workers} workers", 1, args.workers),
        (f"local, {args.workers} threads", args.workers, None),
    ):
        stores[label] = work / label.replace(" ", "_").replace(",", "")
        stop = cluster(cpus) if cpus else None
        try:
            times[label] = bench_run(args, suite, stores[label], threads, ray if cpus else [])
        finally:
            if stop:
                stop()
        print(f"{label}: {times[label]:.1f} s", flush=True)
    one, many = times["ray, 1 worker"], times[f"ray, {args.workers} workers"]
    reference = made(stores["local, 1 thread"])
    same = all(made(stores[k]) == reference for k in list(stores)[:3])
    return "\n".join(
        [
            f"## Scale-out on Ray, world suite's first {units} subjects, {args.device}",
            "",
            f"{now()}; {machine()}; DreamBooth-LoRA at {args.steps} steps, {args.images} image(s) "
            f"per prompt, scored; one unit per task; wall time of `bench run` in a fresh "
            "process, a fresh local Ray cluster (`ray start`) for each Ray row.",
            "",
            "| how | wall time | per unit |",
            "|---|---|---|",
            *(f"| {k} | {v:.1f} s | {v / units:.1f} s |" for k, v in times.items()),
            "",
            f"- efficiency of {args.workers} workers: {one / (args.workers * many):.0%} "
            f"(speed-up {one / many:.2f}x)",
            f"- overhead of Ray per unit (1 worker against 1 local thread): "
            f"{(one - times['local, 1 thread']) / units:.2f} s",
            f"- the one-thread local run and both Ray runs hold the same bytes: {same}",
        ]
    )


def gpu_sharing(args) -> str:
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    suite = suite_file(args, work)
    fractions = [float(f) for f in args.gpu_fractions.split(",")]
    ray = ["--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}", "--ray-cpus", "1"]
    rows = []
    local = bench_run(args, suite, work / "local", 1, [])
    rows.append(f"| local process | {local:.1f} s | 1.00x |")
    stop = cluster(cpus=16, gpus=1)
    try:
        for fraction in fractions:
            seconds = bench_run(
                args, suite, work / f"ray-{fraction}", 1, [*ray, "--ray-gpus", str(fraction)]
            )
            rows.append(
                f"| ray, {fraction} GPU per task | {seconds:.1f} s | {local / seconds:.2f}x |"
            )
            print(rows[-1], flush=True)
    finally:
        stop()
    return "\n".join(
        [
            f"## Fits sharing one GPU on Ray, {args.backbone} at {args.resolution} px",
            "",
            f"{now()}; {machine()}; DreamBooth-LoRA at {args.steps} steps on {args.subjects} "
            "subjects, one unit per task.",
            "",
            "| how | wall time | over the local process |",
            "|---|---|---|",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--gpu-fractions", default=None)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    text = gpu_sharing(args) if args.gpu_fractions else cpu_scaling(args)
    print(text)
    with open(args.results, "a") as f:
        f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
