"""DreamBooth-LoRA on the micro suite: it learns, leaves the backbone untouched, and its saved
adapter reproduces the run's images in a fresh pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from bench.config import resolve_config
from bench.data.plan import cells_for, initial_latents
from bench.data.suites import load_suite
from bench.diffusion.backbone import load_backbone
from bench.diffusion.generation import render
from bench.diffusion.training import fixed_noise_loss, load_images
from bench.errors import BenchError
from bench.methods.dreambooth_lora import ARTIFACT, IDENTIFIER_ARTIFACT
from bench.store.runner import ExecutionOptions, execute, prepare


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
    from bench.methods.dreambooth_lora import DreamBoothLoRA
    from bench.methods.protocol import MethodContext

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


def test_a_learned_identifier_loads_in_diffusers_as_a_textual_inversion_token(tmp_path):
    """Pivotal tuning's artifacts, loaded with diffusers' own loaders in a fresh pipeline (the
    identifier's row as a new token, "<sks>", written where "sks" was), give the run's images."""
    suite = load_suite("micro")
    options = {"steps": 4, "lr": 1e-2, "train_identifier": True, "identifier_lr": 5e-2}
    prepared = prepare("dreambooth_lora", suite, options, tmp_path)
    execute(prepared, ExecutionOptions(device="cpu"))
    subject, unit = _unit(prepared)
    cells = cells_for(suite, subject, 0)
    fresh = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    latents = initial_latents(cells, fresh.latent_channels, fresh.latent_size(suite.resolution))

    def draw(prompts):
        return render(fresh.pipe, prompts, latents, cells, suite.generation, suite.resolution)

    fresh.pipe.load_lora_weights(unit, weight_name=ARTIFACT)
    adapter_only = draw([c.text for c in cells])
    fresh.pipe.load_textual_inversion(unit / IDENTIFIER_ARTIFACT, token="<sks>")
    tuned = draw([c.prompt.render("<sks>", subject.class_noun) for c in cells])
    for cell, image in zip(cells, tuned, strict=True):
        stored = np.asarray(Image.open(unit / "images" / cell.image_name))
        assert np.array_equal(stored, image)
    assert not all(np.array_equal(a, b) for a, b in zip(adapter_only, tuned, strict=True))


def test_release_gives_the_text_encoder_its_own_token_table_back(tmp_path):
    from bench.methods.dreambooth_lora import DreamBoothLoRA
    from bench.methods.protocol import MethodContext

    suite = load_suite("micro")
    backbone = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    table = backbone.pipe.text_encoder.get_input_embeddings()
    ctx = MethodContext(
        backbone=backbone,
        suite=suite,
        subject=suite.subjects[0],
        config=resolve_config(DreamBoothLoRA.Config, {"steps": 1, "train_identifier": True}),
        replicate=0,
        workdir=tmp_path,
    )
    method = DreamBoothLoRA()
    method.fit(ctx)
    cells = cells_for(suite, ctx.subject, 0)[:1]
    latents = initial_latents(cells, backbone.latent_channels, backbone.latent_size(32))
    method.generate(ctx, cells, latents)
    assert backbone.pipe.text_encoder.get_input_embeddings() is not table  # the learned row in
    method.release(ctx)
    assert backbone.pipe.text_encoder.get_input_embeddings() is table
    # A unit whose learned row is gone: one line naming the file, and no adapter left loaded.
    (tmp_path / IDENTIFIER_ARTIFACT).unlink()
    with pytest.raises(BenchError, match=r"identifier_embedding.safetensors: .* fit.json"):
        method.generate(ctx, cells, latents)
    assert backbone.pipe.text_encoder.get_input_embeddings() is table
    assert not any("lora" in key for key in backbone.pipe.unet.state_dict())


def _fit(tmp_path, suite, backbone, **options):
    from bench.methods.dreambooth_lora import DreamBoothLoRA
    from bench.methods.protocol import MethodContext

    config = resolve_config(
        DreamBoothLoRA.Config, {"lr": 1e-2, "steps": 4, "batch_size": 2, **options}
    )
    workdir = tmp_path / "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    ctx = MethodContext(
        backbone=backbone,
        suite=suite,
        subject=suite.subjects[0],
        config=config,
        replicate=0,
        workdir=workdir,
        cache=tmp_path,
    )
    log = DreamBoothLoRA().fit(ctx)
    return workdir, {**log, "checkpoints": ctx.saved_checkpoints}  # as bench records them


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(path)


def test_prior_preservation_enters_the_loss_and_class_images_are_cached(tmp_path):
    suite = load_suite("micro")
    backbone = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    common = {"prior_preservation": True, "num_class_images": 3}
    with_prior, log = _fit(tmp_path, suite, backbone, prior_loss_weight=1.0, **common)
    without, _ = _fit(tmp_path, suite, backbone, prior_loss_weight=0.0, **common)
    assert log["class_images"] == 3 and len(log["prior_losses"]) == 4
    assert log["class_prompt"] == "a mug"
    a, b = _tensors(with_prior / ARTIFACT), _tensors(without / ARTIFACT)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    sets = list((tmp_path / "class_images").iterdir())
    assert len(sets) == 1 and len(list(sets[0].glob("*.png"))) == 3  # made once, then reused
    stamp = (sets[0] / "meta.json").stat().st_mtime_ns
    _fit(tmp_path, suite, backbone, prior_loss_weight=0.5, **common)
    assert (sets[0] / "meta.json").stat().st_mtime_ns == stamp
    _fit(tmp_path, suite, backbone, class_prompt="a square robot from an animated film", **common)
    assert len(list((tmp_path / "class_images").iterdir())) == 2


def test_text_encoder_training_is_opt_in(tmp_path):
    from bench.diffusion.training import encode_text

    suite = load_suite("micro")
    backbone = load_backbone("tiny", device="cpu")
    pipe = backbone.pipe
    original = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    with torch.no_grad():
        reference = encode_text(pipe, ["a sks mug"])
    unet_only, _ = _fit(tmp_path, suite, backbone)
    both, _ = _fit(tmp_path, suite, backbone, train_text_encoder=True, te_lr=1e-2)
    after = pipe.text_encoder.state_dict()
    assert after.keys() == original.keys()
    assert all(torch.equal(after[k], original[k]) for k in original)  # bit-identical after fit
    assert not any(k.startswith("text_encoder.") for k in _tensors(unet_only / ARTIFACT))
    assert any(k.startswith("text_encoder.") for k in _tensors(both / ARTIFACT))
    pipe.load_lora_weights(both, weight_name=ARTIFACT)
    with torch.no_grad():
        tuned = encode_text(pipe, ["a sks mug"])
    pipe.unload_lora_weights()
    assert not torch.allclose(tuned, reference)


def test_kohya_export_loads_in_diffusers_with_the_same_images(tmp_path):
    from bench.methods.dreambooth_lora import KOHYA_ARTIFACT

    suite = load_suite("micro")
    backbone = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    workdir, log = _fit(
        tmp_path,
        suite,
        backbone,
        train_text_encoder=True,
        export_kohya=True,
        checkpoint_every=2,
        te_lr=1e-2,
    )
    keys = _tensors(workdir / KOHYA_ARTIFACT).keys()
    assert any(k.startswith("lora_unet_down_blocks_1_attentions_0") for k in keys)
    assert any(k.startswith("lora_te_text_model_encoder_layers_0") for k in keys)
    assert [c["step"] for c in log["checkpoints"]] == [2]
    assert (workdir / "checkpoints" / "step-000002" / ARTIFACT).is_file()
    cells = cells_for(suite, suite.subjects[0], 0)
    latents = initial_latents(
        cells, backbone.latent_channels, backbone.latent_size(suite.resolution)
    )
    images = {}
    for name in (ARTIFACT, KOHYA_ARTIFACT):
        backbone.pipe.load_lora_weights(workdir, weight_name=name)
        images[name] = render(
            backbone.pipe,
            [c.text for c in cells],
            latents,
            cells,
            suite.generation,
            suite.resolution,
        )
        backbone.pipe.unload_lora_weights()
    for a, b in zip(images[ARTIFACT], images[KOHYA_ARTIFACT], strict=True):
        assert np.array_equal(a, b)
