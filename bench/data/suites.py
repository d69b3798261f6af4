"""Suites: which subjects, which prompts per subject kind, how many images, on which backbone,
generated how, scored with what, and the default options of each method."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data import dreambench
from bench.data.prompts import PromptSet, load_prompt_set
from bench.data.subjects import KINDS, Subject, load_subject_dir
from bench.errors import BenchError
from bench.paths import data_dir
from bench.toml_files import read_toml, reject_unknown, require

MAX_RESOLUTION = 4096  # pixels, for generation and training
MAX_GENERATION_STEPS = 1000  # denoising steps per image (the paper's protocol uses 50)
MAX_IMAGES_PER_CELL = 1000  # images per prompt, and prior images per subject

# Shipped subject sets that were renamed: `smoke` names the suite alone.
RENAMED_SETS = {"smoke": "shapes"}


@dataclass(frozen=True)
class GenerationProtocol:
    """How every method renders its images, so that they differ only in the method."""

    scheduler: str = "DDIMScheduler"
    steps: int = 50
    guidance_scale: float = 7.5
    negative_prompt: str = ""

    def __post_init__(self) -> None:
        import diffusers

        if not self.scheduler.endswith("Scheduler") or not hasattr(diffusers, self.scheduler):
            raise BenchError(
                f"generation.scheduler {self.scheduler!r} is not a diffusers scheduler class "
                "(e.g. DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler)"
            )
        if not 1 <= self.steps <= MAX_GENERATION_STEPS:
            raise BenchError(
                f"generation.steps must be >= 1 and <= {MAX_GENERATION_STEPS}, got {self.steps}"
            )
        if not math.isfinite(self.guidance_scale):
            raise BenchError(f"generation.guidance_scale must be finite, got {self.guidance_scale}")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    subjects: tuple[Subject, ...]
    prompt_sets: dict[str, PromptSet]  # subject kind -> prompts
    images_per_prompt: int
    replicates: tuple[int, ...]
    resolution: int
    backbone: str
    generation: GenerationProtocol
    scorers: tuple[str, ...] = ()
    prior_images: int = 0  # per subject and replicate: images of the plain class prompt (PRES)
    method_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    scorer_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    backbone_revision: str | None = None

    def __post_init__(self) -> None:
        where = f"suite '{self.name}'"
        if not self.subjects:
            raise BenchError(f"{where}: has no subjects")
        ids = [s.id for s in self.subjects]
        if len(set(ids)) != len(ids):
            raise BenchError(f"{where}: subject ids repeat: {ids}")
        for subject in self.subjects:
            if subject.kind not in self.prompt_sets:
                raise BenchError(
                    f"{where}: no prompt set for {subject.kind} subject '{subject.id}'"
                    f"; add `{subject.kind} = ...` under [prompts]"
                )
        if not 1 <= self.images_per_prompt <= MAX_IMAGES_PER_CELL:
            raise BenchError(
                f"{where}: images_per_prompt must be >= 1 and <= {MAX_IMAGES_PER_CELL}, "
                f"got {self.images_per_prompt}"
            )
        if not 0 <= self.prior_images <= MAX_IMAGES_PER_CELL:
            raise BenchError(
                f"{where}: prior_images must be >= 0 and <= {MAX_IMAGES_PER_CELL}, "
                f"got {self.prior_images}"
            )
        seeds = self.replicates
        if (
            not seeds
            or len(set(seeds)) != len(seeds)
            or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in seeds)
        ):
            raise BenchError(
                f"{where}: replicates must be a non-empty list of distinct whole numbers >= 0 "
                f"(the fit seeds), got {list(self.replicates)}"
            )
        if self.resolution % 8 or not 16 <= self.resolution <= MAX_RESOLUTION:
            raise BenchError(
                f"{where}: resolution must be a multiple of 8, >= 16 and <= {MAX_RESOLUTION}, "
                f"got {self.resolution}"
            )

    def prompts_for(self, subject: Subject) -> PromptSet:
        return self.prompt_sets[subject.kind]

    def identity(self) -> dict[str, Any]:
        """What defines the suite's results, hashed into run ids (paths and descriptions not)."""
        return {
            "name": self.name,
            "subjects": [
                {
                    "id": s.id,
                    "class": s.class_noun,
                    "kind": s.kind,
                    "token": s.token,
                    "images": [_file_digest(p) for p in s.images],
                }
                for s in self.subjects
            ],
            "prompts": {
                kind: [[p.id, p.template] for p in ps.prompts]
                for kind, ps in sorted(self.prompt_sets.items())
            },
            "images_per_prompt": self.images_per_prompt,
            "replicates": list(self.replicates),
            "resolution": self.resolution,
            "backbone": self.backbone,
            "backbone_revision": self.backbone_revision,
            "generation": vars(self.generation),
            # Only when asked for, so that suites without prior images keep their run ids.
            **({"prior_images": self.prior_images} if self.prior_images else {}),
        }


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def suite_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise BenchError(f"{path}: suite file not found")
        return path
    path = data_dir("suites") / f"{name_or_path}.toml"
    if not path.is_file():
        from bench.registry import did_you_mean

        known = [p.stem for p in sorted(data_dir("suites").glob("*.toml"))]
        raise BenchError(
            f"unknown suite '{name_or_path}'{did_you_mean(str(name_or_path), known)}"
            f"; available: {', '.join(known)} (or a path to a suite .toml)"
        )
    return path


