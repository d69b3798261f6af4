"""How the world's models are shipped: a safetensors file, floats in half precision (the
loaders cast back to the model's precision), written atomically."""

from __future__ import annotations

from pathlib import Path


def save_half(state: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """`state` (a module's `state_dict()`) to `path`; integer buffers keep their type."""
    import torch
    from safetensors.torch import save_file

    from bench.lab import atomic_path

    half = {
        k: v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in state.items()
    }
    with atomic_path(path) as tmp:
        save_file(half, str(tmp), metadata=metadata)
