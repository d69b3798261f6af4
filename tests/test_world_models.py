"""The toy world's shipped models (issue 9, stages 2 and 3): the text-to-image backbone loads
through diffusers' own loader and its text encoder is the world CLIP's text tower, number for
number; the world DINO loads through timm's file loader; the world's subjects and prompts are
what the world draws."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_world.render import CONTEXTS, GLASSES, HATS, RECOLOURS, SCARVES, Scene, caption

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the backbone


def test_the_text_encoder_is_the_world_clips_text_tower():
    """SD's text encoder here is the CLIP's text tower converted to transformers' CLIPTextModel:
    its hidden state at the end token, through the CLIP's projection, is open_clip's own text
    embedding of the prompt."""
    import open_clip
    import torch

    from bench.diffusion.world_backbone import CLIP_FILE, load_text_encoder, tokenizer
    from bench_world.clip import build_model

    clip, clip_tokenizer = build_model()
    open_clip.load_checkpoint(clip, str(CLIP_FILE))
    clip.eval()
    prompts = ["a red mug on the beach", "a sks dog wearing a santa hat", ""]
    encoder = load_text_encoder()
    ids = tokenizer()(prompts, padding="max_length", return_tensors="pt").input_ids  # as SD pads
    with torch.no_grad():
        hidden = encoder(ids).last_hidden_state
        end = ids.eq(49407).int().argmax(dim=1)  # the first end token
        ours = hidden[torch.arange(len(prompts)), end] @ clip.text_projection
        theirs = clip.encode_text(clip_tokenizer(prompts))
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    # the tokenizer is CLIP's BPE: OpenAI's ids, padded with the end token to 32 positions
    assert ids[1, :6].tolist() == [49406, 320, 48136, 1929, 3309, 320]
    assert ids.shape[1] == 32 and ids[0, -1] == 49407


def test_the_world_backbone_loads_through_from_pretrained_and_says_what_it_is(monkeypatch):
    import diffusers

    from bench.diffusion import world_backbone
    from bench.diffusion.backbone import load_backbone

    loaded_from = []
    real = diffusers.StableDiffusionPipeline.from_pretrained.__func__

    def spy(cls, source, **kwargs):
        loaded_from.append((source, kwargs.get("use_safetensors")))
        return real(cls, source, **kwargs)

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", classmethod(spy))
    backbone = load_backbone("world", device="cpu")
    assert loaded_from == [(str(world_backbone.world_backbone_dir()), True)]
    assert backbone.realness == "toy world"
    assert backbone.provenance()["realness"] == "toy world"
    digest = backbone.revision.removeprefix(f"world-v{world_backbone.VERSION}-")
    assert len(digest) == 12 and digest == world_backbone.revision()[-12:]
    pipe = backbone.pipe
    assert pipe.tokenizer.model_max_length == 32 and pipe.text_encoder.config.vocab_size == 49408
    assert backbone.latent_size(64) == 16 and backbone.latent_channels == 4
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"


def test_the_shipped_parts_are_safetensors_in_half_precision_within_budget():
    from safetensors import safe_open

    import bench
    from bench.diffusion.world_backbone import PARTS
    from bench.scorers.clip import WORLD_WEIGHTS as CLIP
    from bench.scorers.dino import WORLD_WEIGHTS as DINO

    # where the library's shipped files live: its assets, not the world lab's folder
    shipped = Path(bench.__file__).resolve().parent / "assets" / "world"
    expected = (shipped / "pipeline", shipped / "clip.safetensors", shipped / "dino.safetensors")
    found = (PARTS, CLIP, DINO)
    assert found == expected
    files = sorted(PARTS.rglob("*.safetensors"))
    assert [f.parent.name for f in files] == ["unet", "vae"]
    assert not [f for f in PARTS.rglob("*") if f.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    for file in files:
        with safe_open(str(file), "pt") as weights:
            names = weights.keys()  # a safetensors handle is not iterable
            assert {str(weights.get_tensor(k).dtype) for k in names} == {"torch.float16"}
    total = sum(f.stat().st_size for f in [*files, CLIP, DINO])
    assert total <= 25 * 2**20, total  # the budget for CLIP, DINO and the pipeline together


def test_the_unet_loss_is_weighted_by_min_snr():
    """Each timestep's weight is min(SNR, 5) / SNR, with SNR from SD's scaled-linear betas
    recomputed here: 1 at the noisy end, where SNR < 5, and 5 / SNR at the clean end."""
    from diffusers import DDPMScheduler

    from bench.diffusion.world_backbone import SCHEDULE
    from bench_world.pipeline import SNR_GAMMA, timestep_weights

    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    alpha_bar = np.cumprod(1 - betas)
    snr = alpha_bar / (1 - alpha_bar)
    expected = np.minimum(snr, 5.0) / snr
    weights = timestep_weights(DDPMScheduler(**SCHEDULE).alphas_cumprod, SNR_GAMMA).numpy()
    assert SNR_GAMMA == 5.0
    np.testing.assert_allclose(weights, expected, rtol=1e-4)
    assert weights[-1] == 1.0 and weights[0] < 0.01  # the first step's SNR is about 1,200


def test_the_unet_training_uses_the_weights_and_without_a_cap_is_the_plain_loss():
    import torch

    from bench.diffusion.world_backbone import CLIP_FILE, load_text_encoder, tokenizer
    from bench_world.pipeline import train_unet

    latents = torch.randn(8, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    text_encoder, words = load_text_encoder(CLIP_FILE), tokenizer()

    def trained(gamma):
        unet = train_unet(
            latents, ["a mug"] * 8, text_encoder, words, steps=2, batch_size=2,
            snr_gamma=gamma, log=lambda _: None,
        )  # fmt: skip
        return torch.cat([p.flatten() for p in unet.parameters()])

    plain = trained(None)
    assert torch.equal(trained(1e12), plain)  # a cap above every SNR: every weight is 1
    assert not torch.equal(trained(5.0), plain)


# --------------------------------------------------------------------------- the world DINO


def test_world_dino_is_a_timm_model_loaded_from_its_file():
    import timm

    from bench.scorers.dino import WORLD_ARCH, WORLD_KWARGS, WORLD_WEIGHTS, make_dino

    scorer = make_dino({"model": "bench-world-dino", "device": "cpu"})
    assert scorer.model_id.startswith("timm:bench-world-dino/file:dino.safetensors@")
    assert scorer.random_weights is False
    # the same numbers as timm's own model with the file's weights, on the whole 64 px picture
    from safetensors.torch import load_file

    net = timm.create_model(WORLD_ARCH, pretrained=False, num_classes=0, **WORLD_KWARGS)
    net.load_state_dict({k: v.float() for k, v in load_file(str(WORLD_WEIGHTS)).items()})
    photos = sorted((REPO / "subjects" / "world" / "red_mug").glob("*.png"))
    images = [Image.open(p).convert("RGB") for p in photos]
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    import torch

    pixels = np.stack([(np.asarray(im) / 255.0 - mean) / std for im in images])
    with torch.no_grad():
        features = net.eval()(torch.from_numpy(pixels).permute(0, 3, 1, 2).float()).numpy()
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    expected = (unit[:1] @ unit[1:].T).mean()
    values = scorer.score(images[:1], prompts=[""], references=images[1:], reference_key="mug")
    assert values[0] == pytest.approx(expected, abs=1e-4)


# --------------------------------------------------------------------------- subjects and prompts


def test_the_world_subjects_are_the_instances_they_name():
    """subjects/world holds what draw.py draws from bench_world.subjects, byte for byte."""
    from bench.data.subjects import load_subject_dir
    from bench_world.subjects import SUBJECTS, photos

    loaded = {s.id: s for s in load_subject_dir(REPO / "subjects" / "world")}
    assert set(loaded) == set(SUBJECTS) and len(loaded) >= 12
    kinds = {s.kind for s in loaded.values()}
    assert kinds == {"live", "object"}
    for subject_id, instance in SUBJECTS.items():
        subject = loaded[subject_id]
        assert subject.class_noun == instance.cls and subject.kind == instance.kind
        drawn = [np.asarray(Image.open(p).convert("RGB")) for p in subject.images]
        assert 4 <= len(drawn) <= 6
        assert all((a == b).all() for a, b in zip(drawn, photos(subject_id), strict=True))


def test_every_world_prompt_is_a_caption_the_world_can_draw():
    """Each template, for any class, is the caption of a scene the renderer draws (so the
    oracle knows what each prompt asks for), and the object set covers every context."""
    from bench.data.prompts import load_prompt_set

    scenes = [Scene(_mug(), context=c) for c in CONTEXTS]
    scenes += [Scene(_mug(), recolour=c) for c in RECOLOURS]
    for worn, options in (("hat", HATS), ("glasses", GLASSES), ("scarf", SCARVES)):
        scenes += [Scene(_mug(), **{worn: o}) for o in list(options)[1:]]
    drawable = {caption(s): s for s in scenes}
    for name in ("world_object", "world_live"):
        prompts = load_prompt_set(REPO / "prompts" / f"{name}.toml").prompts
        assert len(prompts) >= 12
        for prompt in prompts:
            assert prompt.render(None, "mug") in drawable, prompt.template
            # the identifier where the prompt puts it
            scene = drawable[prompt.render(None, "mug")]
            assert caption(scene, "sks") == prompt.render("sks", "mug"), prompt.template
    objects = load_prompt_set(REPO / "prompts" / "world_object.toml").prompts
    contexts = {p.render(None, "mug") for p in objects}
    assert {caption(Scene(_mug(), context=c)) for c in CONTEXTS if c != "plain"} <= contexts


def test_world_prompts_are_dreambenchs_own_in_its_order():
    """The world suites keep DreamBench's prompt structure: every world prompt is one of
    DreamBench's prompts for the same kind of subject, word for word and in DreamBench's order
    (none made up to fill a gap, so the recolours weigh no more than DreamBench lets them)."""
    from bench.data.prompts import load_prompt_set

    for kind in ("object", "live"):
        world = load_prompt_set(REPO / "prompts" / f"world_{kind}.toml").prompts
        dreambench = load_prompt_set(REPO / "prompts" / f"dreambench_{kind}.toml").prompts
        order = [p.template for p in dreambench]
        templates = [p.template for p in world]
        assert set(templates) <= set(order), set(templates) - set(order)
        assert templates == sorted(templates, key=order.index)


def _mug():
    from bench_world.subjects import SUBJECTS

    return SUBJECTS["red_mug"]
