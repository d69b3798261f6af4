"""The run store's invariants, tested directly: atomic writes under injected failures, resume
batching as an uninterrupted run, what the run id depends on, and the manifest's values."""

import dataclasses
import hashlib
import json
import pathlib
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import bench
from bench import atomic
from bench.cli import app
from bench.data.suites import GenerationProtocol, load_suite
from bench.errors import BenchError
from bench.methods.dreambooth_lora import DreamBoothLoRA
from bench.store.records import RunRecord, UnitManifest
from bench.store.runner import ExecutionOptions, execute, prepare

from helpers import documented_seed

REPO = Path(__file__).resolve().parent.parent

SUITE = """\
name = "store"
backbone = "tiny"
resolution = 32
images_per_prompt = 3
replicates = [0]

[subjects]
set = "shapes"
ids = ["red_mug"]

[prompts]
object = { set = "dreambench_object", ids = ["on_the_beach", "red"] }

[generation]
scheduler = "DDIMScheduler"
steps = 2

[method_defaults.dreambooth_lora]
lr = 1e-2
steps = 2
batch_size = 1
"""


class DiskFull(OSError):
    pass


def half_then_fail(write):
    """A write that stops half-way through its data, as a full disk or a kill would."""

    def broken(self, data, *args, **kwargs):
        write(self, data[: len(data) // 2], *args, **kwargs)
        raise DiskFull("no space left on device")

    return broken


def listing(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize(
    "write, payload",
    [
        (atomic.write_bytes, b"new bytes " * 100),
        (atomic.write_text, "new text " * 100),
        (atomic.write_json, {"new": list(range(100))}),
        (atomic.append_jsonl, [{"row": i} for i in range(50)]),
    ],
    ids=["write_bytes", "write_text", "write_json", "append_jsonl"],
)
def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(
    tmp_path, monkeypatch, write, payload
):
    target = tmp_path / "file.json"
    target.write_text('{"old": true}\n')
    before = listing(tmp_path)
    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_fail(pathlib.Path.write_bytes))
    with pytest.raises(DiskFull):
        write(target, payload)
    assert listing(tmp_path) == before


def test_a_png_that_fails_half_way_is_not_stored_and_the_run_resumes(tmp_path, monkeypatch):
    """Generation killed in the middle of writing a PNG: no partial image, no temporary file,
    no manifest; the next run makes exactly the images of an uninterrupted run."""
    suite = tmp_path / "store.toml"
    suite.write_text(SUITE)
    loaded = load_suite(suite)
    save = Image.Image.save
    saved = []

    def save_then_break(self, fp, *args, **kwargs):
        if len(saved) == 4:  # the fifth image: half its bytes, then the failure
            save(self, fp, *args, **kwargs)
            Path(fp).write_bytes(Path(fp).read_bytes()[:100])
            raise DiskFull("no space left on device")
        saved.append(fp)
        return save(self, fp, *args, **kwargs)

    prepared = prepare("dreambooth_lora", loaded, {}, tmp_path / "broken")
    with monkeypatch.context() as mp:
        mp.setattr(Image.Image, "save", save_then_break)
        with pytest.raises(DiskFull):
            execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=4))
    unit = prepared.paths.unit("red_mug", 0)
    assert sorted(p.name for p in (unit / "images").iterdir()) == [
        "on_the_beach-0.png",
        "on_the_beach-1.png",
        "on_the_beach-2.png",
        "red-0.png",
    ]
    assert not (unit / "manifest.json").exists()
    # Only the lock files, the run's and its unit's claim, empty once their writer has stopped.
    hidden = sorted(p for p in prepared.paths.root.rglob("*") if p.name.startswith("."))
    assert hidden == [prepared.paths.root / ".lock", unit / ".claim"]
    assert all(p.read_bytes() == b"" for p in hidden)

    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=4))
    clean = prepare("dreambooth_lora", loaded, {}, tmp_path / "clean")
    execute(clean, ExecutionOptions(device="cpu", generation_batch_size=4))
    resumed, fresh = listing(prepared.paths.root), listing(clean.paths.root)
    assert [k for k in resumed if k.endswith(".png")] == [k for k in fresh if k.endswith(".png")]
    differ = [k for k in fresh if k.endswith((".png", ".safetensors")) and resumed[k] != fresh[k]]
    assert not differ


