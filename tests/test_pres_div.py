"""PRES and DIV, DreamBooth's prior-preservation and diversity metrics: prior images from fixed
noise, each value recomputed by hand from the PNGs (DINO CLS tokens; the lpips package loaded from
the same weight file), and both metrics through run tables, compare, the leaderboard and sweeps."""

import json
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError

from helpers import cosine, dino_by_hand, documented_seed

SUBJECTS = Path(__file__).resolve().parents[1] / "subjects" / "shapes"

# Two subjects, two prompts x 3 images (DIV needs pairs), 2 prior images per subject.
SUITE = """\
name = "prior"
backbone = "tiny"
resolution = 32
images_per_prompt = 3
prior_images = 2
replicates = [0]
scorers = ["clip_i", "dino", "pres", "div"]

[subjects]
set = "shapes"
ids = ["red_mug", "blue_robot"]

[prompts]
object = { set = "dreambench_object", ids = ["on_the_beach", "red"] }

[generation]
scheduler = "DDIMScheduler"
steps = 3

[method_defaults.dreambooth_lora]
lr = 1e-2
steps = 2
batch_size = 2

[scorer_options]
clip = { pretrained = "random:0" }
dino = { pretrained = "random:0" }
pres = { pretrained = "random:0" }
div = { pretrained = "random:0" }
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import bench

    root = tmp_path_factory.mktemp("prior")
    suite = root / "prior.toml"
    suite.write_text(SUITE)
    runs = root / "runs"
    stats = bench.StatsOptions(n_resamples=200)
    base = bench.run("base", suite, runs=runs, stats=stats)
    lora = bench.run("dreambooth_lora", suite, runs=runs, stats=stats)
    return {"suite": suite, "runs": runs, "base": base, "lora": lora, "stats": stats}


def rows(run_dir: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(run_dir.glob("*/replicate-0/scores.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_prior_images_are_the_plain_class_prompt_from_each_cells_own_noise(store):
    for result in (store["base"], store["lora"]):
        for unit in sorted(result.run_dir.glob("*/replicate-0")):
            manifest = json.loads((unit / "manifest.json").read_text())
            subject = manifest["subject"]
            prior = [e for e in manifest["images"] if e["prompt_id"] == "prior"]
            assert len(prior) == 2 and len(manifest["images"]) == 2 * 3 + 2
            for e in prior:
                # "a mug": no identifier; the seed depends on the cell alone, not the method,
                # so every method draws the same noise for it.
                assert e["prompt"] == e["scoring_prompt"] == f"a {subject['class']}"
                assert e["seed"] == documented_seed(subject["id"], "prior", e["image_index"], 0)
                assert (unit / e["file"]).is_file()


def test_pres_is_the_dino_score_of_the_prior_images_against_the_photos(store):
    dino = dino_by_hand()
    for result in (store["base"], store["lora"]):
        for r in rows(result.run_dir):
            if r["prompt_id"] != "prior":
                assert r["pres"] is None  # PRES is defined on prior images only
                continue
            assert r["clip_i"] is None and r["dino"] is None and r["div"] is None
            photos = sorted((SUBJECTS / r["subject"]).glob("*.png"))
            image = dino([result.run_dir / r["image"]])
            expected = cosine(image, dino(photos))[0].mean().item()
            assert r["pres"] == pytest.approx(expected, abs=1e-5)


def lpips_by_hand():
    """LPIPS from the lpips package itself, its weights loaded from the scorer's file."""
    import warnings

    import lpips
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    from bench.scorers.diversity import random_weights_file

    with warnings.catch_warnings():  # lpips passes torchvision its deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    net.load_state_dict(load_file(str(random_weights_file(0))))
    net.eval()

    def distance(a: Path, b: Path) -> float:
        def pixels(p):
            x = torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32))
            return (x / 127.5 - 1.0).permute(2, 0, 1)[None]  # [-1, 1], as LPIPS expects

        with torch.no_grad():
            return net(pixels(a), pixels(b)).item()

    return distance


