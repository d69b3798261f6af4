import hashlib

import torch

from bench.data.plan import batches, cell_seed, cells_for, initial_latents, plan, stable_seed
from bench.data.suites import load_suite


def test_cell_seed_is_the_documented_hash():
    expected = int.from_bytes(hashlib.sha256(b"dog/on_the_beach/3/0").digest()[:8], "big") >> 1
    assert cell_seed("dog", "on_the_beach", 3, 0) == expected
    assert 0 <= expected < 2**63
    # Pinned, so an accidental change of the formula (which would unpair old runs) fails here.
    assert stable_seed("dog", "on_the_beach", 3, 0) == 3539808602330140540


def test_seeds_differ_per_cell_and_replicate():
    suite = load_suite("smoke")
    cells = plan(suite)
    assert len(cells) == 3 * 3 * 2 + 3 * 2  # prompts x images, and 2 prior images per subject
    assert len({c.seed for c in cells}) == len(cells)
    subject = suite.subjects[0]
    assert {c.seed for c in cells_for(suite, subject, 0)}.isdisjoint(
        {c.seed for c in cells_for(suite, subject, 1)}
    )


def test_cell_texts():
    suite = load_suite("smoke")
    cat = next(s for s in suite.subjects if s.id == "ginger_cat")
    cell = cells_for(suite, cat, 0)[2]
    assert cell.text == "a sks cat wearing a santa hat"
    assert cell.scoring_text == "a cat wearing a santa hat"
    assert cell.image_name == "wearing_a_santa_hat-0.png"


def test_batches_are_fixed_chunks_and_noise_is_per_cell():
    suite = load_suite("smoke")
    cells = cells_for(suite, suite.subjects[0], 0)
    chunks = list(batches(cells, 4))
    assert [len(c) for c in chunks] == [4, 4]  # 6 prompt cells, then 2 prior cells
    assert [c for chunk in chunks for c in chunk] == cells
    whole = initial_latents(cells, 4, 8)
    assert whole.shape == (8, 4, 8, 8)
    # A cell's noise does not depend on which batch it is drawn in.
    assert torch.equal(initial_latents(cells[4:], 4, 8), whole[4:])
    assert not torch.equal(whole[0], whole[1])