def test_a_fit_that_fails_leaves_no_artifact_and_no_staging(tmp_path, monkeypatch):
    suite = tmp_path / "store.toml"
    suite.write_text(SUITE)
    prepared = prepare("dreambooth_lora", load_suite(suite), {}, tmp_path / "runs")
    fit = DreamBoothLoRA.fit

    def fit_then_fail(self, ctx):
        fit(self, ctx)  # the adapter is written into the staging folder...
        raise DiskFull("no space left on device")  # ...and then the process fails

    monkeypatch.setattr(DreamBoothLoRA, "fit", fit_then_fail)
    with pytest.raises(DiskFull):
        execute(prepared, ExecutionOptions(device="cpu"))
    unit = prepared.paths.unit("red_mug", 0)
    # No adapter, no fit.json, no staging folder: only the unit's claim, let go (empty).
    assert [p.name for p in unit.iterdir()] == [".claim"]
    assert (unit / ".claim").read_bytes() == b""


def test_a_directory_write_that_fails_leaves_nothing(tmp_path):
    target = tmp_path / "class_images" / "abc"
    with pytest.raises(DiskFull), atomic.atomic_dir(target) as tmp:
        (tmp / "0000.png").write_bytes(b"half an image")
        raise DiskFull("no space left on device")
    assert list((tmp_path / "class_images").iterdir()) == []


# --------------------------------------------------------------------------- resume batching


def test_a_resumed_run_renders_the_same_full_chunks(tmp_path, monkeypatch):
    """With batch size 4 the six cells go as [4, 2]. One image of the first chunk lost: the
    method receives that whole chunk again, not the missing cell alone, and the image comes back
    byte for byte."""
    suite = tmp_path / "store.toml"
    suite.write_text(SUITE)
    chunks = []
    generate = DreamBoothLoRA.generate

    def spy(self, ctx, cells, latents):
        chunks.append([c.image_name for c in cells])
        return generate(self, ctx, cells, latents)

    monkeypatch.setattr(DreamBoothLoRA, "generate", spy)
    prepared = prepare("dreambooth_lora", load_suite(suite), {}, tmp_path / "runs")
    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=4))
    first_chunk = ["on_the_beach-0.png", "on_the_beach-1.png", "on_the_beach-2.png", "red-0.png"]
    assert chunks == [first_chunk, ["red-1.png", "red-2.png"]]

    unit = prepared.paths.unit("red_mug", 0)
    lost = unit / "images" / "on_the_beach-1.png"
    original = lost.read_bytes()
    lost.unlink()
    (unit / "manifest.json").unlink()
    chunks.clear()
    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=4))
    assert chunks == [first_chunk]
    assert lost.read_bytes() == original


# --------------------------------------------------------------------------- the run id


def run_id(suite, **overrides):
    return prepare("dreambooth_lora", suite, overrides, Path("/nonexistent")).run_id


def test_the_run_id_follows_what_defines_the_results(tmp_path):
    suite = load_suite("micro")
    base = run_id(suite)
    assert re.fullmatch(r"dreambooth_lora-[0-9a-f]{8}", base)
    assert run_id(suite) == base  # stable

    subject = suite.subjects[0]
    copies = tmp_path / "copy"
    copies.mkdir()
    paths = []
    for photo in subject.images:
        paths.append(copies / photo.name)
        paths[-1].write_bytes(photo.read_bytes())
    moved = dataclasses.replace(suite, subjects=(dataclasses.replace(subject, images=paths),))
    assert run_id(moved) == base  # the same bytes elsewhere: the same run

    pixels = np.asarray(Image.open(paths[2]).convert("RGB")).copy()
    pixels[0, 0, 0] ^= 1  # one bit of one photo
    Image.fromarray(pixels).save(paths[2])
    assert run_id(moved) != base

    protocol = suite.generation
    for changed in (
        dataclasses.replace(protocol, steps=protocol.steps + 1),
        dataclasses.replace(protocol, guidance_scale=3.0),
        dataclasses.replace(protocol, scheduler="PNDMScheduler"),
        dataclasses.replace(protocol, negative_prompt="blurry"),
    ):
        assert isinstance(changed, GenerationProtocol)
        assert run_id(dataclasses.replace(suite, generation=changed)) != base
    assert run_id(dataclasses.replace(suite, backbone="org/other-model")) != base
    assert run_id(dataclasses.replace(suite, backbone_revision="abc123")) != base
    assert run_id(suite, rank=8) != base


