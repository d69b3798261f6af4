"""DINO (DreamBench): mean cosine of DINO ViT-S/16 CLS embeddings, generated image vs references.

The network is timm's ``vit_small_patch16_224.dino`` with no classifier head, so its output is the
final-norm CLS token. Preprocessing follows the reference implementations: resize the shorter side
to 256 (bicubic), center crop 224, ToTensor, ImageNet mean/std.

Options: ``model`` (timm model name, default ``vit_small_patch16_224.dino``), ``weights_file`` (a
local weights file, loaded with ``pretrained_cfg_overlay=dict(file=...)``), ``pretrained``
(``random:<seed>`` for the tiny random test model; otherwise leave unset), ``device``,
``batch_size``.

Tiny random weights are written once to ``cache_dir()/scorers/<key>/model.safetensors`` and loaded
back by path through the same ``pretrained_cfg_overlay=dict(file=...)`` loader as a real file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.config import resolve_config
from bench.scorers import ScorerWeightsError
from bench.scorers.common import (
    DEFAULT_BATCH_SIZE,
    EmbeddingModel,
    config_digest,
    ensure_tiny_weights,
    inference_context,
    offline_reason,
    parse_random_seed,
    resolve_device,
    tiny_weights_path,
    to_rgb,
)

DEFAULT_MODEL = "vit_small_patch16_224.dino"
# The tiny model: the DINO ViT-S/16 recipe (patch 16, 224 px, CLS token) cut to 2 narrow blocks.
TINY_MODEL = "vit_small_patch16_224.dino"
TINY_KWARGS: dict[str, int] = {"depth": 2, "embed_dim": 64, "num_heads": 2}
WEIGHTS_FILENAME = "model.safetensors"

RESIZE = 256
CROP = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MODELS: dict[tuple, DinoModel] = {}


def clear_model_cache() -> None:
    """Forget the loaded DINO models (and with them their embedding caches)."""
    _MODELS.clear()


def dino_transform():
    """Resize shorter side to 256 (bicubic), center crop 224, ToTensor, ImageNet mean/std."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(RESIZE, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(CROP),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def tiny_weights_file(seed: int) -> Path:
    """Build (once) and return the tiny random DINO weights for `seed`.

    Keyed by model name, a digest of the size overrides and the seed:
    ``cache_dir()/scorers/timm-vit_small_patch16_224.dino-<digest>-seed<seed>/model.safetensors``.
    """
    import timm

    digest = config_digest({"model": TINY_MODEL, **TINY_KWARGS, "num_classes": 0})
    path = tiny_weights_path(f"timm-{TINY_MODEL}-{digest}-seed{seed}", WEIGHTS_FILENAME)
    meta = {"library": "timm", "model": TINY_MODEL, "config_digest": digest, "seed": str(seed)}

    def build():
        return timm.create_model(TINY_MODEL, pretrained=False, num_classes=0, **TINY_KWARGS)

    return ensure_tiny_weights(path, build, seed, meta)


class DinoModel(EmbeddingModel):
    """One loaded timm DINO ViT with its reference-embedding cache."""

    def __init__(
        self,
        *,
        model_name: str,
        weights_file: str | None,
        model_id: str,
        random_weights: bool,
        device: str,
        extra_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        import timm

        super().__init__()
        self.model_id = model_id
        self.random_weights = random_weights
        self.device = device
        kwargs: dict[str, Any] = {"num_classes": 0, **(extra_kwargs or {})}
        if weights_file is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": weights_file}
        try:
            net = timm.create_model(model_name, pretrained=True, **kwargs)
        except OSError as e:  # hub cache miss or network failure: huggingface_hub raises OSErrors
            if weights_file is not None:
                raise
            raise ScorerWeightsError(
                f"DINO weights {model_name} are not in the local cache and {offline_reason(e)}: "
                f"download them on a machine with network (timm.create_model('{model_name}', "
                "pretrained=True)) or pass "
                "--scorer-option dino.weights_file=/path/to/model.safetensors"
            ) from e
        self.net = net.eval().to(device)
        self.transform = dino_transform()

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.transform(to_rgb(im)) for im in images]).to(self.device)
        with inference_context(self.device):
            features = self.net(pixels)
        return features.float().cpu().numpy()


def load_dino_model(
    model: str | None = None,
    weights_file: str | None = None,
    pretrained: str | None = None,
    device: str | None = None,
) -> DinoModel:
    """The shared DINO model for these options (loaded once per (model, weights, device))."""
    import timm

    device = resolve_device(device)
    seed = parse_random_seed(pretrained)
    if seed is not None:
        if model not in (None, "", TINY_MODEL) or weights_file:
            raise ValueError(
                f"pretrained={pretrained!r} builds the tiny random DINO model; leave model and "
                "weights_file unset"
            )
        key: tuple = ("tiny", seed, device)
        if key not in _MODELS:
            _MODELS[key] = DinoModel(
                model_name=TINY_MODEL,
                weights_file=str(tiny_weights_file(seed)),
                model_id=f"timm:tiny-random/seed{seed}",
                random_weights=True,
                device=device,
                extra_kwargs=TINY_KWARGS,
            )
        return _MODELS[key]
    if pretrained not in (None, "", "default"):
        raise ValueError(
            f"dino pretrained={pretrained!r}: use random:<seed>, or weights_file=<path> for a "
            "local weights file"
        )

    name = str(model or DEFAULT_MODEL)
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}")
    file: str | None = None
    model_id = f"timm:{name}"
    if weights_file:
        path = Path(weights_file).expanduser().resolve()
        if not path.is_file():
            raise ScorerWeightsError(
                f"DINO weights file {weights_file} does not exist: pass "
                "--scorer-option dino.weights_file=/path/to/model.safetensors"
            )
        file = str(path)
        model_id += f"/file:{path.name}"
    key = (name, file, device)
    if key not in _MODELS:
        _MODELS[key] = DinoModel(
            model_name=name,
            weights_file=file,
            model_id=model_id,
            random_weights=False,
            device=device,
        )
    return _MODELS[key]


@dataclass(frozen=True)
class DinoOptions:
    """The options of dino (`--scorer-option dino.NAME=VALUE`)."""

    model: str | None = None  # timm model name (default vit_small_patch16_224.dino)
    weights_file: str | None = None  # a local weights file
    pretrained: str | None = None  # random:<seed> for the tiny random test model
    device: str | None = None  # auto, cpu, cuda, cuda:N
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class DinoScorer:
    """``dino``: mean cosine of DINO CLS embeddings, generated image vs each reference."""

    id = "dino"
    display_name = "DINO"
    higher_is_better = True
    needs = "references"  # what a generated image is compared with

    def __init__(self, options: DinoOptions) -> None:
        self.options = options
        self.batch_size = options.batch_size
        self.model = load_dino_model(
            options.model, options.weights_file, options.pretrained, options.device
        )
        self.model_id: str = self.model.model_id
        self.random_weights: bool = self.model.random_weights
        self.device: str = self.model.device

    def __repr__(self) -> str:
        return f"DinoScorer(id={self.id!r}, model_id={self.model_id!r})"

    def score(
        self,
        images: Sequence[Image.Image],
        *,
        prompts: Sequence[str],
        references: Sequence[Image.Image],
        reference_key: str,
    ) -> np.ndarray:
        """One raw cosine per image (float64, shape (n,)); `prompts` is not used."""
        del prompts
        return self.model.score_against_references(
            images, references, reference_key, self.batch_size
        )


def make_dino(options: Mapping[str, Any] | None = None) -> DinoScorer:
    return DinoScorer(resolve_config(DinoOptions, dict(options or {}), where="scorer dino"))
