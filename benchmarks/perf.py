"""bench beside what a user would otherwise run: training steps/s against diffusers' example
scripts, generated images/s against one pipeline call per image, scored images/s against the
naive loop; peak memory and start-up; a projection of the full DreamBench protocol.

    python benchmarks/perf.py --backbone tiny --diffusers-examples ~/src/diffusers/examples
    python benchmarks/perf.py --backbone sd15-random --resolution 64 --reps 2

diffusers' scripts are not shipped: `git clone https://github.com/huggingface/diffusers` and pass
its `examples` folder (a version matching the installed diffusers); without it the training
comparisons are skipped with a message and bench's own costs are still measured.

Method: every workload runs in a fresh process (its own start-up and peak RSS, measured by
benchmarks/_measure.py), A and B interleaved (A B A B ...). A per-step (per-image) cost is the
difference between two workloads of different sizes divided by the difference in steps (images),
so start-up and fixed costs cancel; the start-up figure is what remains. Ratios are reference
cost / bench cost (above 1: bench is faster), median and range over the repetitions. Results are
printed and appended to benchmarks/RESULTS.md with the machine, date and versions. Run on a quiet
machine (2 CPU cores: nothing else running).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PHOTOS = REPO / "subjects" / "shapes" / "red_mug"

SUITE = """\
name = "perf"
backbone = "{backbone}"
resolution = {resolution}
images_per_prompt = {images}
replicates = [0]

[subjects]
set = "shapes"
ids = ["red_mug"]

[prompts]
object = {{ set = "dreambench_object", ids = ["on_the_beach"] }}

