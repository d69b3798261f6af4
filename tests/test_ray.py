"""`bench run --executor ray` against a real local Ray cluster: a head on the loopback address
with two CPUs, so two worker processes of one CPU each run the tasks (the fixture starts it with
`ray start` and stops it after). The suite is test_scale_out.py's six units on the tiny backbone.

Ray gives each worker as many threads as its task has CPUs (one), and the bytes of a run depend
on the thread count, so the local runs compared against are made with one thread too (as the
test suite's workers run: conftest.py).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_scale_out import UNITS, made, suite_file

import bench
from bench.errors import BenchError
from bench.store.layout import RunPaths

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")
PORT = 6391
# A cluster on the loopback address for this test alone: no token (Ray turns token
# authentication on when it finds one in ~/.ray).
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    start = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
        "--node-ip-address=127.0.0.1", f"--port={PORT}", "--num-cpus=2", "--num-gpus=0",
        "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{PORT}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop = [sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"]
        subprocess.run(stop, env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import torch

    folder = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray worker of one CPU runs
    try:
        bench.run("dreambooth_lora", suite_file(folder), runs=folder / "runs", device="cpu", pack=1)
    finally:
        torch.set_num_threads(threads)
    return made(folder / "runs")


def driver(folder: Path, address: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "bench", "run", "--method", "dreambooth_lora",
        "--suite", str(suite_file(folder)), "--runs", str(folder / "runs"), "--device", "cpu",
        "--executor", "ray", "--ray-address", address, "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def until(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def finished_units(runs: Path) -> list[Path]:
    return [u for run in runs.glob("duo/*") for u in RunPaths(run).units()]


def test_a_run_on_ray_is_the_local_run(tmp_path, cluster, local):
    result = bench.run(
        "dreambooth_lora",
        suite_file(tmp_path),
        runs=tmp_path / "runs",
        device="cpu",
        executor="ray",
        ray_address=cluster,
    )
    assert (result.fitted, result.generated, result.scored_units) == (6, 12, 6)
    assert result.results is not None  # the driver summarizes the run
    assert made(tmp_path / "runs") == local
    manifests = [
        json.loads((u / "manifest.json").read_text()) for u in finished_units(tmp_path / "runs")
    ]
    assert {m["execution"]["threads"] for m in manifests} == {1}


def test_a_worker_killed_mid_fit_is_retried_and_the_run_is_the_same(tmp_path, cluster, local):
    process = driver(tmp_path, cluster)
    runs = tmp_path / "runs"
    until(lambda: any(runs.glob("duo/*/*/replicate-*/.fit-staging")))
    workers = subprocess.run(["pgrep", "-f", "ray::_do_units"], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert pids, "no Ray worker running a task"
    os.kill(pids[0], signal.SIGKILL)
    out = finish(process)
    assert out["fitted"] + out["skipped_units"] >= len(UNITS)
    assert made(runs) == local


def test_a_killed_driver_rerun_does_only_what_is_missing(tmp_path, cluster, local):
    runs = tmp_path / "runs"
    process = driver(tmp_path, cluster)
    until(lambda: len(finished_units(runs)) >= 2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Ray stops a dead driver's tasks, and their units' claims go with their workers; the
    # rerun waits for any claim still held, then does what was left.
    done = {u: (u / "fit.json").read_bytes() for u in finished_units(runs)}
    out = finish(driver(tmp_path, cluster))
    assert out["fitted"] <= len(UNITS) - len(done)
    assert {u: (u / "fit.json").read_bytes() for u in done} == done  # none fitted twice
    assert len(finished_units(runs)) == len(UNITS)
    assert made(runs) == local


def test_without_ray_the_executor_is_one_line_saying_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(BenchError, match=r"--executor ray needs Ray: pip install -e '\.\[ray\]'"):
        bench.run("base", suite_file(tmp_path), runs=tmp_path / "runs", executor="ray")
    assert not (tmp_path / "runs").exists()
