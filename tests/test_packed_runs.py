"""`bench run --pack K`: the runner fits a run's units in packs of up to K, and a packed run is the
run it would be one unit at a time: the same run id, the same images (to the tolerances of
`test_packing.py`), per-unit progress and fit logs, and resumes that lose and redo nothing.

The two-subject suite `helpers.DUO` on the tiny backbone; `reference` runs it once packed
(pack 2) and once one unit at a time (pack 1).
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import bench
from bench.cli import app
from bench.errors import BenchError
from bench.methods.dreambooth_lora import DreamBoothLoRA
from bench.progress import Silent
from bench.store.layout import RunPaths
from bench.store.lock import STAGING
from bench.store.records import FitLog

from helpers import DUO

PIXEL_ATOL = 2  # test_packing.py says why
UNITS = ("red_mug", "blue_robot")  # DUO's subjects, in the suite's order


def duo_suite(folder) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "duo.toml"
    path.write_text(DUO)
    return str(path)


def run(folder, **options):
    options = {"device": "cpu", "score": False, **options}
    return bench.run("dreambooth_lora", duo_suite(folder), runs=folder / "runs", **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return {"one": run(root / "one", pack=1), "two": run(root / "two", pack=2)}


def images(run_dir) -> dict[str, np.ndarray]:
    found = {}
    for subject in UNITS:
        unit = RunPaths(run_dir).unit(subject, 0)
        for png in sorted(RunPaths.images(unit).glob("*.png")):
            found[f"{subject}/{png.name}"] = np.asarray(Image.open(png)).astype(int)
    return found


def assert_same_images(a, b) -> None:
    first, second = images(a), images(b)
    assert first.keys() == second.keys() and len(first) == 4
    for name in first:
        assert np.abs(first[name] - second[name]).max() <= PIXEL_ATOL, name


def fit_log(run_dir, subject) -> dict:
    return json.loads((RunPaths(run_dir).unit(subject, 0) / "fit.json").read_text())


def manifest(run_dir, subject) -> dict:
    return json.loads((RunPaths(run_dir).unit(subject, 0) / "manifest.json").read_text())


def leftovers(run_dir) -> list:
    """Staging folders and temporary files a failed fit might leave."""
    return [p for p in run_dir.rglob("*") if p.name == STAGING or p.name.startswith(".tmp")]


def test_a_packed_run_is_the_same_run_as_one_unit_at_a_time(reference):
    one, two = reference["one"], reference["two"]
    assert one.run_id == two.run_id  # the pack size is not part of what is measured
    assert (one.fitted, two.fitted) == (2, 2)
    assert_same_images(one.run_dir, two.run_dir)
    for subject in UNITS:
        alone, packed = fit_log(one.run_dir, subject), fit_log(two.run_dir, subject)
        assert "pack" not in alone
        # Provenance: who it was fitted with, the pack's time, and the unit's share of it.
        assert packed["pack"]["units"] == [f"{s}/replicate-0" for s in UNITS]
        assert packed["seconds"] == pytest.approx(packed["pack"]["seconds"] / 2)
        assert np.abs(np.array(alone["losses"]) - np.array(packed["losses"])).max() <= 1e-6
        assert manifest(one.run_dir, subject)["execution"]["pack"] == 1
        assert manifest(two.run_dir, subject)["execution"]["pack"] == 2


def test_each_unit_of_a_pack_reports_its_own_progress(tmp_path):
    opened = []

    class Task:
        def __init__(self, label, total):
            self.record = {"label": label, "total": total, "steps": 0, "info": [], "done": 0}
            opened.append(self.record)

        def advance(self, steps=1, info=""):
            self.record["steps"] += steps
            self.record["info"].append(info)

        def finish(self):
            self.record["done"] += 1

    class Reporter:
        def task(self, label, total):
            return Task(label, total)

        def message(self, text):
            pass

    run(tmp_path, pack=2, reporter=Reporter())
    fits = [t for t in opened if t["label"].startswith("fit ")]
    assert [t["label"] for t in fits] == [f"fit {s}/replicate-0" for s in UNITS]
    for task, subject in zip(fits, UNITS, strict=True):
        losses = fit_log(tmp_path / "runs" / "duo" / next(iter(run_ids(tmp_path))), subject)
        assert (task["total"], task["steps"], task["done"]) == (4, 4, 1)  # DUO's 4 steps
        assert task["info"] == [f"loss {v:.4f}" for v in losses["losses"]]


def run_ids(folder):
    return [p.name for p in (folder / "runs" / "duo").iterdir() if p.is_dir()]


def test_a_pack_interrupted_while_its_units_are_saved_resumes_without_losing_or_redoing_one(
    tmp_path, reference, monkeypatch
):
    write = FitLog.write

    def interrupted(self, path):  # Ctrl-C as the second unit's fit.json is written
        if UNITS[1] in str(path):
            raise KeyboardInterrupt
        write(self, path)

    monkeypatch.setattr(FitLog, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, pack=2)
    monkeypatch.undo()
    run_dir = tmp_path / "runs" / "duo" / reference["two"].run_id
    saved = (RunPaths(run_dir).unit(UNITS[0], 0) / "fit.json").read_bytes()

    resumed = run(tmp_path, pack=2)
    assert resumed.fitted == 1  # only the unit without a fit.json
    assert (RunPaths(run_dir).unit(UNITS[0], 0) / "fit.json").read_bytes() == saved
    assert "pack" not in fit_log(run_dir, UNITS[1])  # fitted again, alone
    assert not leftovers(run_dir)
    assert_same_images(run_dir, reference["two"].run_dir)


def test_a_pack_interrupted_mid_fit_leaves_nothing_and_is_fitted_again(tmp_path, reference):
    class Interrupting:
        """Ctrl-C at the third training step of the pack."""

        def __init__(self):
            self.steps = 0

        def task(self, label, total):
            reporter = self

            class Task:
                def advance(self, steps=1, info=""):
                    if label.startswith("fit "):
                        reporter.steps += steps
                        if reporter.steps == 5:  # two units a step: the third step
                            raise KeyboardInterrupt

                def finish(self):
                    pass

            return Task()

        def message(self, text):
            pass

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, pack=2, reporter=Interrupting())
    run_dir = tmp_path / "runs" / "duo" / reference["two"].run_id
    assert not leftovers(run_dir)
    assert not list(run_dir.rglob("fit.json"))
    resumed = run(tmp_path, pack=2)
    assert resumed.fitted == 2
    assert fit_log(run_dir, UNITS[0])["pack"]["units"] == [f"{s}/replicate-0" for s in UNITS]
    assert_same_images(run_dir, reference["two"].run_dir)


def out_of_memory_over(size, monkeypatch) -> list[int]:
    """DreamBoothLoRA.fit_pack raises the device's out-of-memory error for packs larger than
    `size` (a fault injected where it is the point) and otherwise calls through; returns the
    sizes it was asked to fit."""
    asked = []
    fit_pack = DreamBoothLoRA.fit_pack

    def limited(self, ctxs):
        asked.append(len(ctxs))
        if len(ctxs) > size:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return fit_pack(self, ctxs)

    monkeypatch.setattr(DreamBoothLoRA, "fit_pack", limited)
    return asked


def test_a_default_sized_pack_that_does_not_fit_is_halved(tmp_path, reference, monkeypatch):
    asked = out_of_memory_over(1, monkeypatch)
    messages = []

    class Reporter:
        def task(self, label, total):
            return Silent().task(label, total)

        def message(self, text):
            messages.append(text)

    result = run(tmp_path, reporter=Reporter())  # no --pack: the CPU's default, 12
    assert asked == [2, 1, 1]  # both units in one pack, then one at a time
    assert messages == ["a pack of 2 units does not fit: 1 at a time"]
    assert result.fitted == 2
    assert_same_images(result.run_dir, reference["two"].run_dir)


def test_a_pack_asked_for_that_does_not_fit_is_one_line_naming_pack(tmp_path, monkeypatch):
    out_of_memory_over(1, monkeypatch)
    suite = duo_suite(tmp_path)
    runs = tmp_path / "runs"
    command = ["run", "-m", "dreambooth_lora", "--suite", suite, "--runs", str(runs)]
    result = CliRunner().invoke(app, [*command, "--pack", "2", "--device", "cpu", "--no-score"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "out of device memory fitting a pack of 2 units" in lines[0]
    assert "--pack 1" in lines[0] and "gradient_checkpointing=true" in lines[0]
    assert not list(runs.rglob("fit.json")) and not leftovers(runs)


def test_a_method_without_fit_pack_is_fitted_one_unit_at_a_time(tmp_path, monkeypatch):
    from bench_example_plugin.suffix import SuffixPrompt

    fitted = []
    fit = SuffixPrompt.fit

    def spy(self, ctx):
        fitted.append(ctx.subject.id)
        return fit(self, ctx)

    monkeypatch.setattr(SuffixPrompt, "fit", spy)
    suite = duo_suite(tmp_path)
    bench.run("example_suffix", suite, runs=tmp_path / "runs", device="cpu", pack=2, score=False)
    assert fitted == list(UNITS)
    run_dir = next((tmp_path / "runs" / "duo").iterdir())
    for subject in UNITS:
        assert "pack" not in fit_log(run_dir, subject)
        assert manifest(run_dir, subject)["execution"]["pack"] is None  # it does not apply


def test_pack_is_checked_before_any_work(tmp_path):
    suite = duo_suite(tmp_path)
    runs = tmp_path / "runs"
    command = ["run", "-m", "dreambooth_lora", "--suite", suite, "--runs", str(runs)]
    result = CliRunner().invoke(app, [*command, "--pack", "0"])
    assert result.exit_code == 2 and "--pack" in result.output
    with pytest.raises(BenchError, match="--pack must be >= 1 and <= 256, got 300"):
        run(tmp_path, pack=300)
    assert not runs.exists()
