"""The world report: what the toy world's models do, measured against the truth by the oracle.

- the oracle itself, on held-out renders, on their VAE reconstructions and blurred;
- what the metrics can see: how often CLIP-I and DINO tell a subject from a twin that differs in
  one trait, and CLIP-T a prompt from one that asks for one other thing;
- the base model's prompt following: for "a {class} {context}", is the class drawn, the context?
- per run of a world suite: how often the oracle finds the subject (its colours, pattern and part,
  as the prompt leaves them) and what the prompt asked for (context, colour, something worn),
  beside the run's metrics; the subject share per subject and per kind of prompt;
- a contact sheet: each subject's photos, then each run's image of one prompt, same noise.

Every number here comes from the oracle reading PNGs back, never from a scorer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.lab import read_image
from bench_world import REPORT_RUNS
from bench_world.clip import twin
from bench_world.render import (
    CLASSES,
    CONTEXTS,
    GLASSES,
    HATS,
    RECOLOURS,
    SCARVES,
    Instance,
    Scene,
    caption,
    labels,
    random_instance,
    random_scene,
    render,
)

HELD_OUT_SEED = 20261126  # renders no world model was trained on
TRAITS = ("body", "secondary", "pattern", "part")  # what tells a subject from its class
SUBJECT = ("class", *TRAITS)  # what an image must show to show the subject


# --------------------------------------------------------------------------- the oracle


def oracle_on_renders(oracle, n: int = 2000) -> dict[str, float]:
    return _accuracy_on(oracle, n, lambda pictures: pictures)


def oracle_on_reconstructions(oracle, vae, n: int = 1000) -> dict[str, float]:
    """The oracle's accuracy on held-out renders after the world VAE's round trip: what the
    latent space keeps of each label."""
    from bench_world.pipeline import decode, encode

    return _accuracy_on(oracle, n, lambda pictures: decode(vae, encode(vae, pictures)))


BLUR = 1.0  # px: about as soft as the world model's own pictures


def blurred(pictures, sigma: float = BLUR) -> list[np.ndarray]:
    """The pictures blurred by PIL's Gaussian of `sigma` px, as soft as generated pictures."""
    from PIL import Image, ImageFilter

    blur = ImageFilter.GaussianBlur(sigma)
    return [np.asarray(Image.fromarray(p).filter(blur)) for p in pictures]


def oracle_on_blurred(oracle, n: int = 1000, sigma: float = BLUR) -> dict[str, float]:
    """The oracle's accuracy on held-out renders blurred: a judge of generated pictures must
    read soft ones."""
    return _accuracy_on(oracle, n, lambda pictures: blurred(pictures, sigma))


def _accuracy_on(oracle, n: int, change) -> dict[str, float]:
    """`accuracy` on `n` held-out renders, each changed by `change`."""
    from bench_world.oracle import accuracy, training_scenes

    scenes = training_scenes(seed=HELD_OUT_SEED, n=n)
    return accuracy(oracle, scenes, change([render(s) for s in scenes]))


# --------------------------------------------------------------------------- what metrics see

SEEN_SEED = HELD_OUT_SEED + 1
ASKED = ("class", "context", "colour", "worn")  # what a DreamBench prompt asks for


@dataclass(frozen=True)
class IdentityCases:
    """Held-out pictures for `image_metric_sees`: per instance a first and a second photo (other
    poses and places), and per trait the second photo of its twin in that trait."""

    firsts: list[np.ndarray]
    seconds: list[np.ndarray]
    twins: dict[str, list[np.ndarray]]


def identity_cases(n: int = 300) -> IdentityCases:
    rng = np.random.default_rng(SEEN_SEED)
    cases = IdentityCases([], [], {t: [] for t in TRAITS})
    for _ in range(n):
        instance = random_instance(rng)
        cases.firsts.append(render(random_scene(rng, instance, modifiers=0)))
        second = random_scene(rng, instance, modifiers=0)
        cases.seconds.append(render(second))
        for trait in TRAITS:
            cases.twins[trait].append(render(twin(second, rng, trait)))
    return cases


