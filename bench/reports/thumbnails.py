"""Small copies of images for pages (the HTML report, the study page), each made once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench import atomic
from bench.errors import BenchError
from bench.images import read_image

QUALITY = 88  # JPEG


@dataclass
class Thumbnails:
    """Writes `<out>/<folder>/<digest>.jpg`, at most `size` px on the longer side. An image
    already that small is copied as PNG instead, pixel for pixel: at 32 or 64 px JPEG's
    artefacts would be what a reader sees. The name is a digest of the source's path, size and
    mtime and of `size`, so a page written again into the same folder reuses every copy whose
    source is unchanged."""

    out: Path
    size: int = 256
    folder: str = "thumbs"
    made: int = 0
    reused: int = 0

    def of(self, source: Path) -> str:
        """The copy's path relative to `out` (made if missing)."""
        try:
            stat = source.stat()
        except OSError as e:
            raise BenchError(
                f"{source}: cannot read it ({e.strerror}); a run's photos and images must stay "
                "where it stored them"
            ) from None
        key = f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{self.size}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        for suffix in (".png", ".jpg"):
            relative = f"{self.folder}/{digest[:2]}/{digest}{suffix}"
            if (self.out / relative).is_file():
                self.reused += 1
                return relative
        image = read_image(source)  # as a viewer shows it: EXIF orientation, 8-bit RGB
        small = max(image.size) <= self.size
        if not small:
            image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        relative = f"{self.folder}/{digest[:2]}/{digest}{'.png' if small else '.jpg'}"
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(path) as tmp:
            if small:
                image.save(tmp, format="PNG", optimize=True)
            else:
                image.save(tmp, format="JPEG", quality=QUALITY)
        self.made += 1
        return relative
