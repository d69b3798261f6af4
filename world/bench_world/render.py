"""The toy world's renderer: deterministic 64 px scenes of one object in a context, with the
DreamBench-style caption and the ground-truth labels of every picture.

    instance = random_instance(rng, "mug")          # one object: colours, pattern, a part
    scene = Scene(instance, context="beach", hat="santa", x=0.5, scale=0.6)
    pixels = render(scene)                          # (64, 64, 3) uint8
    caption(scene)                                  # "a mug on the beach wearing a santa hat"
    labels(scene)                                   # {"class": "mug", "context": "beach", ...}

A scene is drawn at 4x with PIL and downsampled, so the same scene always gives the same bytes.
Every name a caption uses is drawn so that it can be seen: a class by its shape, colours on large
areas, a context by its whole background, a modifier on the object's top.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64  # the world's resolution
SCALE = 4  # drawn at SIZE * SCALE, then downsampled: smooth edges, same bytes every time

COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 215, 30),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "purple": (135, 50, 180),
    "pink": (245, 135, 190),
    "brown": (125, 75, 35),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "grey": (135, 135, 135),
}

# class -> (kind, the optional part an instance has or lacks)
CLASSES = {
    "robot": ("object", "antenna"),
    "cat": ("live", "tail"),
    "dog": ("live", "collar"),
    "mug": ("object", "handle"),
    "teapot": ("object", "lid knob"),
    "vase": ("object", "handles"),
    "backpack": ("object", "pocket"),
    "duck": ("object", "bow"),
}
PATTERNS = ("plain", "stripes", "dots")

# context -> the words DreamBench's prompts use for it ("" for the plain photo backdrop)
CONTEXTS = {
    "plain": "",
    "beach": "on the beach",
    "snow": "in the snow",
    "jungle": "in the jungle",
    "city": "with a city in the background",
    "wooden_floor": "on top of a wooden floor",
    "grass": "on top of green grass with sunflowers around it",
    "water": "floating on top of water",
    "mountain": "with a mountain in the background",
    "pink_fabric": "on top of pink fabric",
    "dirt_road": "on top of a dirt road",
}
HATS = {"none": "", "santa": "wearing a santa hat", "red": "wearing a red hat"}
GLASSES = {"none": "", "pink": "wearing pink glasses", "sunglasses": "wearing sunglasses"}
SCARVES = {"none": "", "rainbow": "wearing a rainbow scarf"}
RECOLOURS = ("red", "purple", "blue", "green", "yellow")  # "a red {class}"


@dataclass(frozen=True)
class Instance:
    """One object of the world: what makes it this one and not another of its class."""

    cls: str
    body: str  # colour name
    secondary: str  # colour of its trim and pattern
    pattern: str  # one of PATTERNS, on the body
    part: bool  # has its class's optional part (CLASSES[cls][1])
    aspect: float  # width / height, around 1

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise ValueError(f"unknown class {self.cls!r}; classes: {', '.join(CLASSES)}")
        if self.body not in COLOURS or self.secondary not in COLOURS:
            raise ValueError(f"colours must be among {', '.join(COLOURS)}")
        if self.body == self.secondary:
            raise ValueError("body and secondary colours must differ")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}")

    @property
    def kind(self) -> str:
        return CLASSES[self.cls][0]


@dataclass(frozen=True)
class Scene:
    instance: Instance
    context: str = "plain"
    recolour: str | None = None  # "a red {class}": the body drawn in this colour
    hat: str = "none"
    glasses: str = "none"
    scarf: str = "none"
    x: float = 0.5  # horizontal centre, as a fraction of the width
    scale: float = 0.6  # object height, as a fraction of the height
    flip: bool = False  # facing the other way
    angle: float = 0.0  # degrees, counter-clockwise

    def __post_init__(self) -> None:
        for value, allowed, name in (
            (self.context, CONTEXTS, "context"),
            (self.hat, HATS, "hat"),
            (self.glasses, GLASSES, "glasses"),
            (self.scarf, SCARVES, "scarf"),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.recolour is not None and self.recolour not in COLOURS:
            raise ValueError(f"recolour {self.recolour!r} is not a colour")

    @property
    def body(self) -> str:
        """The body colour as drawn."""
        return self.recolour or self.instance.body

    @property
    def secondary(self) -> str:
        """The trim colour as drawn: the instance's, unless a recolour took it (then white)."""
        if self.instance.secondary != self.body:
            return self.instance.secondary
        return "white" if self.body != "white" else "black"


