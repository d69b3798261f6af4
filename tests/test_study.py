"""The pairwise human study: what `bench study make` asks, and what `bench study import` makes of
the answers. Answers here are written by hand (the browser test clicks through the page).

The win rates, ties, agreement and dropped raters are recomputed here from the answers and
the study file, by the definitions in bench/study/analysis.py's docstring."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

from helpers import copy_runs

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def study(duo_store, tmp_path_factory):
    """A study of the duo store's three generated runs: 8 pairs per rater from a pool of 12."""
    root = tmp_path_factory.mktemp("study")
    store = copy_runs(duo_store, ["base", "rank4", "rank2", "real"], root)
    out = root / "page"
    ids = store["ids"]
    result = invoke(
        "study", "make", ids["base"], ids["rank4"], ids["rank2"], "--runs", store["runs"],
        "--out", out, "--per-rater", 8, "--pairs", 12,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = (store["runs"] / "studies").iterdir()
    data = json.loads((folder / "study.json").read_text())
    return {**store, "out": out, "folder": folder, "data": data}


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def _cell_image(store, run_id: str, pair: dict) -> Path:
    run_dir = store["runs"] / "duo" / run_id
    unit = run_dir / pair["subject"] / f"replicate-{pair['replicate']}"
    manifest = json.loads((unit / "manifest.json").read_text())
    (entry,) = [
        e
        for e in manifest["images"]
        if e["prompt_id"] == pair["prompt_id"] and e["image_index"] == pair["image_index"]
    ]
    return unit / entry["file"]


def test_a_pair_shows_two_runs_images_of_one_cell_and_the_pool_covers_every_subject(study):
    data = study["data"]
    pairs = data["pairs"]
    assert len(pairs) == 12 and data["per_rater"] == 8
    assert (
        len({(p["a"], p["b"], p["subject"], p["prompt_id"], p["image_index"]) for p in pairs}) == 12
    )
    assert {p["subject"] for p in pairs} == {"red_mug", "blue_robot"}
    # Drawn in turn from each subject (in name order), whatever the shuffle.
    assert [p["subject"] for p in pairs] == ["blue_robot", "red_mug"] * 6
    for p in pairs:
        assert p["a"] != p["b"] and "real" not in (p["a"] + p["b"])
        for side in ("a", "b"):
            shown = _pixels(study["out"] / p[f"image_{side}"])
            assert np.array_equal(shown, _pixels(_cell_image(study, p[side], p)))
    # The attention checks: each subject's own photo (expected to win the subject question),
    # and, since both subjects here share no class, a picture of the other subject.
    photos = {}
    for run_dir in (study["runs"] / "duo").glob("base-*"):
        for manifest in run_dir.glob("*/replicate-0/manifest.json"):
            subject = json.loads(manifest.read_text())["subject"]
            photos[subject["id"]] = (subject["class"], subject["images"])
    kinds = sorted((c["subject"], c["kind"]) for c in data["checks"])
    assert kinds == [
        ("blue_robot", "photo"), ("blue_robot", "wrong_class"),
        ("red_mug", "photo"), ("red_mug", "wrong_class"),
    ]  # fmt: skip
    for check in data["checks"]:
        if check["kind"] == "photo":
            assert check["expected"] == "a"
            shown = _pixels(study["out"] / check["image_a"])
            candidates = [
                np.asarray(Image.open(p).convert("RGB").resize(shown.shape[1::-1]))
                for p in photos[check["subject"]][1]
            ]
            assert any(np.abs(shown - c).mean() < 6 for c in candidates)
        else:
            assert check["expected"] == "b"
            other = next(
                p
                for p in pairs
                if p["image_b"] == check["image_a"] or p["image_a"] == check["image_a"]
            )
            assert photos[other["subject"]][0] != photos[check["subject"]][0]


def _answers(study, rater: str, choose, checks_right: bool = True) -> dict:
    """An answers file as the page writes it: every pair of the pool (the page would draw
    per_rater of them; import takes any items of the study), and every check."""
    data = study["data"]
    answers = []
    for i, pair in enumerate(data["pairs"]):
        left = "a" if i % 2 else "b"
        subject, prompt = choose(pair)
        answers.append(
            {
                "item": pair["id"],
                "left": left,
                "subject": _side(subject, left),
                "prompt": _side(prompt, left),
            }
        )
    for check in data["checks"]:
        want = check["expected"] if checks_right else ("b" if check["expected"] == "a" else "a")
        answers.append(
            {"item": check["id"], "left": "a", "subject": _side(want, "a"), "prompt": "tie"}
        )
    return {"format": 1, "study_id": data["study_id"], "rater": rater, "answers": answers}


def _side(run_side: str | None, left: str) -> str:
    """The page's answer ("left", "right", "tie") that picks run side `run_side`."""
    if run_side is None:
        return "tie"
    return "left" if run_side == left else "right"


def test_import_reports_win_rates_agreement_and_drops_inattentive_raters(study, tmp_path):
    ids = study["ids"]
    strength = {ids["rank4"]: 2, ids["rank2"]: 1, ids["base"]: 0}

    def r1(pair):  # prefers the stronger run on subject; cannot tell on prompts of "red"
        sub = "a" if strength[pair["a"]] > strength[pair["b"]] else "b"
        return sub, (None if pair["prompt_id"] == "red" else sub)

    def r2(pair):  # agrees with r1 on subject, always says a on prompt
        return r1(pair)[0], "a"

    files = []
    for rater, choose, right in (("r1", r1, True), ("r2", r2, True), ("r3", r1, False)):
        path = tmp_path / f"{rater}.json"
        path.write_text(json.dumps(_answers(study, rater, choose, right)))
        files.append(path)
    result = invoke(
        "study", "import", *files, "--runs", study["runs"], "--json", "--resamples", 200
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    raters = {r["rater"]: r for r in report["raters"]}
    assert [raters[r]["kept"] for r in ("r1", "r2", "r3")] == [True, True, False]
    assert raters["r3"]["checks_right"] == 0 and raters["r3"]["checks"] == 4
    assert sorted(p.name for p in (study["folder"] / "answers").iterdir()) == [
        "r1.json",
        "r2.json",
        "r3.json",
    ]

    # Win rates by hand, from the kept raters' answers: per (question, run A, run B), the mean
    # over subjects of the mean over prompts of 1 (A), 0 (B), 1/2 (cannot tell).
    pairs = {p["id"]: p for p in study["data"]["pairs"]}
    expected: dict = {}
    for choose in (r1, r2):
        for pair in pairs.values():
            for question, side in zip(("subject", "prompt"), choose(pair), strict=True):
                value = {"a": 1.0, "b": 0.0, None: 0.5}[side]
                key = (question, pair["a"], pair["b"])
                expected.setdefault(key, {}).setdefault(pair["subject"], {}).setdefault(
                    pair["prompt_id"], []
                ).append(value)
    rows = {(r["question"], r["run_a"], r["run_b"]): r for r in report["win_rates"]}
    assert set(rows) == set(expected)
    for key, by_subject in expected.items():
        subject_means = [
            np.mean([np.mean(v) for v in prompts.values()]) for prompts in by_subject.values()
        ]
        assert rows[key]["win_rate_a"]["mean"] == pytest.approx(np.mean(subject_means), abs=1e-12)
        values = [v for prompts in by_subject.values() for vs in prompts.values() for v in vs]
        assert rows[key]["ties"] == pytest.approx(np.mean([v == 0.5 for v in values]))
        assert rows[key]["answers"] == len(values)
        assert rows[key]["win_rate_a"]["n_subjects"] == 2
    # Agreement: r1 and r2 agree on every subject answer; on prompts, where r1 says A or cannot
    # tell and r2 always A.
    assert report["agreement"]["subject"]["agreement"] == 1.0
    same = [r1(p)[1] == r2(p)[1] for p in pairs.values()]
    assert report["agreement"]["prompt"]["agreement"] == pytest.approx(np.mean(same))
    assert report["agreement"]["prompt"]["pairs"] == len(pairs)
    # Bradley-Terry on subject fidelity: rank4 > rank2 > base, as every kept answer says.
    ranked = [run_id for run_id, _ in report["bradley_terry"]["subject"]]
    assert ranked == [ids["rank4"], ids["rank2"], ids["base"]]

    # The same files again change nothing; the human-readable report says who was dropped.
    again = invoke("study", "import", *files, "--runs", study["runs"], "--resamples", 200)
    assert again.exit_code == 0, again.output
    assert "dropped rater r3: 0 of 4 attention checks right" in " ".join(again.output.split())


def _bad_cases(study, good: dict) -> dict[str, tuple[object, str]]:
    first = good["answers"][0]
    unknown = {**good, "answers": [{**first, "item": "p9999"}]}
    duplicate = {**good, "answers": [first, first]}
    bad_choice = {**good, "answers": [{**first, "subject": "both"}]}
    bad_side = {**good, "answers": [{**first, "left": "c"}]}
    extra_key = {**good, "answers": [{**first, "score": 1}]}
    forged_study = {**good, "study_id": "study-00000000"}
    bad_rater = {**good, "rater": "../etc"}
    return {
        "not-json": ("{not json", "not JSON"),
        "unknown-item": (unknown, "names item 'p9999', which study"),
        "duplicate": (duplicate, "a second time"),
        "bad-choice": (bad_choice, "subject must be one of left, right, tie"),
        "bad-side": (bad_side, "left must be 'a' or 'b'"),
        "extra-key": (extra_key, "must have exactly item, left, subject and prompt"),
        "forged-study": (forged_study, "is not in the store"),
        "bad-rater": (bad_rater, "is not a rater id"),
        "no-answers": ({"study_id": good["study_id"], "rater": "x"}, "no list of answers"),
    }


def test_malformed_or_forged_answer_files_are_one_line_errors_and_store_nothing(study, tmp_path):
    good = _answers(study, "solo", lambda p: ("a", "b"))
    answers_dir = study["folder"] / "answers"
    before = sorted(p.name for p in answers_dir.iterdir()) if answers_dir.exists() else []
    good_path = tmp_path / "good.json"
    good_path.write_text(json.dumps(good))
    for name, (content, message) in _bad_cases(study, good).items():
        path = tmp_path / f"{name}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        # The good file first: a bad one beside it stores neither.
        result = invoke("study", "import", good_path, path, "--runs", study["runs"])
        assert result.exit_code == 2, (name, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], (name, lines)
        assert sorted(p.name for p in answers_dir.iterdir()) == before, name
    # One rater twice in one import, and other answers under a rater id already stored.
    twin = tmp_path / "twin.json"
    twin.write_text(json.dumps(_answers(study, "solo", lambda p: ("b", "b"))))
    result = invoke("study", "import", good_path, twin, "--runs", study["runs"])
    assert result.exit_code == 2 and "rater solo answers study" in result.output
    assert invoke("study", "import", good_path, "--runs", study["runs"]).exit_code == 0
    result = invoke("study", "import", twin, "--runs", study["runs"])
    assert result.exit_code == 2 and "already has other answers" in result.output
    stored = json.loads((answers_dir / "solo.json").read_text())
    assert stored["answers"] == good["answers"]


def test_study_make_refuses_what_it_cannot_pair(study, tmp_path):
    ids = study["ids"]
    cases = [
        ([ids["base"]], "give two runs or more"),
        ([ids["base"], ids["real"]], "Real Images row has no generated images"),
        ([ids["base"], ids["base"]], "a run is given twice"),
    ]
    for refs, message in cases:
        out = tmp_path / "page"
        result = invoke("study", "make", *refs, "--runs", study["runs"], "--out", out)
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()


def test_raters_overlap_and_every_answer_pairs_runs_on_one_cell(study):
    """Each pair of the pool compares two different runs on the same cell, every pair of runs is
    asked about, and the pool's cells are a subset of each run's stored cells."""
    data = study["data"]
    run_pairs = {tuple(sorted((p["a"], p["b"]))) for p in data["pairs"]}
    ids = study["ids"]
    assert run_pairs == {
        tuple(sorted(c))
        for c in itertools.combinations([ids["base"], ids["rank4"], ids["rank2"]], 2)
    }
