"""The training recipes, checked against their definitions rather than "the loss went down".

Methods are fitted directly on the micro suite's subject with the real tiny backbone. Where a test
must see what training did, it spies on the real modules and calls through: the UNet's forward
(inputs and prediction), the noise scheduler's add_noise (the noise drawn), the text encoder's
input ids (the captions). Learning rates are read off the weights: Adam's first step moves every
parameter with a non-zero gradient by exactly the learning rate, and LoRA's up-projection starts
at zero, so after one step its largest entry is the learning rate that was applied.
"""

import contextlib
import copy
import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.models.attention_processor import Attention
from PIL import Image
from safetensors.torch import load_file
from transformers.models.clip.modeling_clip import CLIPAttention

from bench.config import resolve_config
from bench.data.suites import load_suite
from bench.diffusion.backbone import load_backbone
from bench.errors import BenchError
from bench.methods.dreambooth_lora import ARTIFACT, IDENTIFIER_ARTIFACT, DreamBoothLoRA
from bench.methods.protocol import MethodContext
from bench.methods.textual_inversion import ARTIFACT as TI_ARTIFACT
from bench.methods.textual_inversion import TextualInversion


@pytest.fixture(scope="module")
def suite():
    return load_suite("micro")


@pytest.fixture(scope="module")
def backbone(suite):
    return load_backbone("tiny", scheduler=suite.generation.scheduler, device="cpu")


def fit(method_cls, backbone, suite, workdir, cache=None, subject=None, replicate=0, **options):
    """Fit on micro's red mug (or `subject`) into `workdir`; returns the method's log."""
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = MethodContext(
        backbone=backbone,
        suite=suite,
        subject=subject or suite.subjects[0],
        config=resolve_config(method_cls.Config, options),
        replicate=replicate,
        workdir=workdir,
        cache=cache or workdir / "cache",
    )
    return method_cls().fit(ctx)


def lora(backbone, suite, workdir, **options):
    """Fit dreambooth_lora (lr 1e-2 unless given); returns (log, saved adapter tensors)."""
    log = fit(DreamBoothLoRA, backbone, suite, workdir, **{"lr": 1e-2, **options})
    return log, load_file(workdir / ARTIFACT)


def same(a: dict, b: dict, atol: float = 0.0) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


@contextlib.contextmanager
def spy_unet(unet):
    """Record the noisy sample and the prediction of every UNet forward."""
    calls = []
    forward = unet.forward

    def spy(sample, timestep, encoder_hidden_states, *args, **kwargs):
        out = forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
        prediction = out[0] if isinstance(out, tuple) else out.sample  # return_dict=False: tuple
        calls.append(
            {
                "training": torch.is_grad_enabled(),  # not a class image being generated
                "sample": sample.detach().clone(),
                "context": encoder_hidden_states.detach().clone(),
                "prediction": prediction.detach().clone(),
            }
        )
        return out

    unet.forward = spy
    try:
        yield calls
    finally:
        del unet.forward


@contextlib.contextmanager
def spy_add_noise(monkeypatch):
    """Record the clean latents, the noise and the timesteps of every training step."""
    calls = []
    add_noise = DDPMScheduler.add_noise

    def spy(self, original_samples, noise, timesteps):
        calls.append(
            {
                "latents": original_samples.clone(),
                "noise": noise.clone(),
                "timesteps": timesteps.clone(),
            }
        )
        return add_noise(self, original_samples, noise, timesteps)

    monkeypatch.setattr(DDPMScheduler, "add_noise", spy)
    yield calls


@contextlib.contextmanager
def spy_captions(pipe):
    """Record the captions the text encoder was run on: their input ids, one list per call."""
    captions = []

    def hook(module, args):
        captions.append(args[0].tolist())

    handle = pipe.text_encoder.register_forward_pre_hook(hook)
    try:
        yield captions
    finally:
        handle.remove()


# --------------------------------------------------------------------------- where LoRA sits


def linear_layers_inside(module, attention_type) -> set[str]:
    """Every nn.Linear inside a module of `attention_type`: the attention projections."""
    found = set()
    for name, parent in module.named_modules():
        if isinstance(parent, attention_type):
            for child, layer in parent.named_modules():
                if child and isinstance(layer, torch.nn.Linear):
                    found.add(f"{name}.{child}")
    return found


