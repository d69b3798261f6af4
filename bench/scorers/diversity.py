"""DIV (DreamBooth's diversity metric): LPIPS distance between images of one subject and prompt.

The DreamBooth paper reports DIV as the mean LPIPS distance between generated images of one
subject and prompt. A scorer returns one value per image, so an image's value here is its mean
LPIPS distance to the other images of its prompt (same subject and replicate: one scoring call);
the mean of those values over a prompt's images is exactly the mean pairwise distance, and the run
statistics (bench.analysis.stats) average them like any other score. A prompt with one image has
no pair: NaN.

LPIPS is the paper authors' implementation (the ``lpips`` package), AlexNet trunk, v0.1 linear
layers, inputs scaled to [-1, 1]. Images of one prompt are compared at the size of its first
image (others are resized to it, bicubic).

Options: ``net`` (``alex``, ``vgg`` or ``squeeze``), ``weights_file`` (a safetensors file with the
whole LPIPS state dict, for machines without network), ``pretrained`` (``random:<seed>`` for
random test weights; otherwise leave unset), ``device``, ``batch_size``.

Real weights load the library's own way: ``lpips.LPIPS(net=...)`` takes the trunk from
torchvision's cache (downloading it when the network is on) and the linear layers from the
package. Random test weights are written once to ``cache_dir()/scorers/<key>/lpips.safetensors``
and loaded back through the same weights-file loader as a real file.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.config import resolve_config
from bench.scorers import MissingScorerWeights
from bench.scorers.common import (
    DEFAULT_BATCH_SIZE,
    ensure_tiny_weights,
    inference_context,
    local_weights,
    parse_random_seed,
    resolve_device,
    tiny_weights_path,
    to_rgb,
    weights_load_error,
)

NETS = ("alex", "vgg", "squeeze")
WEIGHTS_FILENAME = "lpips.safetensors"

_MODELS: dict[tuple, LpipsModel] = {}


def clear_model_cache() -> None:
    _MODELS.clear()


def _bare_lpips(net: str):
    """The LPIPS network with nothing loaded (random trunk and linear layers)."""
    import warnings

    import lpips

    with warnings.catch_warnings():  # lpips passes torchvision its deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)


def random_weights_file(seed: int, net: str = "alex") -> Path:
    """Build (once) and return random LPIPS weights for `seed`, as a safetensors file."""
    path = tiny_weights_path(f"lpips-{net}-seed{seed}", WEIGHTS_FILENAME)
    meta = {"library": "lpips", "net": net, "seed": str(seed)}
    return ensure_tiny_weights(path, lambda: _bare_lpips(net), seed, meta)


class LpipsModel:
    """One loaded LPIPS network."""

    def __init__(
        self,
        *,
        net: str,
        weights_file: str | None,
        model_id: str,
        random_weights: bool,
        device: str,
    ) -> None:
        import torch

        self.model_id = model_id
        self.random_weights = random_weights
        self.device = device
        if weights_file is None:
            import warnings

            import lpips

            try:
                # torchvision's deprecated `pretrained=` warns, and torch.hub prints a
                # "Downloading" line that would precede the one-line error offline.
                quiet = contextlib.redirect_stdout(io.StringIO())
                with warnings.catch_warnings(), quiet:
                    warnings.simplefilter("ignore", UserWarning)
                    module = lpips.LPIPS(net=net, verbose=False)
            except OSError as e:  # no cached trunk weights and no network
                raise MissingScorerWeights(
                    f"LPIPS {net} trunk weights are not in torch's cache and could not be "
                    f"downloaded ({type(e).__name__}): run lpips.LPIPS(net='{net}') once on a "
                    "machine with network, or pass --scorer-option div.weights_file=FILE "
                    "(a safetensors file of the whole LPIPS state dict)",
                    model=f"LPIPS {net} (its trunk from torchvision)",
                    local_option="--scorer-option div.weights_file=FILE",
                ) from e
        else:
            from safetensors.torch import load_file

            module = _bare_lpips(net)
            try:
                module.load_state_dict(load_file(weights_file), strict=True)
            except Exception as e:  # not safetensors, or another network's weights
                raise weights_load_error(weights_file, e) from None
        self.net = module.eval().to(device)
        self._torch = torch

    def distances(self, a: list[Image.Image], b: list[Image.Image], batch_size: int) -> np.ndarray:
        """LPIPS distance of each pair (a[i], b[i]), float64, shape (n,)."""
        torch = self._torch
        out = []
        for start in range(0, len(a), batch_size):
            x = torch.stack([_pixels(im) for im in a[start : start + batch_size]])
            y = torch.stack([_pixels(im) for im in b[start : start + batch_size]])
            with inference_context(self.device):
                d = self.net(x.to(self.device), y.to(self.device), normalize=True)
            out.append(d.float().reshape(-1).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def _pixels(image: Image.Image):
    """(3, H, W) float32 in [0, 1]; LPIPS maps it to [-1, 1] (normalize=True)."""
    import torch

    array = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def load_lpips_model(
    net: str = "alex",
    weights_file: str | None = None,
    pretrained: str | None = None,
    device: str | None = None,
) -> LpipsModel:
    """The shared LPIPS model for these options (loaded once per (net, weights, device))."""
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    device = resolve_device(device)
    seed = parse_random_seed(pretrained)
    file: str | None = None
    if seed is not None:
        if weights_file:
            raise ValueError(f"pretrained={pretrained!r} builds random weights; drop weights_file")
        file, model_id = str(random_weights_file(seed, net)), f"lpips:{net}:random/seed{seed}"
    elif pretrained not in (None, "", "default"):
        raise ValueError(
            f"div pretrained={pretrained!r}: use random:<seed>, or weights_file=<path> for a "
            "local weights file"
        )
    elif weights_file:
        file, label = local_weights(weights_file, "LPIPS", "div.weights_file")
        model_id = f"lpips:{net}/{label}"
    else:
        model_id = f"lpips:{net}:v0.1"
    key = (net, file, device, model_id)  # the id holds a file's digest
    if key not in _MODELS:
        _MODELS[key] = LpipsModel(
            net=net,
            weights_file=file,
            model_id=model_id,
            random_weights=seed is not None,
            device=device,
        )
    return _MODELS[key]


@dataclass(frozen=True)
class DivOptions:
    """The options of div (`--scorer-option div.NAME=VALUE`)."""

    net: str = "alex"  # LPIPS trunk: alex (LPIPS's default), vgg or squeeze
    weights_file: str | None = None  # a safetensors file of the whole LPIPS state dict
    pretrained: str | None = None  # random:<seed> for random test weights
    device: str | None = None  # auto, cpu, cuda, cuda:N
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class DivScorer:
    """``div``: each image's mean LPIPS distance to the other images of its prompt."""

    id = "div"
    display_name = "DIV"
    higher_is_better = True
    needs = "images"  # compared with the other images of its prompt

    def __init__(self, options: DivOptions) -> None:
        self.options = options
        self.batch_size = options.batch_size
        self.model = load_lpips_model(
            options.net, options.weights_file, options.pretrained, options.device
        )
        self.model_id: str = self.model.model_id
        self.random_weights: bool = self.model.random_weights

    def __repr__(self) -> str:
        return f"DivScorer(model_id={self.model_id!r})"

    def score(
        self,
        images: Sequence[Image.Image],
        *,
        prompts: Sequence[str],
        references: Sequence[Image.Image],
        reference_key: str,
    ) -> np.ndarray:
        """One value per image (float64, shape (n,)): its mean LPIPS distance to the other
        images with the same prompt; NaN for an image alone with its prompt."""
        del references, reference_key
        if len(prompts) != len(images):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        values = np.full(len(images), np.nan)
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(i)
        for members in groups.values():
            if len(members) < 2:
                continue
            size = images[members[0]].size
            group = [_sized(images[i], size) for i in members]
            pairs = [(i, j) for i in range(len(group)) for j in range(i + 1, len(group))]
            d = self.model.distances(
                [group[i] for i, _ in pairs], [group[j] for _, j in pairs], self.batch_size
            )
            totals = np.zeros(len(group))
            for (i, j), dist in zip(pairs, d, strict=True):
                totals[i] += dist
                totals[j] += dist
            values[members] = totals / (len(group) - 1)
        return values


def _sized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    image = to_rgb(image)
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def make_div(options: Mapping[str, Any] | None = None) -> DivScorer:
    return DivScorer(resolve_config(DivOptions, dict(options or {}), where="scorer div"))
