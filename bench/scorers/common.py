"""Shared pieces of the scorers: cosine maths, batched embedding, the in-memory embedding caches,
and the tiny random-weight files.

torch is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import atomic
from bench.paths import cache_dir
from bench.scorers import ScorerWeightsError

DEFAULT_BATCH_SIZE = 32

_RANDOM_RE = re.compile(r"^random:(\d+)$")
_FULL_RANDOM_RE = re.compile(r"^random-full:(\d+)$")


# --------------------------------------------------------------------------- cosine maths


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of `x` scaled to unit L2 norm, in float64 (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def mean_cosine_to_references(generated: np.ndarray, references: np.ndarray) -> np.ndarray:
    """For each generated embedding (n, d): its cosine with each reference (m, d), averaged over m.

    Raw cosines in [-1, 1]: not scaled by 100 and not clamped at 0. Returns float64, shape (n,).
    """
    generated = l2_normalize(np.atleast_2d(generated))
    references = l2_normalize(np.atleast_2d(references))
    if references.shape[0] == 0:
        raise ValueError("no reference embeddings to compare with")
    if generated.shape[1] != references.shape[1]:
        raise ValueError(f"embedding sizes differ: {generated.shape[1]} vs {references.shape[1]}")
    return (generated @ references.T).mean(axis=1)


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays: float64, shape (n,); raw, not clamped or scaled."""
    a = l2_normalize(np.atleast_2d(a))
    b = l2_normalize(np.atleast_2d(b))
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return np.einsum("nd,nd->n", a, b)


# --------------------------------------------------------------------------- options


def parse_random_seed(value: str | None) -> int | None:
    """The seed of a ``"random:<seed>"`` weights spec (a tiny random model), else None."""
    if value is None:
        return None
    m = _RANDOM_RE.match(str(value).strip())
    return int(m.group(1)) if m else None


def parse_full_random_seed(value: str | None) -> int | None:
    """The seed of a ``"random-full:<seed>"`` weights spec (the named architecture at its real
    size with random weights: real shapes, speed and memory, meaningless scores), else None."""
    if value is None:
        return None
    m = _FULL_RANDOM_RE.match(str(value).strip())
    return int(m.group(1)) if m else None


def resolve_device(device: str | None) -> str:
    """``None``/``"auto"``: cuda when available, else cpu (the backbone's own rule)."""
    from bench.diffusion.backbone import resolve_device as resolve_torch_device

    return str(resolve_torch_device(device or "auto"))


def offline_reason(error: BaseException) -> str:
    """Why weights could not be fetched, for the one-line error."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return "the network is off (HF_HUB_OFFLINE=1)"
    except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip and timm
        pass
    return f"could not be downloaded ({type(error).__name__})"


# --------------------------------------------------------------------------- embedding


@contextlib.contextmanager
def inference_context(device: str) -> Iterator[None]:
    """No-grad inference; fp16 autocast on CUDA, plain fp32 on CPU."""
    import torch

    with torch.inference_mode():
        if str(device).startswith("cuda"):
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        else:
            yield


def image_fingerprint(images: Sequence[Image.Image]) -> str:
    """A digest of the images' pixels, sizes and modes (identifies a reference set)."""
    h = hashlib.blake2b(digest_size=16)
    for im in images:
        h.update(f"{im.mode}|{im.size[0]}x{im.size[1]}|".encode())
        h.update(im.tobytes())
    return h.hexdigest()


