"""How much the generation batch size changes a run's images.

Renders the same cells (same initial noise, same prompts) with the `base` method at two batch
sizes, in two throwaway run stores, and compares the PNGs value by value. Batched and single matrix
products round differently and guided sampling amplifies it; this prints by how much.

    python benchmarks/batch_divergence.py --suite smoke --batch-sizes 1 6
    python benchmarks/batch_divergence.py --suite sd15-random --steps 20 --images 4

Prints one line per batch-size pair: the share of pixel values that differ and the largest
difference in grey levels. Run it on a quiet machine (2 CPU cores: one torch job at a time).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def render(suite_path: Path, batch_size: int, runs: Path, device: str, dtype: str) -> dict:
    import bench

    result = bench.run(
        "base", suite_path, runs=runs, generation_batch_size=batch_size, device=device, dtype=dtype,
        score=False,
    )  # fmt: skip
    return {
        p.relative_to(result.run_dir): np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
        for p in sorted(result.run_dir.glob("*/replicate-*/images/*.png"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="smoke")
    parser.add_argument("--batch-sizes", type=int, nargs=2, default=(1, 6))
    parser.add_argument("--steps", type=int, help="override the suite's sampling steps")
    parser.add_argument("--images", type=int, help="override images_per_prompt")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    from bench.data.suites import suite_path

    text = suite_path(args.suite).read_text()
    if args.steps:
        text = _replace(text, "steps", args.steps, section="[generation]")
    if args.images:
        text = _replace(text, "images_per_prompt", args.images)
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / f"{args.suite}.toml"
        # The shipped suites name subject sets relative to the package: keep them resolvable.
        suite.write_text(text)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        images, seconds = {}, {}
        for size in args.batch_sizes:
            start = time.perf_counter()
            images[size] = render(suite, size, Path(tmp) / f"runs-{size}", args.device, args.dtype)
            seconds[size] = time.perf_counter() - start
    a, b = (images[s] for s in args.batch_sizes)
    assert a.keys() == b.keys() and a, "the two runs rendered different cells"
    diff = np.concatenate([np.abs(a[k] - b[k]).ravel() for k in a])
    print(
        f"{args.suite} ({len(a)} images, steps {args.steps or 'as the suite'}), batch "
        f"{args.batch_sizes[0]} vs {args.batch_sizes[1]}: {np.mean(diff > 0):.3%} of pixel "
        f"values differ, mean {diff.mean():.2f}, max {diff.max()} of 255 grey levels; "
        f"{seconds[args.batch_sizes[0]]:.0f} s vs {seconds[args.batch_sizes[1]]:.0f} s "
        f"({platform.machine()}, {os.cpu_count()} CPUs)"
    )


def _replace(text: str, key: str, value: int, section: str | None = None) -> str:
    """Set `key = value` in a suite file (in `section` when given)."""
    lines = text.splitlines()
    inside = section is None
    for i, line in enumerate(lines):
        if line.startswith("["):
            inside = section is None or line.strip() == section
        elif inside and line.split("=")[0].strip() == key:
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    raise SystemExit(f"{key} not found in the suite file")


if __name__ == "__main__":
    main()
