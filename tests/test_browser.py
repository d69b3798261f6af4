"""The report and the study page in a real browser: headless Chromium (Debian's `chromium` and
`chromedriver`, which `.ci/run` installs), driven by Selenium. The images load, a grid's column
holds one cell's images at one x position (read back from the DOM), a click shows an image's
scores, and clicking through a study saves an answers file that `bench study import` takes.

Screenshots go to $BENCH_SCREENSHOTS when it is set (to look at them), else to the test's
temporary folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app

from helpers import copy_runs

pytestmark = pytest.mark.slow  # a browser start and two sites: about 25 s
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        message = f"{program} not found: install Debian's chromium and chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = _need("chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic", "--window-size=1400,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(
        service=Service(executable_path=_need("chromedriver")), options=options
    )
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def store(duo_store, tmp_path_factory):
    return copy_runs(duo_store, ["base", "rank4", "rank2", "real"], tmp_path_factory.mktemp("web"))


def _screenshot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BENCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _wait(condition, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


NOT_LOADED = """
return [...document.images].filter(i => i.getAttribute("src"))
  .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
"""


def _load_all(browser) -> None:
    """Scroll every image into view (lazy images load once seen) and wait until all loaded."""
    for img in browser.find_elements("css selector", "img"):
        browser.execute_script("arguments[0].scrollIntoView()", img)
    _wait(lambda: not browser.execute_script(NOT_LOADED))
    browser.execute_script("window.scrollTo(0, 0)")


COLUMNS = """
const found = [];
for (const [g, grid] of [...document.querySelectorAll('table.grid')].entries()) {
  for (const img of grid.querySelectorAll('img.cell')) {
    const column = img.closest('td').cellIndex;
    found.push({grid: g, column: column, cell: img.dataset.cell,
                heading: grid.tHead.rows[0].cells[column].textContent,
                left: Math.round(img.getBoundingClientRect().left + window.scrollX),
                section: img.closest('section') ? img.closest('section').id : ''});
  }
}
return found;
"""


def test_the_report_in_chromium(browser, lower_store, tmp_path):
    """On the two-image store: each grid has two columns (two cells) of three runs' images."""
    out = tmp_path / "site"
    result = invoke("report", "--runs", lower_store["runs"], "--out", out, "--resamples", 100)
    assert result.exit_code == 0, result.output
    page = out / "subjects" / "red_mug.html"
    browser.get(page.as_uri())
    _load_all(browser)

    # Each prompt's grid: one cell per column, its images one above the other.
    images = browser.execute_script(COLUMNS)
    prompt_images = [i for i in images if i["section"].startswith("prompt-")]
    assert len(prompt_images) == 3 * 2 * 2  # three generated runs x two prompts x two images
    columns: dict = {}
    for i in prompt_images:
        columns.setdefault((i["grid"], i["column"]), []).append(i)
    assert len(columns) == 2 * 2
    for column in columns.values():
        assert len(column) == 3
        assert len({i["cell"] for i in column}) == 1
        assert len({i["left"] for i in column}) == 1
        subject, prompt_id, index, replicate = column[0]["cell"].split("/")
        assert subject == "red_mug" and column[0]["section"] == f"prompt-{prompt_id}"
        assert column[0]["heading"] == f"fit seed {replicate}, image {index}"
    _screenshot(browser, "report-subject", tmp_path)

    # A click shows the image's scores and provenance, as its page recorded them; a second
    # click, on another image, shows that one's, and only it is marked.
    cells = browser.find_elements("css selector", "section[id^=prompt-] img.cell")
    panel = browser.find_element("id", "details")
    for clicked in (cells[0], cells[-1]):
        browser.execute_script("arguments[0].scrollIntoView()", clicked)
        clicked.click()
        _wait(lambda: panel.is_displayed())
        details = json.loads(clicked.get_attribute("data-details"))
        shown = dict(
            zip(
                [e.text for e in panel.find_elements("css selector", "dt")],
                [e.text for e in panel.find_elements("css selector", "dd")],
                strict=True,
            )
        )
        assert shown == details and "Pixel distance" in shown
        marked = browser.find_elements("css selector", "img.cell.selected")
        assert marked == [clicked]
        assert (
            browser.find_element("id", "details-image")
            .get_attribute("src")
            .endswith(clicked.get_attribute("data-full").removeprefix(".."))
        )
    assert json.loads(cells[0].get_attribute("data-details")) != details
    _screenshot(browser, "report-details", tmp_path)

    browser.get((out / "index.html").as_uri())
    _load_all(browser)  # the sweep's plots
    headings = [h.text for h in browser.find_elements("css selector", "th")]
    assert "Pixel distance ↓" in headings
    _screenshot(browser, "report-index", tmp_path)


def test_clicking_through_a_study_saves_answers_that_import_takes(browser, store, tmp_path):
    ids = store["ids"]
    out = tmp_path / "study"
    result = invoke(
        "study", "make", ids["base"], ids["rank4"], ids["rank2"], "--runs", store["runs"],
        "--out", out, "--per-rater", 5, "--checks", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = (store["runs"] / "studies").iterdir()
    study = json.loads((folder / "study.json").read_text())
    checks = {c["id"]: c for c in study["checks"]}

    browser.get((out / "index.html").as_uri())
    browser.find_element("id", "rater").send_keys("alice")
    browser.find_element("id", "begin").click()
    seen = []
    for n in range(5 + 2):
        _wait(lambda: browser.find_element("id", "item").is_displayed())
        _wait(lambda: not browser.execute_script(NOT_LOADED))
        left = browser.find_element("id", "left")
        item = left.get_attribute("data-item")
        seen.append(item)
        subject_side = "left"
        if item in checks:  # answer the check right: pick the side showing the expected image
            check = checks[item]
            expected = check["image_a"] if check["expected"] == "a" else check["image_b"]
            subject_side = "left" if left.get_attribute("src").endswith(expected) else "right"
        if n == 1:
            _screenshot(browser, "study-item", tmp_path)
        browser.find_element("css selector", f"input[name=subject][value={subject_side}]").click()
        browser.find_element("css selector", "input[name=prompt][value=tie]").click()
        browser.find_element("id", "next").click()
    _wait(lambda: browser.find_element("id", "done").is_displayed())
    name = f"answers-{study['study_id']}-alice.json"
    saved = _wait(lambda: (browser.downloads / name).is_file() and browser.downloads / name)
    _screenshot(browser, "study-done", tmp_path)

    assert len(set(seen)) == 7 and sum(item in checks for item in seen) == 2
    result = invoke("study", "import", saved, "--runs", store["runs"], "--json", "--resamples", 100)
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    (rater,) = report["raters"]
    assert rater == {"rater": "alice", "answers": 7, "checks": 2, "checks_right": 2, "kept": True}
    for question in ("subject", "prompt"):
        answered = [r for r in report["win_rates"] if r["question"] == question]
        assert sum(r["answers"] for r in answered) == 5
    prompt_ties = [r["ties"] for r in report["win_rates"] if r["question"] == "prompt"]
    assert prompt_ties and all(t == 1.0 for t in prompt_ties)
