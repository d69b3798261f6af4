"""`bench generate`: fixed-noise variations. One initial noise per column, the same in every row;
one prompt per row. So a row differs from another only in its prompt, and a column shows what one
noise becomes under each prompt (the seed study's attribute edits: "wearing a santa hat", "red").

Column c's noise is `torch.randn` on the CPU from a generator seeded with

    stable_seed("generate", seed, c)

(`bench.data.plan.stable_seed`), rendered under a suite's generation protocol and resolution on its
backbone, either plain or through the method of a stored run with what it fitted for one subject
(any method: a LoRA adapter, a learned embedding, ...). The grid is one PNG (rows = prompts,
columns = images) with a JSON sidecar of the same name: prompts, seeds, backbone, run unit. Same
arguments, same bytes.
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


@dataclass(frozen=True)
class Setting:
    """What the images are rendered under: a suite's backbone, resolution and protocol."""

    suite: str
    backbone: str
    backbone_revision: str | None
    resolution: int
    generation: GenerationProtocol


@dataclass(frozen=True)
class RunUnit:
    """One fitted (subject, replicate) unit of a stored run: what `--run` renders with."""

    run_id: str
    run_dir: Path
    method: str
    config: dict[str, Any]  # the run's resolved method options
    subject: dict[str, Any]  # the unit's record of the subject: id, class, kind, token, images
    replicate: int
    artifact: str | None  # the file the method saved, when its log names one

    @property
    def workdir(self) -> Path:
        return self.run_dir / self.subject["id"] / f"replicate-{self.replicate}"

    def record(self) -> dict[str, Any]:
        path = self.workdir / self.artifact if self.artifact else self.workdir
        return {
            "path": str(path),
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "method": self.method,
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


def run_unit(
    runs_root: Path, run: str, subject: str | None, replicate: int | None
) -> tuple[RunUnit, Setting]:
    """The unit of `subject` (default: the run's only subject) at `replicate` (default: the run's
    first), and the setting the run was made under."""
    from bench.store.layout import RunPaths, find_run
    from bench.store.records import FitLog, RunRecord, UnitManifest

    run_dir = find_run(runs_root, run)
    paths = RunPaths(run_dir)
    record = RunRecord.read(paths.run_json)
    run_id = record.run_id
    if record.kind != "generated":
        raise BenchError(
            f"run {run_id} is a {record.kind} run: it has no fitted model to render with; "
            "--run takes a run made by `bench run` (`bench runs` lists them)"
        )
    identity = record.suite
    subjects = [s["id"] for s in identity["subjects"]]
    if subject is None:
        if len(subjects) != 1:
            raise BenchError(
                f"run {run_id} has {len(subjects)} subjects; pick one with --subject "
                f"({', '.join(subjects)})"
            )
        subject = subjects[0]
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
    unit = paths.unit(subject, replicate)
    if not RunPaths.manifest(unit).is_file():
        raise BenchError(
            f"{unit}: subject {subject} is not finished yet in run {run_id}; finish it with the "
            "same `bench run` command"
        )
    manifest = UnitManifest.read(RunPaths.manifest(unit))
    artifact = FitLog.read(RunPaths.fit_log(unit)).log.get("artifact")
    setting = Setting(
        suite=identity["name"],
        backbone=identity["backbone"],
        backbone_revision=identity.get("backbone_revision"),
        resolution=identity["resolution"],
        generation=GenerationProtocol(**identity["generation"]),
    )
    chosen = RunUnit(
        run_id, run_dir, record.method, record.config, manifest.subject, replicate, artifact
    )
    return chosen, setting


def column_seeds(seed: int, images: int) -> list[int]:
    return [stable_seed("generate", seed, column) for column in range(images)]


@dataclass(frozen=True)
class _Column:
    """What `render` (bench.diffusion.generation) needs of a cell: its sampling generator's seed."""

    seed: int


def fill_prompt(text: str, unit: RunUnit | None) -> str:
    """For the base model: `{token}` and `{class}` need a run's subject."""
    if unit is None and ("{token}" in text or "{class}" in text):
        raise BenchError(
            f"--prompt {text!r}: {{token}} and {{class}} need a subject; pass --run RUN "
            "(and --subject ID), or write the prompt out"
        )
    return " ".join(text.split())


def generate_variations(
    prompts: list[str],
    setting: Setting,
    *,
    unit: RunUnit | None = None,
    seed: int = 0,
    images: int = 4,
    out: Path = Path("grid.png"),
    device: str = "auto",
    dtype: str = "auto",
    labels: bool = False,
) -> dict[str, Any]:
    """Render every prompt from the same column noise, write the grid and its sidecar; returns
    the sidecar's content. With `unit`, the run's method renders, with what it fitted."""
    from bench.diffusion.backbone import load_backbone
    from bench.diffusion.generation import render

    if not prompts or not all(p.strip() for p in prompts):
        raise BenchError("--prompt: give at least one non-empty prompt (repeat --prompt for rows)")
    if images < 1:
        raise BenchError(f"--images {images}: must be >= 1")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise BenchError(f"--out {out}: the grid is a PNG; give a path ending in .png")
    texts = [fill_prompt(p, unit) for p in prompts]

    backbone = load_backbone(
        setting.backbone,
        revision=setting.backbone_revision,
        scheduler=setting.generation.scheduler,
        device=device,
        dtype=dtype,
    )
    seeds = column_seeds(seed, images)
    latents = noise(seeds, backbone.latent_channels, backbone.latent_size(setting.resolution))
    if unit is not None:
        rows, texts = _render_with_run(unit, setting, backbone, texts, seeds, latents)
    else:  # one batch per row: a repeated prompt gives the identical row
        columns = [_Column(s) for s in seeds]
        rows = [
            render(
                backbone.pipe,
                [text] * images,
                latents,
                columns,
                setting.generation,
                setting.resolution,
            )
            for text in texts
        ]

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
        "adapter": unit.record() if unit else None,
    }
    atomic.write_json(sidecar_path(out), sidecar)
    return sidecar


