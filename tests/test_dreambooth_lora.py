"""DreamBooth-LoRA on the micro suite: it learns, leaves the backbone untouched, and its saved
adapter reproduces the run's images in a fresh pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from bench.backbone import load_backbone
from bench.config import resolve_config
from bench.generation import render
from bench.methods.dreambooth_lora import ARTIFACT
from bench.plan import cells_for, initial_latents
from bench.runner import ExecutionOptions, execute, prepare
from bench.suites import load_suite
from bench.training import fixed_noise_loss, load_images


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    suite = load_suite("micro")
    prepared = prepare("dreambooth_lora", suite, {"steps": 30}, tmp_path_factory.mktemp("runs"))
    execute(prepared, ExecutionOptions(device="cpu"))
    return prepared


def _unit(prepared):
    subject = prepared.suite.subjects[0]
    return subject, prepared.paths.unit(subject.id, 0)


def test_training_lowers_the_loss_on_fixed_noise(micro_run):
    subject, unit = _unit(micro_run)
    backbone = load_backbone("tiny", device="cpu")
    pixels = load_images(subject.images, micro_run.suite.resolution)
    before = fixed_noise_loss(backbone.pipe, pixels, "a sks mug")
    backbone.pipe.load_lora_weights(unit, weight_name=ARTIFACT)
    after = fixed_noise_loss(backbone.pipe, pixels, "a sks mug")
    assert after < before - 0.005, (before, after)


def test_fit_leaves_the_backbone_unchanged(micro_run, tmp_path):
    backbone = load_backbone("tiny", device="cpu")
    before = {k: v.clone() for k, v in backbone.pipe.unet.state_dict().items()}
    from bench.method_api import MethodContext
    from bench.methods.dreambooth_lora import DreamBoothLoRA

    config = resolve_config(DreamBoothLoRA.Config, {"steps": 2})
    ctx = MethodContext(
        backbone=backbone,
        suite=micro_run.suite,
        subject=micro_run.suite.subjects[0],
        config=config,
        replicate=0,
        workdir=tmp_path,
    )
    DreamBoothLoRA().fit(ctx)
    after = backbone.pipe.unet.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert (tmp_path / ARTIFACT).is_file()


def test_saved_adapter_reproduces_the_images_in_a_fresh_pipeline(micro_run):
    subject, unit = _unit(micro_run)
    suite = micro_run.suite
    cells = cells_for(suite, subject, 0)
    fresh = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    latents = initial_latents(cells, fresh.latent_channels, fresh.latent_size(suite.resolution))
    base = render(
        fresh.pipe, [c.text for c in cells], latents, cells, suite.generation, suite.resolution
    )
    fresh.pipe.load_lora_weights(unit, weight_name=ARTIFACT)
    tuned = render(
        fresh.pipe, [c.text for c in cells], latents, cells, suite.generation, suite.resolution
    )
    for cell, image in zip(cells, tuned, strict=True):
        stored = np.asarray(Image.open(unit / "images" / cell.image_name))
        assert np.array_equal(stored, image)
    # Fitting changed what the model draws, clearly (mean grey-level difference).
    diff = np.mean(
        [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(base, tuned, strict=True)]
    )
    assert diff > 5, diff