# --------------------------------------------------------------------------- sampling


def random_instance(rng: np.random.Generator, cls: str | None = None) -> Instance:
    cls = cls or str(rng.choice(list(CLASSES)))
    body, secondary = rng.choice(list(COLOURS), size=2, replace=False)
    return Instance(
        cls=cls,
        body=str(body),
        secondary=str(secondary),
        pattern=str(rng.choice(PATTERNS)),
        part=bool(rng.integers(2)),
        aspect=float(np.round(rng.uniform(0.8, 1.2), 3)),
    )


def random_pose(rng: np.random.Generator, scene: Scene) -> Scene:
    """The same scene with another position, size, facing and tilt."""
    return replace(
        scene,
        x=float(np.round(rng.uniform(0.35, 0.65), 3)),
        scale=float(np.round(rng.uniform(0.5, 0.72), 3)),
        flip=bool(rng.integers(2)),
        angle=float(np.round(rng.uniform(-12, 12), 2)),
    )


def random_scene(
    rng: np.random.Generator, instance: Instance | None = None, modifiers: float = 0.25
) -> Scene:
    """Any context; each modifier present with probability `modifiers`."""
    instance = instance or random_instance(rng)

    def maybe(options):
        return str(rng.choice(list(options)[1:])) if rng.random() < modifiers else "none"

    recolour = str(rng.choice(RECOLOURS)) if rng.random() < modifiers else None
    scene = Scene(
        instance,
        context=str(rng.choice(list(CONTEXTS))),
        recolour=recolour,
        hat=maybe(HATS),
        glasses=maybe(GLASSES),
        scarf=maybe(SCARVES),
    )
    return random_pose(rng, scene)


# --------------------------------------------------------------------------- words


def caption(scene: Scene, token: str | None = None) -> str:
    """The scene in DreamBench's words, an identifier token where DreamBench's prompts put it:
    "a [colour] [token] {class} [context] [modifiers]"."""
    words = ["a", scene.recolour, token, scene.instance.cls, *setting(scene)]
    return " ".join(w for w in words if w)


def setting(scene: Scene) -> list[str]:
    """Where the object is and what it wears, in DreamBench's phrases ("on the beach", "wearing
    a santa hat"); the plain backdrop and nothing worn say nothing."""
    phrases = (
        CONTEXTS[scene.context],
        HATS[scene.hat],
        GLASSES[scene.glasses],
        SCARVES[scene.scarf],
    )
    return [p for p in phrases if p]


def look(pattern: str, colour: str) -> str:
    """A pattern in words: "white trim", "white stripes", "white dots"."""
    return {"plain": f"{colour} trim", "stripes": f"{colour} stripes", "dots": f"{colour} dots"}[
        pattern
    ]


def describe(instance: Instance) -> str:
    """What tells this instance from others of its class: "a blue mug with white stripes, with a
    handle"."""
    part = CLASSES[instance.cls][1]
    pattern = look(instance.pattern, instance.secondary)
    has = f"{_article(part)} {part}" if not part.endswith("s") else part
    part_words = f"with {has}" if instance.part else f"without {has}"
    return f"{_article(instance.body)} {instance.body} {instance.cls} with {pattern}, {part_words}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def labels(scene: Scene) -> dict[str, object]:
    """The ground truth of a scene: what the oracle is trained to read back."""
    return {
        "class": scene.instance.cls,
        "body": scene.body,
        "secondary": scene.secondary,
        "pattern": scene.instance.pattern,
        "part": scene.instance.part,
        "context": scene.context,
        "hat": scene.hat,
        "glasses": scene.glasses,
        "scarf": scene.scarf,
    }


# --------------------------------------------------------------------------- drawing


