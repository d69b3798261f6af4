"""Rendering images from fixed initial latents under the suite's generation protocol.

Methods call `render` so that every method denoises the same noise with the same scheduler,
steps, guidance and negative prompt; they differ only in the weights and the prompt text.
"""

from __future__ import annotations

import numpy as np

from bench.data.plan import Cell
from bench.data.suites import GenerationProtocol


def render(
    pipe,
    prompts: list[str],
    latents,
    cells: list[Cell],
    protocol: GenerationProtocol,
    resolution: int,
    **pipe_kwargs,
) -> list[np.ndarray]:
    """HxWx3 uint8 images, one per prompt, from `latents` (N, C, h, w) on the CPU.

    Schedulers that add noise while sampling draw it from one CPU generator per cell, seeded
    from the cell, so an image does not depend on which batch it was in.
    """
    import torch

    generators = [torch.Generator("cpu").manual_seed(cell.seed + 1) for cell in cells]
    with torch.inference_mode():
        out = pipe(
            prompt=prompts,
            negative_prompt=[protocol.negative_prompt] * len(prompts),
            height=resolution,
            width=resolution,
            num_inference_steps=protocol.steps,
            guidance_scale=protocol.guidance_scale,
            latents=latents.to(pipe.device, pipe.unet.dtype),
            generator=generators,
            output_type="np",
            **pipe_kwargs,
        ).images
    return [(image * 255).round().clip(0, 255).astype(np.uint8) for image in out]
