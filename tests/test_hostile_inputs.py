"""Bad input, as a hostile user gives it, through the real command line: every case is one line on
stderr naming the file or value, exit code 2, no traceback, and the store, the user directory and
the user's own files exactly as they were (same bytes, same permissions).

Each case is a row of CASES: an id, an optional setup that plants the bad input in a fresh
workspace, the command, and a fragment the one-line message must contain. Cases marked `stored`
start from a store that holds a finished, scored `micro` run of the `base` method.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]  # {runs}, {work}, {run} are filled in
    expect: str  # a fragment of the one-line message
    setup: Callable[[Path], None] | None = None  # plants the bad input under the workspace
    stored: bool = False  # start from a store holding a finished micro run


# --------------------------------------------------------------------------- planted inputs


def png(path: Path, side: int = 32, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), colour, dtype=np.uint8)).save(path)
    return path


def write(relative: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / "work" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def photos(*extra: tuple[str, bytes]) -> Callable[[Path], None]:
    """work/photos/ with three good photos and the `extra` files."""

    def setup(ws: Path) -> None:
        for i in range(3):
            png(ws / "work" / "photos" / f"{i}.png", colour=(50 * i, 90, 200))
        for name, data in extra:
            (ws / "work" / "photos" / name).write_bytes(data)

    return setup


def images_with_manifest(rows: list[dict], *, bad_image: bytes | None = None):
    """work/images/ with two good images and a manifest.jsonl of `rows`."""

    def setup(ws: Path) -> None:
        folder = ws / "work" / "images"
        png(folder / "a.png")
        png(folder / "b.png", colour=(10, 10, 10))
        if bad_image is not None:
            (folder / "bad.png").write_bytes(bad_image)
        (ws / "work" / "secret.png").parent.mkdir(parents=True, exist_ok=True)
        png(ws / "work" / "secret.png")
        (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    return setup


def row(**changes) -> dict:
    return {
        "image": "a.png",
        "subject": "red_mug",
        "prompt": "on_the_beach",
        "image_index": 0,
        **changes,
    }


def truncated_png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()[:300]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's header)."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR: after the signature, length, type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def suite_with_photo(photo: bytes) -> Callable[[Path], None]:
    """work/s.toml: the micro suite on a copy of its subject whose last photo is `photo`."""

    def setup(ws: Path) -> None:
        subjects = ws / "work" / "subjects"
        shutil.copytree(REPO / "subjects" / "shapes" / "red_mug", subjects / "red_mug")
        (subjects / "red_mug" / "03.png").write_bytes(photo)
        suite = (REPO / "suites" / "micro.toml").read_text()
        suite = suite.replace('set = "shapes"', f'path = "{subjects}"')
        (ws / "work" / "s.toml").write_text(suite)

    return setup


def tiny_png(side: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def store_file(pattern: str, mutate: Callable[[Path], None]) -> Callable[[Path], None]:
    """Mutate the one file of the stored run that matches `pattern`."""

    def setup(ws: Path) -> None:
        (match,) = (ws / "runs").glob(f"micro/*/{pattern}")
        mutate(match)

    return setup


def drop_last_row(path: Path) -> None:
    """The file loses its last whole row: still valid JSON lines, one image short."""
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) > 1
    path.write_text("".join(lines[:-1]))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


class _Payload:
    """Unpickling this runs a command: what a booby-trapped weights file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_weights(ws: Path) -> None:
    import torch

    torch.save({"weight": _Payload(ws / "work" / "pwned")}, ws / "work" / "weights.pt")


def plain_tensor_weights(ws: Path) -> None:
    import torch

    torch.save({"weight": torch.zeros(2)}, ws / "work" / "weights.pt")


def not_a_pipeline(ws: Path) -> None:
    folder = ws / "work" / "backbone"
    folder.mkdir(parents=True)
    (folder / "README.txt").write_text("not a diffusers pipeline\n")


def booby_trapped_backbone(ws: Path) -> None:
    """The tiny pipeline, its UNet weights swapped for a pickle that runs a command."""
    import torch

    from bench.diffusion.random_backbones import random_backbone_dir

    folder = ws / "work" / "backbone"
    shutil.copytree(random_backbone_dir("tiny"), folder)
    for weights in (folder / "unet").glob("diffusion_pytorch_model.*"):
        weights.unlink()
    torch.save(
        {"conv_in.weight": _Payload(ws / "work" / "pwned")},
        folder / "unet" / "diffusion_pytorch_model.bin",
    )