def test_execution_options_do_not_change_the_run_id(tmp_path):
    def dry(*extra):
        result = CliRunner().invoke(
            app,
            ["run", "--method", "dreambooth_lora", "--suite", "micro"]
            + ["--runs", str(tmp_path), "--dry-run", "--json", *extra],
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["run_id"]

    base = dry()
    assert dry("--device", "cpu", "--dtype", "float32", "--batch-size", "1") == base
    assert dry("--dtype", "bfloat16", "--generation-batch-size", "3") == base


# --------------------------------------------------------------------------- the manifest


def expected_commit() -> str | None:
    if not (REPO / ".git").exists():
        return None
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "bench"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def test_the_manifest_records_values_not_just_keys(tmp_path):
    import diffusers
    import torch

    suite = load_suite("micro")
    prepared = prepare("dreambooth_lora", suite, {"rank": 2}, tmp_path)
    started = datetime.now(timezone.utc).replace(microsecond=0)
    clock = time.perf_counter()
    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=5))
    wall = time.perf_counter() - clock
    manifest = json.loads((prepared.paths.unit("red_mug", 0) / "manifest.json").read_text())

    provenance = manifest["provenance"]
    assert provenance["git_commit"] == expected_commit()
    # Installed distributions' versions (torch's without its local build tag, "+cu130").
    assert provenance["versions"]["torch"] == torch.__version__.split("+")[0]
    assert provenance["versions"]["diffusers"] == diffusers.__version__
    assert provenance["versions"]["bench"] == bench.__version__
    recorded = datetime.fromisoformat(provenance["time"])
    assert started <= recorded <= datetime.now(timezone.utc)

    timings = manifest["timings"]
    assert timings["fit_seconds"] > 0 and timings["generate_seconds"] > 0
    assert timings["fit_seconds"] + timings["generate_seconds"] < wall

    assert manifest["backbone"]["id"] == "tiny"
    assert manifest["backbone"]["revision"] == "tiny-v1-seed0"
    assert (manifest["backbone"]["device"], manifest["backbone"]["dtype"]) == ("cpu", "float32")
    # micro has one subject, so its one unit is fitted alone: a pack of 1 (--pack not given);
    # and the CPU threads torch ran on (the test suite runs one per worker: conftest.py).
    assert manifest["execution"] == {
        "device": "cpu",
        "dtype": "auto",
        "generation_batch_size": 5,
        "pack": 1,
        "threads": torch.get_num_threads(),
    }
    # A manifest written when the option was called `batch_size` reads under today's name.
    path = prepared.paths.unit("red_mug", 0) / "manifest.json"
    old = {**manifest, "execution": {"device": "cpu", "dtype": "auto", "batch_size": 5}}
    path.write_text(json.dumps(old))
    execution = UnitManifest.read(path).execution
    assert execution == {"device": "cpu", "dtype": "auto", "generation_batch_size": 5}
    assert manifest["config"]["rank"] == 2 and manifest["config"]["steps"] == 8  # micro's
    assert manifest["generation"] == dataclasses.asdict(suite.generation)
    assert manifest["subject"]["images"] == [str(p) for p in suite.subjects[0].images]

    assert len(manifest["images"]) == 2
    for entry in manifest["images"]:
        seed = documented_seed("red_mug", entry["prompt_id"], entry["image_index"], 0)
        assert entry["seed"] == seed
        assert (prepared.paths.unit("red_mug", 0) / entry["file"]).is_file()


