"""Stored values recomputed from their definitions, outside the code that produced them.

One scored dreambooth_lora run on a two-subject suite (an object and a live subject, two prompts,
two images each) is made through the CLI while a spy, calling through, records what reached the
real diffusers pipeline. Then each stored value is recomputed by hand: the seed with hashlib, the
initial latent with torch.randn, CLIP-T, CLIP-I and DINO from the PNGs with open_clip and timm
loaded directly from the same weight files.
"""

import json
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

from helpers import clip_by_hand, cosine, dino_by_hand, documented_seed

SUITE = """\
name = "defs"
backbone = "tiny"
resolution = 32
images_per_prompt = 2
replicates = [7]
scorers = ["clip_i", "clip_t", "dino"]

[subjects]
set = "shapes"
ids = ["red_mug", "ginger_cat"]

[prompts]
object = { set = "dreambench_object", ids = ["on_the_beach", "red"] }
live = { set = "dreambench_live", ids = ["in_the_snow", "wearing_a_santa_hat"] }

[generation]
scheduler = "DDIMScheduler"
steps = 3

[method_defaults.dreambooth_lora]
lr = 1e-2
steps = 3
batch_size = 1

[scorer_options]
clip = { pretrained = "random:0" }
dino = { pretrained = "random:0" }
dinov2 = { pretrained = "random:0" }
"""