MICRO = ["run", "--suite", "micro", "--runs", "{runs}"]
LORA = [*MICRO, "--method", "dreambooth_lora"]
SCORE = ["score", "--suite", "micro", "--runs", "{runs}", "--images", "{work}/images"]

CASES = [
    # ---- method options (--set) and execution options
    Case("steps-zero", [*LORA, "--set", "steps=0"], "steps must be >= 1"),
    Case("steps-negative", [*LORA, "--set", "steps=-5"], "steps must be >= 1"),
    Case("steps-huge", [*LORA, "--set", "steps=100000000"], "steps must be >= 1 and <= 1_000_000"),
    Case("rank-zero", [*LORA, "--set", "rank=0"], "rank must be"),
    Case("rank-huge", [*LORA, "--set", "rank=100000"], "rank must be"),
    Case("rank-fraction", [*LORA, "--set", "rank=1.5"], "option 'rank' expects"),
    Case("rank-bool", [*LORA, "--set", "rank=true"], "option 'rank' expects"),
    Case("batch-huge", [*LORA, "--set", "batch_size=100000"], "batch_size must be"),
    Case("resolution-huge", [*LORA, "--set", "resolution=65536"], "resolution must be"),
    Case("class-images-huge", [*LORA, "--set", "num_class_images=10000000"], "num_class_images"),
    Case("lr-inf", [*LORA, "--set", "lr=inf"], "finite and > 0"),
    Case("alpha-nan", [*LORA, "--set", "alpha=nan"], "alpha must be finite"),
    Case(
        "prior-weight-negative",
        [*LORA, "--set", "prior_loss_weight=-1.0"],
        "prior_loss_weight must be",
    ),
    Case(
        "ti-vectors-huge",
        [*MICRO, "--method", "textual_inversion", "--set", "num_vectors=100"],
        "num_vectors must be",
    ),
    Case("dropout-one", [*LORA, "--set", "dropout=1.0"], "dropout must be"),
    Case("scheduler", [*LORA, "--set", "lr_scheduler=warp"], "lr_scheduler must be one of"),
    Case(
        "timestep-sampling",
        [*LORA, "--set", "timestep_sampling=sorted"],
        "timestep_sampling must be one of",
    ),
    Case(
        "identifier-lr-zero",
        [*LORA, "--set", "train_identifier=true", "--set", "identifier_lr=0"],
        "identifier_lr must be finite and > 0",
    ),
    Case("unet-targets-empty", [*LORA, "--set", "unet_targets=[]"], "unet_targets must be"),
    Case(
        "unet-targets-unknown",
        [*LORA, "--set", 'unet_targets=["to_q", "conv9"]'],
        "unet_targets: 'conv9' names no linear or convolution layer",
    ),
    Case("unknown-option", [*LORA, "--set", "rnk=4"], "did you mean 'rank'"),
    Case("set-no-equals", [*LORA, "--set", "lr"], "expected key=value"),
    Case(
        "ti-steps-zero",
        [*MICRO, "--method", "textual_inversion", "--set", "steps=0"],
        "steps must be >= 1",
    ),
    Case("dtype-int8", [*LORA, "--dtype", "int8"], "--dtype 'int8'"),
    Case("device-tpu", [*LORA, "--device", "tpu"], "--device 'tpu'"),
    Case("device-cuda-x", [*LORA, "--device", "cuda:x"], "--device 'cuda:x'"),
    Case("batch-size-zero", [*LORA, "--batch-size", "0"], "--generation-batch-size must be >= 1"),
    Case("batch-size-huge", [*LORA, "--batch-size", "1000000"], "--generation-batch-size must be"),
    Case("convention", [*LORA, "--convention", "nope"], "convention 'nope'"),
    Case("ci-method", [*LORA, "--ci-method", "nope"], "nope"),
    Case("prompts-mode", [*LORA, "--prompts", "sometimes"], "sometimes"),
    Case("resamples-zero", [*LORA, "--resamples", "0"], "resamples"),
    Case("confidence-above-1", [*LORA, "--confidence", "1.5"], "--confidence 1.5: use a number"),
    Case(
        "leaderboard-confidence-0",
        ["leaderboard", "--runs", "{runs}", "--out", "{work}/LB.md", "--confidence", "0"],
        "--confidence 0.0: use a number between 0 and 1",
    ),
    Case(
        "sweep-convention",
        ["sweep", "--method", "base", "--suite", "micro", "--grid", "seed=0,1", "--runs", "{runs}"]
        + ["--convention", "nope"],
        "convention 'nope'",
    ),
    Case("replicates-not-numbers", [*LORA, "--replicates", "0,x"], "--replicates '0,x'"),
    Case("replicates-repeated", [*LORA, "--replicates", "1,1"], "distinct whole numbers >= 0"),
    Case("report-empty-store", ["report", "--runs", "{runs}", "--out", "{work}/site"], "no scored"),
    Case(
        "report-unknown-run",
        ["report", "base-nope", "--runs", "{runs}", "--out", "{work}/site"],
        "base-nope",
        stored=True,
    ),
    Case(
        "report-world-report-missing",
        ["report", "--runs", "{runs}", "--out", "{work}/site", "--world-report", "{work}"],
        "no world-report.md in it",
        stored=True,
    ),
    Case(
        "study-one-run",
        ["study", "make", "{run}", "--runs", "{runs}", "--out", "{work}/study"],
        "give two runs or more",
        stored=True,
    ),
    Case(
        "study-answers-missing",
        ["study", "import", "{work}/answers.json", "--runs", "{runs}"],
        "answers.json: cannot read it",
    ),
    Case("unknown-method", [*MICRO, "--method", "dreambooth_lor"], "did you mean"),
    Case("markup-in-a-value", [*LORA, "--set", "lr=[bold red]"], "got '[bold red]'"),
    Case("markup-in-a-name", [*MICRO, "--method", "[red]x[/red]"], "'[red]x[/red]'"),
    # ---- backbones
    Case("backbone-missing", [*LORA, "--backbone", "{work}/nowhere"], "nowhere"),
    Case(
        "backbone-not-a-pipeline",
        [*LORA, "--backbone", "{work}/backbone"],
        "model_index.json",
        setup=not_a_pipeline,
    ),
    Case(
        "backbone-pickle",
        [*LORA, "--backbone", "{work}/backbone"],
        "cannot load it",
        setup=booby_trapped_backbone,
    ),
    # ---- suites and prompt files
    Case(
        "suite-unknown",
        ["run", "--method", "base", "--suite", "smok", "--runs", "{runs}"],
        "did you mean 'smoke'",
    ),
    Case(
        "suite-bad-toml",
        ["run", "--method", "base", "--suite", "{work}/s.toml", "--runs", "{runs}"],
        "s.toml",
        setup=write("s.toml", "name = [unclosed\n"),
    ),
    Case(
        "suite-images-huge",
        ["run", "--method", "base", "--suite", "{work}/s.toml", "--runs", "{runs}"],
        "images_per_prompt must be >= 1 and <= 1000",
        setup=lambda ws: write(
            "s.toml",
            (REPO / "suites/micro.toml")
            .read_text()
            .replace("images_per_prompt = 1", "images_per_prompt = 100000"),
        )(ws),
    ),
    Case(
        "suite-resolution-huge",
        ["run", "--method", "base", "--suite", "{work}/s.toml", "--runs", "{runs}"],
        "resolution must be",
        setup=lambda ws: write(
            "s.toml",
            (REPO / "suites/micro.toml")
            .read_text()
            .replace("resolution = 32", "resolution = 65536"),
        )(ws),
    ),
    *(
        Case(
            f"suite-photo-{kind}",
            ["run", "--method", "dreambooth_lora", "--suite", "{work}/s.toml", "--runs", "{runs}"],
            f"03.png: {expect}",
            setup=suite_with_photo(photo),
        )
        for kind, photo, expect in [
            ("corrupt", b"not an image at all", "not a readable image"),
            ("truncated", truncated_png(), "not a readable image"),
            ("10px", tiny_png(10), "10x10 pixels, under the minimum"),
            ("oversized", png_claiming(20_000, 20_000), "over 89,478,485 pixels, refused"),
        ]
    ),
    Case(
        "score-images-suite-photo-corrupt",
        ["score", "--suite", "{work}/s.toml", "--runs", "{runs}", "--images", "{work}/images"],
        "03.png: not a readable image",
        setup=lambda ws: (
            suite_with_photo(b"garbage")(ws),
            images_with_manifest([row(prompt="on_the_beach")])(ws),
        ),
    ),
    Case(
        "sweep-suite-photo-10px",
        ["sweep", "--method", "dreambooth_lora", "--suite", "{work}/s.toml", "--grid", "rank=2,4"]
        + ["--runs", "{runs}"],
        "03.png: 10x10 pixels",
        setup=suite_with_photo(tiny_png(10)),
    ),
    Case(
        "prompt-file-missing",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "p.toml",
    ),
    Case(
        "prompt-file-bad-toml",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "p.toml",
        setup=write("p.toml", "[[prompt]\n"),
    ),
    Case(
        "prompt-unknown-placeholder",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "only the placeholders",
        setup=write("p.toml", '[[prompt]]\ntemplate = "a {token} {class} on {planet}"\n'),
    ),
    Case(
        "prompt-unbalanced",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "only the placeholders",
        setup=write("p.toml", '[[prompt]]\ntemplate = "a {token} {class} }"\n'),
    ),
    Case(
        "prompt-no-token",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "{token}",
        setup=write("p.toml", '[[prompt]]\ntemplate = "a {class}"\n'),
    ),
    Case(
        "prompt-bad-id",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "prompt id",
        setup=write("p.toml", '[[prompt]]\nid = "../x"\ntemplate = "a {token} {class}"\n'),
    ),
    Case(
        "prompt-empty",
        [*MICRO, "--method", "base", "--prompt-file", "{work}/p.toml"],
        "p.toml",
        setup=write("p.toml", ""),
    ),
    Case("subject-unknown", [*MICRO, "--method", "base", "--subject", "nobody"], "nobody"),
    # ---- subjects add
    Case(
        "add-no-folder",
        ["subjects", "add", "mug", "--class", "mug", "--images", "{work}/nowhere"],
        "nowhere",
    ),
    Case(
        "add-bad-name",
        ["subjects", "add", "../mug", "--class", "mug", "--images", "{work}/photos"],
        "subject name",
        setup=photos(),
    ),
    Case(
        "add-name-newline",
        ["subjects", "add", "mug\n", "--class", "mug", "--images", "{work}/photos"],
        "subject name",
        setup=photos(),
    ),
    Case(
        "add-empty-class",
        ["subjects", "add", "mug", "--class", " ", "--images", "{work}/photos"],
        "--class is empty",
        setup=photos(),
    ),
    Case(
        "add-bad-kind",
        [
            "subjects",
            "add",
            "mug",
            "--class",
            "mug",
            "--kind",
            "plant",
            "--images",
            "{work}/photos",
        ],
        "plant",
        setup=photos(),
    ),
    Case(
        "add-token-space",
        ["subjects", "add", "mug", "--class", "mug", "--token", "a b", "--images", "{work}/photos"],
        "token",
        setup=photos(),
    ),
    Case(
        "add-only-bad-photos",
        ["subjects", "add", "mug", "--class", "mug", "--images", "{work}/bad"],
        "no usable image (0.png: not a readable image",
        setup=write("bad/0.png", truncated_png()),
    ),
    # ---- bench score manifests
    Case(
        "manifest-missing-column",
        SCORE,
        "missing image_index",
        setup=images_with_manifest(
            [{"image": "a.png", "subject": "red_mug", "prompt": "on_the_beach"}]
        ),
    ),
    Case(
        "manifest-fractional-index",
        SCORE,
        "image_index",
        setup=images_with_manifest([row(image_index=0.5)]),
    ),
    Case(
        "manifest-text-index",
        SCORE,
        "image_index",
        setup=images_with_manifest([row(image_index="1.0")]),
    ),
    Case(
        "manifest-negative-index",
        SCORE,
        "image_index",
        setup=images_with_manifest([row(image_index=-1)]),
    ),
    Case(
        "manifest-index-out-of-range",
        SCORE,
        "image_index",
        setup=images_with_manifest([row(image_index=1)]),
    ),
    Case(
        "manifest-bool-index",
        SCORE,
        "image_index",
        setup=images_with_manifest([row(image_index=True)]),
    ),
    Case(
        "manifest-replicate-unknown",
        SCORE,
        "replicate",
        setup=images_with_manifest([row(replicate=7)]),
    ),
    Case(
        "manifest-unknown-subject",
        SCORE,
        "not in suite micro",
        setup=images_with_manifest([row(subject="blue_mug")]),
    ),
    Case(
        "manifest-unknown-prompt",
        SCORE,
        "is not in the object prompt set",
        setup=images_with_manifest([row(prompt="on the moon")]),
    ),
    Case(
        "manifest-duplicate",
        SCORE,
        "a second image",
        setup=images_with_manifest([row(), row(image="b.png")]),
    ),
    Case(
        "manifest-escapes-folder",
        SCORE,
        "outside",
        setup=images_with_manifest([row(image="../secret.png")]),
    ),
    Case(
        "manifest-absolute-outside",
        SCORE,
        "outside",
        setup=lambda ws: images_with_manifest([row(image=str(ws / "work" / "secret.png"))])(ws),
    ),
    Case(
        "manifest-image-missing",
        SCORE,
        "nothere.png",
        setup=images_with_manifest([row(image="nothere.png")]),
    ),
    Case(
        "manifest-truncated-image",
        SCORE,
        "bad.png",
        setup=images_with_manifest([row(image="bad.png")], bad_image=truncated_png()),
    ),
    Case(
        "manifest-not-json",
        SCORE,
        "manifest.jsonl:1",
        setup=write("images/manifest.jsonl", "{not json\n"),
    ),
    Case(
        "manifest-row-not-object",
        SCORE,
        "manifest.jsonl row 1: must be an object",
        setup=write("images/manifest.jsonl", "[1, 2]\n"),
    ),
    Case(
        "manifest-not-utf8",
        SCORE,
        "manifest.jsonl: not UTF-8 text (byte 11 is 0xff); save the manifest as UTF-8",
        setup=write("images/manifest.jsonl", b'{"image": "\xff.png"}\n'),
    ),
    Case(
        "manifest-csv-not-utf8",
        [*SCORE, "--manifest", "{work}/images/m.csv"],
        "m.csv: not UTF-8 text",
        setup=write("images/m.csv", b"image,subject\n\xe9.png,red_mug\n"),
    ),
    Case("manifest-none", SCORE, "no manifest", setup=lambda ws: png(ws / "work/images/a.png")),
    Case(
        "manifest-bad-name",
        [*SCORE, "--name", "x/../y"],
        "--name",
        setup=images_with_manifest([row()]),
    ),
    # ---- weights
    Case(
        "scorer-weights-pickle",
        [*MICRO, "--method", "base", "--scorer-option", "clip.pretrained={work}/weights.pt"],
        "a pickle that would run code",
        setup=pickle_weights,
    ),
    Case(
        "scorer-weights-wrong-model",
        [*MICRO, "--method", "base", "--scorer-option", "clip.pretrained={work}/weights.pt"],
        "not weights of this model",
        setup=plain_tensor_weights,
    ),
    Case(
        "scorer-weights-missing",
        [
            *MICRO,
            "--method",
            "base",
            "--scorer-option",
            "clip.pretrained={work}/nowhere.safetensors",
        ],
        "nowhere.safetensors",
    ),
    Case(
        "scorer-weights-garbage",
        [
            *MICRO,
            "--method",
            "base",
            "--scorer-option",
            "dino.weights_file={work}/w.safetensors",
            "--scorer-option",
            "dino.pretrained=default",
        ],
        "w.safetensors: cannot load it",
        setup=write("w.safetensors", b"\x00" * 64),
    ),
    Case(
        "scorer-option-unknown",
        [*MICRO, "--method", "base", "--scorer-option", "clipp.pretrained=random:0"],
        "clipp",
    ),
    # ---- a damaged store: read commands name the file
    Case(
        "compare-scores-truncated",
        ["compare", "{run}", "{run}", "--runs", "{runs}"],
        "scores.jsonl",
        setup=store_file("*/*/scores.jsonl", truncate),
        stored=True,
    ),
    Case(
        "leaderboard-scores-truncated",
        ["leaderboard", "--runs", "{runs}", "--out", "{work}/lb.md"],
        "scores.jsonl",
        setup=store_file("*/*/scores.jsonl", truncate),
        stored=True,
    ),
    Case(
        "leaderboard-scores-row-lost",
        ["leaderboard", "--runs", "{runs}", "--out", "{work}/lb.md"],
        "its rows do not match the images of",
        setup=store_file("*/*/scores.jsonl", drop_last_row),
        stored=True,
    ),
    Case(
        "compare-scores-row-lost",
        ["compare", "{run}", "{run}", "--runs", "{runs}"],
        "its rows do not match the images of",
        setup=store_file("*/*/scores.jsonl", drop_last_row),
        stored=True,
    ),
    Case(
        "run-run-json-truncated",
        [*MICRO, "--method", "base"],
        "run.json",
        setup=store_file("run.json", truncate),
        stored=True,
    ),
    Case(
        "newer-store-format",
        [*MICRO, "--method", "base"],
        "newer bench",
        stored=True,
        setup=store_file(
            "run.json",
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "format": 99})),
        ),
    ),
    Case(
        "manifest-file-escapes-unit",
        ["score", "--run", "{run}", "--runs", "{runs}", "--convention", "cc101"],
        "outside",
        stored=True,
        setup=store_file(
            "*/*/manifest.json",
            lambda p: p.write_text(
                p.read_text().replace('"images/red-0.png"', '"../../../../secret.png"')
            ),
        ),
    ),
    Case(
        "compare-unknown-run", ["compare", "nope", "--runs", "{runs}"], "no run 'nope'", stored=True
    ),
]