LORA_SUFFIX = re.compile(r"\.(lora\.(down|up)|lora_linear_layer\.(down|up)|lora_[AB])\.weight$")


def adapted_modules(state: dict, prefix: str) -> set[str]:
    return {
        LORA_SUFFIX.sub("", key).removeprefix(prefix) for key in state if key.startswith(prefix)
    }


def up_weights(state: dict, prefix: str) -> list[torch.Tensor]:
    up = re.compile(r"\.(lora\.up|lora_linear_layer\.up|lora_B)\.weight$")
    return [v for k, v in state.items() if k.startswith(prefix) and up.search(k)]


def decoded(pipe, calls) -> list[list[str]]:
    return [[pipe.tokenizer.decode(ids, skip_special_tokens=True) for ids in c] for c in calls]


@pytest.mark.parametrize("train_text_encoder", [False, True])
def test_lora_sits_on_every_attention_projection(backbone, suite, tmp_path, train_text_encoder):
    _, state = lora(backbone, suite, tmp_path, steps=1, train_text_encoder=train_text_encoder)
    unet_projections = linear_layers_inside(backbone.pipe.unet, Attention)
    assert len(unet_projections) == 12 * 4  # 12 attention blocks x (q, k, v, out)
    assert adapted_modules(state, "unet.") == unet_projections
    text_projections = linear_layers_inside(backbone.pipe.text_encoder, CLIPAttention)
    expected_text = text_projections if train_text_encoder else set()
    assert adapted_modules(state, "text_encoder.") == expected_text
    assert len(state) == 2 * (len(unet_projections) + len(expected_text))  # up and down each


def layers_named(module, layer_type, suffix: str) -> set[str]:
    return {
        name
        for name, layer in module.named_modules()
        if isinstance(layer, layer_type) and (name == suffix or name.endswith("." + suffix))
    }


def test_unet_targets_add_convolutions_and_the_adapter_loads_whole(backbone, suite, tmp_path):
    """With the ResNets' first convolutions among the targets, every attention projection and
    every such convolution gets an adapter, and diffusers' loader applies all of them."""
    targets = ["to_q", "to_k", "to_v", "to_out.0", "conv1"]
    _, state = lora(backbone, suite, tmp_path, steps=2, lr=1e-3, unet_targets=targets)
    unet = backbone.pipe.unet
    convolutions = layers_named(unet, torch.nn.Conv2d, "conv1")
    assert convolutions and all(".resnets." in name for name in convolutions)
    assert adapted_modules(state, "unet.") == linear_layers_inside(unet, Attention) | convolutions
    by_hand = merged_by_hand(unet, state, 1.0)
    mismatch, change = loaded_against_by_hand(backbone.pipe, tmp_path, by_hand)
    assert change > 1e-3
    assert mismatch < 1e-3 * change


def test_a_target_that_names_no_layer_is_refused_before_any_work(backbone, suite, tmp_path):
    with pytest.raises(BenchError, match=r"unet_targets: 'conv9' names no linear or convolution"):
        fit(DreamBoothLoRA, backbone, suite, tmp_path, unet_targets=["to_q", "conv9"])
    assert list(tmp_path.iterdir()) == []
    assert not hasattr(backbone.pipe.unet, "peft_config")


def test_rank_is_the_inner_dimension_of_every_adapter(backbone, suite, tmp_path):
    _, state = lora(backbone, suite, tmp_path, steps=1, rank=3, train_text_encoder=True)
    for key, tensor in state.items():
        down = ".down." in key or "lora_A" in key
        assert (tensor.shape[0] if down else tensor.shape[1]) == 3, key


# --------------------------------------------------------------------------- prior preservation


