"""compare, leaderboard, score and the real reference row, on a two-subject micro suite (and on
a six-subject copy of its runs, where intervals exist)."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app

from helpers import clip_by_hand, copy_runs, cosine, dino_by_hand, run_score, stored_rows

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def json_of(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def store(duo_store, tmp_path_factory):
    """Three runs of the two-subject suite, made through the library: two LoRA ranks and the
    Real Images row (the session's, copied into a store of this module's own)."""
    return copy_runs(duo_store, ["rank4", "rank2", "real"], tmp_path_factory.mktemp("store"))


def run_dir_of(store, label):
    return next(store["runs"].glob(f"duo/{store['ids'][label]}"))


def widen(run_dir: Path, dest_runs: Path, copies: int = 2) -> Path:
    """A copy of a run in another store with each subject repeated `copies` more times under new
    names, the copies' scores shifted by an amount of their own: six subjects from two, enough
    for intervals (below five there are none)."""
    dest = dest_runs / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir, dest)
    originals = sorted(p for p in run_dir.iterdir() if (p / "replicate-0").is_dir())
    for n, subject_dir in enumerate(originals):
        for i in range(copies):
            name = f"{subject_dir.name}_copy{i}"
            shutil.copytree(subject_dir, dest / name)
            shift = 0.01 * (i + 1) * (-1) ** n
            for scores in (dest / name).rglob("scores.jsonl"):
                rows = [json.loads(line) for line in scores.read_text().splitlines()]
                for r in rows:
                    r["subject"] = name
                    r["image"] = r["image"].replace(subject_dir.name, name, 1)
                    for metric in ("clip_i", "clip_t", "dino"):
                        if r[metric] is not None:
                            r[metric] += shift
                scores.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dest


@pytest.fixture(scope="module")
def wide(store, tmp_path_factory):
    """The store's three runs, each widened to six subjects, in a store of their own."""
    runs = tmp_path_factory.mktemp("wide") / "runs"
    dirs = {label: widen(run_dir_of(store, label), runs) for label in store["ids"]}
    return {"runs": runs, "dirs": dirs, "ids": store["ids"]}


def aligned(dir_a: Path, dir_b: Path, metric: str):
    """Both runs' values of one metric on their common images, with subject and prompt labels,
    read from the score files by hand."""
    a, b = stored_rows(dir_a), stored_rows(dir_b)
    keys = sorted(a)
    assert sorted(b) == keys
    return (
        [a[k][metric] for k in keys],
        [b[k][metric] for k in keys],
        [k[0] for k in keys],
        [k[1] for k in keys],
    )


def test_compare_two_runs(store):
    import bench

    stats = bench.StatsOptions(n_resamples=500)
    comparisons = bench.compare(
        [store["ids"]["rank4"], store["ids"]["rank2"]], runs=store["runs"], stats=stats
    )
    a, b = stored_rows(run_dir_of(store, "rank4")), stored_rows(run_dir_of(store, "rank2"))
    rows = {c.metric: c for c in comparisons}
    assert set(rows) == {"clip_i", "clip_t", "dino"}
    for metric, c in rows.items():
        r = c.result
        assert c.matched_on == "images" and r.n_images == 4 and r.n_subjects == 2
        assert r.mean_a == pytest.approx(run_score({k: v[metric] for k, v in a.items()}))
        assert r.mean_b == pytest.approx(run_score({k: v[metric] for k, v in b.items()}))
        by_hand = run_score({k: a[k][metric] - b[k][metric] for k in a})
        assert r.diff == pytest.approx(by_hand, abs=1e-12)
        assert r.p_holm == r.p_value  # one pair: nothing to adjust
        # Two subjects cannot show more than p = 2/4: the exact sign-flip test says so.
        assert (
            r.p_value >= 0.5 and r.p_method == "exact sign-flip test over 2 subjects (4 patterns)"
        )
    # The command prints the same comparison, labelled.
    out = json_of(
        "compare", store["ids"]["rank4"], store["ids"]["rank2"], "--runs", store["runs"],
        "--resamples", "500",
    )  # fmt: skip
    # one field says how real the numbers are (the two flags JSON readers had stay, derived)
    assert (out["realness"], out["random_weights"], out["toy_world"]) == (
        "random weights",
        True,
        False,
    )
    assert [(c["metric"], c["diff"], c["p_value"]) for c in out["comparisons"]] == [
        (c.metric, c.result.diff, c.result.p_value) for c in comparisons
    ]
    table = invoke(
        "compare", store["ids"]["rank4"], store["ids"]["rank2"], "--runs", store["runs"]
    ).stdout
    assert "Paired differences" in table and "RANDOM WEIGHTS" in table
    # Two subjects: no interval, and the table says why; the JSON has no bounds.
    assert all(math.isnan(c.result.low) and c.result.ci_method == "none" for c in comparisons)
    assert all(c["low"] is None and c["high"] is None for c in out["comparisons"])
    assert "no interval with 2 subjects: below 5 no interval method keeps 95% coverage" in table
    assert "p: exact sign-flip test over 2 subjects (4 patterns)" in table


