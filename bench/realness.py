"""How real a run's numbers are, in one word that travels from the backbone to every table:
"random weights" (made on a random-weight backbone or scored by random-weight scorers: they test
the pipeline and mean nothing), "toy world" (made in bench's drawn world, by models bench trained
on it), or "real"."""

from __future__ import annotations

from collections.abc import Iterable

RANDOM_WEIGHTS = "random weights"
TOY_WORLD = "toy world"
REAL = "real"
REALNESS = (RANDOM_WEIGHTS, TOY_WORLD, REAL)  # least real first


def least_real(values: Iterable[str]) -> str:
    """The realness of numbers drawn from things of these realnesses: the least real."""
    return min(values, key=REALNESS.index, default=REAL)
