"""bench.images.read_image: every photo read as a viewer shows it, in 8-bit RGB, or a one-line
error naming the file; and the places that read images go through it."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from bench.errors import BenchError
from bench.images import MIN_SIDE, read_image

WHITE = np.array((255, 255, 255))  # the promised background of transparent pixels (README)


def quadrants(width=40, height=24) -> np.ndarray:
    """A picture whose orientation shows: red left half, blue right half, a green top row."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2 :] = (0, 0, 255)
    a[0] = (0, 255, 0)
    return a


def test_exif_orientation_is_applied(tmp_path):
    original = quadrants()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.png"
    Image.fromarray(original).save(path, exif=exif)
    shown = np.asarray(read_image(path))
    # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise.
    assert np.array_equal(shown, np.rot90(original, k=-1))
    assert shown.shape == (40, 24, 3)


@pytest.mark.parametrize(("suffix", "byte_order"), [(".png", "<"), (".tif", "<"), (".tif", ">")])
def test_every_16_bit_value_is_scaled_to_the_nearest_8_bit_one(tmp_path, suffix, byte_order):
    """All 65,536 values of a 16-bit greyscale image (a 256 x 256 picture holding each once):
    v becomes round(v * 255 / 65535), 0 -> 0 and 65535 -> 255, whatever the file's byte order."""
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = tmp_path / f"ramp{suffix}"
    mode = "I;16" if byte_order == "<" else "I;16B"
    raw = values.astype(f"{byte_order}u2").tobytes()
    Image.frombytes(mode, (256, 256), raw).save(path)
    got = np.asarray(read_image(path))
    # v * 255 / 65535 = v / 257 is never a half (257 is odd), so rounding is unambiguous.
    expected = ((values.astype(np.int64) * 2 * 255 + 65535) // (2 * 65535)).astype(np.uint8)
    assert np.array_equal(got[..., 0], expected)
    assert np.array_equal(got[..., 1], expected) and np.array_equal(got[..., 2], expected)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]] * MIN_SIDE, dtype=np.uint16)
    values = np.repeat(values, MIN_SIDE // 4 + 1, axis=1)[:, :MIN_SIDE]
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    got = np.asarray(read_image(path))
    expected = np.round(values / 65535 * 255).astype(np.uint8)
    assert np.array_equal(got[..., 0], expected) and np.array_equal(got[..., 2], expected)
    assert got[0, 0, 0] == 0 and got[0, -1, 0] == 255 and got[0, 10, 0] == 128
    # PIL's own conversion clips these to white: the bug this guards against.
    assert Image.open(path).convert("RGB").getpixel((10, 0)) == (255, 255, 255)


def test_transparency_is_composited_on_the_stated_background(tmp_path):
    rgba = np.zeros((MIN_SIDE, MIN_SIDE, 4), dtype=np.uint8)
    rgba[:, :8] = (10, 200, 30, 0)  # invisible, with a hidden colour
    rgba[:, 8:] = (200, 0, 0, 255)  # opaque red
    rgba[0, 8] = (0, 0, 0, 128)  # half-transparent black
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    got = np.asarray(read_image(path)).astype(int)
    assert (got[:, :8] == WHITE).all()  # the hidden colour does not leak
    assert (got[1:, 8:] == (200, 0, 0)).all()
    assert np.abs(got[0, 8] - WHITE * (1 - 128 / 255)).max() <= 1
    # A palette with a transparent entry, the same way.
    palette = Image.new("P", (MIN_SIDE, MIN_SIDE), 1)
    palette.putpalette([0, 255, 0, 50, 50, 50] + [0] * 762)
    palette.info["transparency"] = 1
    palette.save(tmp_path / "palette.png", transparency=1)
    assert (np.asarray(read_image(tmp_path / "palette.png")) == WHITE).all()


def test_cmyk_is_converted(tmp_path):
    cyan = Image.new("CMYK", (MIN_SIDE, MIN_SIDE), (255, 0, 0, 0))
    cyan.save(tmp_path / "print.tif")
    assert np.asarray(read_image(tmp_path / "print.tif"))[0, 0].tolist() == [0, 255, 255]


def test_bad_images_are_one_line_errors_naming_the_file(tmp_path, monkeypatch):
    small = tmp_path / "tiny.png"
    Image.new("RGB", (MIN_SIDE - 1, 40)).save(small)
    with pytest.raises(
        BenchError, match=f"tiny.png: 15x40 pixels, under the minimum of {MIN_SIDE}"
    ):
        read_image(small)
    whole = io.BytesIO()
    Image.fromarray(quadrants(64, 64)).save(whole, format="JPEG")
    broken = tmp_path / "cut.jpg"
    broken.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(BenchError, match="cut.jpg: not a readable image") as error:
        read_image(broken)
    assert "\n" not in str(error.value)
    with pytest.raises(BenchError, match="missing.png: no such image file"):
        read_image(tmp_path / "missing.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(big)  # 400 pixels: over twice the limit
    with pytest.raises(BenchError, match="bomb.png: over 100 pixels, refused as a possible"):
        read_image(big)
    Image.new("RGB", (12, 12)).save(big)  # 144: between the limit and twice it (a warning)
    with pytest.raises(BenchError, match="decompression bomb"):
        read_image(big)


def test_training_reads_photos_through_it(tmp_path):
    """A 16-bit photo reaches training scaled, and a sideways phone photo upright."""
    from bench.diffusion.training import load_images

    values = np.full((32, 32), 32896, dtype=np.uint16)  # mid grey in 16 bits
    Image.fromarray(values).save(tmp_path / "grey16.png")
    pixels = load_images([tmp_path / "grey16.png"], 32)
    assert pixels.shape == (1, 3, 32, 32)
    assert pixels.abs().max().item() < 0.01  # 128/127.5 - 1: mid grey, not clipped to white


def test_bench_score_refuses_a_truncated_image_before_writing(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    folder = tmp_path / "outside"
    folder.mkdir()
    whole = io.BytesIO()
    Image.fromarray(quadrants(64, 64)).save(whole, format="JPEG")
    (folder / "a.jpg").write_bytes(whole.getvalue()[:300])
    (folder / "manifest.jsonl").write_text(
        json.dumps({"image": "a.jpg", "subject": "red_mug", "prompt": "red", "image_index": 0})
        + "\n"
    )
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["score", "--images", str(folder), "--suite", "micro", "--runs", str(runs)]
    )
    assert result.exit_code == 2
    assert "a.jpg: not a readable image" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.rglob("*"))


def test_no_image_is_opened_anywhere_else():
    """Subjects, training, scoring, `bench score` and the contact sheets all read images through
    read_image: no other module of the package opens one itself."""
    from pathlib import Path

    import bench

    root = Path(bench.__file__).parent
    openers = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "Image.open(" in p.read_text() and p.name != "images.py"
    ]
    assert openers == []
