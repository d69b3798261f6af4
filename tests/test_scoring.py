"""Scoring inside `bench run`: per-image rows in scores.jsonl, labelled scorer models, rescoring
only when the scorer models change."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import BenchError
from bench.scorers.scoring import options_for, parse_scorer_options

from helpers import documented_seed

runner = CliRunner()


def test_scorer_option_prefixes():
    table = {"clip": {"pretrained": "a", "batch_size": 4}, "clip_t": {"pretrained": "b"}}
    assert options_for("clip_i", table) == {"pretrained": "a", "batch_size": 4}
    assert options_for("clip_t", table) == {"pretrained": "b", "batch_size": 4}
    assert options_for("dino", table) == {}
    assert parse_scorer_options(["clip.pretrained=/w.safetensors", "dino.batch_size=8"]) == {
        "clip": {"pretrained": "/w.safetensors"},
        "dino": {"batch_size": 8},
    }
    with pytest.raises(BenchError, match="expected SCORER.OPTION=VALUE"):
        parse_scorer_options(["pretrained=x"])


def run(*args):
    result = runner.invoke(
        app, ["run", "--method", "dreambooth_lora", "--suite", "micro", *map(str, args), "--json"]
    )
    return result


def test_run_scores_every_image(tmp_path):
    result = run("--runs", tmp_path)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["scored_units"] == 1
    scores = out["scores"]
    assert scores["random_weights"] is True
    assert set(scores["metrics"]) == {"clip_i", "clip_t", "dino"}
    assert scores["scorers"]["clip_i"] == {
        "model": "open_clip:tiny-random/seed0",
        "random_weights": True,
        "display_name": "CLIP-I",  # what the scorer declares, read by every report
        "higher_is_better": True,
    }
    clip_i = scores["metrics"]["clip_i"]
    assert clip_i["n_images"] == 2 and clip_i["n_subjects"] == 1
    assert clip_i["low"] is None  # one subject: a mean, no interval
    rows = [
        json.loads(line)
        for line in (Path(out["run_dir"]) / "red_mug/replicate-0/scores.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [(r["prompt_id"], r["image_index"]) for r in rows] == [("on_the_beach", 0), ("red", 0)]
    row = rows[1]
    assert row["prompt"] == "a red sks mug" and row["scoring_prompt"] == "a red mug"
    assert row["image"] == "red_mug/replicate-0/images/red-0.png"
    # The values themselves are recomputed from the PNGs in test_definitions.py.
    assert row["scorers"]["dino"]["random_weights"] is True
    assert row["seed"] == documented_seed("red_mug", "red", 0, 0) and row["replicate"] == 0

    again = json.loads(run("--runs", tmp_path).stdout)
    assert again["scored_units"] == 0
    assert again["scores"]["metrics"]["clip_i"]["mean"] == clip_i["mean"]

    other = json.loads(
        run("--runs", tmp_path, "--scorer-option", "dino.pretrained=random:1").stdout
    )
    assert other["scored_units"] == 1 and other["generated"] == 0
    assert other["scores"]["scorers"]["dino"]["model"] == "timm:tiny-random/seed1"
    assert other["scores"]["metrics"]["dino"]["mean"] != out["scores"]["metrics"]["dino"]["mean"]


def test_bad_scorer_options_exit_2_before_any_work(tmp_path):
    result = run("--runs", tmp_path, "--scorer-option", "blip.model=x")
    assert result.exit_code == 2 and "match no scorer" in result.output
    result = run("--runs", tmp_path, "--scorer-option", "clip.colour=red")
    assert result.exit_code == 2 and "scorer clip_i: unknown option 'colour'" in result.output
    assert not any(tmp_path.iterdir())


def test_no_score_skips_scoring(tmp_path):
    out = json.loads(run("--runs", tmp_path, "--no-score").stdout)
    assert "scores" not in out
    assert not list(Path(out["run_dir"]).rglob("scores.jsonl"))
