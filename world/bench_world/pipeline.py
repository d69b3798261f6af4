"""The toy world's text-to-image model: Stable Diffusion 1.x's shape at toy size, trained on
renders and their captions, saved in diffusers' layout and loaded by the same
`StableDiffusionPipeline.from_pretrained` as real weights (`--backbone world`).

- text encoder: the world CLIP's text tower, converted to `transformers.CLIPTextModel` and
  frozen, as SD-1.x uses OpenAI CLIP's; the tokenizer is CLIP's real BPE (32 positions).
- VAE: `AutoencoderKL`, 64 px to 16 x 16 x 4 latents, trained on renders first.
- UNet: `UNet2DConditionModel` with cross-attention at its two lower levels, trained on the
  latents of the VAE as shipped, with SD's noise schedule and objective (epsilon), each timestep
  weighted by min-SNR (Hang et al., 2023: faster to converge, and at this size the model stopped
  improving without it), one caption in ten dropped for classifier-free guidance, every
  caption's tail (end-of-text and padding states) swapped for another caption's from the first
  step (`swap_tails`), so that it reads the words, as DreamBooth needs (docs/world.md);
  the shipped weights are an exponential moving average. An optional second stage
  (`refine_unet`) trains it further on fresh scenes at a lower rate.

Captions are DreamBench's short ones ("a red mug on the beach") or the full description ("a red
mug with white stripes, with a handle, on the beach"), so the base model draws a class in a
context with any look, and a personalization method has something to learn. The identifier
token never appears in them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from bench.lab import (
    WORLD_CONTEXT_LENGTH,
    WORLD_NOISE_SCHEDULE,
    cache_dir,
    load_world_text_encoder,
    world_asset,
    world_tokenizer,
)
from bench_world.clip import describe_scene
from bench_world.oracle import pixel_tensor
from bench_world.render import Scene, caption, random_scene, render_many

DIRECTORY = world_asset("pipeline")  # where the trained VAE and UNet are shipped
CLIP_FILE = world_asset("clip.safetensors")  # its text tower is the pipeline's text encoder
LATENT_SIZE = 16  # 64 px / 4
DROP_CAPTION = 0.1  # the unconditional share, for classifier-free guidance
FULL_DESCRIPTION = 0.4  # the share of captions that describe the whole look
SNR_GAMMA = 5.0  # min-SNR weighting's cap
TAIL_SWAP = 1.0  # the share of captions trained with another caption's tail
UNET_SHAPE = {
    "block_out_channels": (64, 96, 128),
    # attention only where it is cheap: at 8 x 8 and 4 x 4
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}


# --------------------------------------------------------------------------- modules


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        mid_block_add_attention=False,  # a fifth of the VAE's time at this size, for little
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE, in_channels=4, out_channels=4, **UNET_SHAPE
    )


# --------------------------------------------------------------------------- data


def training_caption(scene: Scene, rng: np.random.Generator) -> str:
    draw = rng.random()
    if draw < DROP_CAPTION:
        return ""
    if draw < DROP_CAPTION + FULL_DESCRIPTION:
        return describe_scene(scene)
    return caption(scene)


def training_scenes(seed: int, n: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [random_scene(rng) for _ in range(n)]


def _embed(text_encoder, tokenizer, texts: list[str], tail_swap: float = 0.0, generator=None):
    """The captions' hidden states; with `tail_swap`, that share of them get the end-of-text and
    padding states of another caption of the batch in place of their own (`swap_tails`)."""
    import torch

    ids = tokenizer(
        texts,
        padding="max_length",
        max_length=WORLD_CONTEXT_LENGTH,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        hidden = text_encoder(ids)[0]
    if tail_swap:
        hidden = swap_tails(hidden, ids, tokenizer.eos_token_id, tail_swap, generator)
    return hidden


def swap_tails(hidden, ids, eos_token_id: int, share: float, generator=None):
    """`hidden` with the tail (end-of-text and padding states) of a `share` of its rows replaced
    by the tail of another row, aligned at its end-of-text and its last state repeated where it
    is shorter. A causal text encoder sums the whole sentence up in the tail; a UNet trained on
    tails that may belong to another caption learns to read the words, where an identifier and
    the words before it mean the same in any longer prompt (docs/world.md)."""
    import torch

    rows, length = ids.shape
    ends = (ids == eos_token_id).int().argmax(dim=1)  # the first end-of-text
    chosen = torch.rand(rows, generator=generator) < share
    donors = torch.randperm(rows, generator=generator)
    swapped = hidden.clone()
    for row in torch.nonzero(chosen).flatten().tolist():
        donor = int(donors[row])
        start, donor_start = int(ends[row]), int(ends[donor])
        source = (torch.arange(length - start) + donor_start).clamp(max=length - 1)
        swapped[row, start:] = hidden[donor, source]
    return swapped


# --------------------------------------------------------------------------- training


def train_vae(images, seed: int = 0, epochs: int = 3, batch_size: int = 16, log=print):
    """Reconstruction (L1 + L2) with a light KL term, then the latent scale (SD's
    `scaling_factor`) set so the scaled latents have unit variance."""
    import torch

    torch.manual_seed(seed)
    vae = build_vae()
    pixels = pixel_tensor(images)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    per_epoch = len(pixels) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=2e-3, total_steps=max(1, epochs * per_epoch)
    )
    generator = torch.Generator().manual_seed(seed)
    vae.train()
    for epoch in range(epochs):
        order = torch.randperm(len(pixels), generator=generator)
        total = 0.0
        for start in range(0, per_epoch * batch_size, batch_size):
            batch = pixels[order[start : start + batch_size]]
            posterior = vae.encode(batch).latent_dist
            decoded = vae.decode(posterior.sample(generator)).sample
            error = decoded - batch
            loss = error.abs().mean() + error.pow(2).mean() + 1e-6 * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        log(f"vae epoch {epoch + 1}/{epochs}: loss {total / max(1, per_epoch):.4f}")
    vae.eval().requires_grad_(False)
    latents = encode(vae, images[:2048])
    vae.register_to_config(scaling_factor=round(float(1.0 / latents.std()), 5))
    return vae


def encode(vae, images, batch_size: int = 256):
    """The posterior means of `images`, unscaled."""
    import torch

    parts = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = pixel_tensor(images[start : start + batch_size]).to(vae.device, vae.dtype)
            parts.append(vae.encode(batch).latent_dist.mean)
    return torch.cat(parts)


def decode(vae, latents, batch_size: int = 256) -> list[np.ndarray]:
    """uint8 pictures from unscaled latents."""
    import torch

    pictures = []
    with torch.no_grad():
        for start in range(0, len(latents), batch_size):
            sample = vae.decode(latents[start : start + batch_size]).sample.float().cpu()
            array = ((sample.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            pictures += list(array.permute(0, 2, 3, 1).numpy())
    return pictures


def train_unet(
    latents,
    captions: list[str],
    text_encoder,
    tokenizer,
    seed: int = 0,
    steps: int = 8000,
    batch_size: int = 64,
    lr: float = 1e-3,
    start=None,
    log=print,
    checkpoint=None,
    checkpoint_every: int = 1000,
    state: Path | None = None,
    snr_gamma: float | None = SNR_GAMMA,
    tail_swap: float = 0.0,
):
    """SD's objective: predict the noise added at a random timestep, given the caption's
    hidden states, from a new UNet or from `start`; with `snr_gamma`, each sample's error
    weighted by min(SNR, gamma) / SNR of its timestep. Returns the moving average of the
    weights.

    Every `checkpoint_every` steps the average goes to `checkpoint` and, with `state`, the
    whole training state (weights, average, optimizer, schedule, random generator) to that
    folder, from which a later call with the same arguments resumes to the same weights."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    unet = build_unet() if start is None else copy.deepcopy(start).float().train()
    unet.requires_grad_(True)
    average = copy.deepcopy(unet).requires_grad_(False)
    noise_schedule = DDPMScheduler(**WORLD_NOISE_SCHEDULE)
    weights = timestep_weights(noise_schedule.alphas_cumprod, snr_gamma)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)

    def rate(step: int) -> float:  # linear warm-up, then cosine to a tenth
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    generator = torch.Generator().manual_seed(seed)
    first = 0
    if state is not None and (state / "state.json").is_file():
        first = _load_state(state, unet, average, optimizer, schedule, generator)
        log(f"resumed at unet step {first}/{steps} from {state}")
    unet.train()
    total = 0.0
    for step in range(first, steps):
        index = torch.randint(len(latents), (batch_size,), generator=generator)
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(
            0, WORLD_NOISE_SCHEDULE["num_train_timesteps"], (batch_size,), generator=generator
        )
        noisy = noise_schedule.add_noise(clean, noise, timesteps)
        texts = [captions[i] for i in index.tolist()]
        hidden = _embed(text_encoder, tokenizer, texts, tail_swap, generator)
        error = F.mse_loss(unet(noisy, timesteps, hidden).sample, noise, reduction="none")
        loss = (error.mean(dim=(1, 2, 3)) * weights[timesteps]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for mine, live in zip(average.parameters(), unet.parameters(), strict=True):
                mine.lerp_(live, 1 - decay)
        total += float(loss.detach())
        if (step + 1) % 200 == 0 or step + 1 == steps:
            log(f"unet step {step + 1}/{steps}: loss {total / ((step % 200) + 1):.4f}")
            total = 0.0
        if (step + 1) % checkpoint_every == 0:
            if checkpoint:
                checkpoint(average)
            if state is not None:
                _save_state(state, step + 1, unet, average, optimizer, schedule, generator)
                log(f"unet step {step + 1}/{steps}: training state saved")
    return average.eval()


def timestep_weights(alphas_cumprod, snr_gamma: float | None):
    """Min-SNR weights of the epsilon loss per timestep: min(SNR, gamma) / SNR, where SNR is
    the signal-to-noise ratio alpha_bar / (1 - alpha_bar); all ones without `snr_gamma`."""
    import torch

    snr = alphas_cumprod / (1 - alphas_cumprod)
    return snr.clamp(max=snr_gamma) / snr if snr_gamma else torch.ones_like(snr)


def _save_state(state: Path, step: int, unet, average, optimizer, schedule, generator) -> None:
    from safetensors.torch import save_file

    staging = state.parent / f".{state.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tensors = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    tensors |= {f"average.{k}": v for k, v in average.state_dict().items()}
    tensors["generator"] = generator.get_state()
    moments = optimizer.state_dict()  # tensors to safetensors, the rest to JSON: nothing pickled
    for index, values in moments["state"].items():
        tensors |= {f"optimizer.{index}.{name}": value for name, value in values.items()}
    save_file(tensors, staging / "weights.safetensors")
    saved = {"step": step, "schedule": schedule.state_dict()}
    saved["optimizer_groups"] = moments["param_groups"]
    (staging / "state.json").write_text(json.dumps(saved))
    _swap_in(staging, state)


def _load_state(state: Path, unet, average, optimizer, schedule, generator) -> int:
    """Restore what `_save_state` wrote; returns the number of steps done."""
    from safetensors.torch import load_file

    saved = json.loads((state / "state.json").read_text())
    tensors = load_file(state / "weights.safetensors")
    for prefix, module in (("unet.", unet), ("average.", average)):
        module.load_state_dict(
            {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        )
    generator.set_state(tensors["generator"])
    moments: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".")
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": saved["optimizer_groups"]})
    schedule.load_state_dict(saved["schedule"])
    return int(saved["step"])


def _swap_in(staging: Path, target: Path) -> None:
    """Replace the folder `target` by `staging` whole: a reader sees one or the other."""
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def train_pipeline(
    directory: Path = DIRECTORY,
    seed: int = 0,
    n_scenes: int = 40_000,
    vae_images: int = 24_000,
    vae_epochs: int = 3,
    unet_steps: int = 7000,
    refine_steps: int = 0,
    clip_file: Path = CLIP_FILE,
    checkpoint_every: int = 1000,
    state: Path | None = None,
    log=print,
) -> None:
    """Render `n_scenes` captioned scenes, train the VAE on the first `vae_images` and save it
    (half precision), train the UNet on all their latents through the VAE as saved, checkpointing
    it every `checkpoint_every` steps; then, with `refine_steps`, refine it (`refine_unet`).

    The training state is kept in `state` (default: the cache, one folder per recipe), so an
    interrupted call resumes where it stopped and ends with the same weights."""
    import torch
    from diffusers import AutoencoderKL

    recipe = {
        "seed": seed,
        "n_scenes": n_scenes,
        "vae_images": vae_images,
        "vae_epochs": vae_epochs,
        "unet_steps": unet_steps,
        "refine_steps": refine_steps,
        "unet": UNET_SHAPE,
        "snr_gamma": SNR_GAMMA,
        "full_description": FULL_DESCRIPTION,
        "clip": hashlib.sha256(Path(clip_file).read_bytes()).hexdigest(),
        "tail_swap": TAIL_SWAP,
    }
    if state is None:
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        state = cache_dir() / "world-training" / f"pipeline-{digest}"
    log(f"training state: {state}")
    scenes = training_scenes(seed, n_scenes)
    images = render_many(scenes)
    log(f"rendered {len(images)} scenes")
    if (state / "vae").is_dir():
        vae = AutoencoderKL.from_pretrained(state / "vae", torch_dtype=torch.float32)
        log(f"resumed with the VAE trained before ({state / 'vae'})")
    else:
        vae = train_vae(images[:vae_images], seed=seed, epochs=vae_epochs, log=log)
        save_parts(state, dtype=torch.float32, vae=vae)
    save_parts(directory, vae=vae)
    train_unet_stage(
        directory,
        scenes,
        images,
        caption_seed=seed + 2,
        clip_file=clip_file,
        log=log,
        seed=seed,
        steps=unet_steps,
        checkpoint_every=checkpoint_every,
        state=state / "unet",
        tail_swap=TAIL_SWAP,
    )
    del images
    if refine_steps:
        refine_unet(
            directory,
            seed=seed,
            n_scenes=n_scenes,
            steps=refine_steps,
            clip_file=clip_file,
            checkpoint_every=checkpoint_every,
            state=state / "refine",
            log=log,
            tail_swap=TAIL_SWAP,
        )


def refine_unet(
    directory: Path = DIRECTORY,
    seed: int = 0,
    n_scenes: int = 40_000,
    steps: int = 12_000,
    lr: float = 5e-4,
    clip_file: Path = CLIP_FILE,
    checkpoint_every: int = 1000,
    state: Path | None = None,
    log=print,
    tail_swap: float = 0.0,
) -> None:
    """The second stage of the UNet's training, at a lower rate on a fresh draw of scenes,
    starting from the UNet saved in `directory` (half precision, as shipped) and encoding with
    its VAE, with `tail_swap` (`swap_tails`); with `state`, resumable as `train_unet` is. A
    stage of its own so that the first stage's weights, once saved, need not be trained again."""
    import torch
    from diffusers import UNet2DConditionModel

    start = build_unet()  # a new module, so that no path of this machine reaches the config
    shipped = UNet2DConditionModel.from_pretrained(directory / "unet", torch_dtype=torch.float32)
    start.load_state_dict(shipped.state_dict())
    scenes = training_scenes(seed + 3, n_scenes)
    images = render_many(scenes)
    log(f"rendered {len(scenes)} fresh scenes")
    train_unet_stage(
        directory,
        scenes,
        images,
        caption_seed=seed + 4,
        clip_file=clip_file,
        log=log,
        seed=seed + 5,
        steps=steps,
        lr=lr,
        start=start,
        checkpoint_every=checkpoint_every,
        state=state,
        tail_swap=tail_swap,
    )


def train_unet_stage(directory: Path, scenes, images, caption_seed: int, clip_file, log, **how):
    """Train the UNet (`train_unet(**how)`) on the latents of `images`, through the VAE saved in
    `directory` (so that the UNet learns the latents the shipped VAE decodes), and captions of
    their `scenes`; save it in `directory` at every checkpoint and at the end."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(directory / "vae", torch_dtype=torch.float32)
    latents = encode(vae, images) * vae.config.scaling_factor
    rng = np.random.default_rng(caption_seed)
    captions = [training_caption(s, rng) for s in scenes]

    def checkpoint(unet) -> None:
        save_parts(directory, unet=unet)

    text_encoder = load_world_text_encoder(clip_file)
    unet = train_unet(
        latents, captions, text_encoder, world_tokenizer(), log=log, checkpoint=checkpoint, **how
    )
    checkpoint(unet)


def save_parts(directory: Path, dtype=None, **modules) -> None:
    """The trained parts (`vae`, `unet`) in `dtype` (default: half precision, as shipped), each
    in its diffusers subfolder, each swapped in whole."""
    import torch

    from bench.lab import apply_umask

    dtype = dtype or torch.float16
    directory.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        staging = directory / f".{name}.new"
        shutil.rmtree(staging, ignore_errors=True)
        copy.deepcopy(module).to(dtype).save_pretrained(staging, safe_serialization=True)
        # A part loaded to resume records where it was loaded from: not this machine's paths.
        config = json.loads((staging / "config.json").read_text())
        if config.pop("_name_or_path", None) is not None:
            (staging / "config.json").write_text(
                json.dumps(config, indent=2, sort_keys=True) + "\n"
            )
        apply_umask(staging)  # safetensors writes owner-only files
        _swap_in(staging, directory / name)
