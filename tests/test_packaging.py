"""The shipped data (subjects, prompts, suites, baselines) is found from a built wheel too; the
toy world's lab is a wheel of its own."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def build_wheel(project: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(project)],
        check=True,
        timeout=300,
    )
    return next(out.glob("*.whl"))


@pytest.mark.slow
def test_wheel_carries_the_data_and_finds_it(tmp_path):
    wheel = build_wheel(REPO, tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in names if n.startswith(("bench_world/", "world/"))]  # the lab's own
    for expected in (
        "bench/_data/subjects/shapes/red_mug/00.png",
        "bench/_data/subjects/shapes/red_mug/subject.toml",
        "bench/_data/prompts/dreambench_object.toml",
        "bench/_data/suites/smoke.toml",
        "bench/_data/baselines/dreambooth_paper.toml",
        "bench/_data/baselines/seed-study.sweep.toml",
        "bench/assets/world/clip.safetensors",
        "bench/assets/world/dino.safetensors",
        "bench/assets/world/pipeline/unet/diffusion_pytorch_model.safetensors",
        "bench/assets/world/pipeline/unet/config.json",
        "bench/assets/world/pipeline/vae/diffusion_pytorch_model.safetensors",
        "bench/_data/subjects/world/red_mug/00.png",
        "bench/_data/prompts/world_live.toml",
        "bench/_data/suites/world.toml",
        "bench/assets/world/bench-world-clip.json",
        "bench/scorers/model_configs/bench-tiny-clip.json",
    ):
        assert expected in names, expected
    # Every published table and sweep preset, and not the HTML report beside them.
    for path in (REPO / "baselines").glob("*.toml"):
        assert f"bench/_data/baselines/{path.name}" in names, f"list {path} in pyproject.toml"
    assert not [n for n in names if "world-report" in n]
    assert "bench/reports/templates/page.html.j2" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "from bench.paths import data_dir; from bench.data.suites import load_suite; "
        "print(data_dir('suites')); print(len(load_suite('smoke').subjects))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target)},
        cwd=tmp_path,  # not the checkout, whose bench/ would shadow the wheel's
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert out[0] == str(target / "bench" / "_data" / "suites")
    assert out[1] == "3"


@pytest.mark.slow
def test_the_labs_wheel_carries_the_oracle_and_adds_bench_world(tmp_path):
    wheel = build_wheel(REPO / "world", tmp_path)
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert "bench_world/weights/oracle.safetensors" in names
    assert "bench_world/report.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = archive.read(entry_points).decode()
    assert "[bench.commands]\nworld = bench_world.cli:app" in text
