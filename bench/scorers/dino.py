"""DINO and DINOv2: mean cosine of a self-supervised ViT's CLS embeddings, generated image vs
references.

- ``dino`` (DreamBench): timm's ``vit_small_patch16_224.dino`` (DINO ViT-S/16); the DreamBench++
  convention uses ``vit_small_patch8_224.dino`` (DINO ViT-S/8, the ``dino_vits8`` of DINO's hub).
- ``dinov2`` (DreamBench++): timm's ``vit_small_patch14_dinov2.lvd142m`` (DINOv2-small) at 224 px,
  its position embeddings resampled from 518 px when the weights load (transformers' Dinov2Model
  interpolates them at run time instead; both bicubic).

The network has no classifier head, so its output is the final-norm CLS token (DINOv2: the CLS
token of ``last_hidden_state``). Preprocessing follows the reference implementations: resize the
shorter side to 256 (bicubic), center crop 224, ToTensor, ImageNet mean/std (DINOv2's image
processor does the same).

Options: ``model`` (timm model name), ``weights_file`` (a local weights file, loaded with
``pretrained_cfg_overlay=dict(file=...)``), ``pretrained`` (``random:<seed>`` for a tiny random
test model of the same architecture family, ``random-full:<seed>`` for the model at its real size
with random weights; otherwise leave unset), ``device``, ``batch_size``.
``model=bench-world-dino`` is the toy world's DINO (bench_world.dino) on whole 64 px pictures,
loaded from its shipped file unless ``weights_file`` names another.

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

from bench.assets import world_asset
from bench.config import resolve_config
from bench.scorers import MissingScorerWeights
from bench.scorers.common import (
    DEFAULT_BATCH_SIZE,
    EmbeddingModel,
    config_digest,
    ensure_tiny_weights,
    inference_context,
    local_weights,
    offline_reason,
    parse_full_random_seed,
    parse_random_seed,
    resolve_device,
    tiny_weights_path,
    to_rgb,
    weights_load_error,
)

DEFAULT_MODEL = "vit_small_patch16_224.dino"
DINO_VITS8 = "vit_small_patch8_224.dino"
DINOV2_SMALL = "vit_small_patch14_dinov2.lvd142m"
# The tiny models: a model's recipe (patch size, CLS token, layer scale) cut to 2 narrow blocks.
TINY_MODEL = "vit_small_patch16_224.dino"
TINY_KWARGS: dict[str, int] = {"depth": 2, "embed_dim": 64, "num_heads": 2}
WEIGHTS_FILENAME = "model.safetensors"
# The toy world's DINO (trained by the world lab): DINO ViT-S/8's recipe on 64 px pictures, 4 narrow
# blocks; `model=bench-world-dino` loads the shipped weights unless weights_file names others.
WORLD_MODEL = "bench-world-dino"
WORLD_ARCH = "vit_small_patch8_224.dino"
WORLD_KWARGS: dict[str, int] = {"img_size": 64, "embed_dim": 96, "depth": 4, "num_heads": 3}
WORLD_WEIGHTS = world_asset("dino.safetensors")

RESIZE = 256
CROP = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MODELS: dict[tuple, DinoModel] = {}


def clear_model_cache() -> None:
    """Forget the loaded DINO models (and with them their embedding caches)."""
    _MODELS.clear()


def dino_transform(resize: int = RESIZE, crop: int = CROP):
    """Resize shorter side to 256 (bicubic), center crop 224, ToTensor, ImageNet mean/std (the
    world's DINO: 64 and 64, the whole picture)."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def model_kwargs(model_name: str) -> dict[str, Any]:
    """What a model needs beyond its name: DINOv2 runs at 224 px (its weights are for 518)."""
    return {"img_size": CROP} if "dinov2" in model_name else {}


def random_kwargs(model_name: str) -> dict[str, Any]:
    """How random weights of `model_name` are drawn beyond its defaults. DINOv2's layer scale
    starts at 1, not at its trained init of 1e-5: untrained, 1e-5 scales every block's output
    to nothing, so every image would leave with the same CLS token."""
    return {"init_values": 1.0} if "dinov2" in model_name else {}


def tiny_kwargs(model_name: str) -> dict[str, Any]:
    """The tiny random test model of `model_name`'s architecture: its recipe, 2 narrow blocks."""
    return {**TINY_KWARGS, **model_kwargs(model_name), **random_kwargs(model_name)}


def tiny_weights_file(seed: int, model_name: str = TINY_MODEL) -> Path:
    """Build (once) and return the tiny random weights of `model_name`'s architecture for `seed`.

    Keyed by model name, a digest of the size overrides and the seed:
    ``cache_dir()/scorers/timm-<model>-<digest>-seed<seed>/model.safetensors``.
    """
    import timm

    kwargs = tiny_kwargs(model_name)
    digest = config_digest({"model": model_name, **kwargs, "num_classes": 0})
    path = tiny_weights_path(f"timm-{model_name}-{digest}-seed{seed}", WEIGHTS_FILENAME)
    meta = {"library": "timm", "model": model_name, "config_digest": digest, "seed": str(seed)}

    def build():
        return timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)

    return ensure_tiny_weights(path, build, seed, meta)


def full_random_name(model_name: str, seed: int) -> str:
    """The name of `model_name`'s random weights at its real size: where they are cached and
    the scorer id they are scored under (DINOv2's name says its layer scale starts at 1)."""
    variant = "random-full-layerscale1" if random_kwargs(model_name) else "random-full"
    return f"{variant}/seed{seed}"