def test_numbers_from_runs_of_mixed_realness_are_as_real_as_the_least_real():
    """A table over a toy-world run and a random-weight one carries the random-weight note (its
    numbers mean nothing), and one over real runs carries none."""
    from types import SimpleNamespace

    from bench.analysis.results import least_real
    from bench.reports.labels import RANDOM_WEIGHTS_NOTE, TOY_WORLD_NOTE, caveats

    runs = {
        name: SimpleNamespace(realness=name) for name in ("real", "toy world", "random weights")
    }
    assert least_real([runs["toy world"], runs["random weights"], runs["real"]]) == "random weights"
    assert least_real([runs["real"], runs["toy world"]]) == "toy world"
    assert least_real([runs["real"]]) == "real"
    assert caveats("random weights") == [RANDOM_WEIGHTS_NOTE]
    assert caveats("toy world") == [TOY_WORLD_NOTE]
    assert caveats("real") == []


@pytest.mark.parametrize("ci_method", ["auto", "percentile"])
def test_compare_intervals_are_the_paired_bootstrap_of_the_stored_scores(wide, ci_method):
    from bench.analysis.stats import paired_comparison

    rank4, rank2 = wide["ids"]["rank4"], wide["ids"]["rank2"]
    out = json_of(
        "compare", rank4, rank2, "--runs", wide["runs"], "--resamples", "500",
        "--ci-method", ci_method,
    )  # fmt: skip
    assert len(out["comparisons"]) == 3
    for c in out["comparisons"]:
        a, b, subjects, prompts = aligned(wide["dirs"]["rank4"], wide["dirs"]["rank2"], c["metric"])
        expected = paired_comparison(
            a, b, subjects, prompts, n_resamples=500, method=ci_method, seed=0
        )
        assert c["n_subjects"] == 6 and c["ci_method"] == expected.ci_method != "none"
        assert (c["diff"], c["low"], c["high"], c["p_value"]) == pytest.approx(
            (expected.diff, expected.low, expected.high, expected.p_value), abs=1e-12
        )
        assert c["low"] < c["diff"] < c["high"]
    table = invoke("compare", rank4, rank2, "--runs", wide["runs"], "--ci-method", ci_method)
    name = "studentized bootstrap (bootstrap-t)" if ci_method == "auto" else "percentile bootstrap"
    assert f"intervals: 95% {name}, subjects resampled" in table.stdout


def test_a_run_against_itself_in_another_row_order_differs_by_exactly_zero(wide):
    import dataclasses

    from bench.analysis.compare import compare
    from bench.analysis.options import StatsOptions
    from bench.analysis.results import load_results

    results = load_results(wide["dirs"]["rank4"])
    shuffled = results.scores.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert list(shuffled.index) == list(range(12))
    assert list(shuffled["image"]) != list(results.scores["image"])
    record = dataclasses.replace(results.record, run_id="copy")
    copy = dataclasses.replace(results, record=record, scores=shuffled)
    for c in compare([results, copy], StatsOptions(n_resamples=500)):
        r = c.result
        assert (r.diff, r.low, r.high, r.p_value) == (0.0, 0.0, 0.0, 1.0), c.metric