def test_run_json_records_what_the_run_is(tmp_path):
    suite = load_suite("micro")
    prepared = prepare("dreambooth_lora", suite, {"rank": 2}, tmp_path)
    execute(prepared, ExecutionOptions(device="cpu"))
    info = json.loads((prepared.paths.root / "run.json").read_text())
    manifest = json.loads((prepared.paths.unit("red_mug", 0) / "manifest.json").read_text())
    assert info["run_id"] == prepared.paths.root.name and info["method"] == "dreambooth_lora"
    assert info["config"] == manifest["config"] and info["config"]["rank"] == 2
    assert info["units_total"] == 1
    identity = info["suite"]
    assert identity["name"] == "micro" and identity["backbone"] == "tiny"
    [subject] = identity["subjects"]
    photos = sorted((REPO / "subjects" / "shapes" / "red_mug").glob("*.png"))
    digests = [hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in photos]
    assert subject["id"] == "red_mug" and subject["images"] == digests
    assert identity["prompts"]["object"] == [
        ["on_the_beach", "a {token} {class} on the beach"],
        ["red", "a red {token} {class}"],
    ]
    assert identity["generation"] == dataclasses.asdict(suite.generation)
    assert info["provenance"]["git_commit"] == expected_commit()


def test_where_runs_user_subjects_and_the_leaderboard_go(tmp_path, monkeypatch):
    """--runs, else $BENCH_RUNS, else ./runs; $BENCH_HOME, else $XDG_DATA_HOME/bench, else
    ~/.local/share/bench, never the package; the leaderboard in ./leaderboard/LEADERBOARD.md."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_RUNS", raising=False)

    def run_dir(*extra):
        result = CliRunner().invoke(
            app, ["run", "--method", "base", "--suite", "micro", "--dry-run", "--json", *extra]
        )
        assert result.exit_code == 0, result.output
        return Path(json.loads(result.stdout)["run_dir"])

    assert run_dir().parent.parent.resolve() == tmp_path / "runs"
    monkeypatch.setenv("BENCH_RUNS", str(tmp_path / "store"))
    assert run_dir().parent.parent == tmp_path / "store"
    assert run_dir("--runs", tmp_path / "given").parent.parent == tmp_path / "given"

    package_subjects = listing(REPO / "subjects")
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in sorted((REPO / "subjects" / "shapes" / "red_mug").glob("*.png")):
        (photos / photo.name).write_bytes(photo.read_bytes())
    monkeypatch.delenv("BENCH_HOME", raising=False)
    for env, expected in (
        ({"XDG_DATA_HOME": str(tmp_path / "xdg")}, tmp_path / "xdg" / "bench"),
        ({"HOME": str(tmp_path / "home")}, tmp_path / "home" / ".local" / "share" / "bench"),
    ):
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = CliRunner().invoke(
            app, ["subjects", "add", "my_mug", "--class", "mug", "--images", str(photos)]
        )
        assert result.exit_code == 0, result.output
        assert (expected / "subjects" / "my_mug" / "subject.toml").is_file()
    assert listing(REPO / "subjects") == package_subjects

    result = CliRunner().invoke(app, ["leaderboard", "--runs", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "leaderboard" / "LEADERBOARD.md").is_file()


def test_a_run_is_resumed_only_at_the_batch_size_it_was_generated_with(tmp_path):
    suite = tmp_path / "store.toml"
    suite.write_text(SUITE)
    prepared = prepare("dreambooth_lora", load_suite(suite), {}, tmp_path / "runs")
    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=4))
    unit = prepared.paths.unit("red_mug", 0)
    (unit / "images" / "red-2.png").unlink()
    (unit / "manifest.json").unlink()
    before = listing(prepared.paths.root)
    with pytest.raises(BenchError, match="generated with --generation-batch-size 4, not 2"):
        execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=2))
    assert listing(prepared.paths.root) == before
    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=4))
    assert (unit / "images" / "red-2.png").is_file() and (unit / "manifest.json").is_file()
    # Finished runs are rescored or listed at any batch size: nothing is rendered.
    execute(prepared, ExecutionOptions(device="cpu", generation_batch_size=1))


# --------------------------------------------------------------------------- typed records


def runs_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_run_records_say_what_kind_of_run_they_are(tmp_path):
    from bench.methods.dreambooth_lora import Config

    suite = load_suite("micro")
    for method, kind, batch in (("dreambooth_lora", "generated", 8), ("real", "reference", None)):
        prepared = prepare(method, suite, {}, tmp_path)
        execute(prepared, ExecutionOptions(device="cpu"))
        info = json.loads((prepared.paths.root / "run.json").read_text())
        assert (info["format"], info["kind"], info["generation_batch_size"]) == (2, kind, batch)
        # the tiny backbone's, or (no backbone) the photos'
        assert info["realness"] == ("random weights" if kind == "generated" else "real")
    [lora] = (tmp_path / "micro").glob("dreambooth_lora-*/run.json")
    defaults = json.loads(lora.read_text())
    # not micro's overrides; as JSON holds them (a tuple option reads back as a list)
    assert defaults["method_defaults"] == json.loads(json.dumps(dataclasses.asdict(Config())))
    assert defaults["config"]["steps"] == 8 != defaults["method_defaults"]["steps"]


def test_a_store_from_a_newer_bench_or_a_damaged_file_is_a_one_line_error(tmp_path):
    prepared = prepare("base", load_suite("micro"), {}, tmp_path)
    execute(prepared, ExecutionOptions(device="cpu"))
    run_json = prepared.paths.run_json
    record = json.loads(run_json.read_text())

    run_json.write_text(json.dumps({**record, "format": 99}))
    result = runs_cli("run", "--method", "base", "--suite", "micro", "--runs", tmp_path)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {run_json}: written by a newer bench (store format 99; this bench reads up to "
        "2); upgrade bench to read it"
    )

    run_json.write_text(json.dumps(record)[:-20])
    result = runs_cli("leaderboard", "--runs", tmp_path, "--out", tmp_path / "board.md")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert f"{run_json}: damaged (line 1)" in result.output
    # `bench runs` lists the damage, so the other runs of the store are still shown.
    listed = runs_cli("runs", "--runs", tmp_path)
    assert listed.exit_code == 0 and f"damaged: {run_json}: damaged (line 1)" in listed.output

    # A run.json from before format versions is read, its kind and realness filled in.
    old = {k: v for k, v in record.items() if k not in ("format", "kind", "realness")}
    run_json.write_text(json.dumps(old))
    [row] = json.loads(runs_cli("runs", "--runs", tmp_path, "--json").stdout)
    assert row["kind"] == "generated" and row["units_done"] == 1
    assert RunRecord.read(run_json).realness == "random weights"  # micro's tiny backbone
    # Format 1 said it in two flags.
    for flags, realness in (
        ({"random_weights": True, "toy_world": False}, "random weights"),
        ({"random_weights": False, "toy_world": True}, "toy world"),
        ({"random_weights": False, "toy_world": False}, "real"),
    ):
        one = {k: v for k, v in record.items() if k != "realness"} | flags | {"format": 1}
        run_json.write_text(json.dumps(one))
        assert RunRecord.read(run_json).realness == realness


def test_damaged_scores_are_redone_not_trusted(tmp_path):
    def run():
        result = runs_cli(
            "run", "--method", "base", "--suite", "micro", "--runs", tmp_path, "--json"
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = run()
    [scores] = Path(first["run_dir"]).glob("*/replicate-0/scores.jsonl")
    whole = scores.read_text()
    scores.write_text(whole[: len(whole) // 2])  # a torn file
    again = run()
    assert again["scored_units"] == 1 and scores.read_text() == whole
    assert again["scores"]["metrics"] == first["scores"]["metrics"]