def image_metric_sees(embed, cases: IdentityCases) -> dict[str, float]:
    """What an image-similarity metric (CLIP-I, DINO) sees of identity: per trait, the share of
    `cases` for which `embed` (images to unit vectors) puts the second photo of the instance
    nearer its first photo than the same second photo of its twin in that trait alone. 50% is
    blind to the trait, 100% always sees it; a tie counts as not seen."""
    first, same = embed(cases.firsts), embed(cases.seconds)
    own = np.sum(first * same, axis=1)
    return {t: float(np.mean(own > np.sum(first * embed(cases.twins[t]), axis=1))) for t in TRAITS}


PLACES = [c for c in CONTEXTS if c != "plain"]  # contexts a prompt names
WORN = [
    (kind, item)
    for kind, items in (("hat", HATS), ("glasses", GLASSES), ("scarf", SCARVES))
    for item in list(items)[1:]
]  # (field, value) of everything that can be worn


def asking(asked: str, rng: np.random.Generator) -> Scene:
    """A held-out scene whose DreamBench caption asks for `asked` (ASKED): any class; a named
    place; a recolour; one thing worn."""
    scene = random_scene(rng, modifiers=0)
    if asked == "context":
        return replace(scene, context=str(rng.choice(PLACES)))
    if asked == "colour":
        return replace(scene, recolour=str(rng.choice(RECOLOURS)))
    if asked == "worn":
        kind, item = WORN[rng.integers(len(WORN))]
        return replace(scene, **{kind: item})
    return scene


def prompt_twin(scene: Scene, asked: str, rng: np.random.Generator) -> Scene:
    """`scene` asking for another of what it asks for (ASKED): another class, another named
    place, another recolour, another thing worn in place of its own."""

    def other(options, current):
        return rng.choice([o for o in options if o != current])

    if asked == "class":
        return twin(scene, rng, "class")
    if asked == "context":
        return replace(scene, context=str(other(PLACES, scene.context)))
    if asked == "colour":
        return replace(scene, recolour=str(other(RECOLOURS, scene.recolour)))
    wears = next(w for w in WORN if getattr(scene, w[0]) == w[1])
    kind, item = WORN[rng.choice([i for i, w in enumerate(WORN) if w != wears])]
    return replace(replace(scene, **{wears[0]: "none"}), **{kind: item})


def text_metric_sees(embed_images, embed_texts, n: int = 300) -> dict[str, float]:
    """What CLIP-T sees of a prompt: per thing a DreamBench prompt asks for (class, a place, a
    colour, something worn), the share of held-out pictures whose own caption scores above the
    caption that asks for another such thing (`prompt_twin`). 50% is blind, 100% always sees
    it; a tie counts as not seen."""

    rng = np.random.default_rng(SEEN_SEED + 1)
    seen = {}
    for asked in ASKED:
        scenes = [asking(asked, rng) for _ in range(n)]
        pictures = embed_images([render(s) for s in scenes])
        own = np.sum(pictures * embed_texts([caption(s) for s in scenes]), axis=1)
        twins = embed_texts([caption(prompt_twin(s, asked, rng)) for s in scenes])
        seen[asked] = float(np.mean(own > np.sum(pictures * twins, axis=1)))
    return seen


