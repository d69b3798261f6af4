"""Subjects: a few photos of one object or animal, its class noun, and the identifier token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.images import read_image
from bench.paths import inside
from bench.toml_files import read_toml, reject_unknown, require

KINDS = ("object", "live")
# DreamBench's live subjects are its cats and dogs; everything else is an object.
LIVE_CLASSES = frozenset({"cat", "dog"})
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Subject:
    id: str
    class_noun: str
    kind: str
    images: tuple[Path, ...]
    token: str = "sks"
    source: str = ""
    license: str = ""

    def __post_init__(self) -> None:
        where = f"subject '{self.id}'"
        if not _ID.fullmatch(self.id):
            raise BenchError(f"{where}: id must be letters, digits, '_', '-' or '.'")
        if not self.class_noun.strip():
            raise BenchError(f'{where}: class noun is empty; set `class = "dog"` or similar')
        if self.kind not in KINDS:
            raise BenchError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.token.strip() or " " in self.token:
            raise BenchError(f"{where}: token must be one word, got {self.token!r}")
        if not self.images:
            raise BenchError(f"{where}: no reference images; add .jpg or .png files")
        for image in self.images:
            if not image.is_file():
                raise BenchError(f"{where}: image {image} does not exist")


def check_photos(subjects) -> None:
    """Read every photo of `subjects` as training and scoring will (`read_image`): a corrupt,
    truncated, tiny or oversized one is its one-line error before any model loads or any file
    of a run is written."""
    for subject in subjects:
        for photo in subject.images:
            read_image(photo)


def kind_for_class(class_noun: str) -> str:
    return "live" if class_noun in LIVE_CLASSES else "object"


def images_in(directory: Path) -> tuple[Path, ...]:
    return tuple(
        sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    )


def load_subject(toml_path: Path) -> Subject:
    """A subject from `<dir>/subject.toml`; its images are listed there or are the dir's images.

    Keys: id (default: the directory name), class, kind (default from the class), images,
    token, source, license.
    """
    table = read_toml(toml_path)
    reject_unknown(
        table, {"id", "class", "kind", "images", "token", "source", "license"}, toml_path
    )
    class_noun = require(table, "class", str, toml_path)
    directory = toml_path.parent
    if "images" in table:
        names = require(table, "images", list, toml_path)
        images = tuple(inside(directory, str(n), f"{toml_path}: image") for n in names)
    else:
        images = images_in(directory)
    return Subject(
        id=table.get("id", directory.name),
        class_noun=class_noun,
        kind=table.get("kind", kind_for_class(class_noun)),
        images=images,
        token=table.get("token", "sks"),
        source=table.get("source", ""),
        license=table.get("license", ""),
    )


def load_subject_dir(root: Path) -> tuple[Subject, ...]:
    """Every `<root>/*/subject.toml`, sorted by id."""
    if not root.is_dir():
        raise BenchError(f"{root}: subject directory not found")
    subjects = tuple(load_subject(p) for p in sorted(root.glob("*/subject.toml")))
    if not subjects:
        raise BenchError(f"{root}: no */subject.toml found; each subject needs a folder with one")
    return subjects
