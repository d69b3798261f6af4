"""The `base` method: nothing trained, each prompt rendered with the class noun alone."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.data.plan import cells_for, initial_latents
from bench.data.suites import load_suite
from bench.diffusion.backbone import load_backbone
from bench.diffusion.generation import render
from bench.methods.base import Base
from bench.methods.protocol import MethodContext
from bench.store.layout import RunPaths

CLASS_ONLY = ["a mug on the beach", "a red mug"]  # micro's two prompts for its red mug


def test_run_base_on_micro_renders_the_untouched_backbone(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--method",
            "base",
            "--suite",
            "micro",
            "--runs",
            str(tmp_path),
            "--json",
            "--no-score",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["generated"] == 2
    run_dir = Path(summary["run_dir"])
    assert not list(run_dir.rglob("*.safetensors"))  # nothing trained, nothing saved
    unit = run_dir / "red_mug" / "replicate-0"
    assert json.loads(RunPaths.fit_log(unit).read_text())["trained"] is False

    suite = load_suite("micro")
    cells = cells_for(suite, suite.subjects[0], 0)
    assert [c.scoring_text for c in cells] == CLASS_ONLY
    fresh = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    latents = initial_latents(cells, fresh.latent_channels, fresh.latent_size(suite.resolution))
    expected = render(fresh.pipe, CLASS_ONLY, latents, cells, suite.generation, suite.resolution)
    stored = [np.asarray(Image.open(unit / "images" / c.image_name)) for c in cells]
    assert all(np.array_equal(a, b) for a, b in zip(stored, expected, strict=True))
    # The identifier would have changed the images: the match above is not a coincidence.
    with_token = render(
        fresh.pipe, [c.text for c in cells], latents, cells, suite.generation, suite.resolution
    )
    assert not any(np.array_equal(a, b) for a, b in zip(stored, with_token, strict=True))


def test_base_prompts_are_class_only_and_fit_writes_nothing(tmp_path, monkeypatch):
    """A spy on the real pipeline, calling through, sees the class-only prompts and the given
    noise; fit writes nothing."""
    from diffusers import StableDiffusionPipeline

    suite = load_suite("micro")
    subject = suite.subjects[0]
    backbone = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    ctx = MethodContext(
        backbone=backbone,
        suite=suite,
        subject=subject,
        config=Base.Config(),
        replicate=0,
        workdir=tmp_path,
    )
    seen = []
    call = StableDiffusionPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append((self, list(kwargs["prompt"]), kwargs["latents"].clone()))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", spy)
    method = Base()
    assert method.fit(ctx) == {"trained": False}
    assert not list(tmp_path.iterdir())
    cells = cells_for(suite, subject, 0)
    latents = initial_latents(cells, backbone.latent_channels, backbone.latent_size(32))
    images = method.generate(ctx, cells, latents)
    assert len(images) == 2 and images[0].shape == (32, 32, 3)
    [(pipe, prompts, received)] = seen
    assert pipe is backbone.pipe and prompts == CLASS_ONLY
    assert torch.equal(received, latents)
    assert all(subject.token not in p for p in prompts)
