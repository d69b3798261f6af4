"""compare, leaderboard, score and the real reference row, on a two-subject micro suite."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()

DUO = """\
name = "duo"
backbone = "tiny"
resolution = 32
images_per_prompt = 1
replicates = [0]
scorers = ["clip_i", "clip_t", "dino"]

[subjects]
set = "smoke"
ids = ["red_mug", "blue_robot"]

[prompts]
object = { set = "dreambench_object", ids = ["on_the_beach", "red"] }

[generation]
scheduler = "DDIMScheduler"
steps = 3

[method_defaults.dreambooth_lora]
lr = 1e-2
steps = 4
batch_size = 2

[scorer_options]
clip = { pretrained = "random:0" }
dino = { pretrained = "random:0" }
"""


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def json_of(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    suite = root / "duo.toml"
    suite.write_text(DUO)
    runs = root / "runs"
    ids = {}
    for label, extra in [("rank4", []), ("rank2", ["--set", "rank=2"])]:
        ids[label] = json_of(
            "run",
            "--method",
            "dreambooth_lora",
            "--suite",
            suite,
            "--runs",
            runs,
            "--resamples",
            "500",
            *extra,
        )["run_id"]
    ids["real"] = json_of("run", "--method", "real", "--suite", suite, "--runs", runs)["run_id"]
    return {"suite": suite, "runs": runs, "ids": ids}


def test_compare_two_runs(store):
    out = json_of(
        "compare",
        store["ids"]["rank4"],
        store["ids"]["rank2"],
        "--runs",
        store["runs"],
        "--resamples",
        "500",
    )
    assert out["random_weights"] is True
    rows = {c["metric"]: c for c in out["comparisons"]}
    assert set(rows) == {"clip_i", "clip_t", "dino"}
    for c in rows.values():
        assert c["matched_on"] == "images" and c["n_images"] == 4 and c["n_subjects"] == 2
        assert c["low"] <= c["diff"] <= c["high"]
        assert 0 < c["p_value"] <= 1 and c["p_holm"] == c["p_value"]
        assert c["diff"] == pytest.approx(c["mean_a"] - c["mean_b"])
    table = invoke(
        "compare", store["ids"]["rank4"], store["ids"]["rank2"], "--runs", store["runs"]
    ).stdout
    assert "Paired differences" in table and "RANDOM WEIGHTS" in table


def test_compare_with_the_real_row_is_per_subject_and_skips_clip_t(store):
    ids = store["ids"]
    out = json_of(
        "compare",
        ids["rank4"],
        ids["rank2"],
        ids["real"],
        "--runs",
        store["runs"],
        "--resamples",
        "500",
    )
    pairs = {(c["metric"], c["run_b"]): c for c in out["comparisons"]}
    assert ("clip_t", ids["real"]) not in pairs
    real = pairs[("clip_i", ids["real"])]
    assert real["matched_on"] == "subjects" and real["n_subjects"] == 2
    clip_i = [c for c in out["comparisons"] if c["metric"] == "clip_i"]
    assert len(clip_i) == 3  # three pairs: Holm adjusts within the family
    assert all(c["p_holm"] >= c["p_value"] for c in clip_i)
    assert any(c["p_holm"] > c["p_value"] for c in clip_i if c["p_value"] < 1 / 3)


def test_real_scores_each_photo_against_the_others(store):
    from PIL import Image

    from bench.scoring import load_scorers
    from bench.suites import load_suite

    run_dir = next(store["runs"].glob(f"duo/{store['ids']['real']}"))
    rows = [
        json.loads(x)
        for x in (run_dir / "red_mug/replicate-0/scores.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 4 and all(r["clip_t"] is None for r in rows)
    suite = load_suite(store["suite"])
    clip_i = load_scorers(["clip_i"], {"clip": {"pretrained": "random:0"}}, "cpu")[0]
    photos = [Image.open(p).convert("RGB") for p in suite.subjects[0].images]
    expected = clip_i.score(
        [photos[1]], prompts=[""], references=[photos[0], *photos[2:]], reference_key="test/loo1"
    )[0]
    assert rows[1]["clip_i"] == pytest.approx(expected, abs=1e-6)
    assert rows[1]["clip_i"] < 1.0


def test_compare_refuses_other_suites_and_scorer_settings(store, tmp_path):
    other = tmp_path / "duo.toml"
    other.write_text(store["suite"].read_text().replace('"red"]', '"in_the_snow"]'))
    other_id = json_of(
        "run",
        "--method",
        "dreambooth_lora",
        "--suite",
        other,
        "--runs",
        store["runs"],
        "--resamples",
        "200",
    )["run_id"]
    result = invoke("compare", store["ids"]["rank4"], other_id, "--runs", store["runs"])
    assert result.exit_code == 2 and "different suites" in result.output
    # Same suite, rescored copy with other scorer weights.
    source = next(store["runs"].glob(f"duo/{store['ids']['rank2']}"))
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    for path in copy.rglob("scores.jsonl"):
        path.write_text(path.read_text().replace("tiny-random/seed0", "tiny-random/seed9"))
    result = invoke("compare", store["ids"]["rank4"], copy, "--runs", store["runs"])
    assert result.exit_code == 2 and "different scorer models" in result.output
    assert invoke("compare", "nope-1234", "--runs", store["runs"]).exit_code == 2


def test_leaderboard_has_measured_subject_and_published_rows(store, tmp_path):
    out = tmp_path / "LB.md"
    result = invoke("leaderboard", "--runs", store["runs"], "--out", out, "--resamples", "300")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert f"`{store['ids']['rank4']}` (random weights)" in text
    assert "rank=2" in text  # options that differ from the defaults
    assert "#### Per subject, suite `duo`" in text and "| blue_robot" in text
    assert "Real Images" in text and "0.885" in text and "0.803" in text
    assert "published, not re-measured" in text
    assert "best over all checkpoints" in text
    assert "not multiplied by 100, not clamped at 0" in text
    assert "fewer than 10 subjects" in text


def test_score_outside_images(store, tmp_path):
    source = next(store["runs"].glob(f"duo/{store['ids']['rank4']}"))
    folder = tmp_path / "outside"
    folder.mkdir()
    lines = []
    for i, png in enumerate(sorted(source.glob("*/replicate-0/images/*.png"))):
        shutil.copy(png, folder / f"img{i}.png")
        prompt_id, index = png.stem.rsplit("-", 1)
        subject = png.parts[-4]
        prompt = "a red sks mug" if (subject, prompt_id) == ("red_mug", "red") else prompt_id
        lines.append(
            json.dumps(
                {
                    "image": f"img{i}.png",
                    "subject": subject,
                    "prompt": prompt,
                    "image_index": int(index),
                }
            )
        )
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    out = json_of(
        "score",
        "--images",
        folder,
        "--suite",
        store["suite"],
        "--name",
        "outside",
        "--runs",
        store["runs"],
        "--resamples",
        "300",
    )
    assert out["run_id"].startswith("outside-") and out["scored_units"] == 2
    diff = json_of(
        "compare",
        store["ids"]["rank4"],
        out["run_id"],
        "--runs",
        store["runs"],
        "--resamples",
        "300",
    )
    assert all(c["diff"] == 0 for c in diff["comparisons"])

    (folder / "bad.csv").write_text("image,subject,prompt,image_index\nimg0.png,red_mug,x,0\n")
    before = sorted(p.name for p in (store["runs"] / "duo").iterdir())
    result = invoke(
        "score",
        "--images",
        folder,
        "--manifest",
        folder / "bad.csv",
        "--suite",
        store["suite"],
        "--runs",
        store["runs"],
    )
    assert result.exit_code == 2 and "bad.csv row 1: prompt 'x'" in result.output
    assert sorted(p.name for p in (store["runs"] / "duo").iterdir()) == before
