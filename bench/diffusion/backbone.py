"""Loading the diffusion backbone: a Stable Diffusion pipeline by hub id, local directory, the toy
world's trained backbone (`world`) or a built-in random-weight one (`tiny`, `sd15-random`).

All go through `StableDiffusionPipeline.from_pretrained`; a built-in backbone is first assembled
and saved in diffusers' layout (see world_backbone.py and random_backbones.py). The safety
checker is always off, as in the seed study, so every image is generated and scored.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError, MissingModel
from bench.realness import RANDOM_WEIGHTS, REAL, TOY_WORLD

TINY = "tiny"  # the embedded suites' backbone (bench.diffusion.random_backbones)


@dataclass
class Backbone:
    pipe: Any  # diffusers.StableDiffusionPipeline
    id: str
    revision: str
    path: Path  # where it was loaded from
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    realness: str  # bench.realness: random weights, the toy world's (world_backbone), or real

    @property
    def latent_channels(self) -> int:
        return self.pipe.unet.config.in_channels

    def latent_size(self, resolution: int) -> int:
        return resolution // self.pipe.vae_scale_factor

    def provenance(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "revision": self.revision,
            "path": str(self.path),
            "realness": self.realness,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }


DTYPE_NAMES = ("auto", "float32", "fp32", "float16", "fp16", "bfloat16", "bf16")


def check_device_name(name: str) -> None:
    """Refuse a device name torch would not take, before anything loads."""
    if name not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", name):
        raise BenchError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")


def check_dtype_name(name: str) -> None:
    if name not in DTYPE_NAMES:
        raise BenchError(f"--dtype {name!r}: use auto, float32, float16 or bfloat16")


def resolve_device(name: str = "auto"):
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: no CUDA device is visible; use --device cpu")
    return torch.device(name)


def resolve_dtype(name: str, device):
    import torch

    if name == "auto":  # bf16 where the GPU has it (no loss scaling needed), else fp16; fp32 on CPU
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtypes = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    check_dtype_name(name)
    return dtypes[name]


def quiet_libraries() -> None:
    """Silence diffusers'/transformers' own progress bars and notices; bench shows its own."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def check_available(spec: str, revision: str | None = None) -> None:
    """Raise MissingModel when `spec` is a hub id with nothing cached and the network off, so a
    run can name every missing model before it loads any."""
    from bench.diffusion import random_backbones, world_backbone

    if random_backbones.is_random_backbone(spec) or spec == world_backbone.WORLD:
        return
    if Path(spec).exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, "model_index.json", revision=revision)
    except Exception:  # not a valid repo id: load_backbone says so
        return
    if not isinstance(cached, str) and constants.HF_HUB_OFFLINE:
        raise MissingModel(
            f"backbone '{spec}' is not in the local Hugging Face cache and the network is off "
            f"(HF_HUB_OFFLINE=1): run `huggingface-cli download {spec}` on a machine with "
            "network, or pass a local diffusers directory with --backbone DIR",
            model=f"backbone {spec}",
            local_option="--backbone DIR",
        )


def load_backbone(
    spec: str,
    *,
    revision: str | None = None,
    scheduler: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> Backbone:
    """Load `spec` (hub id, local directory, `world`, `tiny` or `sd15-random`) onto `device`
    with frozen weights."""
    import diffusers
    from diffusers import StableDiffusionPipeline

    quiet_libraries()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    realness = REAL
    from bench.diffusion import random_backbones, world_backbone

    if spec == world_backbone.WORLD:
        path = world_backbone.world_backbone_dir()  # named by its revision
        source, rev, realness = str(path), None, TOY_WORLD
        resolved_revision = path.name
    elif random_backbones.is_random_backbone(spec):
        path = random_backbones.random_backbone_dir(spec)
        source, rev, realness = str(path), None, RANDOM_WEIGHTS
        resolved_revision = random_backbones.revision(spec)
    elif Path(spec).is_dir():
        path, source, rev = Path(spec), spec, None
        resolved_revision = f"local:{_fingerprint(path)}"
    else:
        path, source, rev = Path(spec), spec, revision
        resolved_revision = ""
    # diffusers logs a failed load before raising it; the error below is the one line shown.
    diffusers.utils.logging.set_verbosity(diffusers.utils.logging.CRITICAL)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            source,
            revision=rev,
            dtype=torch_dtype,
            safety_checker=None,
            requires_safety_checker=False,
            use_safetensors=True,  # never unpickle: a pickled weight file can run code
        )
    except Exception as e:  # a local folder that is no pipeline, or has no safetensors weights
        if (
            Path(spec).exists()
            or spec == world_backbone.WORLD
            or random_backbones.is_random_backbone(spec)
        ):
            lines = str(e).strip().splitlines()
            raise BenchError(
                f"backbone {spec}: cannot load it as a diffusers pipeline with safetensors "
                f"weights ({type(e).__name__}: {lines[0][:300] if lines else ''}); bench loads "
                "no pickled weights: save the pipeline with save_pretrained(safe_serialization="
                "True)"
            ) from None
        if not isinstance(e, (OSError, ValueError)):
            raise
        raise BenchError(
            f"backbone '{spec}' is not in the local Hugging Face cache and cannot be downloaded "
            f"here; run `huggingface-cli download {spec}` on a machine with network, or pass a "
            "local diffusers directory with --backbone DIR"
        ) from None
    finally:
        diffusers.utils.logging.set_verbosity_error()
    if not resolved_revision:
        resolved_revision = _hub_commit(spec, rev) or (rev or "unknown")
    if scheduler:
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
        module.eval()
    pipe.to(torch_device)
    pipe.set_progress_bar_config(disable=True)
    return Backbone(pipe, spec, resolved_revision, path, torch_device, torch_dtype, realness)


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit hash of the cached snapshot that was loaded."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "model_index.json", revision=revision)
    except Exception:  # an odd id; the revision is then recorded as asked
        return None
    if isinstance(found, str):
        return Path(found).parent.name
    return None


def _fingerprint(directory: Path) -> str:
    """A cheap content fingerprint of a local pipeline: configs verbatim, weight files by size."""
    digest = hashlib.sha256()
    for file in sorted(directory.rglob("*")):
        if not file.is_file():
            continue
        rel = os.fspath(file.relative_to(directory))
        digest.update(rel.encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
        else:
            digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()[:12]