class EmbeddingModel:
    """A loaded embedding network with its in-memory caches, shared by the scorers built on it.

    `ref_cache` maps a reference_key to (fingerprint of the reference images, their embeddings),
    so the references of a subject are embedded once however many batches are scored. The last
    list of images embedded is remembered by its fingerprint too: CLIP-I and CLIP-T score the
    same generated images on one model, and the second scorer reuses the first one's embeddings.
    """

    model_id: str
    random_weights: bool
    device: str

    def __init__(self) -> None:
        self.ref_cache: dict[str, tuple[str, np.ndarray]] = {}
        self._last_images: tuple[tuple[str, int], np.ndarray] | None = None

    def _embed_batch(self, images: list[Image.Image]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def embed_images(self, images: Sequence[Image.Image], batch_size: int) -> np.ndarray:
        """Unit-norm float64 embeddings, shape (n, d), computed `batch_size` images at a time
        (or the last call's, when it embedded the same pixels at the same batch size)."""
        key = (image_fingerprint(images), batch_size)
        if self._last_images is not None and self._last_images[0] == key:
            return self._last_images[1]
        embeddings = embed_in_batches(list(images), self._embed_batch, batch_size)
        self._last_images = (key, embeddings)
        return embeddings

    def reference_embeddings(
        self, reference_key: str, references: Sequence[Image.Image], batch_size: int
    ) -> np.ndarray:
        """The embeddings of a subject's references: computed on first use of `reference_key`."""
        if not references:
            raise ValueError(f"no reference images for {reference_key!r}")
        fingerprint = image_fingerprint(references)
        cached = self.ref_cache.get(reference_key)
        if cached is not None:
            if cached[0] != fingerprint:
                raise ValueError(
                    f"reference_key {reference_key!r} was already used with a different set of "
                    "reference images"
                )
            return cached[1]
        embeddings = embed_in_batches(list(references), self._embed_batch, batch_size)
        self.ref_cache[reference_key] = (fingerprint, embeddings)
        return embeddings

    def score_against_references(
        self,
        images: Sequence[Image.Image],
        references: Sequence[Image.Image],
        reference_key: str,
        batch_size: int,
    ) -> np.ndarray:
        """CLIP-I / DINO: each image's mean cosine with the subject's reference embeddings."""
        if not images:
            return np.zeros(0, dtype=np.float64)
        refs = self.reference_embeddings(reference_key, references, batch_size)
        return mean_cosine_to_references(self.embed_images(images, batch_size), refs)


def embed_in_batches(
    items: list, embed: Callable[[list], np.ndarray], batch_size: int
) -> np.ndarray:
    """Concatenate `embed` over consecutive slices of `items`; rows are L2-normalised float64."""
    if not items:
        return np.zeros((0, 0), dtype=np.float64)
    chunks = [embed(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    return l2_normalize(np.concatenate(chunks, axis=0))


def to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


# --------------------------------------------------------------------------- tiny random weights


def tiny_weights_path(key: str, filename: str) -> Path:
    """Where the tiny random weights called `key` live: ``cache_dir()/scorers/<key>/<filename>``."""
    return cache_dir() / "scorers" / key / filename


def ensure_tiny_weights(
    path: Path, build: Callable[[], Any], seed: int, metadata: Mapping[str, str]
) -> Path:
    """Write the state dict of ``build()`` (run under `seed`) to `path` as safetensors, once.

    The build runs with a forked RNG so the caller's random state is left as it was; the write is
    atomic, so a concurrent or interrupted build never leaves a partial file.
    """
    if path.is_file():
        return path
    import torch
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    with atomic.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return path


def config_digest(config: Mapping[str, Any]) -> str:
    """A short digest of an architecture config (part of the tiny weights' cache key)."""
    import json

    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- local weight files

_DIGESTS: dict[tuple[str, int, int], str] = {}


def local_weights(file: str, what: str, option: str) -> tuple[str, str]:
    """A weights file the user named: (its resolved path, its label in model ids). The label
    carries a digest of the content, so other weights under the same file name are another scorer
    (the run is rescored; compare refuses to mix them)."""
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise ScorerWeightsError(
            f"{what} weights file {file} does not exist: pass --scorer-option {option}=FILE"
        )
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()[:12]
    return str(path), f"file:{path.name}@{_DIGESTS[key]}"


def weights_load_error(file: str, error: BaseException) -> ScorerWeightsError:
    """One line for a local weights file that did not load: a pickle that would run code (refused
    by torch's weights_only loading), a damaged file, or weights of another architecture."""
    import pickle

    if isinstance(error, pickle.UnpicklingError):
        why = (
            "it is a pickle that would run code when loaded, and bench loads only safetensors "
            "or plain tensors; save the weights as safetensors"
        )
    else:
        lines = str(error).strip().splitlines()
        detail = lines[0][:200] if lines else ""
        why = f"not weights of this model ({type(error).__name__}: {detail})"
    return ScorerWeightsError(f"{file}: cannot load it: {why}")
