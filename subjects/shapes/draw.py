"""Draws the `shapes` subject set: three toy "photo sets" made procedurally, for the suites and
tests on the tiny random-weight backbone (micro, sd15-random), which need no download. Run from
the repository root to redraw:

    python subjects/shapes/draw.py

Each subject is one shape seen in 4 "photos" that vary position, scale and background, as a
real subject's photos vary pose and setting.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 128
HERE = Path(__file__).resolve().parent


def _background(rng: random.Random) -> Image.Image:
    base = [rng.randint(170, 235) for _ in range(3)]
    image = Image.new("RGB", (SIZE, SIZE), tuple(base))
    draw = ImageDraw.Draw(image)
    horizon = rng.randint(70, 100)  # a floor, so the shape stands somewhere
    draw.rectangle([0, horizon, SIZE, SIZE], fill=tuple(max(0, c - 50) for c in base))
    return image


def draw_mug(draw: ImageDraw.ImageDraw, x: int, y: int, s: float) -> None:
    w, h = int(34 * s), int(40 * s)
    draw.rectangle([x - w // 2, y - h, x + w // 2, y], fill=(200, 30, 35), outline=(90, 10, 10))
    draw.ellipse(
        [x + w // 2 - 4, y - h + 8, x + w // 2 + int(16 * s), y - 8],
        outline=(200, 30, 35),
        width=max(2, int(5 * s)),
    )
    draw.rectangle([x - w // 2, y - h, x + w // 2, y - h + 4], fill=(240, 240, 240))


def draw_robot(draw: ImageDraw.ImageDraw, x: int, y: int, s: float) -> None:
    body, head = int(30 * s), int(22 * s)
    draw.rectangle([x - body // 2, y - body, x + body // 2, y], fill=(40, 90, 200))
    draw.rectangle([x - head // 2, y - body - head, x + head // 2, y - body], fill=(60, 120, 230))
    for dx in (-head // 4, head // 4):
        draw.ellipse(
            [x + dx - 3, y - body - head // 2 - 3, x + dx + 3, y - body - head // 2 + 3],
            fill=(255, 220, 0),
        )
    draw.line([x, y - body - head, x, y - body - head - int(8 * s)], fill=(20, 20, 20), width=2)


def draw_cat(draw: ImageDraw.ImageDraw, x: int, y: int, s: float) -> None:
    r = int(22 * s)
    cy = y - r
    orange, dark = (235, 140, 40), (120, 60, 10)
    draw.polygon(
        [(x - r, cy - r // 3), (x - r // 2, cy - r - r // 2), (x - r // 6, cy - r)], fill=orange
    )
    draw.polygon(
        [(x + r, cy - r // 3), (x + r // 2, cy - r - r // 2), (x + r // 6, cy - r)], fill=orange
    )
    draw.ellipse([x - r, cy - r, x + r, cy + r], fill=orange, outline=dark)
    for dx in (-r // 2.5, r // 2.5):
        draw.ellipse([x + dx - 3, cy - 5, x + dx + 3, cy + 1], fill=(30, 160, 60))
    draw.polygon([(x - 3, cy + 5), (x + 3, cy + 5), (x, cy + 9)], fill=(230, 90, 120))


SUBJECTS = {
    "red_mug": ("mug", "object", draw_mug),
    "blue_robot": ("robot", "object", draw_robot),
    "ginger_cat": ("cat", "live", draw_cat),
}


def main() -> None:
    for index, (subject_id, (class_noun, kind, shape)) in enumerate(SUBJECTS.items()):
        rng = random.Random(index)
        folder = HERE / subject_id
        folder.mkdir(exist_ok=True)
        for photo in range(4):
            image = _background(rng)
            x, y, s = rng.randint(45, 83), rng.randint(95, 115), rng.uniform(0.9, 1.3)
            shape(ImageDraw.Draw(image), x, y, s)
            image.save(folder / f"{photo:02d}.png", optimize=True)
        (folder / "subject.toml").write_text(
            f'class = "{class_noun}"\nkind = "{kind}"\n'
            'source = "drawn procedurally by subjects/shapes/draw.py"\n'
            'license = "CC0-1.0"\n'
        )


if __name__ == "__main__":
    main()
