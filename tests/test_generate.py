"""`bench generate`: the same noise per column under every prompt, as one deterministic grid."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

from helpers import documented_seed

runner = CliRunner()
SIZE = 32  # the micro suite's resolution
SANTA = "a sks mug wearing a santa hat"
RED = "a red sks mug"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))


def generate(out: Path, *args, prompts=(SANTA, RED, SANTA)):
    rows = [a for p in prompts for a in ("--prompt", p)]
    result = runner.invoke(
        app, ["generate", *rows, "--images", "2", "--out", str(out), *map(str, args)]
    )
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out)), json.loads(out.with_suffix(".json").read_text())


def tiles(grid: np.ndarray) -> list[list[np.ndarray]]:
    rows, columns = grid.shape[0] // SIZE, grid.shape[1] // SIZE
    return [
        [grid[r * SIZE : (r + 1) * SIZE, c * SIZE : (c + 1) * SIZE] for c in range(columns)]
        for r in range(rows)
    ]


def test_base_model_grid_is_deterministic_and_rows_share_the_noise(tmp_path, monkeypatch):
    from diffusers import StableDiffusionPipeline

    received = []
    call = StableDiffusionPipeline.__call__

    def spy(self, *args, **kwargs):
        received.append((list(kwargs["prompt"]), kwargs["latents"].clone()))
        return call(self, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(StableDiffusionPipeline, "__call__", spy)
        grid, sidecar = generate(tmp_path / "a.png", "--suite", "micro")
    # What reached the pipeline: column c's noise is torch.randn from the seed sha256 gives for
    # "generate/<seed>/<c>", the same in every row.
    seeds = [documented_seed("generate", 0, c) for c in range(2)]
    column_noise = [
        torch.randn((4, 16, 16), generator=torch.Generator().manual_seed(s)) for s in seeds
    ]
    assert [prompts for prompts, _ in received] == [[SANTA] * 2, [RED] * 2, [SANTA] * 2]
    for _, latents in received:
        assert all(torch.equal(latents[c], column_noise[c]) for c in range(2))
    generate(tmp_path / "b.png", "--suite", "micro")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()

    assert grid.shape == (3 * SIZE, 2 * SIZE, 3)  # rows = prompts, columns = images
    t = tiles(grid)
    for c in range(2):
        assert np.array_equal(t[0][c], t[2][c])  # same prompt, same noise: same tile
        assert not np.array_equal(t[0][c], t[1][c])  # another prompt, same noise: another tile
    assert not np.array_equal(t[0][0], t[0][1])  # each column has its own noise
    assert grid.std() > 0

    assert sidecar["prompts"] == [SANTA, RED, SANTA]
    assert sidecar["seeds"] == [documented_seed("generate", 0, c) for c in range(2)]
    assert sidecar["adapter"] is None
    assert sidecar["backbone"]["id"] == "tiny" and sidecar["suite"] == "micro"
    assert sidecar["generation"]["steps"] == 4 and sidecar["resolution"] == SIZE

    # Another seed, other noise.
    other, _ = generate(tmp_path / "c.png", "--suite", "micro", "--seed", "1")
    assert not np.array_equal(tiles(other)[0][0], t[0][0])


def test_a_runs_adapter_changes_the_images(tmp_path):
    runs = tmp_path / "runs"
    made = runner.invoke(
        app,
        ["run", "--method", "dreambooth_lora", "--suite", "micro"]
        + ["--runs", str(runs), "--no-score", "--json"],
    )
    assert made.exit_code == 0, made.output
    run_id = json.loads(made.stdout)["run_id"]

    base, _ = generate(tmp_path / "base.png", "--suite", "micro", prompts=(SANTA, RED))
    tuned, sidecar = generate(
        tmp_path / "tuned.png",
        "--run",
        run_id,
        "--runs",
        runs,
        prompts=("a {token} {class} wearing a santa hat", RED),
    )
    assert sidecar["prompts"] == [SANTA, RED]  # the run's subject fills the placeholders
    assert sidecar["suite"] == "micro" and sidecar["resolution"] == SIZE  # the run's setting
    weights = (
        runs / "micro" / run_id / "red_mug" / "replicate-0" / "pytorch_lora_weights.safetensors"
    )
    assert sidecar["adapter"]["path"] == str(weights) and sidecar["adapter"]["subject"] == "red_mug"
    assert tuned.shape == base.shape
    for base_row, tuned_row in zip(tiles(base), tiles(tuned), strict=True):
        for b, t in zip(base_row, tuned_row, strict=True):
            assert not np.array_equal(b, t)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--subject", "red_mug"], "pass --run RUN too"),
        (["--run", "dreambooth_lora-00000000"], "no run 'dreambooth_lora-00000000'"),
        (["--out", "grid.jpg"], "give a path ending in .png"),
        (["--prompt", "a {token} {class}"], "need a subject"),
    ],
)
def test_bad_arguments_exit_2_on_one_line(tmp_path, args, message):
    result = runner.invoke(
        app, ["generate", "--prompt", RED, "--suite", "micro", "--runs", str(tmp_path), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.png"))


def test_any_methods_run_renders_through_its_method(tmp_path):
    """`--run` goes through the run's method: a Textual Inversion run renders its learned token,
    and the grid equals the pipeline called by hand with that embedding and the column noise."""
    from bench.diffusion.backbone import load_backbone
    from bench.methods.textual_inversion import ARTIFACT

    runs = tmp_path / "runs"
    made = runner.invoke(
        app,
        ["run", "--method", "textual_inversion", "--suite", "micro", "--set", "steps=2"]
        + ["--runs", str(runs), "--no-score", "--json"],
    )
    assert made.exit_code == 0, made.output
    run_id = json.loads(made.stdout)["run_id"]
    template = "a {token} {class} wearing a santa hat"
    grid, sidecar = generate(
        tmp_path / "ti.png", "--run", run_id, "--runs", runs, prompts=(template,)
    )
    rendered = "a <sks> mug wearing a santa hat"  # the method's token, not the subject's
    assert sidecar["prompts"] == [rendered]
    unit = runs / "micro" / run_id / "red_mug" / "replicate-0"
    assert sidecar["adapter"]["method"] == "textual_inversion"
    assert sidecar["adapter"]["path"] == str(unit / ARTIFACT)

    pipe = load_backbone("tiny", scheduler="DDIMScheduler", device="cpu").pipe
    pipe.load_textual_inversion(unit / ARTIFACT)
    seeds = [documented_seed("generate", 0, c) for c in range(2)]
    latents = torch.stack(
        [torch.randn((4, 16, 16), generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    with torch.no_grad():
        by_hand = pipe(
            prompt=[rendered] * 2,
            negative_prompt=[""] * 2,
            height=SIZE,
            width=SIZE,
            num_inference_steps=4,
            guidance_scale=7.5,
            latents=latents,
            generator=[torch.Generator().manual_seed(s + 1) for s in seeds],
            output_type="np",
        ).images
    expected = [(image * 255).round().clip(0, 255).astype(np.uint8) for image in by_hand]
    [row] = tiles(grid)
    assert all(np.array_equal(tile, e) for tile, e in zip(row, expected, strict=True))
