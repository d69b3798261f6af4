"""Reading images: the one function every photo and generated image goes through (subjects,
`bench subjects add`, training, scoring, `bench score`, contact sheets).

`read_image` returns the picture as a viewer shows it, as 8-bit RGB:

- the file is fully decoded, so a truncated file is an error here, not later;
- the EXIF orientation is applied (phone photos are often stored sideways with a tag);
- 16-bit and 32-bit integer images are scaled to 8 bits, not clipped;
- palette, CMYK, greyscale and other modes are converted to RGB;
- transparency (RGBA, LA, a palette's transparent entry) is composited over `BACKGROUND`
  (white), so invisible pixels never leak their hidden colour into the result;
- images under `MIN_SIDE` pixels on a side, and decompression bombs (over PIL's
  `Image.MAX_IMAGE_PIXELS`), are refused.

Every failure is a one-line `BenchError` that names the file and says what to do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.errors import BenchError

BACKGROUND = (255, 255, 255)  # what transparent pixels become
MIN_SIDE = 16  # pixels: a smaller picture carries no usable detail of a subject

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def read_image(path: str | Path) -> Image.Image:
    """The image at `path` as a viewer shows it, in 8-bit RGB (see the module docstring)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                image = to_rgb8(ImageOps.exif_transpose(opened))
    except FileNotFoundError:
        raise BenchError(f"{path}: no such image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BenchError(
            f"{path}: over {Image.MAX_IMAGE_PIXELS:,} pixels, refused as a possible "
            "decompression bomb; downscale it"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BenchError(f"{path}: not a readable image ({reason}); replace or remove it") from None
    if min(image.size) < MIN_SIDE:
        raise BenchError(
            f"{path}: {image.width}x{image.height} pixels, under the minimum of {MIN_SIDE} a "
            "side; use a larger image"
        )
    return image


def to_rgb8(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB: high bit depths scaled, transparency over `BACKGROUND`."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in _SIXTEEN_BIT or mode == "I":
        values = np.asarray(image, dtype=np.float64)
        # "I" holds 32-bit integers; PIL opens 16-bit greyscale PNGs this way too.
        top = 65535.0 if mode in _SIXTEEN_BIT or values.max(initial=0) <= 65535 else 2**32 - 1
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":  # floats: taken as 0..1 when they fit there, else as 0..255
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        grey = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # P, L, 1, CMYK, YCbCr, LAB, HSV