def test_swapping_two_subjects_images_gives_the_difference_computed_by_hand(store, tmp_path):
    """A copy of a run with red_mug's and blue_robot's images swapped, rescored: compare must
    join the two runs on (subject, prompt, image, replicate), not on row position."""
    from bench.analysis.compare import compare
    from bench.analysis.options import StatsOptions
    from bench.analysis.results import load_results
    from bench.scorers.scoring import load_scorers, score_run

    source = run_dir_of(store, "rank4")
    copy = tmp_path / "swapped"
    shutil.copytree(source, copy)
    mug, robot = copy / "red_mug/replicate-0/images", copy / "blue_robot/replicate-0/images"
    for png in sorted(mug.iterdir()):
        a, b = png.read_bytes(), (robot / png.name).read_bytes()
        png.write_bytes(b)
        (robot / png.name).write_bytes(a)
    for scores in copy.rglob("scores.jsonl"):
        scores.unlink()
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "run_id": "swapped"}))
    options = {"clip": {"pretrained": "random:0"}, "dino": {"pretrained": "random:0"}}
    score_run(copy, load_scorers(["clip_i", "clip_t", "dino"], options, "cpu"))

    a, b = stored_rows(source), stored_rows(copy)
    comparisons = compare([load_results(source), load_results(copy)], StatsOptions(n_resamples=300))
    assert {c.metric for c in comparisons} == {"clip_i", "clip_t", "dino"}
    for c in comparisons:
        by_hand = run_score({k: a[k][c.metric] - b[k][c.metric] for k in a})
        assert abs(by_hand) > 1e-4  # the swap changed the scores
        assert c.result.diff == pytest.approx(by_hand, abs=1e-12), c.metric


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
    pairs = {(c["metric"], c["run_a"], c["run_b"]): c for c in out["comparisons"]}
    assert not [k for k in pairs if k[0] == "clip_t" and ids["real"] in k]
    real = pairs[("clip_i", ids["rank4"], ids["real"])]
    assert real["matched_on"] == "subjects" and real["n_subjects"] == 2
    # The real row against a run: subject means of each, matched by subject.
    rank4, photos = stored_rows(run_dir_of(store, "rank4")), stored_rows(run_dir_of(store, "real"))
    by_hand = run_score({k: r["clip_i"] for k, r in rank4.items()}) - run_score(
        {k: r["clip_i"] for k, r in photos.items()}
    )
    assert real["diff"] == pytest.approx(by_hand, abs=1e-12)
    # Holm within each metric's family of pairs, recomputed by hand from the raw p-values.
    for metric in ("clip_i", "clip_t", "dino"):
        family = [c for c in out["comparisons"] if c["metric"] == metric]
        assert len(family) == (1 if metric == "clip_t" else 3)  # real defines no CLIP-T
        m, running = len(family), 0.0
        for rank, c in enumerate(sorted(family, key=lambda c: c["p_value"])):
            running = max(running, min(1.0, (m - rank) * c["p_value"]))
            assert c["p_holm"] == pytest.approx(running, abs=1e-12)


def test_real_scores_each_photo_against_the_others(store):
    """Leave-one-out: photo i against the subject's other photos, by hand with open_clip and
    timm; no CLIP-T."""
    from bench.data.suites import load_suite

    rows = stored_rows(run_dir_of(store, "real"))
    suite = load_suite(store["suite"])
    embed_clip, embed_dino = clip_by_hand()[0], dino_by_hand()
    for subject in suite.subjects:
        photos = list(subject.images)
        mine = [r for k, r in sorted(rows.items()) if k[0] == subject.id]
        assert [r["image_index"] for r in mine] == list(range(len(photos)))
        for metric, embed in (("clip_i", embed_clip), ("dino", embed_dino)):
            features = embed(photos)
            for i, r in enumerate(mine):
                others = [j for j in range(len(photos)) if j != i]
                expected = cosine(features[i : i + 1], features[others]).mean().item()
                assert r[metric] == pytest.approx(expected, abs=1e-5)
        assert all(r["clip_t"] is None for r in mine)


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


def markdown_table(text: str, heading: str, raw: bool = False) -> list[dict[str, str]]:
    """The first markdown table after `heading`, as one dict per row (cells marked best in
    **bold** unmarked, unless `raw`)."""
    lines = text.split(heading, 1)[1].splitlines()
    rows = [line for line in lines if line.startswith("|")]
    start = lines.index(rows[0])
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(cells if raw else [c.removeprefix("**").removesuffix("**") for c in cells])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


# "mean [low, high]", or the mean alone where there is no interval (fewer than 5 subjects).
CELL = re.compile(r"^(-?\d+\.\d+)(?: \[(-?\d+\.\d+), (-?\d+\.\d+)\])?$")


def parse_cell(text: str) -> tuple[float, float, float]:
    match = CELL.match(text)
    assert match, text
    return tuple(math.nan if x is None else float(x) for x in match.groups())


