"""The toy world's DINO: timm's ViT (DINO ViT-S/8's recipe: patches of 8, a CLS token) at toy size
on 64 px, trained self-supervised to tell instances apart: two renders of one instance, in
different poses, settings and things worn, are a positive pair; every other picture in the batch
is a negative, and each batch holds instances that differ from another in one trait (body or trim
colour, pattern, part), so that colour alone does not separate them. No label is used, only
"same instance or not", as DINO's views of one image. The scorer reads its CLS embedding:
`--scorer-option dino.model=bench-world-dino` (the shipped weights, through timm's file loader).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.lab import world_asset
from bench_world.render import (
    COLOURS,
    CONTEXTS,
    GLASSES,
    HATS,
    PATTERNS,
    SCARVES,
    Instance,
    Scene,
    random_instance,
    random_pose,
    render_many,
)
from bench_world.saving import save_half

WEIGHTS = world_asset("dino.safetensors")  # the library loads it from there
WORN = 0.15  # the chance of each thing worn in a view


def random_view(rng: np.random.Generator, instance: Instance) -> Scene:
    """The instance somewhere, in some pose, maybe wearing something; never recoloured."""

    def maybe(options) -> str:
        return str(rng.choice(list(options)[1:])) if rng.random() < WORN else "none"

    scene = Scene(
        instance,
        context=str(rng.choice(list(CONTEXTS))),
        hat=maybe(HATS),
        glasses=maybe(GLASSES),
        scarf=maybe(SCARVES),
    )
    return random_pose(rng, scene)


def sibling(rng: np.random.Generator, instance: Instance) -> Instance:
    """Another instance of the class differing in one trait."""
    trait = str(rng.choice(["body", "secondary", "pattern", "part"]))
    if trait == "part":
        return replace(instance, part=not instance.part)
    if trait == "pattern":
        others = [p for p in PATTERNS if p != instance.pattern]
        return replace(instance, pattern=str(rng.choice(others)))
    taken = {instance.body, instance.secondary}
    return replace(instance, **{trait: str(rng.choice([c for c in COLOURS if c not in taken]))})


def training_views(seed: int, n_instances: int, views: int = 4) -> tuple[list[Instance], list]:
    """`n_instances` instances, every second one a sibling of the one before, each rendered in
    `views` random views: returns the instances and a (n, views, 64, 64, 3) uint8 array."""
    rng = np.random.default_rng(seed)
    instances: list[Instance] = []
    while len(instances) < n_instances:
        first = random_instance(rng)
        instances += [first, sibling(rng, first)]
    instances = instances[:n_instances]
    scenes = [random_view(rng, inst) for inst in instances for _ in range(views)]
    pictures = np.stack(render_many(scenes)).reshape(n_instances, views, 64, 64, 3)
    return instances, pictures


def _pixels(pictures):
    """uint8 (..., 64, 64, 3) as the scorer feeds them: channels first, ImageNet statistics."""
    import torch

    from bench.lab import IMAGENET_MEAN, IMAGENET_STD

    array = torch.from_numpy(np.asarray(pictures)).float().div(255.0)
    array = (array - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return array.movedim(-1, -3).contiguous()


def build_model():
    """A fresh, randomly initialized world DINO: timm's architecture, no classifier head."""
    import timm

    from bench.lab import WORLD_DINO_ARCH, WORLD_DINO_KWARGS

    return timm.create_model(WORLD_DINO_ARCH, pretrained=False, num_classes=0, **WORLD_DINO_KWARGS)


def train_dino(
    seed: int = 0,
    n_instances: int = 6000,
    views: int = 4,
    steps: int = 1200,
    batch_instances: int = 64,
    temperature: float = 0.1,
    log=print,
):
    """InfoNCE between two views of each instance in a batch of sibling pairs; the projection
    head it trains through is dropped. Returns the ViT."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    _, pictures = training_views(seed, n_instances, views)
    pictures = torch.from_numpy(pictures)
    net = build_model()
    width = net.num_features
    head = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, 64))
    parameters = [*net.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    pairs = n_instances // 2
    net.train()
    total = 0.0
    for step in range(steps):
        chosen = torch.randperm(pairs, generator=generator)[: batch_instances // 2]
        index = torch.stack([2 * chosen, 2 * chosen + 1], dim=1).reshape(-1)  # with siblings
        first = torch.randint(views, (len(index),), generator=generator)
        second = (first + torch.randint(1, views, (len(index),), generator=generator)) % views
        batch = torch.cat([pictures[index, first], pictures[index, second]])
        z = F.normalize(head(net(_pixels(batch.numpy()))), dim=1)
        logits = z @ z.T / temperature
        logits.fill_diagonal_(float("-inf"))
        n = len(index)
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += float(loss.detach())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log(f"dino step {step + 1}/{steps}: loss {total / ((step % 100) + 1):.4f}")
            total = 0.0
    return net.eval()


def save_dino(net, path: Path = WEIGHTS) -> None:
    """In half precision, as timm's file loader reads it (it casts back)."""
    save_half(net.state_dict(), path)


def instance_accuracy(net, seed: int = 20261126, n_instances: int = 200) -> dict[str, float]:
    """On held-out instances: how often a view is closer to another view of its own instance
    than to a view of its sibling (one trait apart), and than to another class's instance."""
    import torch
    import torch.nn.functional as F

    _, pictures = training_views(seed, n_instances, views=2)
    with torch.inference_mode():
        a = F.normalize(net(_pixels(pictures[:, 0])), dim=1)
        b = F.normalize(net(_pixels(pictures[:, 1])), dim=1)
    own = (a * b).sum(1)
    sibling_of = torch.arange(n_instances) ^ 1  # 0<->1, 2<->3, ...
    to_sibling = (a * b[sibling_of]).sum(1)
    to_other = (a * b.roll(2, dims=0)).sum(1)  # another pair: mostly another class
    return {
        "own_over_sibling": float((own > to_sibling).float().mean()),
        "own_over_other": float((own > to_other).float().mean()),
    }
