"""The cells of a suite, their seeds, their initial noise, and how they are cut into batches.

A cell is one image to generate: (subject, prompt id, image index, replicate). Its seed is

    seed = int.from_bytes(sha256(f"{subject}/{prompt_id}/{image_index}/{replicate}")[:8]) >> 1

(a 63-bit integer), and its initial latent is `torch.randn` drawn on the CPU from a generator
seeded with it. The method does not enter the hash: every method gets the same noise for the
same cell, which is what paired comparisons between methods rest on.

A suite with `prior_images = N` adds N cells per subject and replicate of the plain class prompt
("a dog", prompt id `prior`): the fine-tuned model's idea of the class, which the PRES metric
compares with the subject's photos (prior collapse). They are scored by PRES only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from bench.data.prompts import PRIOR_PROMPT_ID, Prompt
from bench.data.subjects import Subject
from bench.data.suites import Suite


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the parts joined with '/': sha256, first 8 bytes, shifted right once."""
    key = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def cell_seed(subject_id: str, prompt_id: str, image_index: int, replicate: int) -> int:
    return stable_seed(subject_id, prompt_id, image_index, replicate)


@dataclass(frozen=True)
class Cell:
    subject: Subject
    prompt: Prompt
    image_index: int
    replicate: int
    noise_seed: int | None = None  # `bench generate`: the column's seed in place of the cell's

    @property
    def seed(self) -> int:
        """The seed of the cell's initial noise (its sampling generator takes seed + 1)."""
        if self.noise_seed is not None:
            return self.noise_seed
        return cell_seed(self.subject.id, self.prompt.id, self.image_index, self.replicate)

    @property
    def text(self) -> str:
        """The prompt with the subject's identifier token: "a sks dog on the beach"."""
        return self.prompt.render(self.subject.token, self.subject.class_noun)

    @property
    def scoring_text(self) -> str:
        """What CLIP-T scores against: identifier dropped, class kept ("a dog on the beach")."""
        return self.prompt.render(None, self.subject.class_noun)

    @property
    def image_name(self) -> str:
        return f"{self.prompt.id}-{self.image_index}.png"


PRIOR_PROMPT = Prompt(PRIOR_PROMPT_ID, "a {class}")  # no identifier: the class prior


def cells_for(suite: Suite, subject: Subject, replicate: int) -> list[Cell]:
    """One subject's cells for one replicate, in prompt order then image index; its prior cells
    (the plain class prompt) last."""
    return [
        Cell(subject, prompt, index, replicate)
        for prompt in suite.prompts_for(subject).prompts
        for index in range(suite.images_per_prompt)
    ] + [Cell(subject, PRIOR_PROMPT, index, replicate) for index in range(suite.prior_images)]


def plan(suite: Suite) -> list[Cell]:
    """Every cell of a suite, ordered by subject, replicate, prompt, image index."""
    return [
        cell
        for subject in suite.subjects
        for replicate in suite.replicates
        for cell in cells_for(suite, subject, replicate)
    ]


def batches(cells: list[Cell], batch_size: int) -> Iterator[list[Cell]]:
    """Fixed chunks of the ordered cell list: a resumed run batches exactly as a fresh one."""
    for start in range(0, len(cells), batch_size):
        yield cells[start : start + batch_size]


def noise(seeds: list[int], channels: int, size: int):
    """(len(seeds), channels, size, size) float32 CPU noise: row i is `torch.randn` from a
    generator seeded with seeds[i], so a row never depends on the others. Every initial latent
    bench renders (cells, class images, variation grids) comes from here."""
    import torch

    rows = [
        torch.randn(
            (channels, size, size),
            generator=torch.Generator("cpu").manual_seed(seed),
            dtype=torch.float32,
        )
        for seed in seeds
    ]
    return torch.stack(rows)


def initial_latents(cells: list[Cell], channels: int, size: int):
    """(N, channels, size, size) float32 CPU noise, each row from its cell's own seed."""
    return noise([cell.seed for cell in cells], channels, size)
