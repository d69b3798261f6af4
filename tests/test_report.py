"""`bench report`: the static site. Each grid column holds one cell's images (same subject,
prompt, image index and fit seed) across runs; each image shows its own stored scores; every
link is relative and resolves inside the site; thumbnails are made once. And a plugin metric
where lower is better ranks by its declared direction in the leaderboard, sweeps and the site.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app

from helpers import copy_runs, run_score, stored_rows

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def site(duo_store, tmp_path_factory):
    """The duo store's four runs and their site, written once through the CLI."""
    root = tmp_path_factory.mktemp("report")
    store = copy_runs(duo_store, ["base", "rank4", "rank2", "real"], root)
    out = root / "site"
    result = invoke("report", "--runs", store["runs"], "--out", out, "--resamples", "200")
    assert result.exit_code == 0, result.output
    return {**store, "out": out, "output": result.output}


class Page(HTMLParser):
    """What a test reads of a page: every link and image source, and each image grid as rows of
    (label, [img attributes or None]) under its column headings, with the section it is in."""

    def __init__(self, path: Path):
        super().__init__()
        self.links: list[str] = []
        self.grids: list[dict] = []
        self.strong: list[str] = []
        self._section = ""
        self._grid = None
        self._in = []
        self._text = ""
        self.feed(path.read_text())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs and tag in ("img", "a", "link", "script"):
                self.links.append(attrs[key])
        if tag == "section":
            self._section = attrs.get("id", "")
        if tag == "table" and attrs.get("class") == "grid":
            self._grid = {"section": self._section, "columns": [], "rows": []}
            self.grids.append(self._grid)
        if self._grid is not None:
            if tag == "tr":
                self._row = []
                self._grid["rows"].append(self._row)
            if tag == "td":
                self._row.append(None)
            if tag == "img" and "cell" in attrs.get("class", ""):
                self._row[-1] = attrs
        if tag in ("th", "strong"):
            self._in.append(tag)
            self._text = ""

    def handle_endtag(self, tag):
        if tag == "table" and self._grid is not None:
            self._grid["rows"] = [r for r in self._grid["rows"] if r]  # the heading row
            self._grid = None
        if self._in and tag == self._in[-1]:
            self._in.pop()
            if tag == "th" and self._grid is not None and len(self._grid["rows"]) == 1:
                self._grid["columns"].append(self._text.strip())
            if tag == "strong":
                self.strong.append(self._text.strip())

    def handle_data(self, data):
        self._text += data


def subject_pages(out: Path) -> list[Path]:
    return sorted((out / "subjects").glob("*.html"))


def test_every_link_is_relative_and_resolves_inside_the_site(site):
    out = site["out"]
    pages = [out / "index.html", *subject_pages(out)]
    assert [p.stem for p in pages[1:]] == ["blue_robot", "red_mug"]
    for page in pages:
        for link in Page(page).links:  # nothing fetched from elsewhere: no CDN, no server
            assert "://" not in link, (page, link)
            target = link.split("#")[0]
            if not target:
                continue
            assert not Path(target).is_absolute(), (page, link)
            resolved = (page.parent / target).resolve()
            assert resolved.is_file(), (page, link)
            assert resolved.is_relative_to(out.resolve()), (page, link)


@pytest.fixture(scope="module")
def lower_site(lower_store, tmp_path_factory):
    """The site of the session's two-image store (two columns per grid)."""
    out = tmp_path_factory.mktemp("lower-site") / "site"
    result = invoke("report", "--runs", lower_store["runs"], "--out", out, "--resamples", "100")
    assert result.exit_code == 0, result.output
    return {"runs": lower_store["runs"], "out": out}


