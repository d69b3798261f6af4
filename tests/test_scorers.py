"""Scorers: cosine maths, DINO preprocessing, tiny random weights, caching, offline errors.

Offline and CPU only: the tiny random-weight models stand in for CLIP and DINO.
"""

from __future__ import annotations

import json
import math
import socket
import struct

import numpy as np
import pytest
from PIL import Image

from bench.scorers import SCORER_IDS, ScorerWeightsError
from bench.scorers import clip as clip_mod
from bench.scorers import dino as dino_mod
from bench.scorers import diversity as div_mod
from bench.scorers.common import mean_cosine_to_references, paired_cosine

TINY = {"pretrained": "random:0", "device": "cpu"}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test: hub offline, a temporary BENCH_CACHE, and no sockets."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "bench-cache"))

    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """clip_i, clip_t and dino on tiny random weights, built once for the module."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("tiny-cache")))
        clip_mod.clear_model_cache()
        dino_mod.clear_model_cache()
        scorers = {
            "clip_i": clip_mod.make_clip_i(TINY),
            "clip_t": clip_mod.make_clip_t(TINY),
            "dino": dino_mod.make_dino(TINY),
            "dinov2": dino_mod.make_dinov2(TINY),
            "pres": dino_mod.make_pres(TINY),
            "div": div_mod.make_div(TINY),
        }
    yield scorers
    clip_mod.clear_model_cache()
    dino_mod.clear_model_cache()


def make_images(n: int, seed: int = 0, size: tuple[int, int] = (96, 64)) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    w, h = size
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(n)]


def clear_models() -> None:
    clip_mod.clear_model_cache()
    dino_mod.clear_model_cache()


# --------------------------------------------------------------------------- maths


def test_mean_cosine_hand_made_vectors():
    refs = np.array([[1.0, 0.0, 0.0]])
    assert mean_cosine_to_references(np.array([[0.0, 2.0, 0.0]]), refs)[0] == pytest.approx(0.0)
    assert mean_cosine_to_references(np.array([[3.0, 0.0, 0.0]]), refs)[0] == pytest.approx(1.0)
    assert mean_cosine_to_references(np.array([[-5.0, 0.0, 0.0]]), refs)[0] == pytest.approx(-1.0)

    # Averaged over references: cosines 1, 0, -1/sqrt(2) and 1/sqrt(2) -> mean 1/4.
    refs4 = np.array([[1.0, 0.0], [0.0, 7.0], [-1.0, 1.0], [2.0, 2.0]])
    gen = np.array([[4.0, 0.0], [0.0, -1.0]])
    got = mean_cosine_to_references(gen, refs4)
    expected_second = (0.0 - 1.0 - 1 / math.sqrt(2) - 1 / math.sqrt(2)) / 4
    assert got.shape == (2,)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [0.25, expected_second], atol=1e-12)


def test_cosines_are_raw_not_clamped_or_scaled():
    gen = np.array([[1.0, 0.0], [1.0, 1.0]])
    refs = np.array([[-1.0, 0.2]])
    got = mean_cosine_to_references(gen, refs)
    # -1/sqrt(1.04) and -0.8/sqrt(2 * 1.04): negative stays negative (no clamp at 0), no x100.
    np.testing.assert_allclose(got, [-1 / math.sqrt(1.04), -0.8 / math.sqrt(2.08)], atol=1e-12)


def test_paired_cosine_is_row_wise():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([[0.0, 3.0], [0.0, -2.0], [1.0, 1.0]])
    np.testing.assert_allclose(paired_cosine(a, b), [0.0, -1.0, 1.0], atol=1e-12)


def test_scorers_combine_the_networks_embeddings_as_defined(tiny):
    """Each score is the cosine maths applied to what the real network outputs for the image,
    its references and its prompt, each embedded here by hand."""
    import torch

    images, refs = make_images(3, seed=1), make_images(2, seed=2)
    prompts = ["a dog", "a cat", "a cat"]
    clip_model, dino_model = tiny["clip_i"].model, tiny["dino"].model

    def unit(x):
        x = x.detach().double().numpy()
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def clip(ims):
        return unit(
            clip_model.net.encode_image(torch.stack([clip_model.preprocess(i) for i in ims]))
        )

    def dino(ims):
        return unit(dino_model.net(torch.stack([reference_dino_transform()(i) for i in ims])))

    text = unit(clip_model.net.encode_text(clip_model.tokenizer(prompts)))
    kw = dict(prompts=prompts, references=refs, reference_key="by/hand")
    expected = {
        "clip_i": (clip(images) @ clip(refs).T).mean(axis=1),
        "dino": (dino(images) @ dino(refs).T).mean(axis=1),
        "clip_t": np.einsum("nd,nd->n", clip(images), text),
    }
    for name, values in expected.items():
        np.testing.assert_allclose(tiny[name].score(images, **kw), values, atol=1e-6)
    for name in ("clip_i", "dino"):
        tiny[name].model.ref_cache.pop("by/hand", None)


# --------------------------------------------------------------------------- DINO preprocessing


def reference_dino_transform():
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )


def test_dino_preprocessing_matches_reference_transform(tiny, monkeypatch):
    import torch

    image = make_images(1, seed=3, size=(300, 180))[0]  # landscape, not square
    expected = reference_dino_transform()(image)
    assert expected.shape == (3, 224, 224)
    # The test image is sensitive to the choices made: a squash resize differs.
    from torchvision import transforms as T

    squash = T.Compose(
        [
            T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    assert not torch.allclose(squash(image), expected)

    assert torch.equal(dino_mod.dino_transform()(image), expected)

    # And what the scorer's network actually receives is that tensor.
    seen = []
    net = tiny["dino"].model.net
    handle = net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    try:
        tiny["dino"].score([image], prompts=["x"], references=[image], reference_key="pp/one")
    finally:
        handle.remove()
        tiny["dino"].model.ref_cache.pop("pp/one", None)
    assert len(seen) == 2  # references, then the generated image
    assert torch.equal(seen[-1][0], expected)


# --------------------------------------------------------------------------- tiny weights


def read_safetensors_header(path) -> dict:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length])


@pytest.mark.parametrize("family", ["clip", "dino"])
def test_tiny_weights_saved_and_reloaded_by_path(family, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file, save_file

    mod, make = (
        (clip_mod, clip_mod.make_clip_i) if family == "clip" else (dino_mod, dino_mod.make_dino)
    )
    images, refs = make_images(4, seed=4), make_images(2, seed=5)
    kw = dict(prompts=["a dog"] * 4, references=refs, reference_key="s/t")

    clear_models()
    first = make(TINY)
    assert first.random_weights is True
    assert "random" in first.model_id and "seed0" in first.model_id
    path = mod.tiny_weights_file(0)
    assert path.is_file()
    assert path.parent.parent == tmp_path / "bench-cache" / "scorers"
    assert path.suffix == ".safetensors"
    header = read_safetensors_header(path)
    assert header["__metadata__"]["seed"] == "0"
    scores_first = first.score(images, **kw)

    # Built again from the cache file: identical weights and scores.
    clear_models()
    second = make(TINY)
    assert second.model is not first.model
    np.testing.assert_array_equal(second.score(images, **kw), scores_first)

    # The file really is what gets loaded: a change to it shows up in the rebuilt model.
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, str(path))
    clear_models()
    third = make(TINY)
    assert torch.equal(third.model.net.state_dict()[name], tensors[name])

    # Another seed is another model.
    clear_models()
    other = make({**TINY, "pretrained": "random:1"})
    assert mod.tiny_weights_file(1) != path
    assert not np.array_equal(other.score(images, **kw), scores_first)
    clear_models()


def test_tiny_clip_goes_through_the_local_file_loader(tmp_path):
    """random:<seed> and pretrained=<that file> load the same weights the same way."""
    images, refs = make_images(3, seed=6), make_images(2, seed=7)
    kw = dict(prompts=["a red dog"] * 3, references=refs, reference_key="f/g")
    clear_models()
    tiny_scorer = clip_mod.make_clip_i(TINY)
    as_file = clip_mod.make_clip_i(
        {
            "model": clip_mod.TINY_ARCH,
            "pretrained": str(clip_mod.tiny_weights_file(0)),
            "device": "cpu",
        }
    )
    assert as_file.random_weights is False
    assert as_file.model_id.startswith(f"open_clip:{clip_mod.TINY_ARCH}/file:")
    np.testing.assert_array_equal(tiny_scorer.score(images, **kw), as_file.score(images, **kw))
    clear_models()


def test_tiny_dino_goes_through_the_local_file_loader(monkeypatch):
    import timm

    calls = []
    real = timm.create_model

    def spy(name, *args, **kwargs):
        calls.append((name, kwargs))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    clear_models()
    dino_mod.make_dino(TINY)
    path = str(dino_mod.tiny_weights_file(0))
    loads = [kw for _, kw in calls if kw.get("pretrained")]
    assert loads and loads[-1]["pretrained_cfg_overlay"] == {"file": path}
    clear_models()


# --------------------------------------------------------------------------- shapes and caching


def test_one_value_per_image(tiny):
    assert set(tiny) == set(SCORER_IDS)
    images, refs = make_images(5, seed=8), make_images(3, seed=9)
    prompts = ["a dog on the beach", "a dog in the snow", "a dog", "a cube", "a dog on the beach"]
    for name, scorer in tiny.items():
        assert scorer.id == name
        assert isinstance(scorer.model_id, str) and scorer.model_id
        assert scorer.random_weights is True
        assert scorer.batch_size == 32
        got = scorer.score(images, prompts=prompts, references=refs, reference_key="one/value")
        assert isinstance(got, np.ndarray)
        assert got.shape == (5,)
        assert got.dtype == np.float64
        empty = scorer.score([], prompts=[], references=refs, reference_key="one/value")
        assert empty.shape == (0,)


def test_batching_does_not_change_scores(tiny):
    images, refs = make_images(5, seed=10), make_images(3, seed=11)
    kw = dict(prompts=["a dog"] * 5, references=refs)
    for name in ("clip_i", "dino"):
        scorer = tiny[name]
        whole = scorer.score(images, reference_key="batch/a", **kw)
        scorer.batch_size = 2
        try:
            split = scorer.score(images, reference_key="batch/b", **kw)
        finally:
            scorer.batch_size = 32
        np.testing.assert_allclose(split, whole, atol=1e-5)


def test_clip_i_and_clip_t_share_one_model():
    clear_models()
    a = clip_mod.make_clip_i(TINY)
    b = clip_mod.make_clip_t(TINY)
    assert a.model is b.model
    assert a.model_id == b.model_id == "open_clip:tiny-random/seed0"
    clear_models()


def counting_network(model):
    """A call-through spy on the images a model's network embeds: a list of batch sizes."""
    calls = []
    original = model._embed_batch

    def counting(images):
        calls.append(len(images))
        return original(images)

    model._embed_batch = counting
    return calls


