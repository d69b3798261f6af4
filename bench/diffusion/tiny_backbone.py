"""`tiny`: a Stable Diffusion pipeline with SD-1.x's structure, small, with seeded random weights.

It is built in code once, saved in diffusers' layout (safetensors) and then loaded from that
directory by the same `from_pretrained` call that loads real weights, so tests and the smoke
suite exercise the real loading path. Self-attention sits only at the low-resolution level of
the UNet: at the high-resolution level it would dominate CPU time (about 7x per training step).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.atomic import atomic_dir
from bench.diffusion.tokenizer import write_clip_tokenizer_files
from bench.paths import cache_dir

# Bump when the architecture below changes, so cached copies are rebuilt.
TINY_VERSION = 1


def tiny_backbone_dir(seed: int = 0) -> Path:
    """The cached tiny pipeline for `seed`, built on first use."""
    path = cache_dir() / "backbones" / f"tiny-v{TINY_VERSION}-seed{seed}"
    if not (path / "model_index.json").exists():
        with atomic_dir(path) as tmp:
            build_tiny_backbone(tmp, seed=seed)
    return path


def build_tiny_backbone(directory: Path, seed: int = 0) -> None:
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer_dir = directory / "_tokenizer_src"
    write_clip_tokenizer_files(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)

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
            vocab_size=len(tokenizer),
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
    # SD-1.x's noise schedule.
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        f.unlink()
    tokenizer_dir.rmdir()
    (directory / "bench_tiny.json").write_text(
        json.dumps({"version": TINY_VERSION, "seed": seed, "random_weights": True}) + "\n"
    )
