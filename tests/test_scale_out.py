"""One run, many processes: units are claimed (`bench.store.lock`), so processes that run one run
at once share its units, Slurm-style shards (`--shard I/N`) each do their own, and a finishing
run without `--shard` completes and summarizes what they wrote. Whatever ran them, the run's
images, adapters and score rows are the bytes one local run writes.

Processes here are real `python -m bench run` subprocesses on the two-subject suite
`helpers.DUO` with three replicates (six units, tiny backbone), one thread each.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bench
from bench.methods.dreambooth_lora import DreamBoothLoRA
from bench.store.layout import RunPaths
from bench.store.lock import claim_unit

from helpers import DUO

SUITE = DUO.replace("replicates = [0]", "replicates = [0, 1, 2]")
UNITS = [f"{s}/replicate-{r}" for s in ("red_mug", "blue_robot") for r in (0, 1, 2)]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_PROGRESS_SECONDS": "0"}


def suite_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trio.toml"
    path.write_text(SUITE)
    return path


def command(folder: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bench", "run", "--method", "dreambooth_lora",
        "--suite", str(suite_file(folder)), "--runs", str(folder / "runs"),
        "--device", "cpu", "--json", *extra,
    ]  # fmt: skip


def start(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(folder, *extra), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def made(runs: Path) -> dict[str, str]:
    """What a run made, by relative path: the digest of every image and adapter, and every score
    row without its timings."""
    found = {}
    for path in sorted(runs.rglob("*")):
        key = str(path.relative_to(runs))
        if path.suffix in (".png", ".safetensors"):
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.name.startswith("scores") and path.suffix == ".jsonl":
            found[key] = path.read_text()
    return found


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    """The run made by one local process (the default pack: all six units in one)."""
    folder = tmp_path_factory.mktemp("local")
    out = finish(start(folder))
    return {"out": out, "made": made(folder / "runs")}


def units_of(runs: Path) -> list[str]:
    return [
        str(p.parent.relative_to(p.parents[2]))
        for p in sorted(runs.glob("duo/*/*/replicate-*/fit.json"))
    ]


def packed_with(runs: Path, unit: str) -> list[str]:
    """The units a unit was fitted with (its fit.json's pack), itself included."""
    path = next(runs.glob(f"duo/*/{unit}/fit.json"))
    return json.loads(path.read_text()).get("pack", {}).get("units", [unit])


@pytest.mark.slow
def test_shards_at_once_then_a_finishing_run_make_the_local_run(tmp_path, local):
    shards = [start(tmp_path, "--shard", f"{i}/2") for i in range(2)]
    outs = [finish(p) for p in shards]
    runs = tmp_path / "runs"
    # Each shard did its own units, positions i, i + 2, i + 4 of the run's unit list, in one pack.
    for i, out in enumerate(outs):
        assert (out["shard"], out["fitted"], out["scored_units"]) == (f"{i}/2", 3, 3)
        for unit in UNITS[i::2]:
            assert packed_with(runs, unit) == UNITS[i::2]
    finishing = bench.run(
        "dreambooth_lora",
        suite_file(tmp_path),
        runs=runs,
        device="cpu",
        stats=bench.StatsOptions(n_resamples=200),
    )
    assert (finishing.fitted, finishing.generated, finishing.scored_units) == (0, 0, 0)
    assert finishing.results is not None and finishing.run_id == local["out"]["run_id"]
    assert made(runs) == local["made"]


@pytest.mark.slow
def test_two_runs_started_at_once_split_the_units_and_do_each_once(tmp_path):
    # One unit at a time each (--pack 1), so that each process claims a unit, fits it, claims
    # the next one free.
    both = [start(tmp_path, "--pack", "1", "--no-score") for _ in range(2)]
    outs = [finish(p) for p in both]
    fitted = [out["fitted"] for out in outs]
    assert sum(fitted) == len(UNITS) and min(fitted) >= 1, fitted  # shared, none twice
    assert sorted(units_of(tmp_path / "runs")) == sorted(UNITS)
    # The bytes of one local process at the same pack size.
    one = tmp_path / "one"
    bench.run("dreambooth_lora", suite_file(one), runs=one / "runs", device="cpu", pack=1)
    bench.run("dreambooth_lora", suite_file(tmp_path), runs=tmp_path / "runs", device="cpu")
    assert made(tmp_path / "runs") == made(one / "runs")


def test_a_unit_another_process_holds_is_waited_for_and_done_if_its_holder_dies(tmp_path):
    suite = suite_file(tmp_path)
    runs = tmp_path / "runs"
    prepared = bench.plan("base", suite, runs=runs)
    unit = prepared.run_dir / "red_mug" / "replicate-1"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from bench.store.lock import claim_unit\n"
            "claim = claim_unit(Path(sys.argv[1]))\nprint('held', flush=True); time.sleep(120)",
            str(unit),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting = subprocess.Popen(
            [sys.executable, "-m", "bench", "run", "-m", "base", "--suite", str(suite),
             "--runs", str(runs), "--device", "cpu", "--no-score"],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        line = ""
        while "waiting for" not in line and time.monotonic() < deadline:
            line = waiting.stderr.readline()
        assert "waiting for red_mug/replicate-1: another bench process holds it" in line
        assert f"pid {holder.pid}" in line
        # Every other unit was done meanwhile: the waiting process was not idle.
        done = [p for p in RunPaths(prepared.run_dir).units() if p != unit]
        assert len(done) == len(UNITS) - 1
    finally:
        holder.kill()
        holder.wait()
    # Its holder died without finishing it: the waiting process does it.
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err[-2000:]
    assert len(RunPaths(prepared.run_dir).units()) == len(UNITS)


def test_a_units_claim_is_let_go_when_its_work_fails(tmp_path, monkeypatch):
    suite = suite_file(tmp_path)
    runs = tmp_path / "runs"
    generate = DreamBoothLoRA.generate

    def failing(self, ctx, cells, latents):
        if ctx.replicate == 1:
            raise RuntimeError("injected")
        return generate(self, ctx, cells, latents)

    monkeypatch.setattr(DreamBoothLoRA, "generate", failing)
    with pytest.raises(RuntimeError, match="injected"):
        bench.run("dreambooth_lora", suite, runs=runs, device="cpu", score=False)
    monkeypatch.undo()
    run_dir = bench.plan("dreambooth_lora", suite, runs=runs).run_dir
    for unit in UNITS:  # this very process can claim every unit again
        claim = claim_unit(run_dir / unit)
        assert claim is not None, unit
        claim.release()
    resumed = bench.run("dreambooth_lora", suite, runs=runs, device="cpu", score=False)
    assert resumed.fitted == 0  # the pack's fits were saved before the failure
    assert len(RunPaths(run_dir).units()) == len(UNITS)


def test_a_shard_is_I_of_N(tmp_path):
    from bench.errors import BenchError

    suite = suite_file(tmp_path)
    for bad in ("2/2", "1", "a/2", "-1/2", "0/0"):
        with pytest.raises(BenchError, match="--shard"):
            bench.run("base", suite, runs=tmp_path / "runs", shard=bad)
    assert not (tmp_path / "runs").exists()