def list_suites() -> list[tuple[str, str]]:
    """(name, description) of the shipped suites, without loading their subjects."""
    return [
        (p.stem, read_toml(p).get("description", ""))
        for p in sorted(data_dir("suites").glob("*.toml"))
    ]


_KEYS = {
    "name",
    "description",
    "backbone",
    "backbone_revision",
    "resolution",
    "images_per_prompt",
    "prior_images",
    "replicates",
    "scorers",
    "scorer_options",
    "subjects",
    "prompts",
    "generation",
    "method_defaults",
}


def load_suite(
    name_or_path: str | Path,
    *,
    data_root: str | Path | None = None,
    backbone: str | None = None,
    subjects: Sequence[str] | None = None,
    prompt_file: str | Path | None = None,
    replicates: Sequence[int] | None = None,
) -> Suite:
    """Load and validate a suite. `backbone` overrides the suite's (and so changes the run id).
    `replicates` (the fit seeds: each subject is fitted and rendered once per replicate)
    override the suite's, and so change the run id as well.

    `subjects` (names of the suite's own subjects or of user subjects, `bench subjects add`;
    a registered user subject wins) replace the suite's subjects, keeping its prompts and
    protocol; the suite is then named `<suite>-<id>+<id>...` so that its runs are stored
    apart. `prompt_file` (a prompt-set TOML) replaces the prompt set of every kind. Both change
    the suite's identity, and so the run id.
    """
    path = suite_path(name_or_path)
    table = read_toml(path)
    reject_unknown(table, _KEYS, path)
    name = table.get("name", path.stem)
    if subjects is not None:
        chosen, dreambench_prompts = _chosen_subjects(subjects, table, path, data_root)
        name = f"{name}-{'+'.join(s.id for s in chosen)}"
    else:
        chosen, dreambench_prompts = _load_subjects(
            require(table, "subjects", dict, path), path, data_root
        )
    prompt_sets = {}
    for kind, spec in require(table, "prompts", dict, path).items():
        if kind not in KINDS:
            raise BenchError(f"{path}: [prompts] key {kind!r} must be one of {', '.join(KINDS)}")
        if prompt_file is None:
            prompt_sets[kind] = _load_prompts(spec, path, dreambench_prompts)
    if prompt_file is not None:
        custom = _load_prompt_file(prompt_file)
        prompt_sets = dict.fromkeys(KINDS, custom)
    if subjects is not None:
        for subject in chosen:
            if subject.kind not in prompt_sets:
                raise BenchError(
                    f"--subject {subject.id}: suite '{path.stem}' has no prompts for "
                    f"{subject.kind} subjects; pick a suite with `{subject.kind} = ...` under "
                    "[prompts], or pass --prompt-file FILE.toml"
                )
    method_defaults = table.get("method_defaults", {})
    if not isinstance(method_defaults, dict):
        raise BenchError(f"{path}: [method_defaults] must be a table of tables per method")
    return Suite(
        name=name,
        description=table.get("description", ""),
        subjects=chosen,
        prompt_sets=prompt_sets,
        images_per_prompt=require(table, "images_per_prompt", int, path),
        replicates=tuple(
            replicates if replicates is not None else require(table, "replicates", list, path)
        ),
        resolution=require(table, "resolution", int, path),
        backbone=backbone or require(table, "backbone", str, path),
        backbone_revision=None if backbone else table.get("backbone_revision"),
        generation=generation_protocol(table, path),
        scorers=tuple(table.get("scorers", ())),
        prior_images=_prior_images(table, path),
        method_defaults=method_defaults,
        scorer_options=table.get("scorer_options", {}),
    )


