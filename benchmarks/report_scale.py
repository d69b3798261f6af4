"""How `bench report` scales: the time to write a site (cold, then with its thumbnails reused),
its size, and how a page behaves in headless Chromium (load time, time until every image has
loaded, a click's time to show an image's details).

    python benchmarks/report_scale.py --runs /work/runs-world --out /tmp/site
    python benchmarks/report_scale.py --runs RUNS --photos ../shared/datasets/dreambench/dataset

With `--photos DIR`, it also times thumbnails of full-size photos (DreamBench's 512 px images),
to project a site of DreamBench's 3,000 images per method. Needs Debian's chromium and
chromedriver, and selenium (the test extra).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOAD_ALL = """
const done = arguments[arguments.length - 1];
const started = performance.now();
for (const img of document.images) img.loading = "eager";
const wait = () => {
  const left = [...document.images].filter(i => i.getAttribute("src"))
    .filter(i => !(i.complete && i.naturalWidth > 0)).length;
  if (left === 0) done(performance.now() - started); else setTimeout(wait, 20);
};
wait();
"""


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def page_figures(driver, page: Path) -> dict[str, float]:
    started = time.perf_counter()
    driver.get(page.as_uri())
    opened = time.perf_counter() - started
    timing = driver.execute_script(
        "const t = performance.getEntriesByType('navigation')[0];"
        "return [t.domContentLoadedEventEnd, t.loadEventEnd];"
    )
    images = driver.execute_script("return document.querySelectorAll('img.cell').length")
    driver.set_script_timeout(120)
    all_loaded = driver.execute_async_script(LOAD_ALL)
    cell = driver.find_elements("css selector", "section[id^=prompt-] img.cell")[-1]
    driver.execute_script("arguments[0].scrollIntoView()", cell)
    started = time.perf_counter()
    cell.click()
    driver.find_element("id", "details").is_displayed()
    click = time.perf_counter() - started
    return {
        "images": images,
        "get_s": opened,
        "dom_ms": timing[0],
        "load_ms": timing[1],
        "all_images_ms": all_loaded,
        "click_ms": click * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp()) / "site")
    parser.add_argument("--photos", type=Path, help="full-size photos to time thumbnails on")
    args = parser.parse_args()

    import bench
    from bench.reports.leaderboard import scored_runs
    from bench.reports.thumbnails import Thumbnails

    runs = scored_runs(args.runs, "dreambooth")
    per_run = {r.run_id: len(r.scores) for r in runs}
    print(f"runs: {per_run}")
    shutil.rmtree(args.out, ignore_errors=True)
    stats = bench.StatsOptions(n_resamples=1000)
    cold = bench.report(runs=args.runs, out=args.out, stats=stats)
    warm = bench.report(runs=args.runs, out=args.out, stats=stats)
    size = subprocess.run(["du", "-sh", str(args.out)], capture_output=True, text=True).stdout
    print(
        f"write: cold {cold.seconds:.1f} s ({cold.thumbnails_made} thumbnails made), warm "
        f"{warm.seconds:.1f} s ({warm.thumbnails_reused} reused); {cold.images} images shown; "
        f"{size.split()[0]} on disk"
    )
    if args.photos:
        photos = sorted(args.photos.rglob("*.jpg"))[:200]
        thumbs = Thumbnails(Path(tempfile.mkdtemp()), size=256)
        started = time.perf_counter()
        for p in photos:
            thumbs.of(p)
        each = (time.perf_counter() - started) / len(photos)
        print(
            f"thumbnails of {len(photos)} full-size photos: {each * 1000:.1f} ms each; "
            f"DreamBench's 3,000 images per method: {3000 * each:.0f} s per method, once"
        )
    driver = browser()
    try:
        pages = sorted((args.out / "subjects").glob("*.html"), key=lambda p: p.stat().st_size)
        for page in (args.out / "index.html", pages[-1]):
            figures = page_figures(driver, page) if page != args.out / "index.html" else {}
            if not figures:
                started = time.perf_counter()
                driver.get(page.as_uri())
                figures = {"get_s": time.perf_counter() - started}
            kib = page.stat().st_size / 1024
            print(f"{page.relative_to(args.out)} ({kib:.0f} KiB): " + ", ".join(
                f"{k} {v:.0f}" if isinstance(v, int) else f"{k} {v:.2f}" for k, v in figures.items()
            ))  # fmt: skip
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
