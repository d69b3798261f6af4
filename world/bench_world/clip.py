"""The toy world's CLIP: an open_clip model (`bench-world-clip`, a ViT on 64 px with patches of 8
and a small text transformer over CLIP's own BPE) trained contrastively on renders and their
captions. Every batch pairs each scene with a twin that differs in one attribute (class, a
colour, pattern, part, context or something worn), so the model must read them all, not colour
alone. It is scored with like any CLIP: `--scorer-option clip.model=bench-world-clip
--scorer-option clip.pretrained=<bench/assets/world/clip.safetensors>`, through open_clip.

The identifier token never appears in its captions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.lab import world_asset
from bench_world.render import (
    CLASSES,
    COLOURS,
    CONTEXTS,
    GLASSES,
    HATS,
    PATTERNS,
    SCARVES,
    Scene,
    caption,
    look,
    random_scene,
    render,
    setting,
)
from bench_world.saving import save_half

ARCH = "bench-world-clip"
WEIGHTS = world_asset("clip.safetensors")  # the library loads it from there
_TWIN_ATTRIBUTES = ("class", "body", "secondary", "pattern", "part", "context", "worn")


def describe_scene(scene: Scene) -> str:
    """The scene in full: what the object is and looks like, where it is, what it wears."""
    instance = scene.instance
    part = {True: "with", False: "without"}[instance.part]
    pattern = look(instance.pattern, scene.secondary)
    what = f"a {scene.body} {instance.cls} with {pattern}, {part} {CLASSES[instance.cls][1]}"
    return ", ".join([what, *setting(scene)])


def twin(scene: Scene, rng: np.random.Generator, attribute: str | None = None) -> Scene:
    """The scene with exactly one attribute changed: `attribute`, or one drawn from `rng`
    (ValueError when a new body or trim colour would equal the instance's other colour)."""
    if attribute is None:
        attribute = str(rng.choice(_TWIN_ATTRIBUTES))
    instance = scene.instance

    def other(options, current):
        return str(rng.choice([o for o in options if o != current]))

    if attribute == "class":
        return replace(scene, instance=replace(instance, cls=other(CLASSES, instance.cls)))
    if attribute == "body":
        body = other([c for c in COLOURS if c != scene.secondary], scene.body)
        return replace(scene, recolour=None, instance=replace(instance, body=body))
    if attribute == "secondary":
        secondary = other([c for c in COLOURS if c != scene.body], scene.secondary)
        return replace(scene, instance=replace(instance, secondary=secondary))
    if attribute == "pattern":
        return replace(scene, instance=replace(instance, pattern=other(PATTERNS, instance.pattern)))
    if attribute == "part":
        return replace(scene, instance=replace(instance, part=not instance.part))
    if attribute == "context":
        return replace(scene, context=other(CONTEXTS, scene.context))
    worn = str(rng.choice(["hat", "glasses", "scarf"]))
    options = {"hat": HATS, "glasses": GLASSES, "scarf": SCARVES}[worn]
    return replace(scene, **{worn: other(options, getattr(scene, worn))})


def training_pairs(seed: int, n: int) -> list[tuple[Scene, Scene]]:
    """`n` scenes, each with its one-attribute twin."""
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n:
        scene = random_scene(rng, modifiers=0.3)
        try:
            pairs.append((scene, twin(scene, rng)))
        except ValueError:  # a twin whose colours clash; draw another scene
            continue
    return pairs


def _pixels(images):
    """What open_clip's preprocessing gives a 64 px image: scaled, normalized with CLIP's
    statistics (resizing 64 to 64 changes nothing)."""
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    array = np.stack(images).astype(np.float32) / 255.0
    array = (array - np.array(OPENAI_DATASET_MEAN, np.float32)) / np.array(
        OPENAI_DATASET_STD, np.float32
    )
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def build_model():
    """A fresh, randomly initialized world CLIP and its tokenizer."""
    import logging

    import open_clip

    from bench.lab import register_model_configs

    register_model_configs()
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # open_clip warns that no weights were loaded: none are wanted
    try:
        return open_clip.create_model(ARCH), open_clip.get_tokenizer(ARCH)
    finally:
        quiet.setLevel(level)


def train_clip(
    seed: int = 0, n_pairs: int = 12_000, epochs: int = 6, batch_pairs: int = 64, log=print
):
    """Train on `n_pairs` scenes and their twins (each caption the short DreamBench one or the
    full description, at random); returns the open_clip model."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    pairs = training_pairs(seed, n_pairs)
    scenes = [s for pair in pairs for s in pair]  # scene, its twin, scene, its twin, ...
    pixels = _pixels([render(s) for s in scenes])
    model, tokenizer = build_model()
    texts = [caption(s) if rng.random() < 0.5 else describe_scene(s) for s in scenes]
    tokens = tokenizer(texts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = epochs * (n_pairs // batch_pairs)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n_pairs, generator=generator)
        total = 0.0
        for start in range(0, n_pairs - batch_pairs + 1, batch_pairs):
            chosen = order[start : start + batch_pairs]
            index = torch.stack([2 * chosen, 2 * chosen + 1], dim=1).reshape(-1)  # with twins
            image, text, scale = model(pixels[index], tokens[index])
            logits = scale * image @ text.T
            target = torch.arange(len(index))
            loss = (
                torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)
            ) / 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        log(f"clip epoch {epoch + 1}/{epochs}: loss {total / (n_pairs // batch_pairs):.4f}")
    return model.eval()


def save_clip(model, path: Path = WEIGHTS) -> None:
    """In half precision (the loader casts back): the token table is most of the model."""
    save_half(model.state_dict(), path, metadata={"arch": ARCH})