@pytest.mark.parametrize("which", ["store", "wide"])
def test_leaderboard_has_measured_subject_and_published_rows(which, request, tmp_path):
    from bench.analysis.options import StatsOptions
    from bench.analysis.results import load_results, summarize

    fixture = request.getfixturevalue(which)
    dirs = (
        fixture["dirs"] if which == "wide" else {k: run_dir_of(fixture, k) for k in fixture["ids"]}
    )
    n_subjects = 6 if which == "wide" else 2
    out = tmp_path / "LB.md"
    result = invoke("leaderboard", "--runs", fixture["runs"], "--out", out, "--resamples", "300")
    assert result.exit_code == 0, result.output
    text = out.read_text()

    # Every number of every measured row is the library's summary of that run.
    rows = markdown_table(text, "### Suite `duo`")
    by_run = {row["run"].split("`")[1]: row for row in rows}
    assert set(fixture["ids"].values()) <= set(by_run)
    for label in ("rank4", "rank2", "real"):
        run_dir = dirs[label]
        row = by_run[fixture["ids"][label]]
        assert row["run"].endswith("(random weights)")
        results = load_results(run_dir)
        summary = summarize(results, StatsOptions(n_resamples=300))
        for metric, column in (("clip_i", "CLIP-I ↑"), ("clip_t", "CLIP-T ↑"), ("dino", "DINO ↑")):
            if label == "real" and metric == "clip_t":
                assert row[column] == "n.a."
                continue
            iv = summary[metric]
            cell = parse_cell(row[column])
            assert cell == pytest.approx((iv.mean, iv.low, iv.high), abs=5e-4, nan_ok=True)
            assert math.isnan(cell[1]) == (n_subjects < 5)
            values = {k: r[metric] for k, r in stored_rows(run_dir).items()}
            assert iv.mean == pytest.approx(run_score(values), abs=1e-12)
        assert int(row["subjects"]) == n_subjects and int(row["images"]) == len(results.scores)
    # Options that differ from the method's defaults (the suite's are listed too).
    assert "rank=2" in by_run[fixture["ids"]["rank2"]]["options"].split(", ")
    assert "rank=" not in by_run[fixture["ids"]["rank4"]]["options"]

    # Per-subject tables: each subject's mean over prompts of its mean over images.
    subject_rows = markdown_table(text, "CLIP-I:")
    assert len(subject_rows) == n_subjects
    for label in ("rank4", "rank2"):
        stored = stored_rows(dirs[label])
        for row in subject_rows:
            subject = row["subject"]
            values = {k: r["clip_i"] for k, r in stored.items() if k[0] == subject}
            assert float(row[fixture["ids"][label]]) == pytest.approx(run_score(values), abs=5e-4)

    assert "Real Images" in text and "0.885" in text and "0.803" in text
    assert "published, not re-measured" in text
    assert "best over all checkpoints" in text
    assert "not multiplied by 100, not clamped at 0" in text
    assert "95% studentized bootstrap (bootstrap-t) intervals, 300 resamples" in text  # as computed
    if n_subjects < 5:
        assert "No interval with 2 subjects: below 5 no interval method keeps 95% coverage." in text
    else:
        assert "Intervals: 95% studentized bootstrap (bootstrap-t), subjects resampled." in text
        # --ci-method reaches the statistics.
        args = ["--runs", fixture["runs"], "--out", out, "--resamples", "300"]
        assert invoke("leaderboard", *args, "--ci-method", "percentile").exit_code == 0
        text = out.read_text()
        assert "Intervals: 95% percentile bootstrap, subjects resampled." in text
        row = {r["run"].split("`")[1]: r for r in markdown_table(text, "### Suite `duo`")}
        percentile = StatsOptions(n_resamples=300, ci_method="percentile")
        iv = summarize(load_results(dirs["rank4"]), percentile)["dino"]
        cell = parse_cell(row[fixture["ids"]["rank4"]]["DINO ↑"])
        assert cell == pytest.approx((iv.mean, iv.low, iv.high), abs=5e-4)


def _bootstrap_by_rows(run_dir: Path, metric: str, **options):
    """The run's interval from its stored rows, read here, through the statistics themselves."""
    import numpy as np

    from bench.analysis.stats import bootstrap_interval

    rows = stored_rows(run_dir)
    keys = sorted(rows)
    values = np.array([rows[k][metric] for k in keys], dtype=float)
    return bootstrap_interval(values, [k[0] for k in keys], [k[1] for k in keys], **options)


