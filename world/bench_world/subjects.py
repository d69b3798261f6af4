"""The toy world's subjects: named instances, each photographed in a few poses and everyday
settings, as a DreamBench subject is. Their photos are drawn into `subjects/world/` by
`subjects/world/draw.py`; the world report and the tests read the truth about each from here.
"""

from __future__ import annotations

import numpy as np

from bench_world.render import Instance, Scene, random_pose, render

# Where the photos are taken: the plain backdrop twice, then three everyday surfaces.
PHOTO_CONTEXTS = ("plain", "wooden_floor", "plain", "pink_fabric", "dirt_road")

SUBJECTS: dict[str, Instance] = {
    # the smoke suite's three
    "blue_robot": Instance("robot", "blue", "yellow", "plain", True, 1.0),
    "ginger_cat": Instance("cat", "orange", "white", "stripes", True, 1.1),
    "red_mug": Instance("mug", "red", "white", "dots", True, 0.9),
    # the rest of the world suite
    "green_teapot": Instance("teapot", "green", "yellow", "stripes", True, 1.15),
    "purple_vase": Instance("vase", "purple", "white", "dots", False, 0.85),
    "yellow_backpack": Instance("backpack", "yellow", "black", "stripes", True, 1.0),
    "pink_duck": Instance("duck", "pink", "blue", "plain", True, 1.05),
    "black_dog": Instance("dog", "black", "red", "plain", True, 1.1),
    "grey_cat": Instance("cat", "grey", "pink", "dots", False, 0.95),
    "brown_dog": Instance("dog", "brown", "white", "stripes", False, 0.9),
    "white_robot": Instance("robot", "white", "red", "stripes", False, 1.15),
    "blue_mug": Instance("mug", "blue", "orange", "stripes", False, 1.1),
    "orange_backpack": Instance("backpack", "orange", "blue", "dots", False, 0.9),
    "yellow_duck": Instance("duck", "yellow", "green", "dots", False, 0.95),
    "red_teapot": Instance("teapot", "red", "grey", "plain", False, 1.05),
    "white_vase": Instance("vase", "white", "blue", "stripes", True, 0.85),
}


def photo_scenes(subject_id: str) -> list[Scene]:
    """The subject's photos: one pose per setting, drawn from a seed fixed by its name."""
    instance = SUBJECTS[subject_id]
    rng = np.random.default_rng(list(subject_id.encode()))
    return [random_pose(rng, Scene(instance, context=c)) for c in PHOTO_CONTEXTS]


def photos(subject_id: str) -> list[np.ndarray]:
    return [render(scene) for scene in photo_scenes(subject_id)]


def traits(subject_id: str) -> dict[str, object]:
    """What tells the subject from others of its class, as the oracle's labels name them."""
    instance = SUBJECTS[subject_id]
    return {
        "class": instance.cls,
        "body": instance.body,
        "secondary": instance.secondary,
        "pattern": instance.pattern,
        "part": instance.part,
    }
