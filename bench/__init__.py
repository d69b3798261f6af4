"""bench: an evaluation-first benchmark for subject-driven text-to-image personalization."""

__version__ = "0.1.0"