[generation]
scheduler = "DDIMScheduler"
steps = {sampling_steps}
guidance_scale = 7.5
negative_prompt = ""
"""

TRAINING = {  # variant -> (bench --set options, diffusers script arguments)
    "dreambooth_lora": ([], []),
    "dreambooth_lora + prior": (
        ["prior_preservation=true", "num_class_images=2"],
        ["--with_prior_preservation", "--class_prompt=a mug", "--num_class_images=2"],
    ),
    "dreambooth_lora + text encoder": (["train_text_encoder=true"], ["--train_text_encoder"]),
}


@dataclass
class Paired:
    """Per-unit costs of bench (A) and the reference (B), one pair per repetition."""

    name: str
    unit: str  # "step" or "image"
    bench: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    bench_start: list[float] = field(default_factory=list)
    reference_start: list[float] = field(default_factory=list)
    bench_peak: float = 0.0
    reference_peak: float = 0.0
    # torch.cuda.max_memory_allocated (max_memory_reserved), when the workload used a GPU
    bench_gpu_peak: tuple[float, float] = (0.0, 0.0)
    reference_gpu_peak: tuple[float, float] = (0.0, 0.0)
    reference_name: str = ""

    def ratio(self) -> str:
        if not self.reference:
            return "n.a."
        if min(self.bench + self.reference) <= 0:
            return "n.a. (start-up noise: raise --steps)"
        r = [b / a for a, b in zip(self.bench, self.reference, strict=True)]
        return f"{statistics.median(r):.2f}x [{min(r):.2f}, {max(r):.2f}]"

    def row(self) -> list[str]:
        def cost(xs):
            return f"{statistics.median(xs):.3f} s" if xs else "n.a."

        def start(xs):
            return f"{statistics.median(xs):.1f} s" if xs else "n.a."

        return [
            self.name,
            f"{cost(self.bench)}/{self.unit}",
            f"{cost(self.reference)}/{self.unit}" if self.reference else "skipped",
            self.ratio(),
            f"{start(self.bench_start)} / {start(self.reference_start)}",
            f"{self.bench_peak:.0f} / {self.reference_peak:.0f}"
            if self.bench_peak
            else "n.a. (in process)",
            f"{_gpu(self.bench_gpu_peak)} / {_gpu(self.reference_gpu_peak)}"
            if self.bench_gpu_peak[0]
            else "n.a.",
        ]


class Harness:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_CACHE": str(work / "cache")}
        self.counter = 0
        self.photos = work / "photos"
        self.photos.mkdir()
        for png in sorted(PHOTOS.glob("*.png")):
            shutil.copy(png, self.photos / png.name)
        # diffusers' script renders missing class images at 512 px and 50 steps before it
        # trains (minutes on a CPU, outside what is compared): give it enough to skip that.
        classes = work / "class-images"
        classes.mkdir()
        for i, png in enumerate(sorted(PHOTOS.glob("*.png"))[:2]):
            shutil.copy(png, classes / f"class-{i}.png")

    # ------------------------------------------------------------------------- processes

    def measure(self, command: list[str]) -> dict:
        """Run one workload in a fresh process; its wall time and peak memory."""
        self.counter += 1
        out = self.work / f"measure-{self.counter}.json"
        log = self.work / f"measure-{self.counter}.log"
        with open(log, "w") as f:
            done = subprocess.run(
                [sys.executable, str(HERE / "_measure.py"), str(out), *command],
                env=self.env, cwd=self.work, stdout=f, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"workload failed ({log}):\n{log.read_text()[-3000:]}")
        return json.loads(out.read_text())

    def suite(self, images: int = 1, sampling_steps: int = 1) -> Path:
        path = self.work / f"perf-{images}-{sampling_steps}.toml"
        path.write_text(
            SUITE.format(
                backbone=self.args.backbone,
                resolution=self.args.resolution,
                images=images,
                sampling_steps=sampling_steps,
            )
        )
        return path

    def fresh(self) -> Path:
        self.counter += 1
        return self.work / f"out-{self.counter}"

    def backbone_dir(self) -> Path:
        from bench.diffusion.random_backbones import random_backbone_dir

        os.environ["BENCH_CACHE"] = self.env["BENCH_CACHE"]
        return random_backbone_dir(self.args.backbone)

    # ------------------------------------------------------------------------- workloads

    def bench_train(self, method: str, sets: list[str], steps: int) -> list[str]:
        lr = "5e-4" if method == "textual_inversion" else "1e-4"
        options = [f"steps={steps}", "batch_size=1", f"lr={lr}", *sets]
        if method == "dreambooth_lora":
            options.append("rank=4")
        command = ["-m", "bench", "run", "--method", method, "--suite", str(self.suite()),
                   "--runs", str(self.fresh()), "--no-score", "--batch-size", "1",
                   "--device", self.args.device, "--dtype", self.args.dtype]  # fmt: skip
        for option in options:
            command += ["--set", option]
        return command

    def reference_train(self, method: str, extra: list[str], steps: int) -> list[str] | None:
        examples = self.args.diffusers_examples
        if examples is None:
            return None
        common = [f"--pretrained_model_name_or_path={self.backbone_dir()}",
                  f"--resolution={self.args.resolution}", "--train_batch_size=1",
                  f"--max_train_steps={steps}", f"--output_dir={self.fresh()}", "--seed=0",
                  f"--mixed_precision={_mixed(self.args.dtype)}"]  # fmt: skip
        if method == "textual_inversion":
            script = Path(examples) / "textual_inversion" / "textual_inversion.py"
            args = [f"--train_data_dir={self.photos}", "--learnable_property=object",
                    "--placeholder_token=<sks>", "--initializer_token=mug",
                    "--learning_rate=5e-4", "--save_steps=1000000"]  # fmt: skip
        else:
            script = Path(examples) / "dreambooth" / "train_dreambooth_lora.py"
            args = [f"--instance_data_dir={self.photos}", "--instance_prompt=a sks mug",
                    "--learning_rate=1e-4", "--rank=4",
                    f"--class_data_dir={self.work / 'class-images'}", *extra]  # fmt: skip
        return [str(script), *common, *args]

    def bench_generate(self, images: int, batch: int) -> list[str]:
        return ["-m", "bench", "run", "--method", "base",
                "--suite", str(self.suite(images, self.args.sampling_steps)),
                "--runs", str(self.fresh()), "--no-score", "--batch-size", str(batch),
                "--device", self.args.device, "--dtype", self.args.dtype]  # fmt: skip

    # ------------------------------------------------------------------------- stages

    def paired(self, name: str, unit: str, a, b, sizes: tuple[int, int], ref_name: str) -> Paired:
        """Per-unit cost of workloads a(n) and b(n) (b may be None), from the two sizes."""
        result = Paired(name, unit, reference_name=ref_name)
        small, large = sizes
        for _ in range(self.args.reps):
            timings = {}
            for label, make in (("a", a), ("b", b)):  # A B A B: interleaved
                if make is None:
                    continue
                timings[label] = [self.measure(make(n)) for n in (small, large)]
            for label, runs in timings.items():
                per_unit = (runs[1]["seconds"] - runs[0]["seconds"]) / (large - small)
                start = runs[0]["seconds"] - small * per_unit
                peak = max(r["peak_rss_mib"] for r in runs)
                gpu_peak = (max(r.get("peak_gpu_mib", 0.0) for r in runs),
                            max(r.get("peak_gpu_reserved_mib", 0.0) for r in runs))  # fmt: skip
                if label == "a":
                    result.bench.append(per_unit)
                    result.bench_start.append(start)
                    result.bench_peak = max(result.bench_peak, peak)
                    result.bench_gpu_peak = _larger(result.bench_gpu_peak, gpu_peak)
                else:
                    result.reference.append(per_unit)
                    result.reference_start.append(start)
                    result.reference_peak = max(result.reference_peak, peak)
                    result.reference_gpu_peak = _larger(result.reference_gpu_peak, gpu_peak)
            print(f"  {name}: bench {result.bench[-1]:.3f} s/{unit}"
                  + (f", reference {result.reference[-1]:.3f} s/{unit}" if b else "")
                  + f"; start-up {result.bench_start[-1]:.1f} s"
                  + (f" / {result.reference_start[-1]:.1f} s" if b else "")
                  + (f"; peak GPU MiB {_gpu(result.bench_gpu_peak)} / "
                     f"{_gpu(result.reference_gpu_peak)}" if result.bench_gpu_peak[0] else ""),
                  flush=True)  # fmt: skip
            if min(result.bench[-1], *result.reference[-1:]) <= 0:
                print(f"  {name}: a larger workload ran no slower than the smaller one: start-up "
                      f"noise exceeds the {large - small} {unit}s between them; raise --steps "
                      f"(--images)", flush=True)  # fmt: skip
        return result

    def training(self) -> list[Paired]:
        steps = (self.args.steps, self.args.steps * 3)
        out = []
        wanted = set(self.args.variants.split(","))
        for name, (sets, extra) in TRAINING.items():
            if name not in wanted:
                continue
            ref = (
                None
                if self.args.diffusers_examples is None
                else (lambda n, extra=extra: self.reference_train("dreambooth_lora", extra, n))
            )
            out.append(self.paired(
                name, "step", lambda n, sets=sets: self.bench_train("dreambooth_lora", sets, n),
                ref, steps, "train_dreambooth_lora.py"))  # fmt: skip
        if "textual_inversion" not in wanted:
            return out
        ref = (
            None
            if self.args.diffusers_examples is None
            else (lambda n: self.reference_train("textual_inversion", [], n))
        )
        out.append(self.paired(
            "textual_inversion", "step", lambda n: self.bench_train("textual_inversion", [], n),
            ref, steps, "textual_inversion.py"))  # fmt: skip
        return out

    def generation(self) -> Paired:
        images = (self.args.images, self.args.images * 3)
        return self.paired(
            f"generation (batch {self.args.gen_batch} vs 1 call per image)", "image",
            lambda n: self.bench_generate(n, self.args.gen_batch),
            lambda n: self.bench_generate(n, 1), images, "one pipeline call per image",
        )  # fmt: skip

    def scoring(self) -> tuple[Paired, float]:
        """bench's scoring against the naive loop, in this process; the largest difference."""
        import bench
        from bench.scorers import clip as clip_mod
        from bench.scorers import dino as dino_mod
        from bench.scorers.scoring import load_scorers, score_unit

        os.environ.update(self.env)
        n = self.args.score_images
        run = bench.run("base", self.suite(n, 1), runs=self.fresh(), score=False,
                        device=self.args.device)  # fmt: skip
        unit = next(run.run_dir.glob("*/replicate-0"))
        spec = "random:0" if self.args.backbone == "tiny" else "random-full:0"
        options = {"clip": {"pretrained": spec}, "dino": {"pretrained": spec}}
        scorers = load_scorers(["clip_i", "clip_t", "dino"], options, self.args.device)
        result = Paired("scoring (clip_i, clip_t, dino)", "image", reference_name="naive loop")
        worst = 0.0
        for _ in range(self.args.reps):
            for model in {id(s.model): s.model for s in scorers}.values():
                model.ref_cache.clear()
                model._last_images = None
            start = time.perf_counter()
            rows = score_unit(scorers, unit, run.run_dir)
            result.bench.append((time.perf_counter() - start) / n)
            start = time.perf_counter()
            naive = _naive_scores(scorers, unit)
            result.reference.append((time.perf_counter() - start) / n)
            for row, values in zip(rows, naive, strict=True):
                worst = max(worst, *(abs(row.values[k] - v) for k, v in values.items()))
            print(f"  scoring: bench {result.bench[-1]:.3f} s/image, "
                  f"naive {result.reference[-1]:.3f} s/image", flush=True)  # fmt: skip
        clip_mod.clear_model_cache()
        dino_mod.clear_model_cache()
        return result, worst


