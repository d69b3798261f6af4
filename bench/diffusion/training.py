"""Pieces every fine-tuning method needs: the subject's photos as tensors, latents, the text
embedding, and the denoising loss. Kept here so methods stay short and compute them alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.images import read_image


def load_images(paths: list[Path] | tuple[Path, ...], resolution: int):
    """(N, 3, R, R) float32 in [-1, 1]: shorter side resized to R (bicubic), centre-cropped."""
    import torch

    tensors = []
    for path in paths:
        image = read_image(path)
        scale = resolution / min(image.size)
        w, h = (
            max(resolution, round(image.width * scale)),
            max(resolution, round(image.height * scale)),
        )
        image = image.resize((w, h), Image.Resampling.BICUBIC)
        left, top = (w - resolution) // 2, (h - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        tensors.append(torch.from_numpy(array).permute(2, 0, 1))
    return torch.stack(tensors)


def latent_distribution(vae, pixels):
    """Mean and std of the VAE posterior, scaled to the UNet's latent space."""
    import torch

    with torch.no_grad():
        dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    scale = vae.config.scaling_factor
    return dist.mean.float() * scale, dist.std.float() * scale


def word_embedding(pipe, text: str):
    """The mean of `text`'s rows of the text encoder's token table, in fp32: where a learned
    token's vector starts (Textual Inversion's, the identifier's in pivotal tuning)."""
    ids = pipe.tokenizer(text, add_special_tokens=False).input_ids
    return pipe.text_encoder.get_input_embeddings().weight[ids].detach().float().mean(0)


def encode_text(pipe, texts: list[str]):
    """Text-encoder hidden states for `texts`, padded to the tokenizer's max length."""
    ids = pipe.tokenizer(
        texts,
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(pipe.text_encoder.device)
    return pipe.text_encoder(ids)[0]


def denoising_loss(
    unet, noise_scheduler, latents, text_embeddings, noise, timesteps, reduction: str = "mean"
):
    """MSE between the UNet's prediction and its target (noise, or velocity for v-prediction)."""
    import torch.nn.functional as F

    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    prediction = unet(noisy.to(unet.dtype), timesteps, text_embeddings.to(unet.dtype)).sample
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return F.mse_loss(prediction.float(), target.float(), reduction=reduction)


def training_scheduler(pipe):
    """The DDPM noise schedule matching the backbone's, for adding noise during training."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipe.scheduler.config)


def fixed_noise_loss(pipe, pixels, prompt: str, seed: int = 0, n_timesteps: int = 8) -> float:
    """Denoising loss on fixed noise at fixed, evenly spread timesteps: a yardstick for whether
    fitting learned the subject (it should drop after training)."""
    import torch

    scheduler = training_scheduler(pipe)
    mean, _ = latent_distribution(pipe.vae, pixels)
    n = mean.shape[0]
    timesteps = torch.linspace(50, scheduler.config.num_train_timesteps - 50, n_timesteps).long()
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = mean.cpu().repeat_interleave(n_timesteps, 0)
    noise = torch.randn(latents.shape, generator=generator)
    t = timesteps.repeat(n)
    with torch.no_grad():
        text = encode_text(pipe, [prompt]).repeat(latents.shape[0], 1, 1)
        device = pipe.unet.device
        loss = denoising_loss(
            pipe.unet, scheduler, latents.to(device), text, noise.to(device), t.to(device)
        )
    return float(loss)


def loss_scaler(device, dtype):
    """A gradient scaler, on for float16: half-precision activations can round small gradients
    to zero on their way back to the fp32 adapters, and scaling the loss up keeps them (the
    optimizer sees them unscaled, and a step with inf/NaN gradients is skipped). bfloat16 has
    float32's range and needs none; float32 gets a scaler that does nothing."""
    import torch

    return torch.amp.GradScaler(torch.device(device).type, enabled=dtype == torch.float16)
