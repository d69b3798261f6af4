"""The ranges method options are checked against, so a value that cannot work (no steps) or would
exhaust memory or time (a million-image batch) is refused before anything runs. A method's
`Config.__post_init__` calls `within` for each numeric option; plugins import it from
`bench.plugin`."""

from __future__ import annotations

MAX_STEPS = 1_000_000  # training steps (the paper's DreamBooth uses 400-1200)
MAX_RANK = 1024  # LoRA rank: beyond the width of SD-1.5's attention projections
MAX_BATCH = 1024  # training batch size, gradient accumulation
MAX_CLASS_IMAGES = 100_000  # prior-preservation images per class
MAX_PACK = 256  # units fitted in one packed loop (bench run --pack)
MAX_VECTORS = 75  # textual-inversion vectors: CLIP's 77-token context less BOS and EOS


def within(name: str, value: int | float, low: int | float, high: int | float) -> None:
    """Raise ValueError naming the option unless low <= value <= high."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be >= {low} and <= {high:_}, got {value}")