def render_many(scenes: list[Scene], processes: int = 2) -> list[np.ndarray]:
    """`render` over many scenes, in `processes` processes when there are many (drawing is
    single-threaded); the same pictures either way."""
    if len(scenes) < 2000:
        return [render(s) for s in scenes]
    from multiprocessing import get_context

    with get_context("spawn").Pool(processes) as pool:
        return pool.map(render, scenes, chunksize=500)


def render(scene: Scene, size: int = SIZE) -> np.ndarray:
    """The scene as (size, size, 3) uint8 pixels."""
    big = size * SCALE
    canvas = _background(scene.context, big)
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    height = scene.scale * big
    width = height * scene.instance.aspect * _WIDTH[scene.instance.cls]
    ground = big * (0.78 if scene.context != "water" else 0.72)
    box = (
        big / 2 - width / 2,
        ground - height,
        big / 2 + width / 2,
        ground,
    )
    # A class draws its body and returns where its head is, and the part that goes on top of
    # what is worn (an antenna through a hat): a part is never hidden, so its label holds.
    head, part_on_top = _OBJECTS[scene.instance.cls](layer, box, scene)
    draw = ImageDraw.Draw(layer)
    _accessories(draw, head, scene)
    if part_on_top is not None and scene.instance.part:
        part_on_top(draw)
    if scene.flip:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if scene.angle:
        layer = layer.rotate(
            scene.angle, resample=Image.Resampling.BICUBIC, center=(big / 2, ground)
        )
    shift = round((scene.x - 0.5) * big)
    canvas.alpha_composite(layer, (shift, 0) if shift >= 0 else (0, 0), _crop(shift, big))
    small = canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8).copy()


def _crop(shift: int, big: int) -> tuple[int, int, int, int]:
    """The part of the object layer that lands on the canvas when moved by `shift`."""
    return (0, 0, big - shift, big) if shift >= 0 else (-shift, 0, big, big)


_WIDTH = {  # width / height of each class before the instance's aspect
    "robot": 0.7,
    "cat": 0.8,
    "dog": 0.9,
    "mug": 0.85,
    "teapot": 1.15,
    "vase": 0.6,
    "backpack": 0.75,
    "duck": 0.95,
}


def _rgb(name: str) -> tuple[int, int, int]:
    return COLOURS[name]


def _paint_body(image: Image.Image, shape: str, box, scene: Scene) -> None:
    """The body (an ellipse or a rounded rectangle) in its colour, with its pattern on top."""
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    body, trim = _rgb(scene.body), _rgb(scene.secondary)
    if shape == "ellipse":
        draw.ellipse(box, fill=body)
    else:
        draw.rounded_rectangle(box, radius=(x1 - x0) * 0.15, fill=body)
    pattern = scene.instance.pattern
    w, h = x1 - x0, y1 - y0
    mask = Image.new("L", image.size, 0)
    mask_draw = ImageDraw.Draw(mask)
    inner = (x0 + w * 0.08, y0 + h * 0.08, x1 - w * 0.08, y1 - h * 0.08)
    if shape == "ellipse":
        mask_draw.ellipse(inner, fill=255)
    else:
        mask_draw.rounded_rectangle(inner, radius=w * 0.12, fill=255)
    marks = Image.new("L", image.size, 0)
    marks_draw = ImageDraw.Draw(marks)
    if pattern == "stripes":
        band = h / 5
        for i in (1, 3):
            marks_draw.rectangle((x0, y0 + i * band, x1, y0 + (i + 1) * band), fill=255)
    elif pattern == "dots":
        r = min(w, h) * 0.14
        for cy in np.linspace(y0 + h * 0.3, y1 - h * 0.3, 2):
            for cx in np.linspace(x0 + w * 0.3, x1 - w * 0.3, 2):
                marks_draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    if pattern != "plain":
        colour = Image.new("RGBA", image.size, (*trim, 255))
        both = Image.fromarray(np.minimum(np.asarray(mask), np.asarray(marks)))
        image.paste(colour, (0, 0), both)


def _frame(image: Image.Image, box, scene: Scene):
    """What every class's drawing starts from: a pen on the object layer, the box's corners and
    size, and the body and trim colours."""
    x0, y0, x1, y1 = box
    colours = (_rgb(scene.body), _rgb(scene.secondary))
    return ImageDraw.Draw(image), (x0, y0, x1, y1), (x1 - x0, y1 - y0), colours