def test_div_is_the_mean_pairwise_lpips_distance_within_each_prompt(store):
    distance = lpips_by_hand()
    run_dir = store["lora"].run_dir
    by_cell: dict[tuple, dict[int, dict]] = {}
    for r in rows(run_dir):
        if r["prompt_id"] != "prior":
            by_cell.setdefault((r["subject"], r["prompt_id"]), {})[r["image_index"]] = r
    assert len(by_cell) == 4
    for cell in by_cell.values():
        paths = {i: run_dir / r["image"] for i, r in cell.items()}
        pairs = {(i, j): distance(paths[i], paths[j]) for i in paths for j in paths if i < j}
        for i, r in cell.items():
            others = [d for (a, b), d in pairs.items() if i in (a, b)]
            assert r["div"] == pytest.approx(np.mean(others), abs=1e-5)
        # The images' mean is the mean pairwise distance, DreamBooth's DIV of the cell.
        mean = np.mean([r["div"] for r in cell.values()])
        assert mean == pytest.approx(np.mean(list(pairs.values())), abs=1e-5)


def test_div_is_undefined_for_an_image_alone_with_its_prompt():
    from PIL import Image

    from bench.scorers.diversity import make_div

    div = make_div({"pretrained": "random:0"})
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue", "green")]
    values = div.score(images, prompts=["a", "a", "b"], references=[], reference_key="k")
    assert np.isnan(values[2]) and not np.isnan(values[:2]).any()
    assert values[0] == values[1]  # one pair: both images have its distance


def test_pres_and_div_in_run_tables_compare_leaderboard_and_sweeps(store, tmp_path):
    import bench
    from bench.analysis.stats import subject_means

    lora, base, stats = store["lora"], store["base"], store["stats"]
    assert {"pres", "div"} <= set(lora.intervals)
    pres_rows = [r for r in rows(lora.run_dir) if r["prompt_id"] == "prior"]
    means = subject_means(
        [r["pres"] for r in pres_rows], [r["subject"] for r in pres_rows], ["prior"] * 4
    )
    assert lora.intervals["pres"].mean == pytest.approx(np.mean(list(means.values())))
    assert lora.intervals["pres"].n_images == 4
    # compare: PRES on the prior images of both runs, DIV on their prompt images.
    compared = {c.metric: c for c in bench.compare([lora.run_dir, base.run_dir], stats=stats)}
    assert {"pres", "div"} <= set(compared)
    assert compared["pres"].result.n_images == 4
    assert compared["pres"].result.diff == pytest.approx(
        lora.intervals["pres"].mean - base.intervals["pres"].mean
    )
    assert compared["div"].result.n_images == 12
    # The leaderboard has a column for each.
    text = bench.leaderboard(runs=store["runs"], out=None, stats=stats)
    header = next(line for line in text.splitlines() if line.startswith("| run "))
    assert "PRES" in header and "DIV" in header
    # A sweep's checkpoint table picks PRES's best checkpoint as its lowest.
    made = bench.sweep(
        "dreambooth_lora",
        bench.load_suite(store["suite"]),
        grid={"rank": [2]},
        options={"steps": 4},
        checkpoints=1,
        runs=tmp_path,
        stats=stats,
    )
    row = made.report["checkpoints"][0]
    run_dir = tmp_path / "prior" / row["run"]
    points = {
        step: bench.summarize(run_dir, checkpoint=None if step == 4 else step, stats=stats)
        for step in (2, 4)
    }
    lowest = min(points, key=lambda s: points[s]["pres"].mean)
    assert row["PRES best (optimistic)"].endswith(f"@ {lowest}")
    highest = max(points, key=lambda s: points[s]["div"].mean)
    assert row["DIV best (optimistic)"].endswith(f"@ {highest}")
    assert "PRES" in (made.sweep_dir / "sweep.md").read_text()


def test_prior_images_in_the_suite_file(tmp_path):
    from bench.data.suites import load_suite

    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE.replace("prior_images = 2", "prior_images = -1"))
    with pytest.raises(BenchError, match="prior_images must be a whole number >= 0"):
        load_suite(bad)
    # Only a suite that asks for prior images has them in its identity (and so its run ids).
    without = tmp_path / "without.toml"
    without.write_text(SUITE.replace("prior_images = 2\n", ""))
    assert "prior_images" not in load_suite(without).identity()
    assert load_suite(tmp_path / "without.toml").prior_images == 0
    with_prior = tmp_path / "with.toml"
    with_prior.write_text(SUITE)
    assert load_suite(with_prior).identity()["prior_images"] == 2


def test_the_prior_prompt_id_is_reserved():
    from bench.data.prompts import Prompt, PromptSet

    with pytest.raises(BenchError, match="'prior' is reserved"):
        PromptSet("mine", (Prompt("prior", "a {token} {class}"),))
