"""`bench generate`: fixed-noise variations. One initial noise per column, the same in every row;
one prompt per row. So a row differs from another only in its prompt, and a column shows what one
noise becomes under each prompt (the seed study's attribute edits: "wearing a santa hat", "red").

Column c's noise is `torch.randn` on the CPU from a generator seeded with

    stable_seed("generate", seed, c)

(`bench.data.plan.stable_seed`), rendered under a suite's generation protocol and resolution on its
backbone, either plain or with a subject's DreamBooth-LoRA adapter from a stored run. The grid is
one PNG (rows = prompts, columns = images) with a JSON sidecar of the same name: prompts, seeds,
backbone, adapter. Same arguments, same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import atomic
from bench.data.plan import noise, stable_seed
from bench.data.suites import GenerationProtocol, generation_protocol, suite_path
from bench.errors import BenchError
from bench.toml_files import read_toml, require

ADAPTER_METHOD = "dreambooth_lora"


@dataclass(frozen=True)
class Setting:
    """What the images are rendered under: a suite's backbone, resolution and protocol."""

    suite: str
    backbone: str
    backbone_revision: str | None
    resolution: int
    generation: GenerationProtocol


@dataclass(frozen=True)
class Adapter:
    """A subject's LoRA adapter in a stored dreambooth_lora run."""

    path: Path  # the weights file
    run_id: str
    run_dir: Path
    subject: dict[str, Any]  # the run's record of the subject: id, class, kind, token
    replicate: int

    def record(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "method": ADAPTER_METHOD,
            "subject": self.subject["id"],
            "replicate": self.replicate,
        }


def suite_setting(name_or_path: str | Path) -> Setting:
    """A suite's backbone, resolution and protocol, without loading its subjects or prompts
    (the DreamBench suite needs no dataset for this)."""
    path = suite_path(name_or_path)
    table = read_toml(path)
    protocol = generation_protocol(table, path)
    return Setting(
        suite=table.get("name", path.stem),
        backbone=require(table, "backbone", str, path),
        backbone_revision=table.get("backbone_revision"),
        resolution=require(table, "resolution", int, path),
        generation=protocol,
    )


def run_adapter(
    runs_root: Path, run: str, subject: str | None, replicate: int | None
) -> tuple[Adapter, Setting]:
    """The adapter of `subject` (default: the run's only subject) at `replicate` (default: the
    run's first), and the setting the run was made under."""
    from bench.methods.dreambooth_lora import ARTIFACT
    from bench.store.layout import RunPaths, find_run
    from bench.store.records import RunRecord

    run_dir = find_run(runs_root, run)
    record = RunRecord.read(RunPaths(run_dir).run_json)
    run_id = record.run_id
    if record.method != ADAPTER_METHOD:
        raise BenchError(
            f"run {run_id} was made by method {record.method!r}; --run takes a "
            f"{ADAPTER_METHOD} run (`bench runs` lists them)"
        )
    identity = record.suite
    subjects = {s["id"]: s for s in identity["subjects"]}
    if subject is None:
        if len(subjects) != 1:
            raise BenchError(
                f"run {run_id} has {len(subjects)} subjects; pick one with --subject "
                f"({', '.join(subjects)})"
            )
        subject = next(iter(subjects))
    if subject not in subjects:
        raise BenchError(
            f"--subject {subject}: not in run {run_id}; its subjects: {', '.join(subjects)}"
        )
    replicates = identity["replicates"]
    if replicate is None:
        replicate = replicates[0]
    if replicate not in replicates:
        raise BenchError(
            f"--replicate {replicate}: run {run_id} has replicates "
            f"{', '.join(map(str, replicates))}"
        )
    weights = RunPaths(run_dir).unit(subject, replicate) / ARTIFACT
    if not weights.is_file():
        raise BenchError(
            f"{weights}: no adapter; subject {subject} is not fitted yet in run {run_id}, "
            "finish it with the same `bench run` command"
        )
    setting = Setting(
        suite=identity["name"],
        backbone=identity["backbone"],
        backbone_revision=identity.get("backbone_revision"),
        resolution=identity["resolution"],
        generation=GenerationProtocol(**identity["generation"]),
    )
    return Adapter(weights, run_id, run_dir, subjects[subject], replicate), setting


def column_seeds(seed: int, images: int) -> list[int]:
    return [stable_seed("generate", seed, column) for column in range(images)]


