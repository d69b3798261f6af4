"""For the tests: definitions from the README written out independently of bench's code, to
check stored values against, and a small suite several test modules share."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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
set = "shapes"
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
dinov2 = { pretrained = "random:0" }
"""


# DUO with two images per prompt, scored by the example plugin's pixel distance alone: a metric
# where lower is better, and image grids with two columns.
LOWER = DUO.replace(
    'scorers = ["clip_i", "clip_t", "dino"]', 'scorers = ["example_distance"]'
).replace("images_per_prompt = 1", "images_per_prompt = 2")


def copy_runs(duo_store: dict, labels: list[str], dest: Path) -> dict:
    """A store of its own in `dest` (`runs/`, and the suite file beside it) holding these runs
    of the session's shared duo store, copied: a module's writes stay out of the others' way."""
    import shutil

    suite = Path(dest) / "duo.toml"
    suite.write_text(Path(duo_store["suite"]).read_text())
    runs = Path(dest) / "runs"
    ids = {}
    for label in labels:
        source = Path(duo_store["made"][label].run_dir)
        shutil.copytree(source, runs / source.parent.name / source.name)
        ids[label] = source.name
    return {"suite": suite, "runs": runs, "ids": ids}


def documented_seed(*parts: object) -> int:
    """The README's seed of a key: sha256 of the parts joined with "/", first 8 bytes
    (big-endian), shifted right once. A cell's key is (subject, prompt id, image index,
    replicate); a `bench generate` column's is ("generate", seed, column)."""
    key = "/".join(str(p) for p in parts).encode()
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


# --------------------------------------------------------------------------- scorers by hand


def clip_by_hand():
    """The tiny CLIP scorer's network, loaded with open_clip's own loader from its weight file:
    (embed images from paths, embed texts), float64, not normalised."""
    import open_clip
    import torch
    from PIL import Image

    from bench.scorers import clip as clip_scorer

    open_clip.add_model_config(clip_scorer.TINY_CONFIG_FILE)
    weights = clip_scorer.tiny_weights_file(0)
    model, _, preprocess = open_clip.create_model_and_transforms(
        "bench-tiny-clip", pretrained=str(weights)
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer("bench-tiny-clip")

    def image(paths):
        pixels = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        with torch.no_grad():
            return model.encode_image(pixels).double()

    def text(texts):
        with torch.no_grad():
            return model.encode_text(tokenizer(texts)).double()

    return image, text


def dino_by_hand(model: str = "vit_small_patch16_224.dino"):
    """The tiny DINO-family scorer network of `model` through timm's file loader; the feature is
    the CLS token of the final norm, after resize 256 (bicubic), centre crop 224, ImageNet
    normalisation."""
    import timm
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from bench.scorers import dino as dino_scorer

    net = timm.create_model(
        model,
        pretrained=True,
        pretrained_cfg_overlay={"file": str(dino_scorer.tiny_weights_file(0, model))},
        num_classes=0,
        **dino_scorer.tiny_kwargs(model),
    ).eval()
    transform = T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )

    def image(paths):
        pixels = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
        with torch.no_grad():
            return net.forward_features(pixels)[:, 0].double()  # the CLS token

    return image


def cosine(a, b):
    """Cosine of every row of a with every row of b (torch tensors)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    return a @ b.T


# --------------------------------------------------------------------------- the toy world


@dataclass(frozen=True)
class SubjectTruth:
    """Per prompt image of a run, in the run's order."""

    subject: list[bool]  # its class and every trait (a recolour prompt changes the body)
    placed: list[bool]  # of context prompts' images: the context they name
    traits: dict[str, list[bool]]  # per trait
    whose: list[str]  # the subject id
    kinds: list[str]  # what the prompt asks for: "context", "colour" or "worn"
    cells: list[str]  # "subject/prompt id/image index/replicate"


def subject_truth(run_dir: Path, oracle) -> SubjectTruth:
    """What the oracle finds in each prompt image of a run, against the subject's definition."""
    import numpy as np
    from PIL import Image

    from bench_world.render import CONTEXTS, RECOLOURS, Scene
    from bench_world.subjects import SUBJECTS

    pictures, expected, contexts, whose, kinds, cells = [], [], [], [], [], []
    for manifest_file in sorted(run_dir.glob("*/replicate-0/manifest.json")):
        manifest = json.loads(manifest_file.read_text())
        instance = SUBJECTS[manifest["subject"]["id"]]
        for entry in manifest["images"]:
            if entry["prompt_id"] == "prior":
                continue
            pictures.append(np.asarray(Image.open(manifest_file.parent / entry["file"])))
            whose.append(manifest["subject"]["id"])
            cells.append(
                f"{manifest['subject']['id']}/{entry['prompt_id']}/{entry['image_index']}/"
                f"{manifest['replicate']}"
            )
            recolour = entry["prompt_id"] if entry["prompt_id"] in RECOLOURS else None
            expected.append(Scene(instance, recolour=recolour))
            text = entry["prompt"] or ""  # a photo (the `real` run) has none
            named = [c for c, words in CONTEXTS.items() if words and text.endswith(words)]
            contexts.append(named[0] if named else None)
            wearing = "wearing" in text.split()
            kinds.append("colour" if recolour else "worn" if wearing else "context")
    read = oracle.read(pictures)
    # The subject: its class and every trait (the recolour changes the body's colour).
    traits = {
        "class": [r["class"] == s.instance.cls for r, s in zip(read, expected, strict=True)],
        "body": [r["body"] == s.body for r, s in zip(read, expected, strict=True)],
        "secondary": [r["secondary"] == s.secondary for r, s in zip(read, expected, strict=True)],
        "pattern": [
            r["pattern"] == s.instance.pattern for r, s in zip(read, expected, strict=True)
        ],
        "part": [r["part"] == s.instance.part for r, s in zip(read, expected, strict=True)],
    }
    subject = [all(hits[i] for hits in traits.values()) for i in range(len(read))]
    placed = [r["context"] == c for r, c in zip(read, contexts, strict=True) if c]
    return SubjectTruth(subject, placed, traits, whose, kinds, cells)
