"""The store is whole or refused: a damaged or incomplete unit is found and redone by the next
run, `bench runs` reports it, other weights under the same file name are another scorer, a
run's own lock names its holder, killed and interrupted runs resume to exactly the store of an
uninterrupted run, a full or read-only disk is one line, and files get the user's umask."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()
MICRO_BASE = ["run", "--method", "base", "--suite", "micro"]
# Facts of when and where a file was written, not of what the run made.
VOLATILE = {"provenance", "timings", "seconds"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def store_state(runs: Path) -> dict[str, object]:
    """Every file of a store by relative path: its bytes, or for JSON records their content
    without the volatile facts (times, argv)."""
    state: dict[str, object] = {}
    for path in sorted(p for p in runs.rglob("*") if p.is_file()):
        key = str(path.relative_to(runs))
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            state[key] = {k: v for k, v in data.items() if k not in VOLATILE}
        else:
            state[key] = path.read_bytes()
    return state


@pytest.fixture
def finished(micro_base_store) -> Path:
    """A store with one finished, scored micro run of `base` (the session's)."""
    return micro_base_store


def copy_of(store: Path, tmp_path: Path) -> tuple[Path, Path]:
    runs = tmp_path / "runs"
    shutil.copytree(store, runs)
    return runs, next(runs.glob("micro/*/red_mug/replicate-0"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "manifest truncated": (lambda unit: truncate(unit / "manifest.json"), "manifest.json"),
    "image deleted": (lambda unit: (unit / "images" / "red-0.png").unlink(), "images/red-0.png"),
    "scores truncated": (lambda unit: truncate(unit / "scores.jsonl"), "scores.jsonl"),
    "scores row missing": (
        lambda unit: (unit / "scores.jsonl").write_text(
            (unit / "scores.jsonl").read_text().splitlines()[0] + "\n"
        ),
        "scores.jsonl",
    ),
    "fit log truncated": (lambda unit: truncate(unit / "fit.json"), "fit.json"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_rerun_redoes_a_damaged_unit_and_runs_reports_it(damage, finished, tmp_path):
    runs, unit = copy_of(finished, tmp_path)
    harm, named = DAMAGE[damage]
    harm(unit)

    listed = invoke("runs", "--runs", runs, "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert len(row["problems"]) == 1 and named in row["problems"][0]
    assert str(unit) in row["problems"][0]

    result = invoke(*MICRO_BASE, "--runs", runs)
    assert result.exit_code == 0, result.output
    assert store_state(runs) == store_state(finished)
    assert json.loads(invoke("runs", "--runs", runs, "--json").output)[0]["problems"] == []


def test_runs_lists_a_damaged_run_json_and_the_other_runs(finished, tmp_path):
    runs, _ = copy_of(finished, tmp_path)
    shutil.copytree(next(runs.glob("micro/*")), runs / "micro" / "base-copy")
    truncate(runs / "micro" / "base-copy" / "run.json")
    result = invoke("runs", "--runs", runs)
    assert result.exit_code == 0, result.output
    damaged = [line for line in result.output.splitlines() if line.startswith("damaged:")]
    assert len(damaged) == 1 and "base-copy/run.json: damaged" in damaged[0]
    rows = {r["run_id"]: r for r in json.loads(invoke("runs", "--runs", runs, "--json").output)}
    good = next(r for name, r in rows.items() if name != "base-copy")
    assert (good["units_done"], good["units_scored"], good["problems"]) == (1, 1, [])


def test_other_weights_under_the_same_file_name_are_another_scorer(tmp_path):
    from safetensors.torch import load_file

    from bench.scorers.clip import TINY_ARCH, tiny_weights_file

    weights = tmp_path / "clip.safetensors"
    shutil.copy(tiny_weights_file(0), weights)
    options = [
        "--scorer-option",
        f"clip.pretrained={weights}",
        "--scorer-option",
        f"clip.model={TINY_ARCH}",
    ]
    runs = tmp_path / "runs"
    assert invoke(*MICRO_BASE, "--runs", runs, *options).exit_code == 0
    (run_dir,) = [p.parent for p in runs.glob("micro/*/run.json")]
    scores = next(run_dir.rglob("scores.jsonl"))
    before = [json.loads(line) for line in scores.read_text().splitlines()]

    # Same name, other content (the seed-1 weights): the run is rescored, under another id.
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(
            load_file(tiny_weights_file(0)).values(),
            load_file(tiny_weights_file(1)).values(),
            strict=True,
        )
    )
    shutil.copy(tiny_weights_file(1), weights)
    result = invoke("score", "--run", run_dir.name, "--runs", runs, *options, "--json")
    assert result.exit_code == 0, result.output
    after = [json.loads(line) for line in scores.read_text().splitlines()]
    model_before = before[0]["scorers"]["clip_i"]["model"]
    model_after = after[0]["scorers"]["clip_i"]["model"]
    assert model_before != model_after and "clip.safetensors@" in model_after
    assert [r["clip_i"] for r in before] != [r["clip_i"] for r in after]
    # Unchanged weights: nothing to rescore.
    again = invoke("score", "--run", run_dir.name, "--runs", runs, *options)
    assert again.exit_code == 0 and scores.read_text() == "".join(
        json.dumps(r, sort_keys=True) + "\n" for r in after
    )


def test_compare_refuses_runs_scored_with_other_weights_of_one_name(tmp_path):
    from bench.scorers.clip import TINY_ARCH, tiny_weights_file

    weights = tmp_path / "clip.safetensors"
    runs = tmp_path / "runs"
    options = [
        "--scorer-option",
        f"clip.pretrained={weights}",
        "--scorer-option",
        f"clip.model={TINY_ARCH}",
    ]
    shutil.copy(tiny_weights_file(0), weights)
    assert invoke(*MICRO_BASE, "--runs", runs, *options).exit_code == 0
    shutil.copy(tiny_weights_file(1), weights)
    method = ["run", "--method", "textual_inversion", "--suite", "micro", "--set", "steps=1"]
    assert invoke(*method, "--runs", runs, *options).exit_code == 0
    ids = sorted(p.parent.name for p in runs.glob("micro/*/run.json"))
    result = invoke("compare", *ids, "--runs", runs)
    assert result.exit_code == 2
    assert "scorer models" in result.output and len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the run's lock


def test_a_runs_own_lock_is_refused_in_one_line_naming_its_holder(finished, tmp_path):
    """The run's own lock (held briefly by `bench run` for run.json, and by writers that make a
    whole run at once); its units are claimed one by one (test_scale_out.py)."""
    from bench.errors import BenchError
    from bench.store.lock import run_lock

    runs, unit = copy_of(finished, tmp_path)
    run_dir = unit.parent.parent
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from bench.store.lock import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BenchError) as refused, run_lock(run_dir):
            pass
        message = str(refused.value)
        assert len(message.splitlines()) == 1
        assert "is being written by another bench process" in message
        assert f"pid {holder.pid})" in message
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run_dir):  # the holder was killed: the kernel released its lock
        pass


def test_leftovers_of_killed_writes_are_removed(finished, tmp_path):
    runs, unit = copy_of(finished, tmp_path)
    (unit / "manifest.json").unlink()
    leftovers = [unit / ".scores.jsonl.k1l2m3.tmp", unit / "images" / ".red-0.png.a1b2c3.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    (unit / ".fit-staging").mkdir()
    (unit / ".fit-staging" / "adapter.safetensors").write_bytes(b"half")
    assert invoke(*MICRO_BASE, "--runs", runs).exit_code == 0
    assert store_state(runs) == store_state(finished)


# --------------------------------------------------------------------------- faults


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_store(tmp_path):
    """SIGKILL `bench run` subprocesses at random moments, resume each, and compare every image,
    adapter and score row with an uninterrupted run's. Two uninterrupted runs in two processes
    agree byte for byte first: the same suite, method, config and seed give the same files."""
    command = [
        sys.executable,
        "-m",
        "bench",
        "run",
        "--method",
        "dreambooth_lora",
        "--suite",
        "micro",
        "--set",
        "steps=4",
        "--set",
        "checkpoint_every=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    started = time.perf_counter()
    subprocess.run([*command, "--runs", str(reference)], env=env, check=True, capture_output=True)
    duration = time.perf_counter() - started
    expected = store_state(reference)
    assert any(k.endswith(".png") for k in expected) and any("step-" in k for k in expected)
    assert any(k.endswith(".safetensors") for k in expected)
    again = tmp_path / "again"
    subprocess.run([*command, "--runs", str(again)], env=env, check=True, capture_output=True)
    assert store_state(again) == expected

    rng = np.random.default_rng(12)
    for trial, delay in enumerate(rng.uniform(0.35, 0.95, size=2) * duration):
        runs = tmp_path / f"trial-{trial}"
        killed = subprocess.Popen(
            [*command, "--runs", str(runs)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        resumed = subprocess.run([*command, "--runs", str(runs)], env=env, capture_output=True)
        assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
        assert store_state(runs) == expected, f"trial {trial}, killed after {delay:.1f} s"


def test_ctrl_c_is_one_line_and_the_run_resumes(finished, tmp_path, monkeypatch):
    from bench.store import runner as store_runner

    runs = tmp_path / "runs"
    write_png = store_runner._write_png
    calls = []

    def interrupted_after_one(path, array):  # calls through once, then the user presses Ctrl-C
        calls.append(path)
        if len(calls) > 1:
            raise KeyboardInterrupt
        write_png(path, array)

    monkeypatch.setattr(store_runner, "_write_png", interrupted_after_one)
    result = invoke(*MICRO_BASE, "--runs", runs)
    assert result.exit_code == 130
    assert result.output.strip().splitlines() == [
        "error: interrupted; what was finished is kept: run the same command again to go on"
    ]
    monkeypatch.undo()
    assert invoke(*MICRO_BASE, "--runs", runs).exit_code == 0
    assert store_state(runs) == store_state(finished)


@pytest.mark.parametrize(
    "code, fix",
    [(errno.ENOSPC, "free some space"), (errno.EROFS, "read-only"), (errno.EACCES, "permissions")],
)
def test_a_full_or_read_only_disk_is_one_line_and_writes_no_file(code, fix, tmp_path, monkeypatch):
    import tempfile

    def refused(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    runs = tmp_path / "runs"
    result = invoke(*MICRO_BASE, "--runs", runs)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and os.strerror(code) in line and fix in line
    assert str(runs) in line
    assert not [p for p in runs.rglob("*") if p.is_file() and p.name != ".lock"]


def test_a_failed_adapter_write_is_one_line_naming_the_unit_and_leaves_no_file(tmp_path):
    """A real refused write inside safetensors' own writer: the adapter passes the file-size limit
    (RLIMIT_FSIZE, so the kernel says EFBIG, as a full disk says ENOSPC). One line naming the
    unit and the fix, exit 2, no unit file left; the same command without the limit finishes."""
    import resource

    from bench.diffusion.random_backbones import random_backbone_dir

    random_backbone_dir("tiny")  # the cached backbone exists before the limit applies
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "bench", "run", "--method", "dreambooth_lora"]
    command += ["--suite", "micro", "--runs", str(runs), "--no-score"]

    def limited() -> None:  # run.json and PNGs fit under it; the 107 kB adapter does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    done = subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=limited)
    [run_dir] = runs.glob("micro/dreambooth_lora-*")
    unit = run_dir / "red_mug" / "replicate-0"
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        f"error: {unit}: {os.strerror(errno.EFBIG)}; a file would pass the size limit "
        "(`ulimit -f`) or the file system's largest; raise the limit, or point --runs (or "
        "BENCH_CACHE) at another disk\n"
    )
    assert sorted(p.name for p in runs.rglob("*") if p.is_file()) == [".claim", ".lock", "run.json"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (unit / "pytorch_lora_weights.safetensors").is_file()


def test_a_libraries_report_of_a_full_disk_reads_as_bench_own():
    from safetensors import SafetensorError

    from bench.errors import os_error_of

    said = SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    )
    error = os_error_of(said, "/runs/u")
    assert (error.errno, error.strerror, error.filename) == (28, os.strerror(28), "/runs/u")
    assert os_error_of(ValueError("no number here")) is None


def test_a_backbone_build_killed_midway_leaves_nothing_the_next_build_does_not_remove(
    tmp_path, monkeypatch
):
    """SIGKILL while the tiny backbone is first built into an empty cache leaves its temporary
    folder (a kill skips every cleanup); the next build removes it. Folders of live processes,
    or of another host sharing the cache, are kept."""
    import socket

    cache = tmp_path / "cache"
    env = {**os.environ, "BENCH_CACHE": str(cache)}
    build = "from bench.diffusion.random_backbones import random_backbone_dir as d; d('tiny')"
    backbones = cache / "backbones"
    for _ in range(3):  # the kill must land while the folder exists: retry the rare miss
        shutil.rmtree(cache, ignore_errors=True)
        child = subprocess.Popen([sys.executable, "-c", build], env=env)
        deadline = time.monotonic() + 120
        while not list(backbones.glob(".tiny-*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        abandoned = list(backbones.glob(".tiny-*.tmp"))
        if abandoned and not list(backbones.glob("tiny-*")):
            break
    else:
        pytest.fail("the build was never killed midway")
    host = socket.gethostname().replace(".", "-")
    live = backbones / f".tiny-v1-seed0.{host}.{os.getpid()}.abc.tmp"  # this test's process
    elsewhere = backbones / ".tiny-v1-seed0.other-host.1.abc.tmp"
    live.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("BENCH_CACHE", str(cache))
    from bench.diffusion.random_backbones import random_backbone_dir

    assert (random_backbone_dir("tiny") / "model_index.json").is_file()
    assert sorted(p.name for p in backbones.iterdir()) == sorted(
        ["tiny-v1-seed0", live.name, elsewhere.name]
    )


def test_store_files_follow_the_umask(tmp_path):
    runs = tmp_path / "runs"
    old = os.umask(0o002)  # a team's shared store
    try:  # a method that saves an adapter with safetensors, at two checkpoints
        lora = ["run", "--method", "dreambooth_lora", "--suite", "micro"]
        settings = ["--set", "steps=2", "--set", "checkpoint_every=1", "--set", "export_kohya=true"]
        assert invoke(*lora, *settings, "--runs", runs).exit_code == 0
        ti = ["run", "--method", "textual_inversion", "--suite", "micro", "--set", "steps=1"]
        assert invoke(*ti, "--runs", runs).exit_code == 0  # saves with its own save_file
    finally:
        os.umask(old)
    assert any(p.suffix == ".safetensors" for p in runs.rglob("*"))
    modes = {p.relative_to(runs): stat.S_IMODE(p.stat().st_mode) for p in runs.rglob("*")}
    assert modes and all(
        mode == (0o775 if (runs / p).is_dir() else 0o664) for p, mode in modes.items()
    ), modes