def _robot(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    head = (x0 + w * 0.12, y0 + h * 0.12, x1 - w * 0.12, y0 + h * 0.45)
    body = (x0, y0 + h * 0.48, x1, y1)
    _paint_body(image, "rect", body, scene)
    draw.rounded_rectangle(head, radius=w * 0.08, fill=_rgb(scene.body))
    ey = head[1] + (head[3] - head[1]) * 0.45
    for ex in (head[0] + (head[2] - head[0]) * 0.3, head[0] + (head[2] - head[0]) * 0.7):
        r = w * 0.12
        draw.ellipse((ex - r, ey - r, ex + r, ey + r), fill=trim)
    draw.rectangle((x0 + w * 0.25, y0 + h * 0.44, x1 - w * 0.25, y0 + h * 0.52), fill=trim)

    def antenna(draw):
        cx, r = (x0 + x1) / 2, w * 0.15
        draw.line((cx, head[1], cx, y0 - h * 0.08), fill=trim, width=int(w * 0.12))
        draw.ellipse((cx - r, y0 - h * 0.08 - r, cx + r, y0 - h * 0.08 + r), fill=trim)

    return head, antenna


def _cat(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    body = (x0 + w * 0.05, y0 + h * 0.45, x1 - w * 0.05, y1)
    if scene.instance.part:  # tail
        draw.line(
            (x1 - w * 0.1, y1 - h * 0.15, x1 + w * 0.3, y0 + h * 0.4),
            fill=trim,
            width=int(w * 0.2),
        )
    _paint_body(image, "ellipse", body, scene)
    head = (x0 + w * 0.18, y0 + h * 0.08, x1 - w * 0.18, y0 + h * 0.55)
    hw = head[2] - head[0]
    for side in (0, 1):  # pointed ears
        ex = head[0] + hw * (0.05 if side == 0 else 0.6)
        draw.polygon(
            [(ex, head[1] + h * 0.1), (ex + hw * 0.35, head[1] + h * 0.1), (ex + hw * 0.17, y0)],
            fill=body_c,
        )
        draw.polygon(
            [
                (ex + hw * 0.08, head[1] + h * 0.1),
                (ex + hw * 0.27, head[1] + h * 0.1),
                (ex + hw * 0.17, y0 + h * 0.05),
            ],
            fill=trim,
        )
    draw.ellipse(head, fill=body_c)
    _face(draw, head, trim)
    return head, None


def _dog(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    body = (x0, y0 + h * 0.45, x1, y1)
    draw.line(
        (x1 - w * 0.1, y0 + h * 0.6, x1 + w * 0.15, y0 + h * 0.4), fill=body_c, width=int(w * 0.08)
    )
    _paint_body(image, "ellipse", body, scene)
    head = (x0 + w * 0.15, y0 + h * 0.05, x1 - w * 0.15, y0 + h * 0.55)
    hw, hh = head[2] - head[0], head[3] - head[1]
    draw.ellipse(head, fill=body_c)
    for side in (0, 1):  # floppy ears in the trim colour
        ex = head[0] - hw * 0.12 if side == 0 else head[2] - hw * 0.2
        draw.ellipse((ex, head[1] + hh * 0.1, ex + hw * 0.32, head[1] + hh * 0.85), fill=trim)
    snout = (head[0] + hw * 0.3, head[1] + hh * 0.55, head[2] - hw * 0.3, head[3] - hh * 0.02)
    draw.ellipse(snout, fill=_rgb("white") if scene.body != "white" else _rgb("grey"))
    _face(draw, head, _rgb("black"))

    def collar(draw):
        box = (head[0] + hw * 0.05, head[3] - hh * 0.08, head[2] - hw * 0.05, head[3] + hh * 0.2)
        draw.rectangle(box, fill=trim)

    return head, collar


def _face(draw, head, colour) -> None:
    hx0, hy0, hx1, hy1 = head
    hw, hh = hx1 - hx0, hy1 - hy0
    r = hw * 0.07
    for ex in (hx0 + hw * 0.32, hx0 + hw * 0.68):
        ey = hy0 + hh * 0.42
        draw.ellipse((ex - r, ey - r, ex + r, ey + r), fill=colour)


def _mug(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    cup = (x0, y0 + h * 0.05, x1 - w * 0.22, y1)
    if scene.instance.part:  # handle
        cw = cup[2] - cup[0]
        ring = (cup[2] - cw * 0.2, y0 + h * 0.2, x1 + w * 0.1, y0 + h * 0.8)
        draw.ellipse(ring, outline=trim, width=int(w * 0.17))
    _paint_body(image, "rect", cup, scene)
    draw.rectangle((cup[0], cup[1], cup[2], cup[1] + h * 0.12), fill=trim)  # rim band
    return (cup[0], cup[1], cup[2], cup[1] + h * 0.45), None


def _teapot(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    pot = (x0 + w * 0.18, y0 + h * 0.25, x1 - w * 0.18, y1)
    draw.polygon(
        [
            (pot[0] + w * 0.05, y0 + h * 0.6),
            (x0, y0 + h * 0.3),
            (x0 + w * 0.06, y0 + h * 0.28),
            (pot[0] + w * 0.1, y0 + h * 0.75),
        ],
        fill=body_c,
    )
    draw.arc(
        (pot[2] - w * 0.12, y0 + h * 0.35, x1, y0 + h * 0.8),
        -90,
        90,
        fill=trim,
        width=int(w * 0.06),
    )
    _paint_body(image, "ellipse", pot, scene)
    pw = pot[2] - pot[0]
    lid = (pot[0] + pw * 0.22, y0 + h * 0.16, pot[2] - pw * 0.22, y0 + h * 0.34)
    draw.ellipse(lid, fill=trim)

    def knob(draw):
        cx, r = (x0 + x1) / 2, w * 0.12
        draw.ellipse((cx - r, y0 - h * 0.04, cx + r, y0 - h * 0.04 + 2 * r), fill=trim)

    return (pot[0] + pw * 0.15, y0 + h * 0.1, pot[2] - pw * 0.15, y0 + h * 0.5), knob


def _vase(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    if scene.instance.part:  # two handles
        for side in (0, 1):
            hx = x0 - w * 0.05 if side == 0 else x1 - w * 0.3
            draw.ellipse(
                (hx - w * 0.05, y0 + h * 0.12, hx + w * 0.4, y0 + h * 0.55),
                outline=trim,
                width=int(w * 0.15),
            )
    bulb = (x0, y0 + h * 0.35, x1, y1)
    _paint_body(image, "ellipse", bulb, scene)
    neck = (x0 + w * 0.3, y0 + h * 0.05, x1 - w * 0.3, y0 + h * 0.45)
    draw.rectangle(neck, fill=_rgb(scene.body))
    draw.rectangle((x0 + w * 0.22, y0, x1 - w * 0.22, y0 + h * 0.1), fill=trim)  # lip band
    return (x0 + w * 0.15, y0, x1 - w * 0.15, y0 + h * 0.35), None


def _backpack(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    draw.arc(
        (x0 + w * 0.25, y0, x1 - w * 0.25, y0 + h * 0.3), 180, 360, fill=trim, width=int(w * 0.07)
    )  # the carry loop
    bag = (x0, y0 + h * 0.12, x1, y1)
    _paint_body(image, "rect", bag, scene)
    for sx in (x0 + w * 0.18, x1 - w * 0.28):  # straps
        draw.rectangle((sx, y0 + h * 0.12, sx + w * 0.1, y1 - h * 0.05), fill=trim)
    if scene.instance.part:  # front pocket
        draw.rounded_rectangle(
            (x0 + w * 0.15, y0 + h * 0.6, x1 - w * 0.15, y1 - h * 0.06), radius=w * 0.08, fill=trim
        )
    return (x0 + w * 0.1, y0 + h * 0.12, x1 - w * 0.1, y0 + h * 0.5), None


def _duck(image, box, scene):
    draw, (x0, y0, x1, y1), (w, h), (body_c, trim) = _frame(image, box, scene)
    body = (x0, y0 + h * 0.42, x1, y1)
    _paint_body(image, "ellipse", body, scene)
    head = (x0 + w * 0.08, y0 + h * 0.02, x0 + w * 0.58, y0 + h * 0.52)
    draw.ellipse(head, fill=body_c)
    hw, hh = head[2] - head[0], head[3] - head[1]
    beak_y = head[1] + hh * 0.55
    draw.polygon(
        [
            (head[0] + hw * 0.1, beak_y - hh * 0.12),
            (x0 - w * 0.15, beak_y),
            (head[0] + hw * 0.1, beak_y + hh * 0.12),
        ],
        fill=_rgb("orange") if scene.body != "orange" else _rgb("yellow"),
    )
    r = hw * 0.08
    ex, ey = head[0] + hw * 0.35, head[1] + hh * 0.4
    draw.ellipse((ex - r, ey - r, ex + r, ey + r), fill=_rgb("black"))
    draw.ellipse((x0 + w * 0.45, y0 + h * 0.55, x1 - w * 0.08, y1 - h * 0.15), fill=trim)  # wing

    def bow(draw):
        cx, cy, s = (head[0] + head[2]) / 2, head[3], w * 0.2
        draw.polygon([(cx, cy), (cx - s, cy - s * 0.7), (cx - s, cy + s * 0.7)], fill=trim)
        draw.polygon([(cx, cy), (cx + s, cy - s * 0.7), (cx + s, cy + s * 0.7)], fill=trim)

    return head, bow


_OBJECTS = {
    "robot": _robot,
    "cat": _cat,
    "dog": _dog,
    "mug": _mug,
    "teapot": _teapot,
    "vase": _vase,
    "backpack": _backpack,
    "duck": _duck,
}


def _accessories(draw, head, scene: Scene) -> None:
    """Hat on the head's top, glasses across it, scarf under it."""
    hx0, hy0, hx1, hy1 = head
    hw, hh = hx1 - hx0, hy1 - hy0
    if scene.scarf == "rainbow":
        bands = ("red", "orange", "yellow", "green", "blue", "purple")
        top, band = hy1 - hh * 0.08, hh * 0.06
        for i, colour in enumerate(bands):
            y = top + i * band
            draw.rectangle((hx0 - hw * 0.05, y, hx1 + hw * 0.05, y + band), fill=_rgb(colour))
    if scene.glasses != "none":
        y = hy0 + hh * 0.42
        r = hw * 0.16
        lens = (255, 120, 190) if scene.glasses == "pink" else _rgb("black")
        for cx in (hx0 + hw * 0.3, hx0 + hw * 0.7):
            if scene.glasses == "pink":
                draw.ellipse((cx - r, y - r, cx + r, y + r), outline=lens, width=int(hw * 0.07))
            else:
                draw.ellipse((cx - r, y - r * 0.8, cx + r, y + r * 0.8), fill=lens)
        draw.line((hx0 + hw * 0.3 + r, y, hx0 + hw * 0.7 - r, y), fill=lens, width=int(hw * 0.05))
    if scene.hat == "santa":
        brim = hh * 0.16
        draw.polygon(
            [
                (hx0 + hw * 0.05, hy0 + brim * 0.5),
                (hx1 - hw * 0.05, hy0 + brim * 0.5),
                (hx1 + hw * 0.1, hy0 - hh * 0.55),
            ],
            fill=_rgb("red"),
        )
        draw.rounded_rectangle((hx0, hy0, hx1, hy0 + brim), radius=brim / 2, fill=_rgb("white"))
        r = hw * 0.1
        tip = (hx1 + hw * 0.1, hy0 - hh * 0.55)
        draw.ellipse((tip[0] - r, tip[1] - r, tip[0] + r, tip[1] + r), fill=_rgb("white"))
    elif scene.hat == "red":
        draw.rectangle(
            (hx0 - hw * 0.1, hy0 - hh * 0.02, hx1 + hw * 0.1, hy0 + hh * 0.1), fill=(200, 20, 30)
        )
        draw.rectangle((hx0 + hw * 0.15, hy0 - hh * 0.45, hx1 - hw * 0.15, hy0), fill=(200, 20, 30))


# --------------------------------------------------------------------------- backgrounds


def _background(context: str, big: int) -> Image.Image:
    image = Image.new("RGBA", (big, big), (235, 235, 230, 255))
    d = ImageDraw.Draw(image)
    horizon = big * 0.55

    def sky_and_ground(sky, ground, at=horizon):
        d.rectangle((0, 0, big, at), fill=sky)
        d.rectangle((0, at, big, big), fill=ground)

    if context == "plain":
        d.rectangle((0, big * 0.7, big, big), fill=(215, 213, 208))
    elif context == "beach":
        sky_and_ground((135, 200, 250), (235, 215, 160))
        d.rectangle((0, horizon - big * 0.08, big, horizon), fill=(30, 110, 200))
    elif context == "snow":
        sky_and_ground((195, 210, 232), (250, 250, 255))
        rng = np.random.default_rng(7)
        for x, y in rng.uniform(0, big, size=(40, 2)):
            d.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 255, 255))
    elif context == "jungle":
        sky_and_ground((20, 85, 40), (70, 50, 20), at=big * 0.7)
        rng = np.random.default_rng(3)
        for x, y in rng.uniform(0, big, size=(28, 2)) * (1, 0.7):
            d.ellipse((x - 22, y - 9, x + 22, y + 9), fill=(40, 150, 55))
    elif context == "city":
        sky_and_ground((170, 190, 212), (70, 70, 76), at=big * 0.68)
        rng = np.random.default_rng(5)
        x = 0
        while x < big:
            bw, bh = rng.uniform(big * 0.1, big * 0.2), rng.uniform(big * 0.25, big * 0.5)
            d.rectangle((x, big * 0.68 - bh, x + bw - 4, big * 0.68), fill=(95, 100, 115))
            for wy in np.arange(big * 0.68 - bh + 8, big * 0.68 - 10, 18):
                for wx in np.arange(x + 6, x + bw - 12, 14):
                    d.rectangle((wx, wy, wx + 6, wy + 8), fill=(250, 220, 110))
            x += bw
    elif context == "wooden_floor":
        sky_and_ground((232, 214, 186), (160, 108, 58), at=big * 0.62)
        for y in np.arange(big * 0.62, big, big * 0.07):
            d.line((0, y, big, y), fill=(120, 78, 38), width=3)
    elif context == "grass":
        sky_and_ground((150, 210, 250), (60, 175, 60), at=big * 0.6)
        for x in np.linspace(big * 0.04, big * 0.96, 7):
            y = big * 0.66 + (x % 37)
            d.ellipse((x - 12, y - 12, x + 12, y + 12), fill=(250, 210, 20))
            d.ellipse((x - 5, y - 5, x + 5, y + 5), fill=(110, 60, 20))
    elif context == "water":
        sky_and_ground((165, 212, 250), (40, 118, 210), at=big * 0.5)
        for y in np.arange(big * 0.55, big, big * 0.08):
            for x in np.arange(0, big, big * 0.12):
                d.arc(
                    (x, y, x + big * 0.1, y + big * 0.04), 180, 360, fill=(150, 200, 250), width=3
                )
    elif context == "mountain":
        sky_and_ground((140, 190, 240), (95, 140, 70), at=big * 0.7)
        for cx, peak in ((big * 0.25, 0.18), (big * 0.7, 0.1)):
            top = big * peak
            d.polygon(
                [(cx - big * 0.4, big * 0.7), (cx + big * 0.4, big * 0.7), (cx, top)],
                fill=(120, 110, 140),
            )
            d.polygon(
                [
                    (cx - big * 0.09, top + big * 0.11),
                    (cx + big * 0.09, top + big * 0.11),
                    (cx, top),
                ],
                fill=(250, 250, 250),
            )
    elif context == "pink_fabric":
        d.rectangle((0, 0, big, big), fill=(240, 168, 200))
        for i in range(6):
            y = big * (0.1 + 0.16 * i)
            d.arc(
                (-big * 0.2, y, big * 1.2, y + big * 0.3), 200, 340, fill=(215, 130, 170), width=4
            )
    elif context == "dirt_road":
        sky_and_ground((160, 205, 245), (120, 160, 80), at=big * 0.58)
        d.polygon(
            [(big * 0.4, big * 0.58), (big * 0.6, big * 0.58), (big, big), (0, big)],
            fill=(160, 115, 70),
        )
    return image
