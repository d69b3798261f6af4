"""Half precision against fp32 on the same fit: DreamBooth-LoRA with prior preservation, one
subject, the same seed, run in float32, bfloat16 and float16 (loss scaling), then each run's
per-step losses set beside fp32's and its images checked for non-finite or flat pixels.

    python benchmarks/precision_check.py --backbone sd15-random --resolution 512 --device cuda
    python benchmarks/precision_check.py --backbone tiny --resolution 64 --device cpu \
        --dtypes float32,bfloat16

With random weights the images are noise; what this checks is that the half-precision paths
train (finite losses that track fp32's) and render (finite, non-constant pixels).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    import numpy as np
    from perf import SUITE  # benchmarks/perf.py: the same one-subject, one-prompt suite

    import bench
    from bench.images import read_image
    from bench.store.layout import RunPaths
    from bench.store.records import FitLog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sd15-random", choices=["tiny", "sd15-random"])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    options = {
        "steps": args.steps,
        "batch_size": 1,
        "prior_preservation": True,
        "num_class_images": 2,
    }
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        suite = Path(tmp) / "precision.toml"
        suite.write_text(
            SUITE.format(
                backbone=args.backbone, resolution=args.resolution, images=2, sampling_steps=10
            )
        )
        losses, pixels = {}, {}
        for dtype in args.dtypes.split(","):
            run = bench.run("dreambooth_lora", suite, options=options, runs=Path(tmp) / dtype,
                            device=args.device, dtype=dtype, score=False)  # fmt: skip
            paths = RunPaths(Path(run.run_dir))
            (unit,) = paths.units()  # one subject, one replicate
            losses[dtype] = np.array(FitLog.read(paths.fit_log(unit)).log["losses"])
            images = [
                np.asarray(read_image(p), dtype=np.float64)
                for p in sorted(paths.images(unit).glob("*.png"))
            ]
            pixels[dtype] = (len(images), min(float(i.std()) for i in images))
    print(f"\n{args.backbone}, {args.resolution} px, {args.steps} steps, prior preservation, "
          f"on {args.device}\n")  # fmt: skip
    print("| dtype | final loss | finite | mean abs. diff to fp32's losses | images | min std |")
    print("|---|---|---|---|---|---|")
    reference = losses.get("float32")
    for dtype, values in losses.items():
        diff = (
            f"{float(np.mean(np.abs(values - reference))):.2e}"
            if reference is not None and dtype != "float32"
            else "-"
        )
        finite = bool(np.isfinite(values).all())
        n, low = pixels[dtype]
        print(f"| {dtype} | {values[-1]:.4f} | {finite} | {diff} | {n} | {low:.1f} |")


if __name__ == "__main__":
    main()
