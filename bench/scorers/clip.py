"""CLIP-I and CLIP-T (DreamBench), on one shared open_clip model.

- ``clip_i``: cosine of the L2-normalised CLIP image embeddings of a generated image and of each
  reference image of its subject, averaged over the references.
- ``clip_t``: cosine of the generated image's embedding and its prompt's text embedding. The prompt
  arrives already in the scoring convention (identifier removed, class noun kept).

Options (both scorers): ``model`` (open_clip architecture, default ``ViT-B-32``), ``pretrained``
(an open_clip tag, default ``openai``; or a local weights file; or ``random:<seed>`` for the tiny
random-weight test model; or ``random-full:<seed>`` for the architecture at its real size with
random weights), ``quick_gelu`` (default: what the tag was trained with; for a local file,
what the architecture's ``openai`` tag uses, since that file is normally an offline copy of the
default weights), ``device`` and ``batch_size``. ``model=bench-world-clip`` is the toy world's
CLIP (bench_world.clip), loaded from its shipped file unless ``pretrained`` names another.

Real weights are found the libraries' own way (the Hugging Face hub cache, or a download when the
network is on). Tiny random weights are written once to ``cache_dir()/scorers/<key>/`` as
safetensors and loaded back by path through ``open_clip.create_model_and_transforms(arch,
pretrained=<file>)``, the loader a real local file goes through.
"""

from __future__ import annotations

import json
import logging
import os
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
    embed_in_batches,
    ensure_tiny_weights,
    inference_context,
    local_weights,
    offline_reason,
    paired_cosine,
    parse_full_random_seed,
    parse_random_seed,
    resolve_device,
    tiny_weights_path,
    to_rgb,
    weights_load_error,
)

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
TINY_ARCH = "bench-tiny-clip"
MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"  # the tiny test CLIP's
# The toy world's CLIP (trained by the world lab): `model=bench-world-clip` loads the shipped
# weights unless `pretrained` names another file.
WORLD_ARCH = "bench-world-clip"
WORLD_WEIGHTS = world_asset("clip.safetensors")
WORLD_CONFIG_FILE = world_asset(f"{WORLD_ARCH}.json")
TINY_CONFIG_FILE = MODEL_CONFIGS / f"{TINY_ARCH}.json"
OWN_ARCHS = (TINY_ARCH, WORLD_ARCH)  # bench's own architectures, unknown to open_clip
WEIGHTS_FILENAME = "open_clip_model.safetensors"

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".npz")
_MODELS: dict[tuple, ClipModel] = {}
_registered_tiny = False


def clear_model_cache() -> None:
    """Forget the loaded CLIP models (and with them their embedding caches)."""
    _MODELS.clear()


def register_model_configs() -> None:
    """Make bench's own architectures (the tiny test CLIP, the toy world's CLIP) known to
    open_clip, so that its loaders build them by name."""
    global _registered_tiny
    if not _registered_tiny:
        import open_clip

        open_clip.add_model_config(TINY_CONFIG_FILE)
        open_clip.add_model_config(WORLD_CONFIG_FILE)
        _registered_tiny = True


def tiny_weights_file(seed: int) -> Path:
    """Build (once) and return the tiny random CLIP weights for `seed`.

    Keyed by architecture name, a digest of its config and the seed:
    ``cache_dir()/scorers/open_clip-bench-tiny-clip-<digest>-seed<seed>/open_clip_model.safetensors``.
    """
    import open_clip

    config = json.loads(TINY_CONFIG_FILE.read_text(encoding="utf-8"))
    digest = config_digest(config)
    path = tiny_weights_path(f"open_clip-{TINY_ARCH}-{digest}-seed{seed}", WEIGHTS_FILENAME)
    meta = {"library": "open_clip", "arch": TINY_ARCH, "config_digest": digest, "seed": str(seed)}
    return ensure_tiny_weights(path, lambda: open_clip.CLIP(**config), seed, meta)


