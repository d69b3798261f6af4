"""bench sweep: a 2 x 2 grid on a two-subject suite, its tables (every cell checked against the
library's summary of its run), its plots, and a resumed sweep."""

import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.tools.sweep import SweepSpec, parse_grid

from helpers import DUO

runner = CliRunner()


def sweep(*args):
    result = runner.invoke(app, ["sweep", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_grid_parsing_and_expansion():
    grid = parse_grid(
        ["rank=2,4", "prior_preservation=false,true", 'class_prompt=["a robot", "a toy, red"]']
    )
    assert grid == {
        "rank": [2, 4],
        "prior_preservation": [False, True],
        "class_prompt": ["a robot", "a toy, red"],
    }
    spec = SweepSpec("dreambooth_lora", {"steps": 2}, [{"rank": [2, 4]}, {"rank": [4, 8]}])
    assert spec.cells() == [
        {"steps": 2, "rank": 2},
        {"steps": 2, "rank": 4},
        {"steps": 2, "rank": 8},
    ]
    # Grids that share an option (the seed study's rank): each varied option named once, so a
    # run's label reads "rank=2, prior_preservation=True", not "rank=2, rank=2, ...".
    shared = SweepSpec(
        "dreambooth_lora", {}, [{"rank": [2, 8]}, {"rank": [2, 8], "prior_preservation": [0, 1]}]
    )
    assert shared.varied() == ["rank", "prior_preservation"]


@pytest.mark.slow
def test_sweep_writes_tables_and_plots_and_resumes(tmp_path):
    suite = tmp_path / "duo.toml"
    suite.write_text(DUO)
    args = [
        "--method",
        "dreambooth_lora",
        "--suite",
        suite,
        "--grid",
        "rank=2,4",
        "--grid",
        "prior_preservation=false,true",
        "--set",
        "num_class_images=2",
        "--set",
        "steps=8",
        "--checkpoints",
        "1",
        "--runs",
        tmp_path,
        "--resamples",
        "200",
    ]
    # Through the library; the command's resumed sweep below must find the same runs done.
    import bench

    made = bench.sweep(
        "dreambooth_lora",
        bench.load_suite(suite),
        grid={"rank": [2, 4], "prior_preservation": [False, True]},
        options={"num_class_images": 2, "steps": 8},
        checkpoints=1,
        runs=tmp_path,
        stats=bench.StatsOptions(n_resamples=200),
    )
    first = {"runs": made.runs, "fitted": made.fitted, "sweep_dir": str(made.sweep_dir)}
    assert len(first["runs"]) == 4 and first["fitted"] == 4 * 2  # runs x subjects
    out = Path(first["sweep_dir"])
    text = (out / "sweep.md").read_text()
    assert "## rank" in text and "## prior_preservation" in text
    tables = json.loads((out / "sweep.json").read_text())["tables"]
    assert sorted(r["rank"] for r in tables["rank"]) == [2, 2, 4, 4]
    assert sorted(r["prior_preservation"] for r in tables["prior_preservation"]) == [
        False,
        False,
        True,
        True,
    ]
    assert "best (optimistic)" in text
    # Two subjects: means without intervals, and the table says why.
    assert "No interval with 2 subjects: below 5 no interval method keeps 95% coverage." in text
    assert text.startswith("# ") and "(random weights)" in text.splitlines()[0]
    data = json.loads((out / "sweep.json").read_text())
    assert data["random_weights"] is True
    check_table_values(data, tmp_path / "duo")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "metric_vs_step.png" in pngs and "tradeoff_clip_t_vs_clip_i.png" in pngs
    assert len([p for p in pngs if p.startswith("contact_")]) == 4
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            image.verify()

    board = tmp_path / "board" / "LEADERBOARD.md"
    text = bench.leaderboard(runs=tmp_path, out=board, stats=bench.StatsOptions(n_resamples=100))
    assert "## Sweeps" in text and "tradeoff_clip_t_vs_clip_i.png" in text
    link = text.split("](", 1)[1].split(")", 1)[0]
    assert (board.parent / link).is_file()  # the link is relative to the leaderboard file

    again = sweep(*args)
    assert again["fitted"] == 0 and again["generated"] == 0
    assert again["sweep_dir"] == first["sweep_dir"]


# "mean [low, high]", or the mean alone where there is no interval (fewer than 5 subjects).
CELL = re.compile(r"^(-?\d+\.\d+)(?: \[(-?\d+\.\d+), (-?\d+\.\d+)\])?(?: @ (\d+))?$")
NAMES = {"clip_i": "CLIP-I", "clip_t": "CLIP-T", "dino": "DINO"}


def parse_cell(text: str):
    match = CELL.match(text)
    assert match, text
    mean, low, high, step = match.groups()
    bounds = (float(low), float(high)) if low else (math.nan, math.nan)
    return (float(mean), *bounds), (int(step) if step else None)


def check_table_values(data: dict, suite_dir: Path) -> None:
    """Every cell of the sweep's tables is the library's summary of its run (and checkpoint)."""
    from bench.analysis.options import StatsOptions
    from bench.analysis.results import checkpoint_steps, load_results, summarize

    def summary(run_id, checkpoint=None):
        results = load_results(suite_dir / run_id, checkpoint=checkpoint)
        return summarize(results, StatsOptions(n_resamples=200))

    checked = 0
    for rows in data["tables"].values():
        for row in rows:
            intervals = summary(row["run"])
            for metric, name in NAMES.items():
                iv = intervals[metric]
                values, _ = parse_cell(row[name])
                assert values == pytest.approx((iv.mean, iv.low, iv.high), abs=5e-5, nan_ok=True)
                checked += 1
    assert checked == 2 * 4 * 3  # two tables, four runs, three metrics
    for row in data["checkpoints"]:
        steps = checkpoint_steps(suite_dir / row["run"])
        assert steps == [4]  # 8 steps, one intermediate checkpoint
        points = {4: summary(row["run"], 4), 8: summary(row["run"])}
        for metric, name in NAMES.items():
            final, _ = parse_cell(row[f"{name} final"])
            iv = points[8][metric]
            assert final == pytest.approx((iv.mean, iv.low, iv.high), abs=5e-5, nan_ok=True)
            best, step = parse_cell(row[f"{name} best (optimistic)"])
            best_step = max(points, key=lambda s, m=metric: points[s][m].mean)
            iv = points[best_step][metric]
            assert step == best_step
            assert best == pytest.approx((iv.mean, iv.low, iv.high), abs=5e-5, nan_ok=True)


@pytest.mark.slow
def test_tables_of_several_grids_read_whole_and_in_value_order(tmp_path):
    """With several grids (as the seed study's), an option a cell leaves alone shows the value
    its run used (left blank only where that is None, the method's to decide, never NaN);
    numbers sort by value (2 before 10), not as text."""
    import bench
    from bench.methods.dreambooth_lora import Config

    suite = tmp_path / "duo.toml"
    suite.write_text(DUO)  # its dreambooth_lora defaults: lr 1e-2, no rank (the method's)
    spec = tmp_path / "two.sweep.toml"
    spec.write_text(
        'method = "dreambooth_lora"\n[[grid]]\nrank = [10, 2]\n[[grid]]\nlr = [3e-3, 1e-3]\n'
        "[[grid]]\nalpha = [8.0, 4.0]\n"  # alpha's default is None: the method sets it
    )
    made = bench.sweep(
        suite=bench.load_suite(suite),
        sweep_file=spec,
        runs=tmp_path,
        stats=bench.StatsOptions(n_resamples=50),
    )
    tables = json.loads((Path(made.sweep_dir) / "sweep.json").read_text())["tables"]
    assert [(r["rank"], r["lr"]) for r in tables["rank"]] == [(2, 1e-2), (10, 1e-2)]
    assert [(r["lr"], r["rank"]) for r in tables["lr"]] == [
        (1e-3, Config.rank),
        (3e-3, Config.rank),
    ]
    assert [r["alpha"] for r in tables["rank"]] == ["", ""]  # None: no number, no NaN
    assert [r["alpha"] for r in tables["alpha"]] == [4.0, 8.0]
    text = (Path(made.sweep_dir) / "sweep.md").read_text()
    assert text.index("|      2 |") < text.index("|     10 |")
    assert "nan" not in text.lower()


def test_presets_are_listed_and_plan(tmp_path):
    result = runner.invoke(app, ["sweep", "--list-presets"])
    assert result.exit_code == 0 and "seed-study" in result.stdout
    plan = sweep("--preset", "seed-study", "--suite", "micro", "--runs", tmp_path, "--dry-run")
    options = [r["options"] for r in plan["runs"]]
    assert {"lr": 1e-6} in [{k: v for k, v in o.items() if k == "lr"} for o in options]
    assert any(o.get("train_text_encoder") and o.get("prior_preservation") for o in options)
    # 4 checkpoints of micro's 8 steps: every ceil(8 / 5) = 2 steps.
    assert all(o["checkpoint_every"] == 2 for o in options if "steps" not in o)
    assert len({r["run_id"] for r in plan["runs"]}) == len(plan["runs"])
    assert not list(tmp_path.rglob("*.png"))
    # The toy world's version: its grids around the world suite's defaults (lr 2e-3, rank 16,
    # 400 steps), on one subject.
    world = sweep(
        "--preset", "seed-study-world", "--suite", "world", "--subject", "blue_robot",
        "--runs", tmp_path, "--dry-run",
    )  # fmt: skip
    options = [r["options"] for r in world["runs"]]
    assert sorted({o["lr"] for o in options if "lr" in o}) == [2e-4, 1e-3, 5e-3, 2e-2]
    assert sorted({o["rank"] for o in options if "rank" in o}) == [2, 8, 32, 128]
    assert all(o["checkpoint_every"] == 80 for o in options)  # ceil(400 / 5)
    assert not list(tmp_path.rglob("*.png"))


def test_bad_grid_is_one_line_exit_2(tmp_path):
    result = runner.invoke(
        app,
        [
            "sweep",
            "--method",
            "dreambooth_lora",
            "--suite",
            "micro",
            "--grid",
            "rank",
            "--runs",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "expected key=v1,v2" in result.output
    result = runner.invoke(
        app,
        [
            "sweep",
            "--method",
            "dreambooth_lora",
            "--suite",
            "micro",
            "--grid",
            "rnak=2,4",
            "--runs",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "did you mean 'rank'" in result.output
    assert not any(tmp_path.iterdir())


def test_checkpoints_need_a_method_that_declares_them(tmp_path):
    result = runner.invoke(
        app,
        ["sweep", "--method", "textual_inversion", "--suite", "micro", "--grid", "lr=1e-3,1e-2"]
        + ["--checkpoints", "2", "--runs", str(tmp_path), "--dry-run"],
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --checkpoints: method textual_inversion does not save intermediate adapters "
        "(it does not declare supports_checkpoints); drop --checkpoints"
    )
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