@dataclass(frozen=True)
class _Column:
    """What `render` (bench.diffusion.generation) needs of a cell: its sampling generator's seed."""

    seed: int


def fill_prompt(text: str, adapter: Adapter | None) -> str:
    """`{token}` and `{class}` become the adapter's subject's; plain text is left as it is."""
    if "{token}" not in text and "{class}" not in text:
        return text
    if adapter is None:
        raise BenchError(
            f"--prompt {text!r}: {{token}} and {{class}} need a subject; pass --run RUN "
            "(and --subject ID), or write the prompt out"
        )
    filled = text.replace("{token}", adapter.subject["token"])
    return " ".join(filled.replace("{class}", adapter.subject["class"]).split())


def generate_variations(
    prompts: list[str],
    setting: Setting,
    *,
    adapter: Adapter | None = None,
    seed: int = 0,
    images: int = 4,
    out: Path = Path("grid.png"),
    device: str = "auto",
    dtype: str = "auto",
    labels: bool = False,
) -> dict[str, Any]:
    """Render every prompt from the same column noise, write the grid and its sidecar; returns
    the sidecar's content."""
    from bench.diffusion.backbone import load_backbone
    from bench.diffusion.generation import render

    if not prompts or not all(p.strip() for p in prompts):
        raise BenchError("--prompt: give at least one non-empty prompt (repeat --prompt for rows)")
    if images < 1:
        raise BenchError(f"--images {images}: must be >= 1")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise BenchError(f"--out {out}: the grid is a PNG; give a path ending in .png")
    texts = [fill_prompt(p, adapter) for p in prompts]

    backbone = load_backbone(
        setting.backbone,
        revision=setting.backbone_revision,
        scheduler=setting.generation.scheduler,
        device=device,
        dtype=dtype,
    )
    pipe = backbone.pipe
    if adapter is not None:
        pipe.load_lora_weights(adapter.path.parent, weight_name=adapter.path.name)
    seeds = column_seeds(seed, images)
    latents = noise(seeds, backbone.latent_channels, backbone.latent_size(setting.resolution))
    columns = [_Column(s) for s in seeds]
    rows = []
    try:
        for text in texts:  # one batch per row: a repeated prompt gives the identical row
            rows.append(
                render(
                    pipe,
                    [text] * images,
                    latents,
                    columns,
                    setting.generation,
                    setting.resolution,
                )
            )
    finally:
        if adapter is not None:
            pipe.unload_lora_weights()

    grid = tile(rows, texts if labels else None)
    with atomic.atomic_path(out) as tmp:
        grid.save(tmp, format="PNG")
    sidecar = {
        "grid": out.name,
        "layout": {
            "rows": "prompts",
            "columns": "images",
            "tile": setting.resolution,
            "labels": labels,
        },
        "prompts": texts,
        "seed": seed,
        "seeds": seeds,
        "noise": "torch.randn on the CPU, one generator per column seeded with seeds[c]; "
        "the same noise in every row",
        "suite": setting.suite,
        "resolution": setting.resolution,
        "generation": vars(setting.generation),
        "backbone": backbone.provenance(),
        "adapter": adapter.record() if adapter else None,
    }
    atomic.write_json(sidecar_path(out), sidecar)
    return sidecar


def sidecar_path(grid: Path) -> Path:
    return Path(grid).with_suffix(".json")


def tile(rows: list[list[np.ndarray]], labels: list[str] | None = None):
    """Rows of equal HxWx3 uint8 tiles as one PIL image; with `labels`, a white strip holding
    each row's text (PIL's default font) above the row."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = rows[0][0].shape[:2]
    columns = len(rows[0])
    font = strip = None
    if labels is not None:
        try:
            font = ImageFont.load_default(size=max(10, height // 20))
        except (ImportError, OSError, TypeError):  # Pillow without FreeType: the bitmap font
            font = ImageFont.load_default()
        top, bottom = font.getbbox("Ag")[1::2]
        strip = bottom - top + 6
    row_height = height + (strip or 0)
    grid = Image.new("RGB", (columns * width, len(rows) * row_height), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(rows):
        y = r * row_height
        if labels is not None:
            text = _fit_text(draw, labels[r], font, columns * width - 6)
            draw.text((3, y + 3), text, fill="black", font=font)
            y += strip
        for c, image in enumerate(row):
            grid.paste(Image.fromarray(image), (c * width, y))
    return grid


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
