"""Draws the toy world's subjects (bench_world.subjects) into this folder: for each, its photos
(one instance of the world in a few poses and everyday settings, 64 px) and subject.toml. Run
from the repository root to redraw; the same code draws the same bytes:

    python subjects/world/draw.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bench_world.render import describe
from bench_world.subjects import SUBJECTS, photos

HERE = Path(__file__).resolve().parent


def main() -> None:
    for subject_id, instance in SUBJECTS.items():
        folder = HERE / subject_id
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        for i, picture in enumerate(photos(subject_id)):
            Image.fromarray(picture).save(folder / f"{i:02d}.png", optimize=True)
        (folder / "subject.toml").write_text(
            f'class = "{instance.cls}"\n'
            f'kind = "{instance.kind}"\n'
            f'source = "the toy world (bench_world): {describe(instance)}; drawn by '
            'subjects/world/draw.py"\n'
            'license = "CC0-1.0"\n',
            encoding="utf-8",
        )
        print(f"{subject_id}: {describe(instance)}")


if __name__ == "__main__":
    main()
