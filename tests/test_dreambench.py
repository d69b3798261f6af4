import json

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import dreambench
from bench.data.plan import plan
from bench.data.prompts import load_prompt_set
from bench.data.suites import load_suite
from bench.errors import BenchError


def test_importer_reads_the_public_layout(dreambench_root):
    subjects, objects, live = dreambench.read_dreambench(dreambench_root)
    assert len(subjects) == 30
    live_ids = {s.id for s in subjects if s.kind == "live"}
    assert live_ids == {"cat", "cat2", "dog", "dog2", "dog3", "dog5", "dog6", "dog7", "dog8"}
    by_id = {s.id: s for s in subjects}
    assert by_id["bear_plushie"].class_noun == "stuffed animal"
    assert by_id["pink_sunglasses"].class_noun == "glasses"
    assert sum(len(s.images) for s in subjects) == 158
    assert all(3 <= len(s.images) <= 6 for s in subjects)
    assert len(objects.prompts) == 25 and len(live.prompts) == 25
    assert objects.prompts[0].template == "a {token} {class} in the jungle"
    assert live.prompts[11].template == "a {token} {class} wearing a santa hat"


def test_shipped_prompt_lists_equal_the_dataset(dreambench_root):
    _, objects, live = dreambench.read_dreambench(dreambench_root)
    assert load_prompt_set("dreambench_object").prompts == objects.prompts
    assert load_prompt_set("dreambench_live").prompts == live.prompts


def test_missing_data_root_names_the_public_source(monkeypatch, tmp_path):
    monkeypatch.delenv(dreambench.ENV_VAR, raising=False)
    with pytest.raises(BenchError, match="github.com/google/dreambooth"):
        dreambench.data_root(None)
    with pytest.raises(BenchError, match="not a DreamBench folder.*github.com/google/dreambooth"):
        dreambench.data_root(tmp_path)


def test_env_var_points_at_the_dataset(monkeypatch, dreambench_root):
    monkeypatch.setenv(dreambench.ENV_VAR, str(dreambench_root))
    suite = load_suite("dreambench")
    assert len(suite.subjects) == 30


def test_dreambench_suite_plans_3000_cells_on_tiny(dreambench_root, tmp_path):
    suite = load_suite("dreambench", data_root=dreambench_root, backbone="tiny")
    cells = plan(suite)
    # The paper's 3,000 images, and 4 prior images ("a dog") per subject for PRES.
    assert len([c for c in cells if c.prompt.id != "prior"]) == 3000
    assert len(cells) == 3000 + 30 * 4
    assert len({c.seed for c in cells}) == len(cells)
    assert suite.generation.steps == 50 and suite.generation.guidance_scale == 7.5
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--method",
            "dreambooth_lora",
            "--suite",
            "dreambench",
            "--backbone",
            "tiny",
            "--data-root",
            str(dreambench_root),
            "--runs",
            str(tmp_path),
            "--dry-run",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["cells"] == 3120 and info["units_pending"] == 30 and info["backbone"] == "tiny"
    assert not any(tmp_path.iterdir())  # planned, not run


def test_cli_without_dataset_is_one_line_exit_2(monkeypatch, tmp_path):
    monkeypatch.delenv(dreambench.ENV_VAR, raising=False)
    result = CliRunner().invoke(app, ["subjects", "list", "dreambench"])
    assert result.exit_code == 2
    assert "github.com/google/dreambooth" in result.output