@pytest.mark.parametrize("name", ["clip_i", "dino"])
def test_reference_embeddings_cached_per_key(tiny, name):
    scorer = tiny[name]
    model = scorer.model
    calls = counting_network(model)
    try:
        images, refs = make_images(2, seed=12), make_images(3, seed=13)
        kw = dict(prompts=["a dog"] * 2, references=refs)
        first = scorer.score(images, reference_key="cache/subject", **kw)
        assert calls == [3, 2]  # references, then the generated images
        assert "cache/subject" in model.ref_cache
        second = scorer.score(images, reference_key="cache/subject", **kw)
        assert calls == [3, 2]  # neither embedded again
        np.testing.assert_array_equal(first, second)
        scorer.score(images, reference_key="cache/other", **kw)
        assert calls == [3, 2, 3]  # a new key is a new reference set
        scorer.score(make_images(2, seed=15), reference_key="cache/other", **kw)
        assert calls == [3, 2, 3, 2]  # other pixels are embedded
        with pytest.raises(ValueError, match="different set of reference images"):
            scorer.score(
                images,
                reference_key="cache/subject",
                prompts=["a"] * 2,
                references=make_images(3, seed=14),
            )
    finally:
        del model._embed_batch


def test_clip_i_and_clip_t_embed_the_generated_images_once(tiny):
    clip_i, clip_t = tiny["clip_i"], tiny["clip_t"]
    assert clip_i.model is clip_t.model  # one loaded CLIP
    model = clip_i.model
    images, refs = make_images(5, seed=16), make_images(3, seed=17)
    prompts = ["a dog on the beach"] * 5
    model._last_images = None
    fresh = clip_t.score(images, prompts=prompts, references=refs, reference_key="once")
    calls = counting_network(model)
    try:
        model._last_images = None
        clip_i.score(images, prompts=prompts, references=refs, reference_key="once")
        assert calls == [3, 5]  # the photos, then the generated images
        shared = clip_t.score(images, prompts=prompts, references=refs, reference_key="once")
        assert calls == [3, 5]  # CLIP-T reused CLIP-I's image embeddings
        np.testing.assert_array_equal(shared, fresh)
        # The same images at another batch size are embedded again (batching can round).
        clip_t.batch_size = 2
        clip_t.score(images, prompts=prompts, references=refs, reference_key="once")
        assert calls == [3, 5, 2, 2, 1]
    finally:
        clip_t.batch_size = 32
        del model._embed_batch
        model.ref_cache.pop("once", None)