def _naive_scores(scorers, unit: Path) -> list[dict[str, float]]:
    """What a user's first loop does: one image at a time, the references embedded again for
    every image, CLIP image embeddings computed separately for CLIP-I and CLIP-T."""
    import numpy as np
    from PIL import Image

    from bench.store.records import UnitManifest

    manifest = UnitManifest.read(unit / "manifest.json")
    refs = [Image.open(p).convert("RGB") for p in manifest.subject["images"]]
    by_id = {s.id: s for s in scorers}

    def unit_vector(x):
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return x / np.linalg.norm(x)

    out = []
    for entry in manifest.images:
        image = Image.open(unit / entry.file).convert("RGB")
        values = {}
        for scorer_id in ("clip_i", "dino"):
            model = by_id[scorer_id].model
            e = unit_vector(model._embed_batch([image]))
            values[scorer_id] = float(
                np.mean([e @ unit_vector(model._embed_batch([r])) for r in refs])
            )
        clip = by_id["clip_t"].model
        image_vector = unit_vector(clip._embed_batch([image]))
        text_vector = unit_vector(clip.embed_texts([entry.scoring_prompt], 1))
        values["clip_t"] = float(image_vector @ text_vector)
        out.append(values)
    return out


def scoring_bound(images: int) -> str:
    """Where the scoring ratio comes from: network forwards per image, bench's against the naive
    loop's, for `images` images of one subject with the harness's photos."""
    photos = len(list(PHOTOS.glob("*.png")))
    naive = 2 * (1 + photos) + 1  # CLIP-I and DINO: the image and every photo; CLIP-T: the image
    ours = 2 + 2 * photos / images  # CLIP and DINO once per image; the photos once per subject
    return (f"scoring: {images} images of one subject with {photos} photos (DreamBench's have 4 "
            f"to 6); image forwards per image: naive loop {naive:g}, one at a time; bench "
            f"{ours:.2f}, in batches. Fewer forwards give up to {naive / ours:.1f}x; batches "
            f"the rest")  # fmt: skip