def metrics_see(n: int = 300, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """`image_metric_sees` for the world's CLIP (CLIP-I) and DINO, `text_metric_sees` for its
    CLIP (CLIP-T), each on `n` held-out cases, each model loaded as the scorers load it."""
    from PIL import Image

    from bench.lab import WORLD_CLIP, WORLD_DINO, load_clip_model, load_dino_model

    clip, dino = (
        load_clip_model(WORLD_CLIP, device="cpu"),
        load_dino_model(WORLD_DINO, device="cpu"),
    )

    def images(model):
        return lambda pictures: model.embed_images(
            [Image.fromarray(p) for p in pictures], batch_size
        )

    cases = identity_cases(n)
    return {
        "clip_i": image_metric_sees(images(clip), cases),
        "dino": image_metric_sees(images(dino), cases),
        "clip_t": text_metric_sees(images(clip), lambda t: clip.embed_texts(t, batch_size), n),
    }


# --------------------------------------------------------------------------- the base model


def base_prompt_following(backbone, oracle, per_pair: int = 2, steps: int = 25, guidance=7.5):
    """For every class and context, `per_pair` images of "a {class} {context}" from seeded noise:
    the share where the oracle reads the class, and the context (all contexts, and those other
    than the plain backdrop)."""
    import torch

    prompts, truth = [], []
    for cls in CLASSES:
        for context in CONTEXTS:
            for _ in range(per_pair):
                prompts.append(caption(Scene(_any(cls), context=context)))
                truth.append((cls, context))
    pictures = []
    generator = torch.Generator().manual_seed(0)
    for start in range(0, len(prompts), 32):
        batch = prompts[start : start + 32]
        out = backbone.pipe(
            batch,
            height=64,
            width=64,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
            output_type="np",
        ).images
        pictures += list((out * 255).round().astype(np.uint8))
    read = oracle.read(pictures)
    found_class = [r["class"] == c for r, (c, _) in zip(read, truth, strict=True)]
    found_context = [r["context"] == x for r, (_, x) in zip(read, truth, strict=True)]
    placed = [f for f, (_, x) in zip(found_context, truth, strict=True) if x != "plain"]
    return {
        "images": len(prompts),
        "class": float(np.mean(found_class)),
        "context": float(np.mean(found_context)),
        "context_not_plain": float(np.mean(placed)),
        "pictures": pictures,
        "prompts": prompts,
    }


def _any(cls: str) -> Instance:
    """Some instance of `cls`: only its class and the scene reach the caption."""
    return Instance(cls, "red", "white", "plain", True, 1.0)


# --------------------------------------------------------------------------- runs


def prompt_scene(instance: Instance, text: str) -> Scene | None:
    """The scene a prompt asks for (the text without identifier, "a red mug", "a mug on the
    beach"), with `instance` in it; None when the world has no such caption."""
    variants = [Scene(instance, context=c) for c in CONTEXTS]
    variants += [Scene(instance, recolour=c) for c in RECOLOURS]
    for worn, options in (("hat", HATS), ("glasses", GLASSES), ("scarf", SCARVES)):
        variants += [Scene(instance, **{worn: o}) for o in list(options)[1:]]
    for scene in variants:
        if caption(scene) == text:
            return scene
    return None


def asked(scene: Scene) -> str:
    """The label a prompt changes: its context, its colour or what is worn."""
    if scene.recolour:
        return "body"
    for worn in ("hat", "glasses", "scarf"):
        if getattr(scene, worn) != "none":
            return worn
    return "context"


def prompt_kind(label: str) -> str:
    """What kind of thing a prompt asks for (`asked`'s label): "context", "colour" or "worn"
    (ASKED without the class)."""
    return {"context": "context", "body": "colour"}.get(label, "worn")


@dataclass(frozen=True)
class RunTruth:
    """What the oracle finds in one run's images (or in several fits' images, pooled)."""

    run_id: str
    method: str
    images: int
    subject: float  # share with the class and every trait the prompt leaves (SUBJECT)
    subject_interval: tuple[float, float]  # its 95% interval, subjects resampled (NaN below 5)
    by_subject: dict[str, float]  # the same share, per subject id
    by_prompt_kind: dict[str, float]  # the same share, per kind of prompt (`prompt_kind`)
    traits: dict[str, float]  # share per label of SUBJECT (class, body, secondary, pattern, part)
    prompt: float  # share with what the prompt asked for (context, colour or worn)
    context: float  # on the prompts that ask for a context: share in it
    prior: float  # of the plain class images ("a mug", for PRES): share showing the subject
    # per prompt image ("subject/prompt id/image index/replicate"): "1" or "0" for each label
    # of SUBJECT, in its order, so that any share can be recomputed from the report's JSON
    hits: dict[str, str] = field(default_factory=dict)


def run_truth(
    run_dir: Path, oracle, resamples: int = 10_000, other_fits: Sequence[Path] = ()
) -> RunTruth:
    """Read every image of a scored run on world subjects back with the oracle (the images its
    scores name, through `bench.load_run`). The subject share gets
    the interval every metric gets (stats.bootstrap_interval: subjects resampled, prompts
    fixed), so that a bar on it can be read against the spread between subjects.

    `other_fits` are runs of the same method on the same suite fitted at other seeds: their
    images are pooled with the run's, so every share is over all the fits' images, and the
    interval resamples subjects each with all its fits' images (a fit's luck stays inside its
    subject, as image noise does)."""

    import bench
    from bench.lab import PRIOR_PROMPT_ID, bootstrap_interval
    from bench_world.subjects import SUBJECTS

    fits = [bench.load_run(fit_dir) for fit_dir in [run_dir, *other_fits]]
    record = fits[0].record
    pictures, expected, asks, priors, prior_truth, whose, prompt_ids = [], [], [], [], [], [], []
    cells = []  # each image's cell: subject/prompt id/image index/replicate (and fit, pooled)
    for fit_number, fit in enumerate(fits):
        fit_dir = fit.root
        if (fit.record.method, fit.record.suite) != (record.method, record.suite):
            raise ValueError(
                f"{fit_dir}: run {fit.run_id} is not another fit of {record.run_id} "
                f"(method {fit.record.method} on suite {fit.record.suite.get('name')}, not "
                f"{record.method} on {record.suite.get('name')})"
            )
        for row in fit.scores.itertuples():
            instance = SUBJECTS[row.subject]
            picture = np.asarray(read_image(fit.root / row.image))
            if row.prompt_id == PRIOR_PROMPT_ID:
                priors.append(picture)
                prior_truth.append(labels(Scene(instance)))
                continue
            text = row.scoring_prompt or ""
            scene = prompt_scene(instance, text) if text else Scene(instance)
            if scene is None:
                raise ValueError(f"{fit_dir}: prompt {text!r} is not one the world draws")
            pictures.append(picture)
            expected.append(labels(scene))
            cell = f"{row.subject}/{row.prompt_id}/{row.image_index}/{row.replicate}"
            cells.append(cell if not other_fits else f"{cell}/fit-{fit_number}")
            whose.append(row.subject)
            prompt_ids.append(row.prompt_id)
            asks.append(asked(scene) if text else None)
    read = oracle.read(pictures)
    prior = [
        all(r[t] == e[t] for t in SUBJECT)
        for r, e in zip(oracle.read(priors), prior_truth, strict=True)
    ]
    hits = {t: [r[t] == e[t] for r, e in zip(read, expected, strict=True)] for t in SUBJECT}
    subject = [all(hits[t][i] for t in SUBJECT) for i in range(len(read))]
    spread = bootstrap_interval(
        np.asarray(subject, dtype=float), whose, prompt_ids, n_resamples=resamples
    )
    kinds = [prompt_kind(a) if a else "no prompt" for a in asks]
    prompt = [r[a] == e[a] for r, e, a in zip(read, expected, asks, strict=True) if a]
    context = [
        r["context"] == e["context"]
        for r, e, a in zip(read, expected, asks, strict=True)
        if a == "context"
    ]
    return RunTruth(
        run_id=record.run_id,
        method=record.method,
        images=len(read),
        subject=float(np.mean(subject)),
        subject_interval=(spread.low, spread.high),
        by_subject=_share_by(subject, whose),
        by_prompt_kind=_share_by(subject, kinds),
        hits={
            cell: "".join("1" if hits[t][i] else "0" for t in SUBJECT)
            for i, cell in enumerate(cells)
        },
        traits={t: float(np.mean(v)) for t, v in hits.items()},
        prompt=float(np.mean(prompt)) if prompt else float("nan"),
        context=float(np.mean(context)) if context else float("nan"),
        prior=float(np.mean(prior)) if prior else float("nan"),
    )


def _share_by(hits: list[bool], groups: list[str]) -> dict[str, float]:
    """The share of hits within each group, groups in order of first appearance."""
    return {
        g: float(np.mean([hit for hit, mine in zip(hits, groups, strict=True) if mine == g]))
        for g in dict.fromkeys(groups)
    }


# --------------------------------------------------------------------------- contact sheet


def contact_sheet(
    runs: Sequence,
    subjects: Sequence[str],
    prompt_id: str,
    photos: int = 3,
    image_index: int = 0,
    scale: int = 2,
):
    """One row per subject: `photos` of its photos, then each run's image of `prompt_id` (the
    same cell, so the same noise); a PIL image. `runs`: run folders, ids or loaded runs (what
    `bench.load_run` takes)."""
    from PIL import Image

    import bench
    from bench_world.subjects import photos as subject_photos

    size, gap = 64, 4
    columns = photos + len(runs)
    sheet = Image.new(
        "RGB", (columns * (size + gap) - gap, len(subjects) * (size + gap) - gap), "white"
    )
    results = [bench.load_run(run) for run in runs]
    for row, subject in enumerate(subjects):
        cells = [Image.fromarray(p) for p in subject_photos(subject)[:photos]]
        for run in results:
            scores = run.scores
            image = scores.loc[
                (scores["subject"] == subject)
                & (scores["prompt_id"] == prompt_id)
                & (scores["image_index"] == image_index),
                "image",
            ].iloc[0]
            cells.append(read_image(run.root / image))
        for column, cell in enumerate(cells):
            sheet.paste(cell.resize((size, size)), (column * (size + gap), row * (size + gap)))
    return sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST)