def full_random_weights_file(model_name: str, seed: int) -> Path:
    """Build (once) and return random weights of `model_name` at its real size."""
    import timm

    folder = f"timm-{model_name}-{full_random_name(model_name, seed).replace('/', '-')}"
    path = tiny_weights_path(folder, WEIGHTS_FILENAME)
    meta = {"library": "timm", "model": model_name, "seed": str(seed), "size": "full"}
    kwargs = {**model_kwargs(model_name), **random_kwargs(model_name)}

    def build():
        return timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)

    return ensure_tiny_weights(path, build, seed, meta)


def _option_key(model_name: str) -> str:
    """The scorer-option key that sets this model's weights file."""
    return "dinov2" if "dinov2" in model_name else "dino"


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
        image_size: int | None = None,
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
        except Exception as e:
            if weights_file is not None:  # a local file that is no weights of this model
                raise weights_load_error(weights_file, e) from None
            if not isinstance(e, OSError):
                raise
            # A hub cache miss or network failure: huggingface_hub raises OSErrors.
            raise MissingScorerWeights(
                f"DINO weights {model_name} are not in the local cache and {offline_reason(e)}: "
                f"download them on a machine with network (timm.create_model('{model_name}', "
                "pretrained=True)) or pass "
                "--scorer-option dino.weights_file=/path/to/model.safetensors",
                model=f"DINO {model_name} from timm",
                local_option=f"--scorer-option {_option_key(model_name)}.weights_file=FILE",
            ) from e
        self.net = net.eval().to(device)
        self.transform = dino_transform(image_size, image_size) if image_size else dino_transform()

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
    name = str(model or DEFAULT_MODEL)
    arch, image_size = (
        (WORLD_ARCH, WORLD_KWARGS["img_size"]) if name == WORLD_MODEL else (name, None)
    )
    if not timm.is_model(arch):
        raise ValueError(f"unknown timm model {name!r}")
    if name == WORLD_MODEL and pretrained not in (None, "", "default"):
        raise ValueError(
            f"dino model={name} takes no pretrained={pretrained!r}: it loads its shipped weights, "
            "or weights_file=<path>"
        )
    seed = parse_random_seed(pretrained)
    full_seed = parse_full_random_seed(pretrained)
    random_weights = seed is not None or full_seed is not None
    if random_weights and weights_file:
        raise ValueError(
            f"pretrained={pretrained!r} builds random weights; leave weights_file unset"
        )
    kwargs = model_kwargs(name)
    file: str | None = None
    if seed is not None:  # the tiny test model of the architecture
        # The default model keeps the id its stored scores carry.
        tiny = "tiny-random" if name == TINY_MODEL else f"tiny-random-{name}"
        file, model_id, kwargs = (
            str(tiny_weights_file(seed, name)),
            f"timm:{tiny}/seed{seed}",
            tiny_kwargs(name),
        )
    elif full_seed is not None:  # the architecture at its real size
        file = str(full_random_weights_file(name, full_seed))
        model_id = f"timm:{name}/{full_random_name(name, full_seed)}"
    elif pretrained not in (None, "", "default"):
        raise ValueError(
            f"dino pretrained={pretrained!r}: use random:<seed>, random-full:<seed>, or "
            "weights_file=<path> for a local weights file"
        )
    elif name == WORLD_MODEL:  # its shipped weights, or a retrained file
        file, label = local_weights(str(weights_file or WORLD_WEIGHTS), "DINO", "dino.weights_file")
        model_id, kwargs = f"timm:{name}/{label}", WORLD_KWARGS
    elif weights_file:
        file, label = local_weights(weights_file, "DINO", "dino.weights_file")
        model_id = f"timm:{name}/{label}"
    else:
        model_id = f"timm:{name}"
    key = (name, file, device, model_id)  # the id holds a file's digest
    if key not in _MODELS:
        _MODELS[key] = DinoModel(
            model_name=arch,
            weights_file=file,
            model_id=model_id,
            random_weights=random_weights,
            device=device,
            extra_kwargs=kwargs,
            image_size=image_size,
        )
    return _MODELS[key]


@dataclass(frozen=True)
class DinoOptions:
    """The options of dino (`--scorer-option dino.NAME=VALUE`)."""

    model: str | None = None  # timm model name (default: the scorer's own)
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
    default_model = DEFAULT_MODEL

    def __init__(self, options: DinoOptions) -> None:
        self.options = options
        self.batch_size = options.batch_size
        self.model = load_dino_model(
            options.model or self.default_model,
            options.weights_file,
            options.pretrained,
            options.device,
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


class Dinov2Scorer(DinoScorer):
    """``dinov2``: as ``dino``, with DINOv2-small (DreamBench++)."""

    id = "dinov2"
    display_name = "DINOv2"
    default_model = DINOV2_SMALL


class PresScorer(DinoScorer):
    """``pres`` (DreamBooth's prior preservation): the DINO score of the prior images, made from
    the plain class prompt ("a dog"), against the subject's photos. Lower is better: a model
    whose every dog looks like the subject has lost its class prior."""

    id = "pres"
    display_name = "PRES"
    higher_is_better = False
    cells = "prior"  # scores the suite's prior images only


def make_dino(options: Mapping[str, Any] | None = None) -> DinoScorer:
    return DinoScorer(resolve_config(DinoOptions, dict(options or {}), where="scorer dino"))


def make_dinov2(options: Mapping[str, Any] | None = None) -> Dinov2Scorer:
    return Dinov2Scorer(resolve_config(DinoOptions, dict(options or {}), where="scorer dinov2"))


def make_pres(options: Mapping[str, Any] | None = None) -> PresScorer:
    return PresScorer(resolve_config(DinoOptions, dict(options or {}), where="scorer pres"))
