"""DreamBooth with LoRA: low-rank adapters on the UNet's attention projections, trained on the
subject's photos captioned "a {token} {class}".

fit:      photos -> VAE latents -> denoising loss on noised latents -> AdamW on the LoRA weights;
          the adapter is saved in diffusers' LoRA format (pytorch_lora_weights.safetensors),
          loadable with `StableDiffusionPipeline.load_lora_weights(workdir)`.
generate: load the adapter, render the suite's prompts from the given noise, unload on release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.generation import render
from bench.method_api import MethodContext
from bench.plan import Cell, stable_seed
from bench.training import (
    denoising_loss,
    encode_text,
    latent_distribution,
    load_images,
    training_scheduler,
)

ARTIFACT = "pytorch_lora_weights.safetensors"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass(frozen=True)
class Config:
    rank: int = 4
    alpha: float | None = None  # LoRA scale is alpha / rank; None means alpha = rank
    lr: float = 1e-4
    steps: int = 400
    batch_size: int = 1
    seed: int = 0
    dropout: float = 0.0
    instance_prompt: str = "a {token} {class}"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if "{token}" not in self.instance_prompt:
            raise ValueError("instance_prompt must contain {token}")


class DreamBoothLoRA:
    name = "dreambooth_lora"
    Config = Config

    def __init__(self) -> None:
        self._loaded = None  # workdir whose adapter is in the backbone now

    def fit(self, ctx: MethodContext) -> dict:
        import torch
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

        cfg, pipe, subject = ctx.config, ctx.backbone.pipe, ctx.subject
        device, unet = ctx.backbone.device, pipe.unet
        generator = torch.Generator("cpu").manual_seed(
            stable_seed("fit", subject.id, ctx.replicate, cfg.seed)
        )
        torch.manual_seed(stable_seed("fit-init", subject.id, ctx.replicate, cfg.seed))

        # The frozen parts are computed once: the photos' latent posterior and the caption.
        pixels = load_images(subject.images, ctx.suite.resolution)
        latent_mean, latent_std = latent_distribution(pipe.vae, pixels)
        prompt = cfg.instance_prompt.replace("{token}", subject.token)
        prompt = prompt.replace("{class}", subject.class_noun)
        with torch.no_grad():
            text = encode_text(pipe, [prompt])
        noise_scheduler = training_scheduler(pipe)

        unet.add_adapter(
            LoraConfig(
                r=cfg.rank,
                lora_alpha=cfg.alpha if cfg.alpha is not None else cfg.rank,
                lora_dropout=cfg.dropout,
                init_lora_weights="gaussian",
                target_modules=UNET_TARGETS,
            )
        )
        params = [p for p in unet.parameters() if p.requires_grad]
        for p in params:  # adapters train in fp32 even on a half-precision backbone
            p.data = p.data.float()
        optimizer = torch.optim.AdamW(params, lr=cfg.lr)
        autocast = torch.autocast(
            device.type, dtype=ctx.backbone.dtype, enabled=ctx.backbone.dtype != torch.float32
        )
        losses = []
        unet.train()
        try:
            for _step in range(cfg.steps):
                index = torch.randint(len(pixels), (cfg.batch_size,), generator=generator)
                eps = torch.randn(latent_mean[index].shape, generator=generator)
                latents = latent_mean[index] + latent_std[index] * eps.to(device)
                noise = torch.randn(latents.shape, generator=generator).to(device)
                timesteps = torch.randint(
                    noise_scheduler.config.num_train_timesteps,
                    (cfg.batch_size,),
                    generator=generator,
                ).to(device)
                with autocast:
                    loss = denoising_loss(
                        unet,
                        noise_scheduler,
                        latents,
                        text.expand(cfg.batch_size, -1, -1),
                        noise,
                        timesteps,
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                ctx.progress(1, {"loss": losses[-1]})
            if not all(math.isfinite(v) for v in losses):
                raise RuntimeError("training diverged (non-finite loss); lower lr")
            lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
            StableDiffusionPipeline.save_lora_weights(
                ctx.workdir, unet_lora_layers=lora, safe_serialization=True
            )
        finally:
            unet.eval()
            unet.unload_lora()  # leave the backbone as it was found
        return {"losses": losses, "artifact": ARTIFACT}

    def generate(self, ctx: MethodContext, cells: list[Cell], latents):
        pipe = ctx.backbone.pipe
        if self._loaded != ctx.workdir:
            self.release(ctx)
            pipe.load_lora_weights(ctx.workdir, weight_name=ARTIFACT, adapter_name="subject")
            self._loaded = ctx.workdir
        prompts = [cell.text for cell in cells]
        return render(pipe, prompts, latents, cells, ctx.suite.generation, ctx.suite.resolution)

    def release(self, ctx: MethodContext) -> None:
        if self._loaded is not None:
            ctx.backbone.pipe.unload_lora_weights()
            self._loaded = None