# --------------------------------------------------------------------------- the report


METRICS_BESIDE_TRUTH = ("clip_i", "dino")  # the identity metrics the truth checks


def share(x: float, decimals: int = 0) -> str:
    """A share as a percentage, "n.a." where nothing was asked (NaN)."""
    return "n.a." if x != x else f"{x:.{decimals}%}"


def subject_share(x: float) -> str:
    """The subject share to a tenth of a percent: the world suite's bar (60%) is read on it,
    and 59.8% must not print as 60%."""
    return share(x, decimals=1)


def share_with_interval(x: float, low: float, high: float) -> str:
    """ "55.2% [44%, 66%]" (`subject_share` in whole-percent bounds); the share alone where
    there is no interval (NaN bounds)."""
    point = subject_share(x)
    return point if low != low else f"{point} [{share(low)}, {share(high)}]"


def _shares_table(heading: str, field: str, rows: list[dict]):
    """Each run's subject share per key of `field` (a row per key, a column per run)."""
    from bench.lab import Table

    keys = list(dict.fromkeys(k for row in rows for k in row[field]))
    table = Table([heading, *[f"`{row['label']}`" for row in rows]], index=1)
    table.rows = [[k, *[share(row[field].get(k, float("nan"))) for row in rows]] for k in keys]
    return table