def _larger(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (max(a[0], b[0]), max(a[1], b[1]))


def _gpu(peak: tuple[float, float]) -> str:
    return f"{peak[0]:.0f} ({peak[1]:.0f})" if peak[0] else "n.a."


def _mixed(dtype: str) -> str:
    return {"float16": "fp16", "bfloat16": "bf16"}.get(dtype, "no")


def projection(train: Paired, generate: Paired, score: Paired, sampling_steps: int) -> str:
    """The full DreamBench protocol for DreamBooth-LoRA with prior preservation on this machine,
    from the measured per-step and per-image costs (at the measured resolution)."""
    from bench.data.suites import suite_path
    from bench.toml_files import read_toml

    suite = read_toml(suite_path("dreambench"))
    lora = suite["method_defaults"]["dreambooth_lora"]
    subjects, prompts, per_prompt = 30, 25, suite["images_per_prompt"]
    images = subjects * (prompts * per_prompt + suite.get("prior_images", 0))
    steps = lora.get("steps", 1000)
    class_images = 15 * lora.get("num_class_images", 100)  # 15 class nouns in DreamBench
    per_image = statistics.median(generate.bench) * suite["generation"]["steps"] / sampling_steps
    seconds = (
        subjects * steps * statistics.median(train.bench)
        + (images + class_images) * per_image
        + images * statistics.median(score.bench)
    )
    return (
        f"{seconds / 3600:.1f} h: {subjects} subjects x {steps} steps at "
        f"{statistics.median(train.bench):.2f} s/step, {images} images + {class_images} class "
        f"images at {per_image:.2f} s/image ({suite['generation']['steps']} sampling steps), "
        f"{images} images scored at {statistics.median(score.bench):.3f} s/image"
    )


def versions() -> str:
    from importlib import metadata

    names = ("bench", "torch", "diffusers", "transformers", "peft", "open_clip_torch", "timm")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def machine(device: str) -> str:
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPUs"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny", choices=["tiny", "sd15-random"])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--diffusers-examples", type=Path, help="diffusers' examples folder")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="small training workload (x3 large)")
    parser.add_argument("--images", type=int, default=2, help="small generation workload (x3)")
    parser.add_argument("--gen-batch", type=int, default=8)
    parser.add_argument("--sampling-steps", type=int, default=10)
    parser.add_argument(
        "--score-images", type=int, default=100,
        help="images of the one subject scored (DreamBench gives a subject 25 prompts x 4)",
    )  # fmt: skip
    parser.add_argument("--stages", default="train,generate,score")
    parser.add_argument(
        "--variants", default=",".join([*TRAINING, "textual_inversion"]),
        help="training variants to measure (comma-separated)",
    )  # fmt: skip
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if args.score_images < 1:
        parser.error(f"--score-images {args.score_images}: use a whole number >= 1")
    if args.diffusers_examples is not None:
        args.diffusers_examples = args.diffusers_examples.resolve()  # workloads run elsewhere
        script = args.diffusers_examples / "dreambooth" / "train_dreambooth_lora.py"
        if not script.is_file():
            parser.error(f"--diffusers-examples {args.diffusers_examples}: no {script.name} in "
                         "its dreambooth/; pass diffusers' examples folder")  # fmt: skip
    if args.diffusers_examples is None:
        print("diffusers' example scripts not given: training comparisons skipped. Get them with "
              "`git clone https://github.com/huggingface/diffusers` and pass "
              "--diffusers-examples diffusers/examples.")  # fmt: skip
    stages = set(args.stages.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        harness = Harness(args, Path(tmp))
        harness.backbone_dir()  # built once, outside every timing
        if "train" in stages:
            # Warm-up: class images for both implementations, outside the timings.
            # Warm-up: bench's class images (from the suite's protocol), outside the timings.
            harness.measure(harness.bench_train("dreambooth_lora", TRAINING[
                "dreambooth_lora + prior"][0], 1))  # fmt: skip
        rows, notes = [], []
        train = generate = score = None
        if "train" in stages:
            train_rows = harness.training()
            rows += [r.row() for r in train_rows]
            train = next((r for r in train_rows if r.name == "dreambooth_lora + prior"), None)
        if "generate" in stages:
            generate = harness.generation()
            rows.append(generate.row())
        if "score" in stages:
            score, worst = harness.scoring()
            rows.append(score.row())
            notes.append(f"largest difference between bench's and the naive loop's scores: "
                         f"{worst:.1e}")  # fmt: skip
            notes.append(scoring_bound(args.score_images))
        if train and generate and score:
            notes.append("projection of the full DreamBench protocol, DreamBooth-LoRA with prior "
                         f"preservation, on this machine: "
                         f"{projection(train, generate, score, args.sampling_steps)}")  # fmt: skip
    header = ["stage", "bench", "reference", "reference / bench", "start-up (bench / ref.)",
              "peak RSS MiB (bench / ref.)",
              "peak GPU MiB allocated (reserved), bench / ref."]  # fmt: skip
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        f"## {args.backbone} at {args.resolution} px, {args.dtype}, on {machine(args.device)}",
        "",
        f"{now}; {versions()}. Repetitions: {args.reps} (interleaved); training "
        f"{args.steps} vs {args.steps * 3} steps, batch 1, rank 4; generation {args.images} vs "
        f"{args.images * 3} images, {args.sampling_steps} DDIM steps, guidance 7.5; scoring "
        f"{args.score_images} images.",
        "",
        *table,
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    print("\n".join(section))
    if not args.results.exists():
        args.results.write_text("# Benchmark results\n\nWritten by benchmarks/perf.py.\n\n")
    with open(args.results, "a") as f:
        f.write("\n".join(section) + "\n")


if __name__ == "__main__":
    main()
