"""The toy world's oracle: a small CNN that reads a 64 px picture's ground truth back (class,
colours, pattern, part, context, hat, glasses, scarf). It stands in for a human judge in tests
and reports: how often a generated picture shows the subject's attributes and the prompt's
context. It is never a scorer; the metrics are what it checks.

    oracle = load_oracle()                       # the shipped weights
    oracle.read([pixels, ...])                   # [{"class": "mug", "context": "beach", ...}]
    accuracy(oracle, scenes)                     # {"class": 0.99, ...} against their labels

`train_oracle` rebuilds the weights from renders alone, deterministically for a seed. It sees
most renders softened (`soften`: blurred, noisy, a little more or less contrast), as generated
pictures are: an oracle trained on crisp renders alone misread a trim colour in three renders of
ten once blurred by 1 px, which a person reads at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench_world.render import (
    CLASSES,
    COLOURS,
    CONTEXTS,
    GLASSES,
    HATS,
    PATTERNS,
    SCARVES,
    Scene,
    labels,
    random_scene,
    render,
)
from bench_world.saving import save_half

WEIGHTS = Path(__file__).resolve().parent / "weights" / "oracle.safetensors"

# head -> the values it tells apart, in a fixed order
HEADS: dict[str, tuple] = {
    "class": tuple(CLASSES),
    "body": tuple(COLOURS),
    "secondary": tuple(COLOURS),
    "pattern": PATTERNS,
    "part": (False, True),
    "context": tuple(CONTEXTS),
    "hat": tuple(HATS),
    "glasses": tuple(GLASSES),
    "scarf": tuple(SCARVES),
}


def _network():
    import torch
    from torch import nn

    class OracleNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers, width = [], 3
            for out in (32, 64, 128, 128):  # 64 -> 32 -> 16 -> 8 -> 4
                layers += [
                    nn.Conv2d(width, out, 3, stride=2, padding=1),
                    nn.BatchNorm2d(out),
                    nn.ReLU(),
                    nn.Conv2d(out, out, 3, padding=1),
                    nn.BatchNorm2d(out),
                    nn.ReLU(),
                ]
                width = out
            self.features = nn.Sequential(*layers, nn.Flatten())
            self.trunk = nn.Sequential(nn.Linear(128 * 4 * 4, 256), nn.ReLU())
            self.heads = nn.ModuleDict({k: nn.Linear(256, len(v)) for k, v in HEADS.items()})

        def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
            shared = self.trunk(self.features(pixels))
            return {name: head(shared) for name, head in self.heads.items()}

    return OracleNet()


def pixel_tensor(images: Sequence[np.ndarray]):
    """uint8 pictures as the oracle and the world VAE take them: channels first, in [-1, 1]."""
    import torch

    array = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def _targets(scenes: Sequence[Scene]):
    import torch

    truth = [labels(s) for s in scenes]
    return {k: torch.tensor([values.index(t[k]) for t in truth]) for k, values in HEADS.items()}


class Oracle:
    """The loaded network, reading pictures into labels."""

    def __init__(self, net) -> None:
        self.net = net.eval()

    def read(self, images: Sequence[np.ndarray], batch_size: int = 256) -> list[dict]:
        import torch

        found: list[dict] = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                logits = self.net(pixel_tensor(images[start : start + batch_size]))
                picks = {k: v.argmax(1).tolist() for k, v in logits.items()}
                for i in range(len(picks["class"])):
                    found.append({k: HEADS[k][picks[k][i]] for k in HEADS})
        return found


def accuracy(
    oracle: Oracle, scenes: Sequence[Scene], pictures: Sequence[np.ndarray] | None = None
) -> dict[str, float]:
    """The share of scenes whose label the oracle reads right, per head, from `pictures` of
    them (default: their renders)."""
    read = oracle.read(pictures if pictures is not None else [render(s) for s in scenes])
    truth = [labels(s) for s in scenes]
    return {
        k: float(np.mean([r[k] == t[k] for r, t in zip(read, truth, strict=True)])) for k in HEADS
    }


def training_scenes(seed: int, n: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [random_scene(rng, modifiers=0.3) for _ in range(n)]


SOFTEN_MAX_BLUR = 1.5  # px, the Gaussian's sigma
SOFTEN_MAX_NOISE = 0.08  # the noise's standard deviation, in [-1, 1] units (about 10 of 255)
SOFTEN_KEEP = 0.25  # the share of pictures left as rendered


def soften(pixels, generator):
    """Each picture of a batch (channels first, in [-1, 1]) degraded as generated pictures are:
    a Gaussian blur of a random width, a small contrast and brightness change, random noise; a
    share of them (SOFTEN_KEEP) left as they were. Hues are never changed: they are labels."""
    import torch
    import torch.nn.functional as F

    n, channels, height, width = pixels.shape
    sigma = (torch.rand(n, generator=generator) * SOFTEN_MAX_BLUR).clamp(min=1e-3)
    offsets = torch.arange(-3, 4, dtype=pixels.dtype)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)
    flat = pixels.reshape(1, n * channels, height, width)  # one group per picture's channel
    flat = F.conv2d(
        F.pad(flat, (3, 3, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=n * channels
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, 3, 3), mode="replicate"), kernel[:, None, :, None], groups=n * channels
    )
    soft = flat.reshape(n, channels, height, width)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.2
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.1
    noise = torch.rand(n, 1, 1, 1, generator=generator) * SOFTEN_MAX_NOISE
    soft = soft * contrast + brightness + torch.randn(soft.shape, generator=generator) * noise
    keep = (torch.rand(n, generator=generator) < SOFTEN_KEEP)[:, None, None, None]
    return torch.where(keep, pixels, soft).clamp(-1, 1)


def train_oracle(
    seed: int = 0, n_train: int = 32_000, epochs: int = 12, batch_size: int = 128, log=print
) -> Oracle:
    """Train the oracle on `n_train` renders (drawn from `seed`), softened, for `epochs`
    passes."""
    import torch

    torch.manual_seed(seed)
    scenes = training_scenes(seed, n_train)
    pixels = pixel_tensor([render(s) for s in scenes])
    targets = _targets(scenes)
    net = _network()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (n_train // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(n_train, generator=generator)
        total = 0.0
        for start in range(0, n_train - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            logits = net(soften(pixels[index], generator))
            loss = sum(loss_fn(logits[k], targets[k][index]) for k in HEADS)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        log(f"oracle epoch {epoch + 1}/{epochs}: loss {total / (n_train // batch_size):.4f}")
    return Oracle(net)


def save_oracle(oracle: Oracle, path: Path = WEIGHTS) -> None:
    """In half precision (loading casts back), as the other world models."""
    save_half(oracle.net.state_dict(), path, metadata={"heads": repr(HEADS)})


def load_oracle(path: Path = WEIGHTS) -> Oracle:
    from safetensors.torch import load_file

    net = _network()
    net.load_state_dict(load_file(str(path)))
    return Oracle(net)
