"""The toy world's text-to-image backbone (`--backbone world`): Stable Diffusion 1.x's shape at toy
size, trained by the project on its drawn world (bench_world.pipeline) and shipped with it.

The package holds only what was trained for it: the VAE and UNet (bench/assets/world/pipeline,
diffusers' subfolders) and the world CLIP, whose text tower is SD's text encoder here as OpenAI
CLIP's is in SD-1.x. On first use they are assembled with CLIP's real BPE tokenizer and SD's DDIM
settings into a whole diffusers directory in the cache (so the token table is not shipped twice),
which `StableDiffusionPipeline.from_pretrained` loads like any other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bench.assets import world_asset
from bench.atomic import atomic_dir
from bench.paths import cache_dir

WORLD = "world"
PARTS = world_asset("pipeline")  # vae/ and unet/
CLIP_FILE = world_asset("clip.safetensors")
CLIP_CONFIG = world_asset("bench-world-clip.json")
CONTEXT_LENGTH = 32  # the world CLIP's text positions
# SD-1.x's noise schedule, and its DDIM sampler settings
SCHEDULE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
}
SAMPLER = {"set_alpha_to_one": False, "steps_offset": 1}
VERSION = 1  # of the assembly; the weights' digest is in the revision too


def revision(parts: Path = PARTS, clip_file: Path = CLIP_FILE) -> str:
    """ "world-v1-<digest of the shipped weights and configs>": what a run records."""
    digest = hashlib.sha256()
    files = sorted(p for p in parts.rglob("*") if p.is_file() and not p.name.startswith("."))
    for file in [*files, clip_file, CLIP_CONFIG]:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return f"{WORLD}-v{VERSION}-{digest.hexdigest()[:12]}"


def world_backbone_dir() -> Path:
    """The assembled pipeline in the cache, built on first use."""
    if not (PARTS / "unet").is_dir():
        from bench.errors import BenchError

        raise BenchError(
            f"{PARTS}: the toy world's UNet and VAE are missing; reinstall bench, or rebuild "
            "them with `bench world train --only pipeline`"
        )
    path = cache_dir() / "backbones" / revision()
    if not (path / "model_index.json").exists():
        with atomic_dir(path) as tmp:
            build_world_backbone(tmp)
    return path


def build_world_backbone(target: Path, parts: Path = PARTS, clip_file: Path = CLIP_FILE) -> None:
    """A whole diffusers pipeline in `target` from the trained parts and the world CLIP."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from bench.diffusion.random_backbones import save_pipeline

    save_pipeline(
        target,
        vae=AutoencoderKL.from_pretrained(parts / "vae", use_safetensors=True),
        unet=UNet2DConditionModel.from_pretrained(parts / "unet", use_safetensors=True),
        text_encoder=load_text_encoder(clip_file).to(torch.float16),
        tokenizer=tokenizer(),
        scheduler=DDIMScheduler(**SCHEDULE, **SAMPLER),
    )


def load_text_encoder(clip_file: Path = CLIP_FILE):
    """The world CLIP's text tower (an open_clip weights file) as a frozen `CLIPTextModel`."""
    from safetensors.torch import load_file

    heads = json.loads(CLIP_CONFIG.read_text(encoding="utf-8"))["text_cfg"]["heads"]
    return text_encoder_from_clip(load_file(str(clip_file)), heads)


def text_encoder_from_clip(clip_state: dict, heads: int):
    """open_clip's text tower (from a CLIP state dict) as a `CLIPTextModel` with the same
    weights and outputs: the in-projection splits into q, k and v, names map one to one."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    state = {k: v.float() for k, v in clip_state.items()}
    width = state["token_embedding.weight"].shape[1]
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    config = CLIPTextConfig(
        vocab_size=state["token_embedding.weight"].shape[0],
        hidden_size=width,
        intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=state["positional_embedding"].shape[0],
        hidden_act="gelu",  # open_clip's default (not quick_gelu)
        projection_dim=state["text_projection"].shape[1],
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    converted = {
        "embeddings.token_embedding.weight": state["token_embedding.weight"],
        "embeddings.position_embedding.weight": state["positional_embedding"],
        "final_layer_norm.weight": state["ln_final.weight"],
        "final_layer_norm.bias": state["ln_final.bias"],
    }
    for i in range(layers):
        ours, theirs = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        q, k, v = state[theirs + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = state[theirs + "attn.in_proj_bias"].chunk(3)
        for name, weight, bias in (("q", q, qb), ("k", k, kb), ("v", v, vb)):
            converted[f"{ours}self_attn.{name}_proj.weight"] = weight
            converted[f"{ours}self_attn.{name}_proj.bias"] = bias
        for mine, source in (
            ("self_attn.out_proj", "attn.out_proj"),
            ("layer_norm1", "ln_1"),
            ("layer_norm2", "ln_2"),
            ("mlp.fc1", "mlp.c_fc"),
            ("mlp.fc2", "mlp.c_proj"),
        ):
            converted[f"{ours}{mine}.weight"] = state[f"{theirs}{source}.weight"]
            converted[f"{ours}{mine}.bias"] = state[f"{theirs}{source}.bias"]
    model = CLIPTextModel(config)
    if any(k.startswith("text_model.") for k in model.state_dict()):  # transformers < 5
        converted = {f"text_model.{k}": v for k, v in converted.items()}
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise RuntimeError(f"text tower conversion: missing {missing}, unexpected {unexpected}")
    return model.eval().requires_grad_(False).to(torch.float32)


def tokenizer():
    """CLIP's BPE tokenizer, padding to the world CLIP's 32 positions."""
    import tempfile

    from transformers import CLIPTokenizer

    from bench.diffusion.tokenizer import write_clip_tokenizer_files

    with tempfile.TemporaryDirectory() as folder:
        write_clip_tokenizer_files(Path(folder), max_length=CONTEXT_LENGTH)
        return CLIPTokenizer.from_pretrained(folder)