def test_prior_loss_is_the_loss_on_the_class_half_of_each_batch(
    backbone, suite, tmp_path, monkeypatch
):
    pipe = backbone.pipe
    with (
        spy_unet(pipe.unet) as forwards,
        spy_add_noise(monkeypatch) as noised,
        spy_captions(pipe) as captions,
    ):
        log, _ = lora(
            backbone,
            suite,
            tmp_path,
            steps=2,
            batch_size=2,
            prior_preservation=True,
            prior_loss_weight=2.5,
            class_prompt="a photo of a {class}",
            num_class_images=2,
        )
    training = [f for f in forwards if f["training"]]
    assert len(training) == 2 == len(noised) == len(log["prior_losses"])
    assert all(f["sample"].shape[0] == 4 for f in training)  # 2 instance + 2 class examples
    assert decoded(pipe, captions)[-1] == ["a sks mug"] * 2 + ["a photo of a mug"] * 2
    for step, (forward, noise) in enumerate(zip(training, noised, strict=True)):
        per_example = ((forward["prediction"] - noise["noise"]) ** 2).mean(dim=(1, 2, 3))
        instance, prior = per_example[:2].mean().item(), per_example[2:].mean().item()
        assert log["prior_losses"][step] == pytest.approx(prior, rel=1e-5)
        assert log["losses"][step] == pytest.approx(instance + 2.5 * prior, rel=1e-5)


@pytest.mark.parametrize("train_text_encoder", [False, True])
def test_captions_are_encoded_once_unless_the_text_encoder_trains(
    backbone, suite, tmp_path, train_text_encoder
):
    pipe = backbone.pipe
    with spy_unet(pipe.unet) as forwards, spy_captions(pipe) as captions:
        lora(
            backbone, suite, tmp_path, steps=3, batch_size=2, train_text_encoder=train_text_encoder
        )
    assert decoded(pipe, captions) == [["a sks mug"] * 2] * (3 if train_text_encoder else 1)
    if not train_text_encoder:
        # What every step saw is the frozen encoder's output for the caption, computed here.
        ids = pipe.tokenizer(
            ["a sks mug"] * 2, padding="max_length", max_length=77, return_tensors="pt"
        ).input_ids
        with torch.no_grad():
            expected = pipe.text_encoder(ids)[0]
        training = [f for f in forwards if f["training"]]
        assert len(training) == 3
        assert all(torch.equal(f["context"], expected) for f in training)


def test_class_images_are_cached_by_backbone_prompt_resolution_number_and_seed(
    backbone, suite, tmp_path
):
    from bench.diffusion.class_images import class_images

    assert DreamBoothLoRA.Config().num_class_images == 100  # the paper's number, by default
    protocol = suite.generation

    def folder(prompt="a mug", resolution=32, count=1, seed=0, protocol=protocol):
        paths = class_images(backbone, protocol, prompt, resolution, count, seed, tmp_path)
        assert len(paths) == count
        return paths[0].parent

    first = folder()
    assert folder() == first  # the same request reuses the set
    changed = [
        folder(prompt="a cup"),
        folder(resolution=48),
        folder(count=2),
        folder(seed=1),
        folder(protocol=dataclasses.replace(protocol, steps=2)),
    ]
    assert len({first, *changed}) == 6
    other_backbone = dataclasses.replace(backbone, id="another", revision="r")
    paths = class_images(other_backbone, protocol, "a mug", 32, 1, 0, tmp_path)
    assert paths[0].parent not in {first, *changed}


def test_the_class_images_enter_the_loss(backbone, suite, tmp_path):
    options = dict(steps=2, prior_preservation=True, num_class_images=2)
    cache = tmp_path / "cache"
    _, first = lora(backbone, suite, tmp_path / "a", cache=cache, **options)
    _, again = lora(backbone, suite, tmp_path / "b", cache=cache, **options)
    assert same(first, again)  # deterministic, so a difference below comes from the images
    pngs = sorted(cache.glob("class_images/*/*.png"))
    assert len(pngs) == 2
    for png in pngs:  # other class images under the same cache key
        flipped = np.asarray(Image.open(png))[::-1].copy()
        Image.fromarray(flipped).save(png)
    _, other = lora(backbone, suite, tmp_path / "c", cache=cache, **options)
    assert not same(first, other, atol=1e-7)


# --------------------------------------------------------------------------- options


def test_lr_and_te_lr_are_the_step_sizes_of_unet_and_text_encoder(backbone, suite, tmp_path):
    _, state = lora(
        backbone, suite, tmp_path, steps=1, lr=3e-3, te_lr=7e-4, train_text_encoder=True
    )
    unet_up = torch.cat([w.flatten() for w in up_weights(state, "unet.")])
    text_up = torch.cat([w.flatten() for w in up_weights(state, "text_encoder.")])
    assert unet_up.abs().max().item() == pytest.approx(3e-3, rel=1e-3)
    assert text_up.abs().max().item() == pytest.approx(7e-4, rel=1e-3)