def test_prompts_embedded_once_per_distinct_text(tiny):
    scorer = tiny["clip_t"]
    model = scorer.model
    model.text_cache.clear()
    seen = []
    original = model._embed_text_batch

    def counting(texts):
        seen.append(list(texts))
        return original(texts)

    model._embed_text_batch = counting
    try:
        images = make_images(4, seed=15)
        prompts = ["a dog", "a cat", "a dog", "a dog"]
        got = scorer.score(images, prompts=prompts, references=[], reference_key="")
        assert seen == [["a dog", "a cat"]]
        assert got[0] != got[1]
        scorer.score(images, prompts=prompts, references=[], reference_key="")
        assert seen == [["a dog", "a cat"]]
        with pytest.raises(ValueError, match="prompts"):
            scorer.score(images, prompts=prompts[:2], references=[], reference_key="")
    finally:
        del model._embed_text_batch
        model.text_cache.clear()


def test_clip_t_depends_on_the_prompt(tiny):
    images = make_images(2, seed=16)
    scorer = tiny["clip_t"]
    a = scorer.score(images, prompts=["a dog", "a dog"], references=[], reference_key="")
    b = scorer.score(images, prompts=["a teapot", "a teapot"], references=[], reference_key="")
    assert not np.allclose(a, b)


# --------------------------------------------------------------------------- offline, options


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    clear_models()
    yield hub
    clear_models()