def full_random_weights_file(arch: str, seed: int) -> Path:
    """Build (once) and return random weights of open_clip architecture `arch` at its real size:
    ``cache_dir()/scorers/open_clip-<arch>-full-seed<seed>/open_clip_model.safetensors``."""
    import open_clip

    path = tiny_weights_path(f"open_clip-{arch}-full-seed{seed}", WEIGHTS_FILENAME)
    meta = {"library": "open_clip", "arch": arch, "seed": str(seed), "size": "full"}

    def build():
        logging.disable(logging.WARNING)  # "initialized randomly": that is the point here
        try:
            return open_clip.create_model(arch)
        finally:
            logging.disable(logging.NOTSET)

    return ensure_tiny_weights(path, build, seed, meta)


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.lower().endswith(_WEIGHT_SUFFIXES)


class ClipModel(EmbeddingModel):
    """One loaded open_clip model with its preprocessing, tokenizer and embedding caches."""

    def __init__(
        self,
        *,
        arch: str,
        weights: str,
        model_id: str,
        random_weights: bool,
        device: str,
        quick_gelu: bool,
    ) -> None:
        import open_clip

        super().__init__()
        self.model_id = model_id
        self.random_weights = random_weights
        self.device = device
        self.arch = arch
        try:
            net, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=weights, device=device, force_quick_gelu=quick_gelu
            )
        except Exception as e:  # a local file that is no CLIP of this architecture
            if not Path(weights).is_file():
                raise
            raise weights_load_error(weights, e) from None
        self.net = net.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.text_cache: dict[str, np.ndarray] = {}

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.preprocess(to_rgb(im)) for im in images]).to(self.device)
        with inference_context(self.device):
            features = self.net.encode_image(pixels)
        return features.float().cpu().numpy()

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with inference_context(self.device):
            features = self.net.encode_text(tokens)
        return features.float().cpu().numpy()

    def embed_texts(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit-norm float64 text embeddings (n, d); each distinct text is embedded once."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.text_cache]
        if missing:
            embedded = embed_in_batches(missing, self._embed_text_batch, batch_size)
            self.text_cache.update(zip(missing, embedded, strict=True))
        return np.stack([self.text_cache[t] for t in texts])


def load_clip_model(
    model: str | None = None,
    pretrained: str | None = None,
    device: str | None = None,
    quick_gelu: bool | None = None,
) -> ClipModel:
    """The shared CLIP model for these options (loaded once per (arch, weights, device))."""
    import open_clip

    if model == WORLD_ARCH and not pretrained:
        pretrained = str(WORLD_WEIGHTS)
    pretrained = str(pretrained or DEFAULT_PRETRAINED)
    device = resolve_device(device)
    seed = parse_random_seed(pretrained)

    if seed is not None:
        if model not in (None, "", TINY_ARCH):
            raise ValueError(
                f"pretrained={pretrained!r} builds the tiny random model {TINY_ARCH}; "
                f"leave model unset (got model={model!r})"
            )
        arch = TINY_ARCH
        register_model_configs()
        key: tuple = (arch, pretrained, device, False)
        if key not in _MODELS:
            weights = str(tiny_weights_file(seed))
            _MODELS[key] = ClipModel(
                arch=arch,
                weights=weights,
                model_id=f"open_clip:tiny-random/seed{seed}",
                random_weights=True,
                device=device,
                quick_gelu=False,
            )
        return _MODELS[key]

    arch = str(model or DEFAULT_MODEL)
    if arch in OWN_ARCHS:
        register_model_configs()
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r}")
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    full_seed = parse_full_random_seed(pretrained)
    if full_seed is not None:
        # Built like the architecture's openai weights, so it runs as they do.
        default_qg = bool(open_clip.get_pretrained_cfg(arch, "openai").get("quick_gelu", False))
        qg = default_qg if quick_gelu is None else quick_gelu
        weights = str(full_random_weights_file(arch, full_seed))
        model_id = f"open_clip:{arch}/random-full/seed{full_seed}"
        tag_cfg = {}
    elif tag_cfg:
        default_qg = bool(tag_cfg.get("quick_gelu", False))
        qg = default_qg if quick_gelu is None else quick_gelu
        model_id = f"open_clip:{arch}/{pretrained}"
        weights = pretrained
    elif _looks_like_path(pretrained) or os.path.exists(pretrained):
        weights, label = local_weights(pretrained, "CLIP", "clip.pretrained")
        default_qg = bool(open_clip.get_pretrained_cfg(arch, "openai").get("quick_gelu", False))
        qg = default_qg if quick_gelu is None else quick_gelu
        model_id = f"open_clip:{arch}/{label}"
    else:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ValueError(
            f"pretrained={pretrained!r} is neither an open_clip tag of {arch} (tags: {tags}), "
            "a weights file, nor random:<seed>"
        )
    if qg != default_qg:
        model_id += f"[quick_gelu={qg}]"

    key = (arch, weights, device, qg, model_id)  # the id holds a file's digest
    if key in _MODELS:
        return _MODELS[key]
    if tag_cfg:
        _fetch_tag_weights(arch, pretrained, tag_cfg)
    _MODELS[key] = ClipModel(
        arch=arch,
        weights=weights,
        model_id=model_id,
        random_weights=full_seed is not None,
        device=device,
        quick_gelu=qg,
    )
    return _MODELS[key]


