"""For the tests: definitions from the README written out independently of bench's code, to
check stored values against, and a small suite several test modules share."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Two subjects (so every summary has an interval), two prompts, one image each, at 32 px.
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


def documented_seed(subject: str, prompt_id: str, image_index: int, replicate: int) -> int:
    """A cell's seed: sha256 of "subject/prompt_id/image_index/replicate", first 8 bytes
    (big-endian), shifted right once."""
    key = f"{subject}/{prompt_id}/{image_index}/{replicate}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def stored_rows(run_dir: Path) -> dict[tuple, dict]:
    """A run's score rows keyed by (subject, prompt id, image index, replicate), read by hand."""
    rows = {}
    for path in sorted(Path(run_dir).glob("*/replicate-*/scores.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows[(r["subject"], r["prompt_id"], r["image_index"], r["replicate"])] = r
    return rows


def run_score(values: dict[tuple, float]) -> float:
    """A run's score: the mean over subjects of the mean over each subject's prompts of the mean
    over its images. `values` is keyed like `stored_rows`."""
    cells: dict[tuple, list[float]] = {}
    for (subject, prompt, _, _), v in values.items():
        cells.setdefault((subject, prompt), []).append(v)
    subjects: dict[str, list[float]] = {}
    for (subject, _), vs in cells.items():
        subjects.setdefault(subject, []).append(sum(vs) / len(vs))
    means = [sum(vs) / len(vs) for vs in subjects.values()]
    return sum(means) / len(means)