def _render_with_run(unit: RunUnit, setting: Setting, backbone, texts, seeds, latents):
    """Each row rendered by the run's method (its `generate`, from what it saved in the unit),
    with the column noise; returns the rows and the text the method rendered for each."""
    from bench import registry
    from bench.config import resolve_config
    from bench.data.plan import Cell
    from bench.data.prompts import Prompt, PromptSet
    from bench.data.subjects import Subject
    from bench.data.suites import Suite
    from bench.methods.protocol import MethodContext

    method = registry.load(registry.METHODS, unit.method)()
    config = resolve_config(method.Config, unit.config, where=f"run {unit.run_id}")
    recorded = unit.subject
    subject = Subject(
        id=recorded["id"],
        class_noun=recorded["class"],
        kind=recorded["kind"],
        images=tuple(Path(p) for p in recorded["images"]),
        token=recorded["token"],
    )
    # The run's setting for this one subject; the rows' prompts travel in the cells.
    suite = Suite(
        name=setting.suite,
        description="bench generate",
        subjects=(subject,),
        prompt_sets={subject.kind: PromptSet("generate", (Prompt("base", "a {token} {class}"),))},
        images_per_prompt=len(seeds),
        replicates=(unit.replicate,),
        resolution=setting.resolution,
        backbone=setting.backbone,
        generation=setting.generation,
        backbone_revision=setting.backbone_revision,
    )
    ctx = MethodContext(
        backbone=backbone,
        suite=suite,
        subject=subject,
        config=config,
        replicate=unit.replicate,
        workdir=unit.workdir,
    )
    rows, rendered = [], []
    try:
        for r, text in enumerate(texts):
            cells = [
                Cell(subject, Prompt(f"row_{r}", text), c, unit.replicate, noise_seed=s)
                for c, s in enumerate(seeds)
            ]
            rows.append(method.generate(ctx, cells, latents))
            prompt = getattr(method, "prompt", None)  # optional: what the method renders
            rendered.append(prompt(ctx, cells[0]) if prompt else cells[0].text)
    finally:
        if hasattr(method, "release"):
            method.release(ctx)
    return rows, rendered


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
