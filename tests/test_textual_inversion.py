"""Textual Inversion on the micro suite: only the new embedding rows learn, the backbone is left as
found, the saved embedding loads in diffusers and reproduces the run's images, and it learns."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from bench.config import resolve_config
from bench.data.plan import cells_for, initial_latents
from bench.data.suites import load_suite
from bench.diffusion.backbone import load_backbone
from bench.diffusion.generation import render
from bench.diffusion.training import fixed_noise_loss, load_images
from bench.errors import BenchError
from bench.methods.protocol import MethodContext
from bench.methods.textual_inversion import ARTIFACT, Config, TextualInversion
from bench.store.runner import ExecutionOptions, execute, prepare

TOKEN = "<sks>"


@pytest.fixture(scope="module")
def suite():
    return load_suite("micro")


@pytest.fixture(scope="module")
def micro_run(suite, tmp_path_factory):
    prepared = prepare("textual_inversion", suite, {"steps": 30}, tmp_path_factory.mktemp("runs"))
    execute(prepared, ExecutionOptions(device="cpu"))
    return prepared


@pytest.fixture(scope="module")
def backbone(suite):
    """One backbone for the tests that call the method directly; each checks it is restored."""
    return load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")


def _unit(prepared):
    subject = prepared.suite.subjects[0]
    return subject, prepared.paths.unit(subject.id, 0)


def _context(backbone, suite, workdir, *, subject=None, progress=None, **options):
    extra = {"progress": progress} if progress else {}
    return MethodContext(
        backbone=backbone,
        suite=suite,
        subject=subject or suite.subjects[0],
        config=resolve_config(Config, options),
        replicate=0,
        workdir=workdir,
        **extra,
    )


def _snapshot(pipe):
    """Everything fit or release could leave behind in the text side of the backbone."""
    encoder = pipe.text_encoder
    return {
        "state": {k: v.clone() for k, v in encoder.state_dict().items()},
        "grad": {k: p.requires_grad for k, p in encoder.named_parameters()},
        "embedding": encoder.get_input_embeddings(),
        "weight": encoder.get_input_embeddings().weight,
        "num_embeddings": encoder.get_input_embeddings().num_embeddings,
        "vocab_size": encoder.config.vocab_size,
        "tokenizer_len": len(pipe.tokenizer),
        "vocab": pipe.tokenizer.get_vocab(),
        "ids": pipe.tokenizer(f"a {TOKEN} {TOKEN}_1 mug").input_ids,
    }


def _assert_restored(pipe, before):
    after = _snapshot(pipe)
    assert after["state"].keys() == before["state"].keys()
    assert all(torch.equal(after["state"][k], before["state"][k]) for k in before["state"])
    assert after["embedding"] is before["embedding"] and after["weight"] is before["weight"]
    for key in ("grad", "num_embeddings", "vocab_size", "tokenizer_len", "vocab", "ids"):
        assert after[key] == before[key], key


def _embedding_of(pipe, text):
    ids = pipe.tokenizer(text, add_special_tokens=False).input_ids
    return pipe.text_encoder.get_input_embeddings().weight[ids].float().mean(0)


def test_fit_trains_only_the_new_rows_and_leaves_the_backbone_as_found(suite, backbone, tmp_path):
    pipe = backbone.pipe
    before = _snapshot(pipe)
    old = pipe.text_encoder.get_input_embeddings().weight.clone()
    n_old = old.shape[0]
    new_rows = []

    def check_rows(advance, info=None):
        # After each optimizer step, the embedding in use: old rows exactly as they were.
        weight = pipe.text_encoder.get_input_embeddings().weight
        assert weight.shape[0] == n_old + 1
        assert torch.equal(weight[:n_old], old)
        new_rows.append(weight[n_old:].detach().clone())

    log = TextualInversion().fit(_context(backbone, suite, tmp_path, progress=check_rows, steps=3))
    _assert_restored(pipe, before)
    assert len(new_rows) == 3 and len(log["losses"]) == 3
    assert log["tokens"] == [TOKEN] and log["artifact"] == ARTIFACT
    saved = load_file(tmp_path / ARTIFACT)
    assert list(saved) == [TOKEN] and saved[TOKEN].shape == (1, old.shape[1])
    init = _embedding_of(pipe, "mug")  # the subject's class noun
    assert not torch.equal(saved[TOKEN][0], init)
    assert not torch.equal(new_rows[0], new_rows[-1])
    assert torch.equal(saved[TOKEN], new_rows[-1])


UNMOVED_LR = 1e-30  # steps must be >= 1; this step moves no float32 value


@pytest.mark.parametrize(
    "class_noun, init_from_class, init_text",
    [("coffee mug", True, "coffee mug"), ("mug", False, "object")],
)
def test_initial_vectors(suite, backbone, tmp_path, class_noun, init_from_class, init_text):
    # With one step at a learning rate below float32's resolution, the saved vectors are the
    # initial ones: the mean embedding of the class noun's tokens ("coffee mug" is two), or of
    # the fixed fallback word.
    subject = dataclasses.replace(suite.subjects[0], class_noun=class_noun)
    assert len(backbone.pipe.tokenizer(init_text, add_special_tokens=False).input_ids) >= 1
    ctx = _context(
        backbone,
        suite,
        tmp_path,
        subject=subject,
        steps=1,
        lr=UNMOVED_LR,
        num_vectors=2,
        init_from_class=init_from_class,
    )
    TextualInversion().fit(ctx)
    saved = load_file(tmp_path / ARTIFACT)[TOKEN]
    expected = _embedding_of(backbone.pipe, init_text)
    assert saved.shape[0] == 2
    assert torch.equal(saved[0], expected) and torch.equal(saved[1], expected)


def test_saved_embedding_loads_in_diffusers_and_reproduces_the_images(micro_run):
    subject, unit = _unit(micro_run)
    suite = micro_run.suite
    cells = cells_for(suite, subject, 0)
    fresh = load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")
    pipe = fresh.pipe
    original = pipe.text_encoder.get_input_embeddings().weight.clone()
    latents = initial_latents(cells, fresh.latent_channels, fresh.latent_size(suite.resolution))
    prompts = [c.prompt.render(TOKEN, subject.class_noun) for c in cells]  # "a <sks> mug ..."
    assert prompts[0] == "a <sks> mug on the beach"
    untrained = render(pipe, prompts, latents, cells, suite.generation, suite.resolution)

    pipe.load_textual_inversion(unit / ARTIFACT)  # the token comes from the file
    weight = pipe.text_encoder.get_input_embeddings().weight
    assert weight.shape[0] == original.shape[0] + 1
    assert torch.equal(weight[: original.shape[0]], original)  # only the appended row is new
    assert torch.equal(weight[-1], load_file(unit / ARTIFACT)[TOKEN][0])
    assert pipe.tokenizer.convert_tokens_to_ids(TOKEN) == original.shape[0]

    tuned = render(pipe, prompts, latents, cells, suite.generation, suite.resolution)
    for cell, image in zip(cells, tuned, strict=True):
        stored = np.asarray(Image.open(unit / "images" / cell.image_name))
        assert np.array_equal(stored, image)
    # Without the embedding the same text means something else ("<", "sks", ">").
    assert not all(np.array_equal(a, b) for a, b in zip(untrained, tuned, strict=True))


def test_training_lowers_the_loss_on_fixed_noise(micro_run):
    subject, unit = _unit(micro_run)
    pipe = load_backbone("tiny", device="cpu").pipe
    pixels = load_images(subject.images, micro_run.suite.resolution)
    prompt = f"a photo of a {TOKEN}"
    pipe.load_textual_inversion({TOKEN: _embedding_of(pipe, subject.class_noun)[None]})
    before = fixed_noise_loss(pipe, pixels, prompt)  # the initial embedding: the class noun's
    pipe.unload_textual_inversion()
    pipe.load_textual_inversion(unit / ARTIFACT)
    after = fixed_noise_loss(pipe, pixels, prompt)
    # The tiny random backbone barely listens to its prompt (different prompts move this loss
    # by ~1e-4); 30 steps lower it by ~1.5e-4.
    assert after < before - 7e-5, (before, after)


def test_config_errors():
    with pytest.raises(ValueError, match="num_vectors"):
        Config(num_vectors=0)
    for bad in ({"lr": 0.0}, {"token": "<SKS>"}, {"token": "two words"}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            Config(**bad)
    with pytest.raises(BenchError, match="num_vectors"):
        resolve_config(Config, {"num_vectors": 0}, where="method textual_inversion")


def test_two_vectors_fit_and_generate(suite, backbone, tmp_path):
    pipe = backbone.pipe
    before = _snapshot(pipe)
    method = TextualInversion()
    ctx = _context(backbone, suite, tmp_path, steps=4, num_vectors=2)
    log = method.fit(ctx)
    assert log["tokens"] == [TOKEN, f"{TOKEN}_1"]
    vectors = load_file(tmp_path / ARTIFACT)[TOKEN]
    assert vectors.shape == (2, 32) and not torch.equal(vectors[0], vectors[1])
    _assert_restored(pipe, before)

    seen = []
    hook = pipe.text_encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        cells = cells_for(suite, ctx.subject, 0)[:1]
        latents = initial_latents(
            cells, backbone.latent_channels, backbone.latent_size(suite.resolution)
        )
        images = method.generate(ctx, cells, latents)
    finally:
        hook.remove()
    assert len(images) == 1 and images[0].shape == (32, 32, 3) and images[0].dtype == np.uint8
    # The prompt reached the text encoder with both vectors, once each, in order.
    n = before["tokenizer_len"]
    ids = seen[0][0].tolist()
    assert ids.count(n) == 1 and ids.count(n + 1) == 1 and ids.index(n + 1) == ids.index(n) + 1
    expanded = pipe.tokenizer(
        f"a {TOKEN} {TOKEN}_1 mug on the beach", padding="max_length", max_length=77
    ).input_ids
    assert ids == expanded
    method.release(ctx)
    _assert_restored(pipe, before)