def _fit_rows(fits: Mapping[str, Sequence[tuple[int, Path]]], oracle, resamples: int) -> list[dict]:
    """Per label with more than one fit: each fit's subject and context share, and all fits'
    images pooled (`run_truth`'s other_fits)."""
    rows = []
    for label, seeded in fits.items():
        if len(seeded) < 2:
            continue
        alone = [run_truth(run_dir, oracle, resamples) for _, run_dir in seeded]
        pooled = run_truth(seeded[0][1], oracle, resamples, other_fits=[d for _, d in seeded[1:]])
        rows.append(
            {
                "label": label,
                "fits": [
                    {"seed": seed, "run_id": t.run_id, "subject": t.subject, "context": t.context}
                    for (seed, _), t in zip(seeded, alone, strict=True)
                ],
                "images": pooled.images,
                "subject": pooled.subject,
                "subject_interval": list(pooled.subject_interval),
                "prompt": pooled.prompt,
                "context": pooled.context,
            }
        )
    return rows


def _fit_seeds_section(fit_rows: list[dict]):
    """The fit seeds: a row per label, a column per seed, then the pooled."""
    from bench.lab import Code, Paragraph, Section, Table

    seeds = list(dict.fromkeys(f["seed"] for row in fit_rows for f in row["fits"]))
    table = Table(["run", *[f"seed {s}" for s in seeds], "pooled", "prompt", "context"], index=1)
    for row in fit_rows:
        found = {f["seed"]: f["subject"] for f in row["fits"]}
        table.rows.append(
            [
                Code(row["label"]),
                *[subject_share(found.get(s, float("nan"))) for s in seeds],
                share_with_interval(row["subject"], *row["subject_interval"]),
                share(row["prompt"]),
                share(row["context"]),
            ]
        )
    return Section("Fit seeds").add(
        Paragraph(
            "Each trained method fitted once per seed (its `seed` option: the fit's noise, "
            "timesteps and initial weights; every fit generates from the same noise): the subject "
            "share of each fit, then of all the fits' images pooled, with its 95% interval "
            "(subjects resampled, each with all its fits' images, so that the fits' spread is "
            "inside it); what the prompt asks and the context, pooled."
        ),
        table,
    )