@pytest.mark.parametrize("which", ["site", "lower_site"])
def test_a_grid_column_holds_one_cell_and_each_image_its_stored_scores(which, request):
    """Every prompt's grid: column j's heading names a cell, and each image in it renders that
    cell (its data, its PNG, its stored scores and seed), one per generated run. On the duo
    store (one image per prompt) and on the two-image store (two columns per grid)."""
    site = request.getfixturevalue(which)
    run_dirs = [p for p in site["runs"].glob("duo/*") if (p / "run.json").is_file()]
    runs = {p.name: p for p in run_dirs}
    rows = {name: stored_rows(p) for name, p in runs.items()}
    generated = [n for n in runs if not n.startswith("real-")]
    expected_cells = {k for n in generated for k in rows[n] if k[1] != "prior"}
    seen = []
    for page_path in subject_pages(site["out"]):
        subject = page_path.stem
        page = Page(page_path)
        prompt_grids = [g for g in page.grids if g["section"].startswith("prompt-")]
        assert prompt_grids
        for grid in prompt_grids:
            prompt_id = grid["section"].removeprefix("prompt-")
            columns = grid["columns"][1:]  # the first heads the row labels
            for j, heading in enumerate(columns):
                replicate, index = map(
                    int, re.match(r"fit seed (\d+), image (\d+)", heading).groups()
                )
                cell = (subject, prompt_id, index, replicate)
                images = [row[j] for row in grid["rows"] if row[j] is not None]
                assert len(images) == len(generated)  # one per generated run, in one column
                for img in images:
                    assert img["data-cell"] == "/".join(map(str, cell))
                    details = json.loads(img["data-details"])
                    stored = rows[details["run"]][cell]
                    assert details["seed"] == str(stored["seed"])
                    for metric, info in stored["scorers"].items():
                        assert float(details[info["display_name"]]) == pytest.approx(
                            stored[metric], abs=1e-4
                        )
                    # The thumbnail is this image (at 32 px, copied pixel for pixel).
                    thumb = _pixels(page_path.parent / img["src"])
                    assert np.array_equal(thumb, _pixels(runs[details["run"]] / stored["image"]))
                    seen.append((details["run"], cell))
    assert len(seen) == len(set(seen)) == len(generated) * len(expected_cells)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_thumbnails_are_made_once(site, tmp_path):
    import bench

    out = tmp_path / "again"
    first = bench.report(runs=site["runs"], out=out, stats=bench.StatsOptions(n_resamples=50))
    thumbs = sorted((out / "thumbs").rglob("*.*"))
    # One per generated image and per photo shown: 3 runs x 4 images + 2 subjects' photos.
    photos = sum(1 for _ in _photos(site))
    assert first.thumbnails_made == len(thumbs) == 3 * 4 + photos
    before = {p: p.stat().st_mtime_ns for p in thumbs}
    second = bench.report(runs=site["runs"], out=out, stats=bench.StatsOptions(n_resamples=50))
    assert second.thumbnails_made == 0 and second.thumbnails_reused == first.thumbnails_made
    assert {p: p.stat().st_mtime_ns for p in sorted((out / "thumbs").rglob("*.*"))} == before


def _photos(site):
    for run_dir in site["runs"].glob("duo/*"):
        for manifest in run_dir.glob("*/replicate-0/manifest.json"):
            yield from json.loads(manifest.read_text())["subject"]["images"]
        break


# ------------------------------------------------------------- a metric where lower is better


def distance_by_hand(image_path: Path, photos: list[str]) -> float:
    """The plugin's definition, from the PNGs: mean |pixel difference| (0-1) to each photo
    resized to the image, averaged over the photos."""
    image = _pixels(image_path) / 255.0
    size = Image.open(image_path).size
    return float(
        np.mean(
            [
                np.abs(
                    image
                    - np.asarray(Image.open(p).convert("RGB").resize(size), dtype=np.float64)
                    / 255.0
                ).mean()
                for p in photos
            ]
        )
    )


def _score(run_dir: Path, checkpoint: str | None = None) -> float:
    """The run's distance, recomputed from its PNGs and its subjects' photos."""
    values = {}
    where = f"replicate-0/checkpoints/{checkpoint}" if checkpoint else "replicate-0"
    pattern = f"*/{where}/manifest.json"
    for manifest_path in run_dir.glob(pattern):
        manifest = json.loads(manifest_path.read_text())
        for entry in manifest["images"]:
            key = (manifest["subject"]["id"], entry["prompt_id"], entry["image_index"], 0)
            values[key] = distance_by_hand(
                manifest_path.parent / entry["file"], manifest["subject"]["images"]
            )
    return run_score(values)