def expected_lr(schedule: str, step: int, warmup: int, total: int) -> float:
    """diffusers' schedules, as factors of the base lr at optimizer step `step` (from 0)."""
    if step < warmup and schedule != "constant":
        return step / warmup
    progress = (step - warmup) / (total - warmup)
    return {
        "constant": 1.0,
        "constant_with_warmup": 1.0,
        "linear": 1.0 - progress,
        "cosine": 0.5 * (1.0 + math.cos(math.pi * progress)),
    }[schedule]


@pytest.mark.parametrize("schedule", ["constant", "constant_with_warmup", "linear", "cosine"])
def test_lr_schedule_and_warmup_set_each_steps_learning_rate(backbone, suite, tmp_path, schedule):
    log, _ = lora(
        backbone, suite, tmp_path, steps=5, lr=2e-3, lr_scheduler=schedule, lr_warmup_steps=2
    )
    expected = [2e-3 * expected_lr(schedule, s, 2, 5) for s in range(5)]
    assert log["learning_rates"] == pytest.approx(expected, abs=1e-12)


def test_a_warmup_steps_learning_rate_is_what_the_weights_receive(backbone, suite, tmp_path):
    # The first step of a warmup has learning rate 0: the up-projections stay exactly zero.
    _, warm = lora(
        backbone,
        suite,
        tmp_path / "warm",
        steps=1,
        lr_scheduler="constant_with_warmup",
        lr_warmup_steps=3,
    )
    assert all(torch.count_nonzero(w) == 0 for w in up_weights(warm, "unet."))
    _, cold = lora(backbone, suite, tmp_path / "cold", steps=1, lr=2e-3)
    assert max(w.abs().max().item() for w in up_weights(cold, "unet.")) == pytest.approx(
        2e-3, rel=1e-3
    )


# --------------------------------------------------------------------------- timestep sampling