def _prior_images(table: dict, path: Path) -> int:
    value = table.get("prior_images", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BenchError(f"{path}: prior_images must be a whole number >= 0, got {value!r}")
    return value


def generation_protocol(table: dict, path: Path) -> GenerationProtocol:
    """A suite file's [generation] table: the only place it is read."""
    generation = table.get("generation", {})
    if not isinstance(generation, dict):
        raise BenchError(f"{path}: [generation] must be a table")
    reject_unknown(generation, set(vars(GenerationProtocol())), f"{path} [generation]")
    return GenerationProtocol(**generation)


def _load_subjects(spec: dict, path: Path, data_root) -> tuple[tuple[Subject, ...], dict]:
    where = f"{path} [subjects]"
    reject_unknown(spec, {"set", "path", "source", "ids", "user"}, where)
    dreambench_prompts: dict[str, PromptSet] = {}
    user: tuple[Subject, ...] = ()
    if "user" in spec:  # registered with `bench subjects add`, alone or after the others
        names = spec["user"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
            raise BenchError(f'{where}: `user` must be a list of subject names, e.g. ["my_dog"]')
        user = _user_subjects(names, f"{where} user")
        if not any(key in spec for key in ("set", "path", "source")):
            if "ids" in spec:
                raise BenchError(f"{where}: `ids` selects from `set`, `path` or `source`; drop it")
            return user, dreambench_prompts
    if spec.get("source") == "dreambench":
        subjects, objects, live = dreambench.read_dreambench(dreambench.data_root(data_root))
        dreambench_prompts = {"dreambench_object": objects, "dreambench_live": live}
    elif "set" in spec:
        if spec["set"] in RENAMED_SETS:
            new = RENAMED_SETS[spec["set"]]
            raise BenchError(
                f'{where}: subject set "{spec["set"]}" is now "{new}": write set = "{new}"'
            )
        subjects = load_subject_dir(data_dir("subjects") / spec["set"])
    elif "path" in spec:
        subjects = load_subject_dir((path.parent / spec["path"]).resolve())
    else:
        raise BenchError(
            f'{where}: give `set = NAME` (shipped), `path = DIR` or `source = "dreambench"`'
        )
    if "ids" in spec:
        by_id = {s.id: s for s in subjects}
        missing = [i for i in spec["ids"] if i not in by_id]
        if missing:
            raise BenchError(f"{where}: unknown subject id(s) {missing}; known: {sorted(by_id)}")
        subjects = tuple(by_id[i] for i in spec["ids"])
    return subjects + user, dreambench_prompts


def _chosen_subjects(
    names: Sequence[str], table: dict, path: Path, data_root
) -> tuple[tuple[Subject, ...], dict]:
    """`--subject`: registered user subjects, and the suite's own subjects for the other names
    (read only when some name needs them, as DreamBench's need the dataset)."""
    from bench.data.user_subjects import registered_names

    registered = set(registered_names())
    if not names or all(n in registered for n in names):
        return _user_subjects(names, "--subject"), {}
    _named_once(names, "--subject")
    spec = require(table, "subjects", dict, path)
    own, dreambench_prompts = _load_subjects(spec, path, data_root)
    by_id = {s.id: s for s in own}
    unknown = [n for n in names if n not in registered and n not in by_id]
    if unknown:
        listing = ", ".join(sorted(by_id))
        raise BenchError(
            f"--subject {unknown[0]}: neither a subject of suite '{path.stem}' ({listing}) nor a "
            f"registered user subject; register it with `bench subjects add {unknown[0]} --class "
            "NOUN --images DIR`"
        )
    chosen = tuple(
        _user_subjects([n], "--subject")[0] if n in registered else by_id[n] for n in names
    )
    return chosen, dreambench_prompts


def _user_subjects(names: Sequence[str], where: str) -> tuple[Subject, ...]:
    from bench.data.user_subjects import load_user_subject

    if not names:
        raise BenchError(f"{where}: no subject names given")
    _named_once(names, where)
    return tuple(load_user_subject(n) for n in names)


def _named_once(names: Sequence[str], where: str) -> None:
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise BenchError(f"{where}: subject(s) {', '.join(repeated)} given twice; name each once")


def _load_prompt_file(prompt_file: str | Path) -> PromptSet:
    path = Path(prompt_file)
    if path.suffix != ".toml" and path.exists():
        raise BenchError(f"--prompt-file {path}: must be a .toml prompt set (see prompts/)")
    if path.suffix == ".toml" and not path.is_file():
        raise BenchError(
            f"--prompt-file {path}: file not found; give a TOML of [[prompt]] tables with a "
            'template like "a {token} {class} on the moon" (see prompts/seed_attributes.toml)'
        )
    return load_prompt_set(path)


def _load_prompts(spec: str | dict, path: Path, dreambench_prompts: dict) -> PromptSet:
    if isinstance(spec, str):
        spec = {"set": spec}
    where = f"{path} [prompts]"
    reject_unknown(spec, {"set", "ids"}, where)
    name = require(spec, "set", str, where)
    # With the dataset at hand, its own prompt lists are used (the shipped copies are identical).
    prompt_set = dreambench_prompts.get(name) or load_prompt_set(
        (path.parent / name) if name.endswith(".toml") else name
    )
    if "ids" in spec:
        by_id = {p.id: p for p in prompt_set.prompts}
        missing = [i for i in spec["ids"] if i not in by_id]
        if missing:
            raise BenchError(f"{where}: prompt set '{name}' has no prompt id(s) {missing}")
        prompt_set = PromptSet(
            name=prompt_set.name,
            prompts=tuple(by_id[i] for i in spec["ids"]),
            source=prompt_set.source,
        )
    return prompt_set
