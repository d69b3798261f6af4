"""Convention profiles: one stored run scored under the DreamBooth paper's, DreamBench++'s and
CustomConcept101's definitions from its images alone, each value recomputed by hand from the same
weights; compare refuses to mix them; the leaderboard keeps them apart."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import BenchError

from helpers import clip_by_hand, copy_runs, cosine, dino_by_hand

SUBJECTS = Path(__file__).resolve().parents[1] / "subjects" / "shapes"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run except its score files, with its bytes."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.name.startswith("scores")
    }


@pytest.fixture(scope="module")
def store(duo_store, tmp_path_factory):
    """A `base` run of the two-subject suite, scored under the default convention by `run`,
    then rescored under the two others (through the library, then the command)."""
    import bench

    copied = copy_runs(duo_store, ["base"], tmp_path_factory.mktemp("conventions"))
    suite, runs = copied["suite"], copied["runs"]
    stats = bench.StatsOptions(n_resamples=200)
    made = bench.run("base", suite, runs=runs, stats=stats)  # the session's run, found finished
    before = snapshot(made.run_dir)
    plus = bench.rescore(
        made.run_id, suite=suite, runs=runs, convention="dreambench-plus", stats=stats
    )
    result = invoke(
        "score", "--run", made.run_id, "--suite", suite, "--runs", runs,
        "--convention", "cc101", "--resamples", "200", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cc101 = json.loads(result.stdout)
    return {
        "suite": suite,
        "runs": runs,
        "made": made,
        "dir": made.run_dir,
        "before": before,
        "plus": plus,
        "cc101": cc101,
    }


def rows_of(run_dir: Path, convention: str) -> dict[tuple, dict]:
    """A convention's score rows, read by hand from its own file in each unit."""
    name = "scores.jsonl" if convention == "dreambooth" else f"scores.{convention}.jsonl"
    rows = {}
    for path in sorted(run_dir.glob(f"*/replicate-*/{name}")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows[(r["subject"], r["prompt_id"], r["image_index"], r["replicate"])] = r
    return rows


def test_rescoring_reads_the_stored_images_and_generates_nothing(store):
    assert snapshot(store["dir"]) == store["before"]  # images, manifests, run.json untouched
    assert store["plus"].generated == 0 and store["plus"].fitted == 0
    assert store["plus"].scored_units == 2 and store["cc101"]["scored_units"] == 2
    default = rows_of(store["dir"], "dreambooth")
    for convention in ("dreambooth", "dreambench-plus", "cc101"):
        rows = rows_of(store["dir"], convention)
        assert rows.keys() == default.keys() and len(rows) == 4
        assert {r["convention"] for r in rows.values()} == {convention}
    # Asked again, nothing is left to score.
    import bench

    again = bench.rescore(store["made"].run_id, suite=store["suite"], runs=store["runs"],
                          convention="cc101")  # fmt: skip
    assert again.scored_units == 0


@pytest.fixture(scope="module")
def clip():
    return clip_by_hand()


def photos(subject):
    return sorted((SUBJECTS / subject).glob("*.png"))


def test_each_convention_follows_its_source(store, clip):
    embed_image, embed_text = clip
    dino_s16 = dino_by_hand("vit_small_patch16_224.dino")
    dino_s8 = dino_by_hand("vit_small_patch8_224.dino")
    dinov2 = dino_by_hand("vit_small_patch14_dinov2.lvd142m")
    default = rows_of(store["dir"], "dreambooth")
    plus = rows_of(store["dir"], "dreambench-plus")
    cc101 = rows_of(store["dir"], "cc101")
    for key, r in default.items():
        image = [store["dir"] / r["image"]]
        refs = photos(key[0])
        clip_i = cosine(embed_image(image), embed_image(refs))[0].mean().item()
        clip_t = cosine(embed_image(image), embed_text([r["scoring_prompt"]]))[0, 0].item()
        dino16 = cosine(dino_s16(image), dino_s16(refs))[0].mean().item()
        # DreamBooth: raw cosines, DINO ViT-S/16.
        assert (r["clip_i"], r["clip_t"], r["dino"]) == pytest.approx(
            (clip_i, clip_t, dino16), abs=1e-5
        )
        # DreamBench++: x 100, DINO ViT-S/8 in place of ViT-S/16, and DINOv2-small.
        dino8 = cosine(dino_s8(image), dino_s8(refs))[0].mean().item()
        v2 = cosine(dinov2(image), dinov2(refs))[0].mean().item()
        p = plus[key]
        assert (p["clip_i"], p["clip_t"], p["dino"], p["dinov2"]) == pytest.approx(
            (100 * clip_i, 100 * clip_t, 100 * dino8, 100 * v2), abs=1e-3
        )
        assert abs(dino8 - dino16) > 1e-3 and abs(v2 - dino16) > 1e-3  # other networks
        # CustomConcept101: CLIPScore text alignment, raw image alignment.
        c = cc101[key]
        assert c["clip_t"] == pytest.approx(2.5 * max(clip_t, 0.0), abs=1e-5)
        assert (c["clip_i"], c["dino"]) == pytest.approx((clip_i, dino16), abs=1e-5)
        assert p["scorers"]["dino"]["model"] == "timm:tiny-random-vit_small_patch8_224.dino/seed0"


def test_cc101_clamps_negative_text_cosines_at_zero():
    import numpy as np

    from bench.scorers.conventions import get_convention

    raw = np.array([-0.2, 0.0, 0.3])
    assert get_convention("cc101").apply("clip_t", raw).tolist() == pytest.approx([0, 0, 0.75])
    assert get_convention("cc101").apply("clip_i", raw).tolist() == pytest.approx(raw.tolist())
    assert get_convention("dreambench-plus").apply("clip_t", raw).tolist() == pytest.approx(
        [-20, 0, 30]
    )
    assert get_convention("dreambooth").apply("dino", raw).tolist() == pytest.approx(raw.tolist())


def test_compare_refuses_to_mix_conventions(store):
    import dataclasses

    from bench.analysis.compare import compare
    from bench.analysis.options import StatsOptions
    from bench.analysis.results import load_results

    default = load_results(store["dir"])
    other = load_results(store["dir"], convention="cc101")
    other = dataclasses.replace(other, record=dataclasses.replace(other.record, run_id="copy"))
    with pytest.raises(BenchError, match="different conventions .dreambooth vs cc101."):
        compare([default, other], StatsOptions(n_resamples=100))
    # Under one convention it compares, and says which.
    run_id = store["made"].run_id
    twin = invoke("compare", run_id, store["dir"], "--runs", store["runs"], "--json")
    assert twin.exit_code == 2 and "named twice" in twin.output
    same = dataclasses.replace(load_results(store["dir"], convention="cc101"), record=other.record)
    cc101 = load_results(store["dir"], convention="cc101")
    result = compare([cc101, same], StatsOptions(n_resamples=100))
    assert {c.metric for c in result} == {"clip_i", "clip_t", "dino"}


def test_summaries_and_the_command_carry_the_convention(store):
    from bench.analysis.options import StatsOptions
    from bench.analysis.results import load_results, summarize

    cc101 = store["cc101"]["scores"]
    assert cc101["convention"] == "cc101"
    by_hand = [r["clip_t"] for r in rows_of(store["dir"], "cc101").values()]
    assert cc101["metrics"]["clip_t"]["mean"] == pytest.approx(sum(by_hand) / len(by_hand))
    plus = store["plus"]
    assert plus.results.convention == "dreambench-plus"
    assert set(plus.intervals) == {"clip_i", "clip_t", "dino", "dinov2"}
    stored = load_results(store["dir"], convention="dreambench-plus")
    expected = summarize(stored, StatsOptions(n_resamples=200))
    assert plus.intervals["dinov2"].mean == pytest.approx(expected["dinov2"].mean)


def sections(text: str) -> dict[str, str]:
    """The leaderboard's text under each `## Convention` heading."""
    parts = text.split("\n## Convention `")[1:]
    return {part.split("`", 1)[0]: part.split("\n## Sweeps", 1)[0] for part in parts}


def test_leaderboard_groups_measured_and_published_rows_by_convention(store, tmp_path):
    from bench.toml_files import read_toml

    out = tmp_path / "LB.md"
    result = invoke("leaderboard", "--runs", store["runs"], "--out", out, "--resamples", "200")
    assert result.exit_code == 0, result.output
    by_convention = sections(out.read_text())
    assert list(by_convention) == ["dreambooth", "cc101", "dreambench-plus"]
    run_id = store["made"].run_id
    for name, text in by_convention.items():
        assert f"`{run_id}`" in text  # the run is measured under each
        rows = rows_of(store["dir"], name)
        mean = sum(r["clip_t"] for r in rows.values()) / len(rows)
        line = next(line for line in text.splitlines() if f"`{run_id}`" in line)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert f"{mean:.3f}" in cells
    assert "DreamBooth paper, Table 1" in by_convention["dreambooth"]
    assert "CustomConcept101" in by_convention["cc101"]
    assert "CustomConcept101" not in by_convention["dreambooth"]
    assert "DreamBooth paper" not in by_convention["cc101"]
    assert "DINOv2" in by_convention["dreambench-plus"]
    # Every published table names a known convention.
    from bench.paths import data_dir
    from bench.scorers.conventions import CONVENTIONS

    for path in data_dir("baselines").glob("*.toml"):
        table = read_toml(path)
        if "row" in table:
            assert table["convention"] in CONVENTIONS, path
    # --convention keeps one section.
    only = invoke("leaderboard", "--runs", store["runs"], "--out", out, "--convention", "cc101")
    assert only.exit_code == 0 and list(sections(out.read_text())) == ["cc101"]


def test_bad_conventions_are_one_line_errors_that_write_nothing(store):
    before = sorted(p.name for p in store["dir"].rglob("scores*"))
    run_id = store["made"].run_id
    result = invoke("score", "--run", run_id, "--runs", store["runs"], "--convention", "cc10")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown convention 'cc10' (did you mean 'cc101'?); "
        "known: cc101, dreambench-plus, dreambooth"
    )
    conflict = invoke(
        "score", "--run", run_id, "--suite", store["suite"], "--runs", store["runs"],
        "--convention", "dreambench-plus",
        "--scorer-option", "dino.model=vit_small_patch16_224.dino",
    )  # fmt: skip
    assert conflict.exit_code == 2
    assert (
        "convention dreambench-plus scores dino with vit_small_patch8_224.dino" in conflict.output
    )
    assert sorted(p.name for p in store["dir"].rglob("scores*")) == before


def test_a_metric_the_convention_does_not_rescale_is_marked_raw():
    """dreambench-plus reports its cosines x 100; PRES and DIV keep their raw values there, and
    their columns say so. Under conventions that rescale nothing, no mark. Each heading carries
    the direction its scorer declares."""
    from bench.reports.labels import metric, metric_label

    def label(scorer_id: str, convention: str) -> str:
        return metric_label(metric(scorer_id), convention)

    assert label("pres", "dreambench-plus") == "PRES ↓ (raw)"
    assert label("div", "dreambench-plus") == "DIV ↑ (raw)"
    assert [label(m, "dreambench-plus") for m in ("dino", "dinov2", "clip_i")] == [
        "DINO ↑",
        "DINOv2 ↑",
        "CLIP-I ↑",
    ]
    assert label("pres", "dreambooth") == label("pres", "cc101") == "PRES ↓"