def run_report_rows(
    suite,
    labels: Sequence[str],
    fit_seeds: Sequence[int] = (),
    runs: Path | None = None,
    device: str = "auto",
    suite_ref: str | None = None,
    say=lambda line: None,
) -> tuple[list[tuple[str, Path]], dict[str, list[tuple[int | None, Path]]]]:
    """Run each row of the report (`labels`, keys of REPORT_RUNS) on `suite` through
    `bench.run` (finished runs are reused); a trained method (one with a `seed` option) at every
    fit seed. Returns each row's run (its first fit's) and every fit of each row, as
    (seed, run folder); `say` gets the command each run is, naming the suite as `suite_ref`."""
    import bench

    done, fits = [], {}
    for label in labels:
        method, options = REPORT_RUNS[label]
        seeded = list(fit_seeds) if fit_seeds and _is_fitted(method) else [None]
        for seed in seeded:
            chosen = options if seed is None else options | {"seed": seed}
            shown = f"{label}: bench run --method {method} --suite {suite_ref or suite.name}"
            say(shown + ("" if seed is None else f" --set seed={seed}"))
            result = bench.run(method, suite, options=chosen, runs=runs, device=device)
            fits.setdefault(label, []).append((seed, Path(result.run_dir)))
        done.append((label, fits[label][0][1]))
    return done, fits


def _is_fitted(method: str) -> bool:
    """Whether a method trains with a seed of its own (a `seed` option): the report refits it."""
    from dataclasses import fields

    from bench.lab import load_method

    return "seed" in {f.name for f in fields(load_method(method).Config)}


