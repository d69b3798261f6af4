"""Opt-in: with the real CLIP ViT-B/32 (OpenAI) and DINO ViT-S/16 weights in the local cache,
the `real` row on DreamBench reproduces the paper's Real Images numbers (Table 1).
Skipped wherever the weights are not available (as on CI and the developers' machines)."""

import json

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import MissingModel, MissingModels
from bench.scorers.scoring import load_scorers

pytestmark = pytest.mark.real_weights


@pytest.fixture(scope="module")
def real_scorers_available():
    # Only missing weights skip; any other error (a loader bug, a bad option) fails the test.
    try:
        load_scorers(["clip_i", "dino"], {}, device="auto")
    except (MissingModel, MissingModels) as e:
        pytest.skip(f"real scorer weights not available: {e}")


def test_real_images_row_matches_the_paper(real_scorers_available, dreambench_root, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--method",
            "real",
            "--suite",
            "dreambench",
            "--data-root",
            str(dreambench_root),
            "--runs",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["scores"]["metrics"]
    assert metrics["clip_i"]["mean"] == pytest.approx(0.885, abs=0.02)
    assert metrics["dino"]["mean"] == pytest.approx(0.774, abs=0.02)
    assert metrics["clip_i"]["n_subjects"] == 30