# --------------------------------------------------------------------------- the check


def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under the roots: content hash and permission bits."""
    found = {}
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *sorted(root.rglob("*"))]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            found[str(path)] = (digest, mode)
    return found


@pytest.fixture
def finished_store(micro_base_store) -> Path:
    """A store with one finished, scored micro run of `base` (the session's)."""
    return micro_base_store


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    case, tmp_path, finished_store, monkeypatch
):
    ws = tmp_path
    (ws / "work").mkdir()
    monkeypatch.setenv("BENCH_HOME", str(ws / "home"))
    runs = ws / "runs"
    run_id = ""
    if case.stored:
        shutil.copytree(finished_store, runs)
        run_id = next(runs.glob("micro/*/run.json")).parent.name
    if case.setup:
        case.setup(ws)
    before = snapshot(runs, ws / "home", ws / "work")
    argv = [a.format(runs=runs, work=ws / "work", run=run_id) for a in case.argv]

    result = runner.invoke(app, argv)

    message = result.output.strip()
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}"
    )
    assert result.exit_code == 2, message
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: ") and case.expect in message, message
    assert snapshot(runs, ws / "home", ws / "work") == before
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


@pytest.mark.slow
def test_offline_dreambench_fails_fast_naming_every_missing_model(dreambench_root, tmp_path):
    """Nothing cached, no network: one line within seconds, every model and its option named."""
    import subprocess
    import sys
    import time

    empty = {
        name: str(tmp_path / name)
        for name in ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "BENCH_CACHE", "XDG_CACHE_HOME")
    }
    env = {**os.environ, **empty, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--method",
            "dreambooth_lora",
            "--suite",
            "dreambench",
            "--data-root",
            str(dreambench_root),
            "--runs",
            str(tmp_path / "runs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert done.stdout == "" and seconds < 60
    for model, option in [
        ("backbone stable-diffusion-v1-5/stable-diffusion-v1-5", "--backbone DIR"),
        ("CLIP ViT-B-32/openai", "--scorer-option clip.pretrained=FILE"),
        ("DINO vit_small_patch16_224.dino", "--scorer-option dino.weights_file=FILE"),
        ("LPIPS alex", "--scorer-option div.weights_file=FILE"),
    ]:
        assert f"{model}" in line and option in line, line
    assert not (tmp_path / "runs").exists()


def test_no_unsafe_loading_or_shell_in_the_package():
    """No pickled-weight loading without weights_only, no remote code, no shell built from
    strings, anywhere in bench's sources."""
    import re

    sources = {p: p.read_text() for p in (REPO / "bench").rglob("*.py")}
    for pattern in (
        r"trust_remote_code\s*=\s*True",
        r"shell\s*=\s*True",
        r"os\.system\(",
        r"weights_only\s*=\s*False",
        r"pickle\.loads?\(",
        r"(?<![.\w])eval\(",
        r"(?<![.\w])exec\(",
        r"allow_pickle\s*=\s*True",
    ):
        found = [str(p) for p, text in sources.items() if re.search(pattern, text)]
        assert found == [], f"{pattern}: {found}"
    loads = [str(p) for p, text in sources.items() if re.search(r"torch\.load\(", text)]
    assert loads == [], f"torch.load outside safetensors: {loads}"


@pytest.mark.slow
def test_one_missing_model_keeps_its_own_message(tmp_path):
    """Only CLIP missing (shared by clip_i and clip_t): its own error, with where to get it."""
    import subprocess
    import sys

    empty = {name: str(tmp_path / name) for name in ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME")}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "run", "--method", "base", "--suite", "micro"),
            *("--runs", str(tmp_path / "runs"), "--scorer-option", "clip.pretrained=openai"),
            *("--scorer-option", "clip.model=ViT-B-32"),
        ],
        env={**os.environ, **empty, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        "error: CLIP weights ViT-B-32/openai are not in the local cache and the network is off"
    )
    assert "--scorer-option clip.pretrained=/path/to/open_clip_model.safetensors" in line
    assert not (tmp_path / "runs").exists()