def write_report(
    out_dir: Path,
    suite: str,
    runs: Sequence[tuple[str, Path]],
    oracle,
    backbone,
    contact_prompt: str,
    contact_subjects: Sequence[str],
    resamples: int = 10_000,
    seen_cases: int = 300,
    fits: Mapping[str, Sequence[tuple[int, Path]]] | None = None,
    oracle_cases: int = 2000,
    base_per_pair: int = 2,
) -> dict:
    """The report on `runs` (label, run folder) of `suite`: world-report.md, world-report.json
    and contact-sheet.png in `out_dir`; returns what the JSON holds. `fits` gives a label's
    runs at each fit seed (seed, run folder), its own run first: the report adds each fit's
    subject share and all fits' images pooled. The oracle is checked on `oracle_cases`
    held-out renders, and on half as many reconstructed and blurred; the base model on
    `base_per_pair` images of each class and context."""
    import json

    import bench
    from bench.lab import (
        MIN_INTERVAL_SUBJECTS,
        Code,
        Document,
        Figure,
        IntervalValue,
        Number,
        Paragraph,
        Section,
        Table,
        atomic_path,
        metric_name,
        ordered,
        render_markdown,
        write_json,
        write_text,
    )

    on_renders = oracle_on_renders(oracle, oracle_cases)
    on_vae = oracle_on_reconstructions(oracle, backbone.pipe.vae, oracle_cases // 2)
    on_blurred = oracle_on_blurred(oracle, oracle_cases // 2)
    seen = metrics_see(seen_cases)
    base = base_prompt_following(backbone, oracle, base_per_pair)
    base.pop("pictures"), base.pop("prompts")
    results = {label: bench.load_run(run_dir) for label, run_dir in runs}
    stats = bench.StatsOptions(n_resamples=resamples)
    truths = {label: run_truth(run_dir, oracle, resamples) for label, run_dir in runs}
    metrics = ordered({m for r in results.values() for m in r.metrics})
    rows = []
    for label, truth in truths.items():
        intervals = bench.summarize(results[label], stats=stats)
        rows.append(
            {
                "label": label,
                "run_id": truth.run_id,
                "images": truth.images,
                "subject": truth.subject,
                "subject_interval": list(truth.subject_interval),
                "by_subject": truth.by_subject,
                "by_prompt_kind": truth.by_prompt_kind,
                "traits": truth.traits,
                "hits": {"labels": list(SUBJECT), "images": truth.hits},
                "prompt": truth.prompt,
                "context": truth.context,
                "prior": truth.prior,
                "metrics": {
                    m: [intervals[m].mean, intervals[m].low, intervals[m].high]
                    for m in metrics
                    if m in intervals
                },
            }
        )
    comparisons = []
    order = [label for label in ("real", "dreambooth_lora", "base") if label in results]
    for a, b in zip(order, order[1:], strict=False):
        for c in bench.compare([results[a], results[b]], stats=stats):
            if c.metric in METRICS_BESIDE_TRUTH:
                r = c.result
                comparisons.append(
                    {
                        "metric": c.metric,
                        "a": a,
                        "b": b,
                        "diff": r.diff,
                        "low": r.low,
                        "high": r.high,
                    }
                )
    fit_rows = _fit_rows(fits or {}, oracle, resamples)
    data = {
        "suite": suite,
        "backbone": backbone.revision,
        "oracle": {"renders": on_renders, "vae_reconstructions": on_vae, "blurred": on_blurred},
        "metrics_see": seen,
        "base_prompt_following": base,
        "runs": rows,
        "metric_differences": comparisons,
        "fit_seeds": fit_rows,
    }

    doc = Document(f"The toy world report: suite `{suite}`").add(
        Paragraph(
            f"Backbone `{backbone.revision}`. Every share below is the oracle reading the PNGs "
            "back (world/bench_world/report.py); the metrics are the suite's scorers, with 95% "
            "intervals."
        )
    )
    oracle_table = Table(["label", "held-out renders", "after the VAE", "blurred"], index=1)
    oracle_table.rows = [
        [k, Number(on_renders[k]), Number(on_vae[k]), Number(on_blurred[k])] for k in on_renders
    ]
    doc.add(
        Section("The oracle").add(
            Paragraph(
                f"Per label, its accuracy on {oracle_cases} held-out renders, on half as many "
                f"after the world VAE's round trip, and blurred by {BLUR:g} px (generated "
                "pictures are soft)."
            ),
            oracle_table,
        )
    )
    image_seen = Table(["metric", *TRAITS], index=1)
    image_seen.rows = [
        [metric_name(m), *[share(seen[m][t]) for t in TRAITS]] for m in ("clip_i", "dino")
    ]
    text_seen = Table(["metric", *ASKED], index=1)
    text_seen.rows = [[metric_name("clip_t"), *[share(seen["clip_t"][a]) for a in ASKED]]]
    doc.add(
        Section("What the metrics can see").add(
            Paragraph(
                "How often a metric tells the right thing from a twin that differs in that one "
                f"thing alone, on {seen_cases} held-out cases (50%: blind to it; 100%: always "
                "sees it). CLIP-I and DINO: a second photo of an instance against the same photo "
                "of its twin. CLIP-T: a picture's own DreamBench caption against one that asks "
                "for another class, context, colour or thing worn."
            ),
            image_seen,
            text_seen,
        ),
        Section("The base model follows prompts").add(
            Paragraph(
                f'{base["images"]} images of "a {{class}} {{context}}" (every class and '
                f"context): the oracle finds the class in {share(base['class'])}, the context "
                f"in {share(base['context'])} ({share(base['context_not_plain'])} of those "
                "that name a place)."
            )
        ),
    )
    methods = Table(
        ["run", "images", "subject", *SUBJECT, "prompt", "context", "prior"]
        + [metric_name(m) for m in metrics],
        index=1,
    )
    for row in rows:
        t = row["traits"]
        methods.rows.append(
            [
                Code(row["label"]),
                row["images"],
                share_with_interval(row["subject"], *row["subject_interval"]),
                *[share(t[k]) for k in SUBJECT],
                share(row["prompt"]),
                share(row["context"]),
                share(row["prior"]),
            ]
            + [
                IntervalValue(*row["metrics"][m]) if m in row["metrics"] else "n.a."
                for m in metrics
            ]
        )
    doc.add(
        Section("Methods, by the truth and by the metrics").add(
            Paragraph(
                "Subject: the oracle finds the subject's class and every trait (body and trim "
                "colour, pattern, part; a recolour prompt changes the body), with its 95% "
                "interval (subjects resampled, as for the metrics: the studentized bootstrap, or "
                "the percentile one where most subjects score alike; none below 5 subjects). "
                "Prompt: it finds what the prompt asks (context, colour or thing worn). Prior: "
                "of the plain class images, the share that show the subject (prior collapse; "
                "lower is better)."
            ),
            methods,
            Paragraph(
                "Subject, per subject: the share of its images with the class and every trait."
            ),
            _shares_table("subject", "by_subject", rows),
            Paragraph(
                "Subject, per kind of prompt (what it asks for: a context, a colour, a thing "
                "worn): the share of those images with the class and every trait."
            ),
            _shares_table("prompt", "by_prompt_kind", rows),
        )
    )
    if comparisons:
        differences = Table(["metric", "A", "B", "A - B", "95% interval"], index=3)
        for c in comparisons:
            bounds = (
                f"[{c['low']:+.4f}, {c['high']:+.4f}]"
                if c["low"] == c["low"]
                else f"none: fewer than {MIN_INTERVAL_SUBJECTS} subjects"
            )
            differences.rows.append(
                [
                    metric_name(c["metric"]),
                    Code(c["a"]),
                    Code(c["b"]),
                    Number(c["diff"], digits=4, signed=True),
                    bounds,
                ]
            )
        doc.add(
            Section("Do the metrics rank as the truth does?").add(
                Paragraph(
                    "Paired differences (subjects resampled), real photos over DreamBooth-LoRA "
                    "over the base model:"
                ),
                differences,
            )
        )
    if fit_rows:
        doc.add(_fit_seeds_section(fit_rows))
    sheet_runs = [results[label] for label, _ in runs if label != "real"]  # loaded above
    sheet = contact_sheet(sheet_runs, contact_subjects, contact_prompt)
    labels_row = ", ".join(label for label, _ in runs if label != "real")
    doc.add(
        Section("Contact sheet").add(
            Paragraph(
                f"Each row: three of the subject's photos, then {labels_row} for prompt "
                f"`{contact_prompt}` from the same noise."
            ),
            Figure("contact-sheet.png", "contact sheet"),
        )
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "contact-sheet.png") as tmp:
        sheet.save(tmp, format="PNG")
    write_json(out_dir / "world-report.json", json.loads(json.dumps(data, default=float)))
    write_text(out_dir / "world-report.md", render_markdown(doc))
    return data
