"""bench as a library: the README's notebook example, and the API giving what the CLI prints."""

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

import bench
from bench.cli import app
from bench.methods.base import Base

from helpers import copy_runs, run_score, stored_rows


@pytest.fixture(scope="module")
def store(duo_store, tmp_path_factory):
    """The session's DreamBooth-LoRA (rank 2) and `base` runs of the two-subject suite, as `run`
    returned them fresh, and a copy of them in a store of this module's own (`root`)."""
    root = tmp_path_factory.mktemp("api")
    copied = copy_runs(duo_store, ["rank2", "base"], root)
    made = duo_store["made"]
    return {
        "root": copied["runs"],
        "suite": bench.load_suite(copied["suite"]),
        "suite_file": copied["suite"],
        "lora": made["rank2"],
        "base": made["base"],
        "shared": duo_store["runs"],
        "stats": duo_store["stats"],
    }


def cli_json(*args):
    result = CliRunner().invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_import_bench_is_cheap():
    """`import bench` loads neither torch nor diffusers: the API is imported on first use."""
    code = "import sys, bench; print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_returns_the_scores_the_store_holds(store):
    lora = store["lora"]
    assert lora.run_dir == store["shared"] / "duo" / lora.run_id
    assert (lora.fitted, lora.generated, lora.scored_units) == (2, 4, 2)
    rows = stored_rows(lora.run_dir)
    for metric in ("clip_i", "clip_t", "dino"):
        by_hand = run_score({k: r[metric] for k, r in rows.items()})
        assert lora.intervals[metric].mean == pytest.approx(by_hand, abs=1e-12)
        assert lora.intervals[metric].n_resamples == 500
    # The CLI names and finds the same run, and has nothing left to do.
    again = cli_json(
        "run", "--method", "dreambooth_lora", "--suite", store["suite_file"],
        "--runs", store["root"], "--set", "rank=2", "--resamples", "500",
    )  # fmt: skip
    assert again["run_id"] == lora.run_id and again["fitted"] == again["generated"] == 0
    assert again["scores"]["metrics"]["dino"]["mean"] == lora.intervals["dino"].mean


def test_a_method_instance_defined_in_a_notebook_runs_without_registration(store):
    @dataclass(frozen=True)
    class Options:
        pass

    class ClassOnly(Base):
        name = "class_only_notebook"
        Config = Options

    # A class works as well as a name: it is the same run, found finished.
    by_class = bench.run(Base, store["suite"], runs=store["root"], score=False)
    assert by_class.run_id == store["base"].run_id and by_class.generated == 0
    result = bench.run(ClassOnly(), store["suite"], runs=store["root"], score=False)
    assert result.run_id.startswith("class_only_notebook-") and result.generated == 4
    # Same noise, same prompts, same backbone as `base`: the same images, byte for byte.
    base = store["base"].run_dir
    for png in sorted(result.run_dir.glob("*/replicate-0/images/*.png")):
        assert png.read_bytes() == (base / png.relative_to(result.run_dir)).read_bytes()


def test_compare_summarize_and_leaderboard_match_the_cli(store, tmp_path):
    lora, base, stats = store["lora"], store["base"], store["stats"]
    comparisons = bench.compare([lora.run_dir, base.run_id], runs=store["root"], stats=stats)
    printed = cli_json(
        "compare", lora.run_id, base.run_id, "--runs", store["root"], "--resamples", "500"
    )["comparisons"]
    assert len(comparisons) == len(printed) == 3
    for c, p in zip(comparisons, printed, strict=True):
        assert (c.metric, c.run_a, c.run_b) == (p["metric"], p["run_a"], p["run_b"])
        values = (c.result.diff, c.result.low, c.result.high, c.result.p_holm)
        # JSON has no NaN: a missing bound (fewer than 5 subjects) is null.
        assert [None if v != v else v for v in values] == [
            p["diff"], p["low"], p["high"], p["p_holm"]
        ]  # fmt: skip

    summary = bench.summarize(lora.run_id, runs=store["root"], stats=stats)
    assert repr(summary) == repr(lora.intervals)  # repr: NaN bounds compare equal

    text = bench.leaderboard(runs=store["root"], out=tmp_path / "LB.md", stats=stats)
    assert (tmp_path / "LB.md").read_text() == text
    assert f"`{lora.run_id}` (random weights)" in text and f"`{base.run_id}`" in text
    unwritten = bench.leaderboard(runs=store["root"], out=None, stats=stats)

    def body(page):  # without the line that says when it was written
        return [line for line in page.splitlines() if not line.startswith("Written by")]

    assert body(unwritten) == body(text)


def test_sweep_dry_run_plans_ordinary_runs(store):
    planned = bench.sweep(
        "dreambooth_lora", store["suite"], grid={"rank": [2, 4]}, runs=store["root"], dry_run=True
    )
    ids = [run_id for _, run_id in planned.runs]
    assert [options for options, _ in planned.runs] == [{"rank": 2}, {"rank": 4}]
    assert ids[0] == store["lora"].run_id  # rank 2 is the run made above
    assert planned.sweep_dir.parent == store["root"] / "duo" and planned.report is None