SUBJECTS = Path(__file__).resolve().parent.parent / "subjects" / "shapes"
TOKEN = "sks"  # the smoke subjects' identifier (their subject.toml)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The run's directory, its score rows, and every (prompt, initial latent, sampling-noise
    seed) the pipeline received."""
    root = tmp_path_factory.mktemp("defs")
    suite = root / "defs.toml"
    suite.write_text(SUITE)
    received = []
    call = StableDiffusionPipeline.__call__

    def spy(self, *args, **kwargs):
        latents = kwargs["latents"].detach().float().cpu()
        sampling_seeds = [g.initial_seed() for g in kwargs["generator"]]
        received.extend(zip(kwargs["prompt"], latents, sampling_seeds, strict=True))
        return call(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StableDiffusionPipeline, "__call__", spy)
        result = CliRunner().invoke(
            app,
            ["run", "--method", "dreambooth_lora", "--suite", str(suite), "--runs", str(root)]
            + ["--batch-size", "3", "--resamples", "200", "--json"],
        )
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    rows = [
        json.loads(line)
        for path in sorted(run_dir.glob("*/replicate-*/scores.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return {"dir": run_dir, "rows": rows, "received": received}


def test_every_cell_is_stored_once_with_the_documented_seed(run):
    rows = run["rows"]
    cells = {(r["subject"], r["prompt_id"], r["image_index"], r["replicate"]) for r in rows}
    assert cells == {
        (subject, prompt, index, 7)
        for subject, prompts in [
            ("red_mug", ["on_the_beach", "red"]),
            ("ginger_cat", ["in_the_snow", "wearing_a_santa_hat"]),
        ]
        for prompt in prompts
        for index in (0, 1)
    }
    assert len(rows) == len(cells) == 8
    for r in rows:
        assert r["seed"] == documented_seed(r["subject"], r["prompt_id"], r["image_index"], 7)


def test_the_pipeline_received_each_cells_own_noise_with_its_own_prompt(run):
    """What reached the pipeline, not what a sidecar says: for each stored image, exactly one
    rendered latent equals torch.randn from the image's seed, and it came with its prompt and
    with a sampling-noise generator of its own (seeded with the cell's seed + 1)."""
    received = run["received"]
    assert len(received) == len(run["rows"])  # nothing else was rendered (no prior images)
    for r in run["rows"]:
        noise = torch.randn(
            (4, 16, 16), generator=torch.Generator("cpu").manual_seed(r["seed"])
        )  # 4 latent channels, 32 px / the VAE's factor of 2
        matches = [(p, s) for p, latent, s in received if torch.equal(latent, noise)]
        assert matches == [(r["prompt"], r["seed"] + 1)], (r["subject"], r["prompt_id"])
        assert TOKEN in r["prompt"].split()  # "a red sks mug": rendered with the identifier


# --------------------------------------------------------------------------- the scorers by hand


@pytest.fixture(scope="module")
def clip():
    return clip_by_hand()


@pytest.fixture(scope="module")
def dino():
    return dino_by_hand()


def photos(subject):
    return sorted((SUBJECTS / subject).glob("*.png"))


def test_clip_t_is_the_image_against_its_prompt_without_the_identifier(run, clip):
    embed_image, embed_text = clip
    for r in run["rows"]:
        # The identifier-free prompt, derived here from the rendered one: "a sks mug" -> "a mug".
        expected_prompt = " ".join(w for w in r["prompt"].split() if w != TOKEN)
        assert r["scoring_prompt"] == expected_prompt
        image = embed_image([run["dir"] / r["image"]])
        value = cosine(image, embed_text([expected_prompt]))[0, 0].item()
        assert r["clip_t"] == pytest.approx(value, abs=1e-5)
        # The prompt with the identifier scores differently, so the match above is not luck.
        with_token = cosine(image, embed_text([r["prompt"]]))[0, 0].item()
        assert abs(with_token - r["clip_t"]) > 1e-4


def test_clip_i_is_the_mean_cosine_over_the_subjects_photos(run, clip):
    embed_image, _ = clip
    for subject in ("red_mug", "ginger_cat"):
        references = embed_image(photos(subject))
        assert len(references) == 4
        for r in (r for r in run["rows"] if r["subject"] == subject):
            values = cosine(embed_image([run["dir"] / r["image"]]), references)[0]
            assert r["clip_i"] == pytest.approx(values.mean().item(), abs=1e-5)
            # Not the cosine with one photo only, nor with the other subject's photos.
            assert abs(values[0].item() - r["clip_i"]) > 1e-6


def test_dino_is_the_mean_cosine_of_cls_tokens_over_the_subjects_photos(run, dino):
    for subject in ("red_mug", "ginger_cat"):
        references = dino(photos(subject))
        for r in (r for r in run["rows"] if r["subject"] == subject):
            value = cosine(dino([run["dir"] / r["image"]]), references)[0].mean().item()
            assert r["dino"] == pytest.approx(value, abs=1e-5)


def test_each_scorer_feature_is_the_documented_one(run, clip, dino):
    """The embedding each scorer computes is the library's: open_clip's encode_image for CLIP,
    the CLS token for DINO (not a pooled or patch token)."""
    from bench.scorers.scoring import load_scorers

    clip_i, dino_scorer = load_scorers(
        ["clip_i", "dino"], {"clip": {"pretrained": "random:0"}, "dino": {"pretrained": "random:0"}}
    )
    paths = [run["dir"] / r["image"] for r in run["rows"][:3]]
    images = [Image.open(p).convert("RGB") for p in paths]
    for scorer, by_hand in ((clip_i, clip[0]), (dino_scorer, dino)):
        got = torch.from_numpy(scorer.model.embed_images(images, batch_size=2))
        expected = by_hand(paths)
        expected = expected / expected.norm(dim=-1, keepdim=True)
        assert torch.allclose(got, expected, atol=1e-6), scorer.id


# --------------------------------------------------------------------------- fit seeds


@pytest.mark.parametrize("method_name", ["dreambooth_lora", "textual_inversion"])
def test_each_replicate_is_its_own_fit_with_the_documented_seed(method_name, tmp_path, monkeypatch):
    """docs/store.md: a fit's random draws come from a generator seeded with the seed of
    ("fit", subject, replicate, the method's `seed` option), and DreamBooth-LoRA's adapter
    initialisation from ("fit-init", ...). A spy on torch, calling through, records the seeds;
    two replicates are two different fits."""
    from safetensors.torch import load_file

    from bench.config import resolve_config
    from bench.data.suites import load_suite
    from bench.diffusion.backbone import load_backbone
    from bench.lab import load_method
    from bench.plugin import MethodContext

    seeded: list[int] = []

    class SpyGenerator(torch.Generator):
        def manual_seed(self, seed):
            seeded.append(int(seed))
            return super().manual_seed(seed)

    real_manual_seed = torch.manual_seed

    def spy_manual_seed(seed):
        seeded.append(int(seed))
        return real_manual_seed(seed)

    monkeypatch.setattr(torch, "Generator", SpyGenerator)
    monkeypatch.setattr(torch, "manual_seed", spy_manual_seed)
    suite = load_suite("micro")
    backbone = load_backbone("tiny", device="cpu")
    method = load_method(method_name)
    subject = suite.subjects[0]
    artifacts = []
    for replicate in (0, 1):
        seeded.clear()
        config = resolve_config(method.Config, {"steps": 2, "seed": 3})
        ctx = MethodContext(
            backbone=backbone,
            suite=suite,
            subject=subject,
            config=config,
            replicate=replicate,
            workdir=tmp_path / str(replicate),
            cache=tmp_path,
        )
        ctx.workdir.mkdir()  # as the runner makes it
        method().fit(ctx)
        assert documented_seed("fit", subject.id, replicate, 3) in seeded, replicate
        if method_name == "dreambooth_lora":
            assert documented_seed("fit-init", subject.id, replicate, 3) in seeded
        [artifact] = [p for p in ctx.workdir.glob("*.safetensors")]
        artifacts.append(load_file(artifact))
    first, second = artifacts
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # independent fits
