"""How much DreamBench++'s JPEG step moves the image metrics: a run's images and its subjects'
photos scored as stored (PNG) and after a JPEG round trip at quality 75 on both sides, as
DreamBench++'s evaluation saves them, each cosine x 100 as that convention reports it.

    python world/benchmarks/jpeg_effect.py RUN [--runs DIR] [--quality 75]

Prints, per image metric of the run's suite, the mean over subjects (of the mean over prompts
and images, as bench scores a run) for PNG and for JPEG, and their difference.
"""

from __future__ import annotations

import argparse
import io
import os


def jpeg(image, quality: int):
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run id or folder")
    parser.add_argument("--runs", default=None, help="the run store")
    parser.add_argument("--quality", type=int, default=75)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np

    import bench
    from bench.lab import read_image

    results = bench.load_run(args.run, runs=args.runs)
    if results.record.is_reference:
        parser.error(f"{args.run}: the photos' row is scored leave-one-out; pass a generated run")
    suite = bench.load_suite(results.record.suite["name"])
    photos = {s.id: [read_image(p) for p in s.images] for s in suite.subjects}
    scores = results.scores[results.scores["prompt_id"] != "prior"]
    images = [read_image(results.root / path) for path in scores["image"]]
    image_scorers = [s for s in bench.load_scorers(suite, device="cpu") if s.needs == "references"]
    image_scorers = [s for s in image_scorers if getattr(s, "cells", "prompts") == "prompts"]
    print(f"{results.run_id} ({len(images)} images), JPEG quality {args.quality}, x 100:")
    for scorer in image_scorers:
        by_format = {}
        for name, convert in (("png", lambda im: im), ("jpeg", lambda im: jpeg(im, args.quality))):
            values = np.empty(len(images))
            for subject in scores["subject"].unique():
                mine = np.flatnonzero(scores["subject"].to_numpy() == subject)
                values[mine] = scorer.score(
                    [convert(images[i]) for i in mine],
                    prompts=[""] * len(mine),
                    references=[convert(p) for p in photos[subject]],
                    reference_key=f"{name}/{subject}",
                )
            # the run's score: the mean over subjects of the mean over prompts of the images'
            cells = scores.assign(value=values).groupby(["subject", "prompt_id"])["value"].mean()
            by_format[name] = 100 * cells.groupby("subject").mean().mean()
        png, jpg = by_format["png"], by_format["jpeg"]
        print(f"  {scorer.id}: PNG {png:.2f}, JPEG {jpg:.2f}, JPEG - PNG {jpg - png:+.2f}")


if __name__ == "__main__":
    main()
