"""The real Stable Diffusion 1.5 architecture, and the real scorer architectures, with random
weights: built from the shipped published configs, saved in diffusers' layout, loaded through
`from_pretrained` as a downloaded SD-1.5 would be, and taken through fit, generate and score on a
CPU at 64 px. About 1.5 minutes and 5 GB of disk (built once per session)."""

import json
import math
from pathlib import Path

import pytest
from safetensors import safe_open

# SD-1.5's published sizes (runwayml/stable-diffusion-v1-5), counted from its checkpoint.
PUBLISHED_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
CONFIGS = Path(__file__).resolve().parents[1] / "bench" / "diffusion" / "configs" / "sd15"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run():
    import bench

    result = bench.run(
        "dreambooth_lora",
        "sd15-random",
        options={"prior_preservation": True, "train_text_encoder": True},
        runs=Path(bench.paths.cache_dir()) / "arch-runs",
        stats=bench.StatsOptions(n_resamples=100),
    )
    return result


def test_the_backbone_is_sd15_as_published_loaded_from_diffusers_layout(run):
    from diffusers import StableDiffusionPipeline

    from bench.diffusion.random_backbones import random_backbone_dir

    path = random_backbone_dir("sd15-random")
    for component, name in (("unet", "unet"), ("vae", "vae"), ("text_encoder", "text_encoder")):
        saved = json.loads((path / component / "config.json").read_text())
        published = json.loads((CONFIGS / f"{name}.json").read_text())
        for key, value in published.items():
            if key not in ("_class_name", "architectures"):
                assert saved[key] == value, (component, key)
        weights = path / component
        assert any(p.suffix == ".safetensors" for p in weights.iterdir())  # no pickles
    pipe = StableDiffusionPipeline.from_pretrained(path)
    for component, count in PUBLISHED_PARAMETERS.items():
        assert sum(p.numel() for p in getattr(pipe, component).parameters()) == count
    assert len(pipe.tokenizer) == 49408
    assert pipe.tokenizer("a sks dog").input_ids == [49406, 320, 48136, 1929, 49407]
    record = json.loads((run.run_dir / "red_mug" / "replicate-0" / "manifest.json").read_text())
    assert record["backbone"]["revision"] == "sd15-random-v1-seed0"
    assert record["backbone"]["realness"] == "random weights"


def test_lora_reaches_every_attention_projection_of_the_real_unet_and_text_encoder(run):
    unit = run.run_dir / "red_mug" / "replicate-0"
    with safe_open(str(unit / "pytorch_lora_weights.safetensors"), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    # diffusers' LoRA format: a `down` (rank x in) and an `up` (out x rank) matrix per layer.
    unet = [k for k in shapes if k.startswith("unet.") and k.endswith("down.weight")]
    text = [k for k in shapes if k.startswith("text_encoder.") and k.endswith("down.weight")]
    # 16 transformer blocks x 2 attentions x (q, k, v, out); 12 text layers x (q, k, v, out).
    assert len(unet) == 16 * 2 * 4 and len(text) == 12 * 4
    # Cross-attention keys and values read the 768-wide text states; rank 4.
    cross_k = [s for k, s in shapes.items() if "attn2.to_k" in k and k.endswith("down.weight")]
    assert len(cross_k) == 16 and all(s == (4, 768) for s in cross_k)


def test_fit_generate_and_score_at_the_real_sizes(run):
    from PIL import Image

    assert run.fitted == 1 and run.generated == 2
    pngs = sorted((run.run_dir / "red_mug" / "replicate-0" / "images").glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(p).size == (64, 64) for p in pngs)
    fit = json.loads((run.run_dir / "red_mug" / "replicate-0" / "fit.json").read_text())
    assert all(math.isfinite(x) for x in fit["losses"] + fit["prior_losses"])
    assert set(run.intervals) == {"clip_i", "clip_t", "dino"}
    assert all(math.isfinite(iv.mean) for iv in run.intervals.values())
    models = {m: s["model"] for m, s in run.results.scorers.items()}
    assert models == {
        "clip_i": "open_clip:ViT-B-32/random-full/seed0",
        "clip_t": "open_clip:ViT-B-32/random-full/seed0",
        "dino": "timm:vit_small_patch16_224.dino/random-full/seed0",
    }


def test_the_scorers_are_the_real_architectures():
    from bench.scorers.clip import load_clip_model
    from bench.scorers.dino import load_dino_model

    clip = load_clip_model(pretrained="random-full:0", device="cpu")
    dino = load_dino_model(pretrained="random-full:0", device="cpu")
    # open_clip ViT-B/32 and timm ViT-S/16: their published sizes.
    assert sum(p.numel() for p in clip.net.parameters()) == 151_277_313
    assert sum(p.numel() for p in dino.net.parameters()) == 21_665_664
    assert clip.random_weights and dino.random_weights
