"""The command line end to end: run, resume, determinism across processes, errors."""

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def run_json(*args):
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_run_micro_then_resume(tmp_path):
    first = run_json("--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path)
    assert first["fitted"] == 1 and first["generated"] == 2
    run_dir = Path(first["run_dir"])
    assert run_dir == tmp_path / "micro" / first["run_id"]
    assert first["run_id"].startswith("dreambooth_lora-") and len(first["run_id"]) == 24
    unit = run_dir / "red_mug" / "replicate-0"
    manifest = json.loads((unit / "manifest.json").read_text())
    assert manifest["config"]["steps"] == 8  # the micro suite's default for this method
    assert manifest["backbone"]["id"] == "tiny"
    assert manifest["backbone"]["realness"] == "random weights"
    assert manifest["provenance"]["versions"]["diffusers"]
    assert {i["file"] for i in manifest["images"]} == {
        "images/on_the_beach-0.png",
        "images/red-0.png",
    }
    assert all((unit / i["file"]).is_file() for i in manifest["images"])
    assert manifest["execution"]["generation_batch_size"] == 8

    again = run_json("--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path)
    assert again["run_id"] == first["run_id"] and again["run_dir"] == first["run_dir"]
    assert (again["fitted"], again["generated"], again["skipped_units"]) == (0, 0, 1)
    assert again["scored_units"] == 0  # scores exist from the same scorer models

    # Interrupted after fitting, with one image written: only the missing image is made.
    (unit / "manifest.json").unlink()
    lost = unit / "images" / "red-0.png"
    kept = (unit / "images" / "on_the_beach-0.png").stat().st_mtime_ns
    original = lost.read_bytes()
    lost.unlink()
    resumed = run_json(
        "--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path, "--batch-size", "8"
    )
    assert resumed["fitted"] == 0 and resumed["generated"] == 1
    assert lost.read_bytes() == original
    assert (unit / "images" / "on_the_beach-0.png").stat().st_mtime_ns == kept

    listing = invoke("runs", "--runs", tmp_path, "--json")
    rows = json.loads(listing.stdout)
    assert [(r["run_id"], r["units_done"], r["units_total"]) for r in rows] == [
        (first["run_id"], 1, 1)
    ]


def test_execution_options_do_not_change_the_run_id_but_config_does(tmp_path):
    base = run_json(
        "--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path, "--dry-run"
    )
    batch = run_json(
        "--method",
        "dreambooth_lora",
        "--suite",
        "micro",
        "--runs",
        tmp_path,
        "--dry-run",
        "--batch-size",
        "1",
        "--device",
        "cpu",
    )
    rank = run_json(
        "--method",
        "dreambooth_lora",
        "--suite",
        "micro",
        "--runs",
        tmp_path,
        "--dry-run",
        "--set",
        "rank=2",
    )
    assert base["run_id"] == batch["run_id"] != rank["run_id"]


def test_replicates_are_fit_seeds_each_subject_is_fitted_once_per_seed(tmp_path):
    """--replicates 0,1,2 plans one unit per subject and seed, three times the cells, under
    a run id of its own; the seeds are the suite's replicates, as a suite file would give."""
    common = ["--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path, "--dry-run"]
    one = run_json(*common)
    three = run_json(*common, "--replicates", "0,1,2")
    suite = tmp_path / "micro3.toml"
    from bench.paths import data_dir

    text = (data_dir("suites") / "micro.toml").read_text()
    assert "replicates = [0]" in text
    suite.write_text(text.replace("replicates = [0]", "replicates = [0, 1, 2]"))
    as_file = run_json(*[a if a != "micro" else str(suite) for a in common])
    assert one["replicates"] == 1 and three["replicates"] == 3
    assert three["units_total"] == 3 * one["units_total"]
    assert three["cells"] == 3 * one["cells"]
    assert three["run_id"] != one["run_id"]
    assert as_file["run_id"] == three["run_id"]


def test_unknown_method_lists_the_available_ones():
    result = invoke("run", "--method", "nope")
    assert result.exit_code == 2
    assert "unknown method 'nope'" in result.output and "dreambooth_lora" in result.output
    assert "Traceback" not in result.output
    result = invoke("run", "--method", "dreambooth_lor")
    assert "did you mean 'dreambooth_lora'" in result.output


@pytest.mark.parametrize(
    "setting, message",
    [
        ("rnk=4", "unknown option 'rnk'"),
        ("rank=big", "option 'rank' expects"),
        ("lr", "expected key=value"),
    ],
)
def test_bad_set_values_exit_2_and_write_nothing(tmp_path, setting, message):
    result = invoke(
        "run",
        "--method",
        "dreambooth_lora",
        "--suite",
        "micro",
        "--runs",
        tmp_path,
        "--set",
        setting,
    )
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_listing_commands():
    assert "dreambooth_lora" in invoke("methods").output
    suites = invoke("suites").output
    assert all(name in suites for name in ("dreambench", "smoke", "micro"))
    subjects = invoke("subjects", "list", "smoke").output
    assert "ginger_cat" in subjects and "live" in subjects


def test_progress_in_a_log_is_timed_lines(monkeypatch):
    """Off a terminal, a stage speaks once it has run the interval: then at most once per
    interval as it advances (count, share, time since it started, its latest status), and when
    it ends. A quicker stage says nothing."""
    from rich.console import Console

    from bench.cli.common import LineReporter
    from bench.errors import BenchError

    console, now = Console(file=io.StringIO(), width=200), [100.0]
    reporter = LineReporter(console, every=30.0, clock=lambda: now[0])
    task = reporter.task("fit dog", total=400)
    steps = ((10, "loss 0.5"), (25, "loss 0.4"), (40, ""), (50, "loss 0.3"), (75, "loss 0.2"))
    for seconds, info in steps:
        now[0] = 100.0 + seconds
        task.advance(40, info)
    now[0] = 100.0 + 3725
    task.finish()
    quick = reporter.task("score", total=None)  # 29 s: nothing
    now[0] += 29
    quick.advance(3)
    quick.finish()
    slow = reporter.task("load", total=None)  # one long step: only its end
    now[0] += 45
    slow.finish()
    reporter.message("sweep run 2/4 :dog: [b]")
    assert console.file.getvalue().splitlines() == [
        "fit dog: 120/400 (30%) in 0m40s, loss 0.4",
        "fit dog: 200/400 (50%) in 1m15s, loss 0.2",
        "fit dog: done, 200/400 in 1h02m05s, loss 0.2",
        "load: done, 0 in 0m45s",
        "sweep run 2/4 :dog: [b]",
    ]
    monkeypatch.setenv("BENCH_PROGRESS_SECONDS", "5")
    assert LineReporter(console).every == 5.0
    monkeypatch.setenv("BENCH_PROGRESS_SECONDS", "soon")
    with pytest.raises(BenchError, match="BENCH_PROGRESS_SECONDS='soon'"):
        LineReporter(console)


@pytest.mark.parametrize("method", ["dreambooth_lora", "textual_inversion"])
def test_a_diverging_fit_is_a_one_line_error(tmp_path, method):
    result = invoke(
        "run", "--method", method, "--suite", "micro", "--runs", tmp_path, "--set", "lr=1e30"
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "error: red_mug: training diverged (non-finite loss at lr=1e+30); "
        "lower lr with --set lr=..."
    )
    assert "Traceback" not in result.output
    [unit] = tmp_path.glob("micro/*/red_mug/replicate-0")
    # Nothing of the failed fit is kept: only the unit's claim, let go (empty).
    assert [(p.name, p.read_bytes()) for p in unit.iterdir()] == [(".claim", b"")]


def test_sweep_takes_every_option_run_and_compare_take():
    """A sweep is runs, then comparisons: each option of `run` and `compare` reaches it too
    (less what a sweep decides itself: it always scores, and runs are its cells)."""
    import typer.main

    commands = typer.main.get_command(app).commands

    def options(command: str) -> list[set[str]]:
        """Each option's names (an option may have two: compare's --seed is --bootstrap-seed)."""
        params = commands[command].params
        return [{o for o in p.opts if o.startswith("--")} for p in params if p.opts != [p.name]]

    swept = set().union(*options("sweep"))
    # A sweep scores every run, and runs whole runs in this process (a share of one is
    # `bench run --shard`, a run on Ray `bench run --executor ray`).
    own = {"--no-score", "--shard", "--executor", "--ray-address", "--ray-gpus", "--ray-cpus"}
    missing = [o for o in options("run") + options("compare") if not o & (swept | own)]
    assert missing == []


def test_a_sweeps_backbone_and_prompt_file_reach_its_runs(tmp_path):
    """`bench sweep --backbone B --prompt-file F` makes the runs `bench run --backbone B
    --prompt-file F` makes: the same run ids, which hash the suite's backbone and prompts."""
    prompts = tmp_path / "prompts.toml"
    prompts.write_text('[[prompt]]\nid = "snow"\ntemplate = "a {token} {class} in the snow"\n')
    changed = ["--backbone", "sd15-random", "--prompt-file", prompts]
    common = ["--suite", "micro", "--method", "dreambooth_lora", "--runs", tmp_path, "--dry-run"]

    def invoke(*args) -> dict:
        done = CliRunner().invoke(app, [str(a) for a in (*args, *common, "--json")])
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    swept = invoke("sweep", "--grid", "rank=2", *changed)["runs"][0]["run_id"]
    assert swept == invoke("run", "--set", "rank=2", *changed)["run_id"]
    assert swept != invoke("run", "--set", "rank=2")["run_id"]