def bands_covered(timesteps: torch.Tensor, n: int, total: int) -> list[int]:
    """Which of n equal bands of [0, total) each timestep falls in, sorted."""
    return sorted(int(t) * n // total for t in timesteps)


@pytest.mark.parametrize("prior_preservation", [False, True])
def test_stratified_sampling_takes_one_timestep_from_each_band_per_batch(
    backbone, suite, tmp_path, monkeypatch, prior_preservation
):
    total = backbone.pipe.scheduler.config.num_train_timesteps
    with spy_add_noise(monkeypatch) as noised:
        lora(
            backbone,
            suite,
            tmp_path,
            steps=6,
            batch_size=4,
            timestep_sampling="stratified",
            prior_preservation=prior_preservation,
            num_class_images=2,
        )
    assert len(noised) == 6
    for call in noised:  # the instance half and the class half each cover every band
        halves = call["timesteps"].split(4)
        assert len(halves) == (2 if prior_preservation else 1)
        assert all(bands_covered(half, 4, total) == [0, 1, 2, 3] for half in halves)
    orders = {tuple(int(t) * 4 // total for t in call["timesteps"][:4]) for call in noised}
    assert len(orders) > 1  # shuffled: the band is not tied to a position in the batch


def test_uniform_sampling_is_the_default_and_leaves_bands_to_chance(
    backbone, suite, tmp_path, monkeypatch
):
    total = backbone.pipe.scheduler.config.num_train_timesteps
    with spy_add_noise(monkeypatch) as noised:
        lora(backbone, suite, tmp_path, steps=6, batch_size=4)
    # Independent uniform draws cover all 4 bands with probability 4!/4^4 = 9% per batch.
    assert any(bands_covered(call["timesteps"], 4, total) != [0, 1, 2, 3] for call in noised)


# --------------------------------------------------------------------------- pivotal tuning


def caption_states(pipe, caption: str, identifier_row=None) -> torch.Tensor:
    """The text encoder's states for `caption`, on a copy of it whose "sks" row of the token
    table is `identifier_row` (the definition of pivotal tuning's learned identifier)."""
    encoder = copy.deepcopy(pipe.text_encoder)
    if identifier_row is not None:
        (sks,) = pipe.tokenizer("sks", add_special_tokens=False).input_ids
        with torch.no_grad():
            encoder.get_input_embeddings().weight[sks] = identifier_row
    ids = pipe.tokenizer(caption, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        return encoder(ids.input_ids)[0]


def pivotal(backbone, suite, workdir, **options) -> torch.Tensor:
    """Fit with train_identifier (UNet lr 1e-4); returns where the identifier's row started:
    the mean of the class noun's ("mug") rows of the token table."""
    pipe = backbone.pipe
    mug = pipe.tokenizer("mug", add_special_tokens=False).input_ids
    start = pipe.text_encoder.get_input_embeddings().weight[mug].detach().clone().mean(0)
    fit(DreamBoothLoRA, backbone, suite, workdir, lr=1e-4, train_identifier=True, **options)
    return start


def test_the_identifier_row_starts_from_the_class_noun_and_learns(backbone, suite, tmp_path):
    pipe = backbone.pipe
    table = pipe.text_encoder.get_input_embeddings()
    before = table.weight.detach().clone()
    with spy_unet(pipe.unet) as forwards:
        start = pivotal(backbone, suite, tmp_path, steps=2, identifier_lr=5e-2, checkpoint_every=1)
    first, second = [f["context"] for f in forwards if f["training"]]
    # Step 1 reads the class noun's row in the identifier's place; step 2 the row after step 1,
    # which the step-1 checkpoint holds; the final row has moved on again.
    assert torch.allclose(first, caption_states(pipe, "a sks mug", start), atol=1e-6)
    after_one = load_file(tmp_path / "checkpoints/step-000001" / IDENTIFIER_ARTIFACT)["sks"]
    assert after_one.shape == (1, before.shape[1])
    assert torch.allclose(second, caption_states(pipe, "a sks mug", after_one[0]), atol=1e-6)
    final = load_file(tmp_path / IDENTIFIER_ARTIFACT)["sks"]
    assert not torch.allclose(final, after_one) and not torch.allclose(after_one[0], start)
    # The backbone is as it was found: its own table, unwritten.
    assert pipe.text_encoder.get_input_embeddings() is table
    assert torch.equal(table.weight, before)


def test_identifier_lr_is_the_step_size_of_the_identifier_row(backbone, suite, tmp_path):
    start = pivotal(backbone, suite, tmp_path, steps=1, identifier_lr=3e-3)
    moved = (load_file(tmp_path / IDENTIFIER_ARTIFACT)["sks"][0] - start).abs()
    # Adam's first step moves every entry with a gradient by the learning rate; weight decay
    # would add lr * 0.01 * |entry| on top.
    assert moved.max().item() == pytest.approx(3e-3, rel=1e-4)
    assert (moved > 2.9e-3).float().mean() > 0.9


def test_without_train_identifier_no_row_is_learned(backbone, suite, tmp_path):
    pipe = backbone.pipe
    with spy_unet(pipe.unet) as forwards:
        fit(DreamBoothLoRA, backbone, suite, tmp_path, steps=1, lr=1e-4)
    (context,) = [f["context"] for f in forwards if f["training"]]
    assert torch.equal(context, caption_states(pipe, "a sks mug"))
    assert not (tmp_path / IDENTIFIER_ARTIFACT).exists()


def test_an_identifier_the_tokenizer_splits_is_refused_before_any_work(backbone, suite, tmp_path):
    subject = dataclasses.replace(suite.subjects[0], token="zqxjvk")
    assert len(backbone.pipe.tokenizer("zqxjvk", add_special_tokens=False).input_ids) > 1
    options = {"train_identifier": True, "prior_preservation": True, "num_class_images": 1}
    with pytest.raises(BenchError, match=r"red_mug: train_identifier .* 'zqxjvk' is \d+ tokens"):
        fit(DreamBoothLoRA, backbone, suite, tmp_path, subject=subject, **options)
    assert list(tmp_path.iterdir()) == []  # not even the class images a later check would leave
    assert not hasattr(backbone.pipe.unet, "peft_config")


def test_the_class_half_of_the_captions_keeps_the_tables_own_rows(backbone, suite, tmp_path):
    pipe = backbone.pipe
    with spy_unet(pipe.unet) as forwards:
        start = pivotal(
            backbone, suite, tmp_path, steps=1, prior_preservation=True, num_class_images=1
        )
    (context,) = [f["context"] for f in forwards if f["training"]]
    assert torch.allclose(context[0], caption_states(pipe, "a sks mug", start)[0], atol=1e-6)
    assert torch.allclose(context[1], caption_states(pipe, "a mug")[0], atol=1e-6)


def merged_by_hand(unet, state: dict, scale: float):
    """A copy of `unet` with every saved adapter added into its layer's weight: scale * up @ down
    for a linear layer; for a convolution, down is a k x k convolution to rank channels and up a
    1 x 1 one back, so each output channel gains up's mix of down's kernels."""
    merged = copy.deepcopy(unet)
    for module in adapted_modules(state, "unet."):
        down, up = (
            state.get(f"unet.{module}.lora.{d}.weight", state.get(f"unet.{module}.lora_{p}.weight"))
            for d, p in (("down", "A"), ("up", "B"))
        )
        if down.dim() == 4:  # (rank, in, k, k) and (out, rank, 1, 1)
            delta = torch.einsum("or,rikl->oikl", up[:, :, 0, 0], down)
        else:
            delta = up @ down
        merged.get_submodule(module).weight.data += scale * delta
    return merged


def loaded_against_by_hand(pipe, folder, by_hand) -> tuple[float, float]:
    """The UNet's prediction with the adapter loaded by diffusers against the one merged by hand:
    (distance between them, distance of the by-hand one from the base UNet's)."""
    generator = torch.Generator("cpu").manual_seed(0)
    sample = torch.randn((1, 4, 16, 16), generator=generator)
    text = torch.randn((1, 77, pipe.unet.config.cross_attention_dim), generator=generator)
    t = torch.tensor([500])
    with torch.no_grad():
        base = pipe.unet(sample, t, text).sample
        expected = by_hand(sample, t, text).sample
        pipe.load_lora_weights(folder, weight_name=ARTIFACT, adapter_name="probe")
        try:
            loaded = pipe.unet(sample, t, text).sample
        finally:
            pipe.unload_lora_weights()
    return float((loaded - expected).norm()), float((expected - base).norm())


def test_alpha_scales_the_saved_adapter_when_it_is_loaded(backbone, suite, tmp_path):
    """Loaded with diffusers, the adapter adds (alpha / rank) * up @ down to every projection."""
    _, state = lora(backbone, suite, tmp_path, steps=2, lr=1e-3, rank=4, alpha=10.0)
    by_hand = merged_by_hand(backbone.pipe.unet, state, 10.0 / 4)
    mismatch, change = loaded_against_by_hand(backbone.pipe, tmp_path, by_hand)
    assert change > 1e-3  # the adapter does something
    assert mismatch < 1e-3 * change


def test_dropout_changes_training(backbone, suite, tmp_path):
    _, plain = lora(backbone, suite, tmp_path / "plain", steps=3)
    _, dropped = lora(backbone, suite, tmp_path / "dropped", steps=3, dropout=0.5)
    assert not same(plain, dropped, atol=1e-7)


def test_gradient_accumulation_runs_that_many_batches_per_step(backbone, suite, tmp_path):
    with spy_unet(backbone.pipe.unet) as forwards:
        log, accumulated = lora(backbone, suite, tmp_path / "acc", steps=2, gradient_accumulation=3)
    assert len(forwards) == 2 * 3 and len(log["losses"]) == 2
    _, single = lora(backbone, suite, tmp_path / "one", steps=2)
    assert not same(accumulated, single, atol=1e-7)


def test_gradient_checkpointing_is_used_and_gives_the_same_adapter(
    backbone, suite, tmp_path, monkeypatch
):
    checkpointed = []
    checkpoint = torch.utils.checkpoint.checkpoint

    def spy(*args, **kwargs):
        checkpointed.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    _, plain = lora(backbone, suite, tmp_path / "plain", steps=3)
    assert not checkpointed
    _, saved = lora(backbone, suite, tmp_path / "ckpt", steps=3, gradient_checkpointing=True)
    assert checkpointed
    assert same(plain, saved, atol=1e-6)
    assert not backbone.pipe.unet.is_gradient_checkpointing  # left as found


@pytest.mark.parametrize("resolution, latent", [(None, 16), (48, 24)])
def test_training_resolution(backbone, suite, tmp_path, resolution, latent):
    with spy_unet(backbone.pipe.unet) as forwards:
        lora(backbone, suite, tmp_path, steps=1, batch_size=3, resolution=resolution)
    assert [tuple(f["sample"].shape) for f in forwards] == [(3, 4, latent, latent)]


def test_seed_and_replicate_decide_the_adapter(backbone, suite, tmp_path):
    _, first = lora(backbone, suite, tmp_path / "a", steps=2, seed=0)
    _, again = lora(backbone, suite, tmp_path / "b", steps=2, seed=0)
    _, other = lora(backbone, suite, tmp_path / "c", steps=2, seed=1)
    _, replicate = lora(backbone, suite, tmp_path / "d", steps=2, seed=0, replicate=1)
    renamed = dataclasses.replace(suite.subjects[0], id="another_mug")  # same photos
    _, subject = lora(backbone, suite, tmp_path / "e", steps=2, seed=0, subject=renamed)
    assert same(first, again)
    for different in (other, replicate, subject):
        assert not same(first, different, atol=1e-7)


def test_instance_prompt_is_the_caption(backbone, suite, tmp_path):
    with spy_captions(backbone.pipe) as captions:
        lora(backbone, suite, tmp_path, steps=1, instance_prompt="a photo of {token} {class}")
    assert decoded(backbone.pipe, captions) == [["a photo of sks mug"]]


# --------------------------------------------------------------------------- textual inversion


UNMOVED_LR = 1e-30  # steps must be >= 1; one step at this rate moves no float32 value


def ti(backbone, suite, workdir, **options):
    log = fit(TextualInversion, backbone, suite, workdir, **options)
    return log, load_file(workdir / TI_ARTIFACT)


def test_textual_inversion_lr_steps_and_batch_size(backbone, suite, tmp_path):
    init = ti(backbone, suite, tmp_path / "init", steps=1, lr=UNMOVED_LR)[1]["<sks>"]
    with spy_unet(backbone.pipe.unet) as forwards:
        log, state = ti(backbone, suite, tmp_path / "one", steps=1, lr=4e-3, batch_size=3)
    assert [tuple(f["sample"].shape) for f in forwards] == [(3, 4, 16, 16)]
    assert (state["<sks>"] - init).abs().max().item() == pytest.approx(4e-3, rel=1e-3)
    with spy_unet(backbone.pipe.unet) as forwards:
        log, _ = ti(backbone, suite, tmp_path / "three", steps=3)
    assert len(forwards) == 3 == len(log["losses"])


def test_textual_inversion_token_and_seed(backbone, suite, tmp_path):
    new_id = len(backbone.pipe.tokenizer)  # the added token's id in the method's tokenizer
    with spy_captions(backbone.pipe) as captions:
        log, state = ti(backbone, suite, tmp_path / "a", steps=2, token="<my-mug>")
    assert list(state) == ["<my-mug>"] and log["tokens"] == ["<my-mug>"]
    assert len(captions) == 2 and all(new_id in ids for batch in captions for ids in batch)
    _, again = ti(backbone, suite, tmp_path / "b", steps=2, token="<my-mug>")
    _, other = ti(backbone, suite, tmp_path / "c", steps=2, token="<my-mug>", seed=5)
    assert same(state, again) and not same(state, other, atol=1e-9)


def test_textual_inversion_vectors_start_from_the_class_noun(backbone, suite, tmp_path):
    subject = dataclasses.replace(suite.subjects[0], class_noun="teapot")
    _, state = ti(backbone, suite, tmp_path, steps=1, lr=UNMOVED_LR, subject=subject, num_vectors=3)
    ids = backbone.pipe.tokenizer("teapot", add_special_tokens=False).input_ids
    weight = backbone.pipe.text_encoder.get_input_embeddings().weight
    assert state["<sks>"].shape == (3, weight.shape[1])
    assert all(torch.equal(row, weight[ids].mean(0)) for row in state["<sks>"])
