"""The README's first command, `bench run --method dreambooth_lora --suite smoke`, end to end
(fitted once, `smoke_dreambooth_run`): every cell gets its image, manifest and
score, the printed scores are the README's definition, progress goes to a log as lines, and,
with the oracle as the judge, DreamBooth-LoRA has learned the subject and kept the prompt."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bench
from bench.cli import app

from helpers import SubjectTruth, run_score, stored_rows, subject_truth

# Of the smoke suite's 18 prompt images (docs/world.md): DreamBooth-LoRA's body colour on the 12
# that keep it (no recolour) .92 (base .17), the subject (its class and every trait) .56 (base 0;
# fit seeds 0 to 2: .56, .61, .61), context .90 of 10 (the bar: .60); DINO .80 (base .21).
BODY_GAIN, DB_WHOLE, DB_CONTEXT, DINO_GAIN = 0.50, 0.50, 0.60, 0.30


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def smoke_dreambooth_run(tmp_path_factory) -> dict:
    """The README's first command, `bench run --method dreambooth_lora --suite smoke --json`,
    run once through the CLI: its printed result, `runs`, the run store, and `stderr`, its
    progress (lines, one a second: the CLI runner is not a terminal). The tests of the command
    and of what the run learned share it (minutes on 2 cores)."""
    runs = tmp_path_factory.mktemp("smoke") / "runs"
    command = ["run", "--method", "dreambooth_lora", "--suite", "smoke", "--runs", str(runs)]
    # A progress line a second, so that the test of its lines does not hang on the speed here.
    result = CliRunner().invoke(app, [*command, "--json"], env={"BENCH_PROGRESS_SECONDS": "1"})
    assert result.exit_code == 0, result.output
    return {"runs": runs, "stderr": result.stderr, **json.loads(result.stdout)}


@pytest.fixture(scope="module")
def oracle():
    from bench_world.oracle import load_oracle

    return load_oracle()


@pytest.fixture(scope="module")
def smoke_runs(smoke_dreambooth_run):
    """The smoke suite made by DreamBooth-LoRA with the suite's defaults (the README's first
    command, run once for the session), by the base model, and its photos."""
    import bench

    runs = smoke_dreambooth_run["runs"]
    made = {"runs": runs, "dreambooth_lora": Path(smoke_dreambooth_run["run_dir"])}
    for method in ("real", "base"):
        made[method] = bench.run(method, "smoke", runs=runs, device="cpu").run_dir
    return made


@pytest.mark.slow
def test_smoke_suite_end_to_end(smoke_dreambooth_run):
    """The README's first command: every cell of the smoke suite gets an image and a manifest."""
    result, runs = smoke_dreambooth_run, smoke_dreambooth_run["runs"]
    # 3 subjects x 3 prompts x 2 images, and 2 prior images ("a mug") per subject for PRES.
    assert result["fitted"] == 3 and result["generated"] == 3 * 3 * 2 + 3 * 2
    run_dir = Path(result["run_dir"])
    manifests = sorted(run_dir.glob("*/replicate-0/manifest.json"))
    assert len(manifests) == 3
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert len(manifest["images"]) == 8
        assert sum(i["prompt_id"] == "prior" for i in manifest["images"]) == 2
        assert all((path.parent / i["file"]).is_file() for i in manifest["images"])
    # The printed score is the README's: subjects, then prompts, then images, equally weighted.
    rows = stored_rows(run_dir)
    assert len(rows) == 24
    for metric, images in (("clip_i", 18), ("clip_t", 18), ("dino", 18), ("pres", 6)):
        summary = result["scores"]["metrics"][metric]
        assert summary["n_subjects"] == 3 and summary["n_images"] == images
        by_hand = run_score({k: r[metric] for k, r in rows.items() if r[metric] is not None})
        assert summary["mean"] == pytest.approx(by_hand, abs=1e-12)
    again = invoke("run", "--method", "dreambooth_lora", "--suite", "smoke", "--runs", runs)
    assert again.exit_code == 0
    assert "fitted 0, generated 0 images, 3 units already done" in again.stdout
    # The smoke suite is the toy world's: labelled so, and never as random weights.
    assert "CLIP-T ↑" in again.stdout and "TOY WORLD" in again.stdout
    assert "RANDOM WEIGHTS" not in again.stdout
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["realness"] == "toy world"
    # In a log (not a terminal) the progress is lines, here one a second: each subject's fit
    # speaks as it goes and when it ends.
    progress = result["stderr"]
    took = r"in (\d+h)?\d+m\d\ds, loss \d"
    steps = bench.load_suite("smoke").method_defaults["dreambooth_lora"]["steps"]
    assert len(re.findall(rf"^fit .+: \d+/{steps} \(\d+%\) {took}", progress, re.M)) >= 3
    assert len(re.findall(rf"^fit .+: done, {steps}/{steps} {took}", progress, re.M)) == 3


@pytest.mark.slow
def test_dreambooth_lora_learns_the_subject_and_keeps_the_prompt(smoke_runs, oracle):
    """On the smoke suite, as the oracle reads the PNGs: DreamBooth-LoRA draws the subject's
    body colour far more often than the base model where the prompt keeps it, and the whole
    subject (its class and every trait) in half of its images or more where the base model
    hardly ever does, and keeps the context the prompt names; CLIP-I and DINO rank the photos above
    DreamBooth-LoRA above the base model.

    Measured: the subject (its class and every trait) in 56% of the images at fit seed 0 (61% at
    seeds 1 and 2; 61% with prior preservation): the test's 50% covers the seeds and another
    CPU's rounding."""
    import bench

    lora = subject_truth(smoke_runs["dreambooth_lora"], oracle)
    base = subject_truth(smoke_runs["base"], oracle)

    def body_kept(truth: SubjectTruth) -> float:  # a recolour asks for another body colour
        pairs = zip(truth.traits["body"], truth.kinds, strict=True)
        return float(np.mean([hit for hit, kind in pairs if kind != "colour"]))

    gain = body_kept(lora) - body_kept(base)
    assert gain >= BODY_GAIN, (body_kept(lora), body_kept(base))
    whole, whole_base = np.mean(lora.subject), np.mean(base.subject)
    assert whole >= DB_WHOLE and whole > whole_base, (whole, whole_base)
    assert np.mean(lora.placed) >= DB_CONTEXT, np.mean(lora.placed)
    means = {m: bench.summarize(smoke_runs[m]) for m in ("real", "dreambooth_lora", "base")}
    for metric in ("clip_i", "dino"):
        real, lora, plain = (means[m][metric].mean for m in ("real", "dreambooth_lora", "base"))
        assert real > lora > plain, (metric, real, lora, plain)
    assert means["dreambooth_lora"]["dino"].mean >= means["base"]["dino"].mean + DINO_GAIN