def _fetch_tag_weights(arch: str, tag: str, tag_cfg: Mapping[str, Any]) -> None:
    """Make sure open_clip can resolve the tag's weights (hub cache or download), else raise
    ScorerWeightsError. open_clip resolves the same file again, from its cache, when loading."""
    import open_clip

    try:
        open_clip.download_pretrained(dict(tag_cfg))
    except Exception as e:
        hub = str(tag_cfg.get("hf_hub", "")).rstrip("/")
        source = f"hf hub {hub}" if hub else str(tag_cfg.get("url", ""))
        raise MissingScorerWeights(
            f"CLIP weights {arch}/{tag} are not in the local cache and {offline_reason(e)}: "
            f"download them on a machine with network (open_clip {arch}, pretrained='{tag}', "
            f"from {source}) or pass "
            "--scorer-option clip.pretrained=/path/to/open_clip_model.safetensors",
            model=f"CLIP {arch}/{tag} from {source}",
            local_option="--scorer-option clip.pretrained=FILE",
        ) from e


@dataclass(frozen=True)
class ClipOptions:
    """The options of clip_i and clip_t (`--scorer-option clip.NAME=VALUE` sets both)."""

    model: str | None = None  # open_clip architecture (default ViT-B-32)
    pretrained: str | None = None  # open_clip tag (default openai), a weights file, random:<seed>
    quick_gelu: bool | None = None  # default: what the weights were trained with
    device: str | None = None  # auto, cpu, cuda, cuda:N
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class _ClipScorer:
    id = ""
    display_name = ""
    higher_is_better = True

    def __init__(self, options: ClipOptions) -> None:
        self.options = options
        self.batch_size = options.batch_size
        self.model = load_clip_model(
            options.model, options.pretrained, options.device, options.quick_gelu
        )
        self.model_id: str = self.model.model_id
        self.random_weights: bool = self.model.random_weights
        self.device: str = self.model.device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, model_id={self.model_id!r})"


class ClipImageScorer(_ClipScorer):
    """``clip_i``: mean cosine of CLIP image embeddings, generated image vs each reference."""

    id = "clip_i"
    display_name = "CLIP-I"
    needs = "references"  # what a generated image is compared with

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


class ClipTextScorer(_ClipScorer):
    """``clip_t``: cosine of the CLIP image embedding and the embedding of the image's prompt."""

    id = "clip_t"
    display_name = "CLIP-T"
    needs = "prompt"  # what a generated image is compared with

    def score(
        self,
        images: Sequence[Image.Image],
        *,
        prompts: Sequence[str],
        references: Sequence[Image.Image],
        reference_key: str,
    ) -> np.ndarray:
        """One raw cosine per image (float64, shape (n,)); references are not used."""
        del references, reference_key
        if len(prompts) != len(images):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        if not images:
            return np.zeros(0, dtype=np.float64)
        texts = self.model.embed_texts(list(prompts), self.batch_size)
        generated = self.model.embed_images(images, self.batch_size)
        return paired_cosine(generated, texts)


def make_clip_i(options: Mapping[str, Any] | None = None) -> ClipImageScorer:
    return ClipImageScorer(resolve_config(ClipOptions, dict(options or {}), where="scorer clip_i"))


def make_clip_t(options: Mapping[str, Any] | None = None) -> ClipTextScorer:
    return ClipTextScorer(resolve_config(ClipOptions, dict(options or {}), where="scorer clip_t"))