def test_the_statistics_options_reach_every_leaderboard_number(wide, tmp_path):
    """--confidence and --bootstrap-seed reach the intervals themselves: each leaderboard cell
    is the bootstrap at the options asked for, and a 90% leaderboard differs from a 95% one (it
    is narrower). (Three decimals hide the seed's effect here; the sweep test sees it whole.)"""
    run = wide["ids"]["rank4"]
    cells = {}
    for confidence, seed in [(0.95, 0), (0.9, 0), (0.9, 7)]:
        out = tmp_path / f"LB-{confidence}-{seed}.md"
        result = invoke(
            "leaderboard", "--runs", wide["runs"], "--out", out, "--resamples", "300",
            "--ci-method", "percentile", "--confidence", confidence, "--bootstrap-seed", seed,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        text = out.read_text()
        percent = {0.95: "95%", 0.9: "90%"}[confidence]
        assert f"{percent} percentile bootstrap intervals, 300 resamples, seed\n  {seed};" in text
        assert f"Intervals: {percent} percentile bootstrap, subjects resampled." in text
        row = {r["run"].split("`")[1]: r for r in markdown_table(text, "### Suite `duo`")}
        cells[confidence, seed] = cell = parse_cell(row[run]["DINO ↑"])
        expected = _bootstrap_by_rows(
            wide["dirs"]["rank4"], "dino",
            n_resamples=300, confidence=confidence, method="percentile", seed=seed,
        )  # fmt: skip
        assert cell == pytest.approx((expected.mean, expected.low, expected.high), abs=5e-4)
    (_, low95, high95), (_, low90, high90) = cells[0.95, 0], cells[0.9, 0]
    assert low95 < low90 and high90 < high95


def test_a_sweep_takes_the_statistics_and_the_convention(store, wide, tmp_path):
    """`sweep` passes its StatsOptions whole to every table cell (on the widened runs, found
    finished: nothing is fitted), and scores and tabulates under the convention it is given."""
    import bench

    runs = tmp_path / "wide"
    shutil.copytree(wide["runs"], runs)
    stats = bench.StatsOptions(n_resamples=300, confidence=0.9, ci_method="percentile", seed=3)
    grid = {"rank": [2, 4]}
    made = bench.sweep("dreambooth_lora", store["suite"], grid=grid, runs=runs, stats=stats)
    assert made.fitted == made.generated == 0
    data = json.loads((made.sweep_dir / "sweep.json").read_text())
    assert {row["run_id"] for row in data["runs"]} == {wide["ids"]["rank2"], wide["ids"]["rank4"]}
    for row in data["runs"]:
        run_dir = runs / "duo" / row["run_id"]
        options = dict(n_resamples=300, confidence=0.9, method="percentile")
        expected = _bootstrap_by_rows(run_dir, "dino", **options, seed=3)
        seed_0 = _bootstrap_by_rows(run_dir, "dino", **options, seed=0)
        assert (seed_0.low, seed_0.high) != (expected.low, expected.high)  # the seed tells
        found = row["metrics"]["dino"]
        assert (found["confidence"], found["n_resamples"], found["n_subjects"]) == (0.9, 300, 6)
        assert (found["mean"], found["low"], found["high"]) == pytest.approx(
            (expected.mean, expected.low, expected.high), abs=1e-12
        )

    # Under cc101 (CLIP-T = 2.5 x max(cos, 0)): the runs are scored again, into their own file.
    runs = tmp_path / "plain"
    shutil.copytree(store["runs"], runs)
    made = bench.sweep(
        "dreambooth_lora", store["suite"], grid=grid, runs=runs, convention="cc101", stats=stats
    )
    data = json.loads((made.sweep_dir / "sweep.json").read_text())
    assert data["convention"] == "cc101"
    for row in data["runs"]:
        plain = stored_rows(runs / "duo" / row["run_id"])
        scaled = {k: 2.5 * max(r["clip_t"], 0.0) for k, r in plain.items()}
        assert row["metrics"]["clip_t"]["mean"] == pytest.approx(run_score(scaled), abs=1e-6)


def test_compare_names_the_execution_options_its_runs_differ_in(store, tmp_path):
    """Execution options stay out of the run id, but `compare` says when two runs it pairs were
    made with different ones (from their manifests), in its JSON and its table notes."""
    import bench

    other = bench.run(
        "dreambooth_lora", store["suite"], options={"rank": 3}, runs=store["runs"],
        generation_batch_size=1, stats=bench.StatsOptions(n_resamples=100),
    )  # fmt: skip
    manifests = {
        run: [
            json.loads(m.read_text()) for m in sorted(run_dir.glob("*/replicate-0/manifest.json"))
        ]
        for run, run_dir in [("rank4", run_dir_of(store, "rank4")), ("rank3", other.run_dir)]
    }
    batch = {
        run: sorted({m["execution"]["generation_batch_size"] for m in ms})
        for run, ms in manifests.items()
    }
    assert batch == {"rank4": [8], "rank3": [1]}
    args = [store["ids"]["rank4"], store["ids"]["rank2"], other.run_id, "--runs", store["runs"]]
    printed = json_of("compare", *args, "--resamples", "100")["comparisons"]
    for c in printed:
        pair = {c["run_a"], c["run_b"]}
        if other.run_id in pair:
            mine, theirs = (0, 1) if c["run_a"] == other.run_id else (1, 0)
            differs = c["execution_differs"]
            assert list(differs) == ["generation_batch_size"]
            assert differs["generation_batch_size"][mine] == [1]
            assert differs["generation_batch_size"][theirs] == [8]
        else:  # the two runs made alike
            assert c["execution_differs"] == {}
    text = invoke("compare", *args, "--resamples", "100").output
    flat = " ".join(text.split())
    assert f"{store['ids']['rank4']} vs {other.run_id} were made with different execution " in flat
    assert "options (generation_batch_size 8 vs 1)" in flat
    assert f"{store['ids']['rank4']} vs {store['ids']['rank2']} were made" not in flat


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

    # The same images from a CSV, in reverse order, with each prompt spelled another accepted
    # way (its template, or its text without the identifier) and an explicit replicate.
    spellings = {"on_the_beach": "a {token} {class} on the beach", "red": "a red {noun}"}
    csv_lines = ["image,subject,prompt,image_index,replicate"]
    for i, png in reversed(list(enumerate(sorted(source.glob("*/replicate-0/images/*.png"))))):
        prompt_id, index = png.stem.rsplit("-", 1)
        subject = png.parts[-4]
        noun = {"red_mug": "mug", "blue_robot": "robot"}[subject]
        prompt = spellings[prompt_id].replace("{noun}", noun)
        csv_lines.append(f"img{i}.png,{subject},{prompt},{index},0")
    (folder / "manifest.csv").write_text("\n".join(csv_lines) + "\n")
    import bench

    from_csv = bench.import_images(
        folder,
        manifest=folder / "manifest.csv",
        suite=store["suite"],
        name="outside-csv",
        runs=store["runs"],
        stats=bench.StatsOptions(n_resamples=300),
    )
    assert from_csv.run_dir == store["runs"] / "duo" / from_csv.run_id
    assert from_csv.run_id.startswith("outside-csv-") and from_csv.scored_units == 2
    imported = stored_rows(from_csv.run_dir)
    original = stored_rows(source)
    assert imported.keys() == original.keys()
    for key, row in imported.items():
        run_dir = from_csv.run_dir
        assert (run_dir / row["image"]).read_bytes() == (
            source / original[key]["image"]
        ).read_bytes()
        assert all(row[m] == original[key][m] for m in ("clip_i", "clip_t", "dino"))

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


def test_run_summaries_use_the_documented_interval_and_its_options(store):
    """Defaults: 95%, 10,000 resamples, seed 0, the studentized bootstrap, fixed prompts; with two
    subjects no interval at all, and the note says why. --prompts reaches the statistics."""
    args = [
        "run",
        "--method",
        "dreambooth_lora",
        "--suite",
        store["suite"],
        "--runs",
        store["runs"],
    ]
    rows = stored_rows(run_dir_of(store, "rank4"))
    default = json_of(*args)["scores"]["metrics"]
    for metric in ("clip_i", "clip_t", "dino"):
        iv = default[metric]
        assert (iv["n_resamples"], iv["confidence"], iv["method"], iv["prompt_mode"]) == (
            10_000,
            0.95,
            "none",
            "fixed",
        )
        assert iv["low"] is None and iv["high"] is None
        assert iv["note"].startswith("no interval with 2 subjects")
        assert iv["mean"] == pytest.approx(run_score({k: r[metric] for k, r in rows.items()}))
    for flags in (["--ci-method", "bca"], ["--prompts", "random"]):
        iv = json_of(*args, "--resamples", "2000", *flags)["scores"]["metrics"]["dino"]
        assert iv["method"] == "none" and iv["n_resamples"] == 2000
        assert iv["prompt_mode"] == ("random" if "random" in flags else "fixed")
