"""The user's own subjects: a folder of photos, checked and copied into the user directory.

    <user dir>/subjects/<name>/00.jpg, 01.png, ...   the usable photos, in name order, format kept
    <user dir>/subjects/<name>/subject.toml          class, kind, token, images, source, license

The user directory is `bench.paths.user_dir()` (`BENCH_HOME`, else `$XDG_DATA_HOME/bench`), never
the installed package. Suites name these subjects with `[subjects] user = ["name", ...]` and
`bench run --subject NAME` puts them in place of a suite's own.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.data.subjects import _ID, IMAGE_SUFFIXES, KINDS, Subject, kind_for_class, load_subject
from bench.errors import BenchError
from bench.images import read_image
from bench.paths import user_dir

LICENSE = "user-provided"
RECOMMENDED_IMAGES = 3  # DreamBench subjects have 4 to 6 photos


def user_subjects_dir() -> Path:
    return user_dir() / "subjects"


@dataclass(frozen=True)
class Registration:
    subject: Subject  # as registered, images in the user directory
    skipped: tuple[tuple[Path, str], ...]  # (file, why) for files that are not usable images
    replaced: bool  # an earlier registration of the name was replaced (--force)


def usable_images(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(readable images with a known suffix, in name order; skipped files with the reason)."""
    usable, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((path, f"not a {'/'.join(IMAGE_SUFFIXES)} file"))
            continue
        try:  # unreadable, truncated, too small, not an image at all, a decompression bomb
            read_image(path)
        except BenchError as e:
            skipped.append((path, str(e).removeprefix(f"{path}: ")))
            continue
        usable.append(path)
    return usable, skipped


def register_subject(
    name: str,
    class_noun: str,
    images: Path,
    *,
    kind: str | None = None,
    token: str = "sks",
    force: bool = False,
) -> Registration:
    """Check the folder and the fields, then copy the usable photos and write subject.toml.

    Everything is checked before anything is written; the subject is assembled in a temporary
    folder next to its final place and renamed in, so a failure leaves the user directory as it
    was.
    """
    class_noun = " ".join(class_noun.split())
    if not _ID.fullmatch(name):
        raise BenchError(
            f"subject name {name!r}: use letters, digits, '_', '-' or '.', starting with a letter "
            "or digit"
        )
    if not class_noun:
        raise BenchError(f"subject '{name}': --class is empty; give the class noun, e.g. dog")
    kind = kind or kind_for_class(class_noun.lower())
    if kind not in KINDS:
        raise BenchError(f"--kind {kind!r}: use {' or '.join(KINDS)}")
    if not token.strip() or len(token.split()) != 1:
        raise BenchError(f"--token {token!r}: must be one word, e.g. sks")
    folder = Path(images).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "folder not found"
        raise BenchError(f"{folder}: {what}; pass --images DIR, a folder of the subject's photos")
    usable, skipped = usable_images(folder)
    if not usable:
        # Every file and why it was refused, so the user sees what to fix.
        why = "; ".join(f"{path.name}: {reason}" for path, reason in skipped) or "it is empty"
        raise BenchError(
            f"{folder}: no usable image ({why}); add photos of the subject as "
            f"{', '.join(IMAGE_SUFFIXES)} files that open as images"
        )
    target = user_subjects_dir() / name
    if target.exists() and not force:
        raise BenchError(
            f"subject '{name}' is already registered in {target}; pick another name or pass "
            "--force to replace it"
        )

    width = max(2, len(str(len(usable) - 1)))
    names = [
        f"{i:0{width}d}{'.jpg' if p.suffix.lower() == '.jpeg' else p.suffix.lower()}"
        for i, p in enumerate(usable)
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir()  # not mkdtemp: the folder gets the umask's permissions, not 0700
    try:
        for source, new_name in zip(usable, names, strict=True):
            shutil.copyfile(source, staging / new_name)
        (staging / "subject.toml").write_text(
            _subject_toml(class_noun, kind, token, names, str(folder.resolve())),
            encoding="utf-8",
        )
        replaced = target.exists()
        if replaced:  # --force: swap the new folder in, then drop the old one
            old = target.with_name(f".{name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(staging, target)
            except OSError:  # registered by another process in the meantime
                raise BenchError(
                    f"subject '{name}' was registered in {target} meanwhile; pass --force to "
                    "replace it"
                ) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    subject = load_user_subject(name)
    return Registration(subject, tuple(skipped), replaced)


def _subject_toml(class_noun: str, kind: str, token: str, images: list[str], source: str) -> str:
    def q(text: str) -> str:  # a JSON string is a valid TOML basic string
        return json.dumps(text, ensure_ascii=False)

    return (
        "# Registered by `bench subjects add`.\n"
        f"class = {q(class_noun)}\n"
        f"kind = {q(kind)}\n"
        f"token = {q(token)}\n"
        f"images = [{', '.join(q(n) for n in images)}]\n"
        f"source = {q(source)}\n"
        f"license = {q(LICENSE)}\n"
    )


def registered_names() -> list[str]:
    root = user_subjects_dir()
    if not root.is_dir():
        return []
    names = (p.parent.name for p in root.glob("*/subject.toml"))
    return sorted(name for name in names if _ID.fullmatch(name))


def load_user_subject(name: str) -> Subject:
    """A registered subject by name; the error lists what is registered."""
    path = user_subjects_dir() / name / "subject.toml"
    if not _ID.fullmatch(name) or not path.is_file():
        known = registered_names()
        listing = f"registered: {', '.join(known)}" if known else "none is registered"
        raise BenchError(
            f"user subject '{name}' not found in {user_subjects_dir()} ({listing}); register it "
            f"with `bench subjects add {name} --class NOUN --images DIR`"
        )
    return load_subject(path)


def list_user_subjects() -> list[Subject]:
    return [load_user_subject(name) for name in registered_names()]