def test_a_lower_is_better_plugin_metric_ranks_by_its_direction(lower_store, tmp_path):
    lower = lower_store
    runs = sorted(p for p in lower["runs"].glob("duo/*") if (p / "run.json").is_file())
    scores = {p.name: _score(p) for p in runs}
    best = min(scores, key=scores.get)
    ordered = sorted(scores.values())
    assert min(np.diff(ordered)) > 1e-5  # a ranking to read

    # The leaderboard: named and headed as declared, ranked lowest first, the lowest bold.
    out = tmp_path / "LB.md"
    assert invoke("leaderboard", "--runs", lower["runs"], "--out", out).exit_code == 0
    text = out.read_text()
    table = text.split("### Suite `duo`", 1)[1]
    lines = [line for line in table.splitlines() if line.startswith("| `")][: len(scores)]
    header = next(line for line in table.splitlines() if line.startswith("| run"))
    assert "Pixel distance ↓" in header
    order = [re.search(r"`([^`]+)`", line).group(1) for line in lines]
    assert order == sorted(scores, key=scores.get)
    bold = [line for line in lines if "**" in line]
    assert len(bold) == 1 and f"`{best}`" in bold[0]
    assert f"**{scores[best]:.3f}**" in bold[0]

    # The sweep: the best checkpoint is the one with the lowest distance.
    data = json.loads((Path(lower["sweep"].sweep_dir) / "sweep.json").read_text())
    assert data["metrics"]["example_distance"]["higher_is_better"] is False
    for row in data["checkpoints"]:
        run_dir = lower["runs"] / "duo" / row["run"]
        steps = {p.name for p in run_dir.glob("*/replicate-0/checkpoints/step-*")}
        assert steps
        at = {int(step.split("-")[1]): _score(run_dir, step) for step in steps}
        at[json.loads((run_dir / "run.json").read_text())["config"]["steps"]] = _score(run_dir)
        chosen = int(row["Pixel distance best (optimistic)"].rsplit("@", 1)[1])
        assert chosen == min(at, key=at.get)
    sweep_md = (Path(lower["sweep"].sweep_dir) / "sweep.md").read_text()
    rank_table = sweep_md.split("## rank", 1)[1]
    assert "Pixel distance ↓" in rank_table

    # The site: each subject's table marks its lowest distance.
    import bench

    site = tmp_path / "site"
    bench.report(runs=lower["runs"], out=site, stats=bench.StatsOptions(n_resamples=50))
    for page_path in subject_pages(site):
        subject = page_path.stem
        per_run = {}
        for p in runs:
            values = {
                k: r["example_distance"] for k, r in stored_rows(p).items() if k[0] == subject
            }
            per_run[p.name] = run_score(values)
        lowest = min(per_run.values())
        assert Page(page_path).strong == [f"{lowest:.3f}"]


def test_the_grids_can_show_fewer_images(lower_store, tmp_path):
    """--images-per-prompt 1 (and --replicates 0): only image 0 of each prompt, at fit seed 0,
    in one column per grid; the leaderboard still counts every image."""
    out = tmp_path / "site"
    args = ["--runs", lower_store["runs"], "--out", out, "--resamples", 50]
    result = invoke("report", *args, "--images-per-prompt", 1, "--replicates", "0")
    assert result.exit_code == 0, result.output
    for page_path in subject_pages(out):
        for grid in Page(page_path).grids:
            if not grid["section"].startswith("prompt-"):
                continue
            assert grid["columns"][1:] == ["fit seed 0, image 0"]
            cells = [row[0]["data-cell"] for row in grid["rows"]]
            assert len(cells) == 3 and all(c.endswith("/0/0") for c in cells)
