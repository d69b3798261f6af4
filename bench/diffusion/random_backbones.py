"""Backbones with seeded random weights, built in code, saved in diffusers' layout (safetensors),
and then loaded from that directory by the same `from_pretrained` call that loads real weights.

- `tiny`: Stable Diffusion 1.x's structure, small (about 3.8 M parameters): the tests and the
  smoke suite. Self-attention sits only at the low-resolution level of the UNet: at the
  high-resolution level it would dominate CPU time (about 7x per training step).
- `sd15-random`: Stable Diffusion 1.5's published architecture (configs/sd15: UNet, VAE, CLIP
  ViT-L/14 text encoder, PNDM scheduler; about 1.07 B parameters, 4.3 GB in fp32), with random
  weights: every shape, memory figure and speed of the real model, with meaningless images.

Both use CLIP's real BPE tokenizer (from open_clip's wheel), so prompts tokenize as in SD-1.5.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.atomic import atomic_dir
from bench.diffusion.tokenizer import write_clip_tokenizer_files
from bench.paths import cache_dir

TINY = "tiny"
SD15_RANDOM = "sd15-random"
SD15_CONFIGS = Path(__file__).resolve().parent / "configs" / "sd15"
# Bump a version when its architecture changes, so cached copies are rebuilt.
VERSIONS = {TINY: 1, SD15_RANDOM: 1}


def is_random_backbone(spec: str) -> bool:
    return spec in VERSIONS


def revision(name: str, seed: int = 0) -> str:
    """What a run records as the backbone's revision: e.g. "sd15-random-v1-seed0"."""
    return f"{name}-v{VERSIONS[name]}-seed{seed}"


def random_backbone_dir(name: str, seed: int = 0) -> Path:
    """The cached pipeline `name` for `seed`, built on first use."""
    path = cache_dir() / "backbones" / revision(name, seed)
    if not (path / "model_index.json").exists():
        with atomic_dir(path) as tmp:
            build_random_backbone(name, tmp, seed=seed)
    return path


def tiny_backbone_dir(seed: int = 0) -> Path:
    return random_backbone_dir(TINY, seed)


def build_random_backbone(name: str, directory: Path, seed: int = 0) -> None:
    """Build pipeline `name` with weights drawn from `seed` and save it in `directory`."""
    from transformers import CLIPTokenizer

    tokenizer_dir = directory / "_tokenizer_src"
    write_clip_tokenizer_files(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    builders: dict[str, Callable[[int, int], dict[str, Any]]] = {
        TINY: _tiny_modules,
        SD15_RANDOM: _sd15_modules,
    }
    modules = builders[name](seed, len(tokenizer))
    save_pipeline(directory, tokenizer=tokenizer, **modules)
    for f in tokenizer_dir.iterdir():
        f.unlink()
    tokenizer_dir.rmdir()
    meta = {"backbone": name, "version": VERSIONS[name], "seed": seed, "random_weights": True}
    (directory / "bench_random_backbone.json").write_text(json.dumps(meta) + "\n")


def _tiny_modules(seed: int, vocab_size: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=5,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    # SD-1.x's noise schedule, as the tiny backbone has always had it.
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler}


def _sd15_modules(seed: int, vocab_size: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def config(name: str) -> dict[str, Any]:
        return json.loads((SD15_CONFIGS / f"{name}.json").read_text(encoding="utf-8"))

    text_config = config("text_encoder")
    if text_config["vocab_size"] != vocab_size:
        raise RuntimeError(f"CLIP BPE has {vocab_size} tokens, SD-1.5 expects 49408")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(config("unet"))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL.from_config(config("vae"))
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    scheduler = PNDMScheduler.from_config(config("scheduler"))
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler}


def save_pipeline(directory: Path, **modules: Any) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **modules, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(directory, safe_serialization=True)