def test_offline_without_cached_clip_weights_raises_one_clear_error(empty_hub):
    with pytest.raises(ScorerWeightsError) as info:
        clip_mod.make_clip_i({"device": "cpu"})
    message = str(info.value)
    assert "\n" not in message
    assert "ViT-B-32" in message and "openai" in message
    assert "clip.pretrained=" in message
    assert "network is off" in message
    assert not list(empty_hub.iterdir())  # nothing was written to the hub cache


def test_offline_without_cached_dino_weights_raises_one_clear_error(empty_hub):
    with pytest.raises(ScorerWeightsError) as info:
        dino_mod.make_dino({"device": "cpu"})
    message = str(info.value)
    assert "\n" not in message
    assert "vit_small_patch16_224.dino" in message
    assert "dino.weights_file=" in message
    assert "network is off" in message


def test_missing_local_weights_file_is_a_weights_error(tmp_path):
    with pytest.raises(ScorerWeightsError, match="does not exist"):
        clip_mod.make_clip_t({"pretrained": str(tmp_path / "nope.safetensors"), "device": "cpu"})
    with pytest.raises(ScorerWeightsError, match="does not exist"):
        dino_mod.make_dino({"weights_file": str(tmp_path / "nope.safetensors"), "device": "cpu"})


def test_bad_options_are_refused():
    from bench.errors import BenchError

    typo = r"unknown option 'pretrianed' \(did you mean 'pretrained'"
    with pytest.raises(BenchError, match=typo):
        clip_mod.make_clip_i({"pretrianed": "openai"})
    with pytest.raises(BenchError, match="option 'quick_gelu' expects"):
        clip_mod.make_clip_i({"quick_gelu": "sometimes"})
    with pytest.raises(ValueError, match="not a known|neither"):
        clip_mod.make_clip_i({"pretrained": "no-such-tag", "device": "cpu"})
    with pytest.raises(BenchError, match="batch_size must be >= 1"):
        dino_mod.make_dino({**TINY, "batch_size": 0})


def test_the_built_in_scorers_follow_the_protocol(tiny):
    from bench.plugin import Scorer

    names = {"clip_i": "CLIP-I", "clip_t": "CLIP-T", "dino": "DINO", "dinov2": "DINOv2"}
    names |= {"pres": "PRES", "div": "DIV"}
    for scorer_id, scorer in tiny.items():
        assert isinstance(scorer, Scorer)
        assert (scorer.id, scorer.display_name, scorer.higher_is_better) == (
            scorer_id,
            names[scorer_id],
            scorer_id != "pres",  # PRES: lower is better (prior collapse)
        )
    assert tiny["pres"].cells == "prior"  # PRES scores the prior images only
    assert not isinstance(object(), Scorer)


def test_real_clip_tokenizer_works_offline():
    import open_clip

    tokens = open_clip.get_tokenizer("ViT-B-32")(["a dog on the beach"])
    assert tokens.shape == (1, 77)
    assert tokens[0, 0].item() == 49406 and 49407 in tokens[0].tolist()


@pytest.mark.parametrize("scorer", ["dino", "dinov2"])
def test_random_full_weights_tell_images_apart(scorer, tmp_path, monkeypatch):
    """The full-size random DINO and DINOv2 (`pretrained=random-full:0`, the sd15-random suite's)
    give an image's own copy 1 and another picture less: DINOv2's layer scale, drawn at its
    trained init of 1e-5, would give every image the same embedding (cosine 1 everywhere)."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    dino_mod.clear_model_cache()
    make = dino_mod.make_dinov2 if scorer == "dinov2" else dino_mod.make_dino
    model = make({"pretrained": "random-full:0", "device": "cpu"})
    photo, other = make_images(2, seed=11, size=(224, 224))
    values = model.score([photo, other], prompts=["", ""], references=[photo], reference_key="k")
    assert values[0] == pytest.approx(1.0, abs=1e-6)
    assert values[1] < 0.99
    dino_mod.clear_model_cache()
