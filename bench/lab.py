"""What a lab that trains or studies bench's own models needs from bench, in one place: the
toy world's lab (the `bench-world` package in `world/`) is one. Import from here and from
`bench` (the API), not from bench's internal modules, which may move.

    from bench.lab import world_asset, load_backbone, read_image, bootstrap_interval

The toy world's shipped models live in `world_asset(...)`; a lab writes them there and the library
reads them from there. The CLIP and DINO scorers load their world models by name (`WORLD_CLIP`,
`WORLD_DINO`), and the world backbone builds its text encoder and tokenizer as below.
"""

from bench.analysis.stats import MIN_INTERVAL_SUBJECTS, Interval, bootstrap_interval
from bench.assets import world_asset
from bench.atomic import apply_umask, atomic_path, write_json, write_text
from bench.data.prompts import PRIOR_PROMPT_ID
from bench.diffusion.backbone import Backbone, load_backbone
from bench.diffusion.world_backbone import CONTEXT_LENGTH as WORLD_CONTEXT_LENGTH
from bench.diffusion.world_backbone import SCHEDULE as WORLD_NOISE_SCHEDULE
from bench.diffusion.world_backbone import load_text_encoder as load_world_text_encoder
from bench.diffusion.world_backbone import tokenizer as world_tokenizer
from bench.errors import BenchError
from bench.images import read_image
from bench.paths import cache_dir
from bench.registry import METHODS
from bench.registry import load as _load_entry_point
from bench.reports.document import (
    Code,
    Document,
    Figure,
    IntervalValue,
    Number,
    Paragraph,
    Section,
    Table,
)
from bench.reports.labels import interval, metric_name, ordered
from bench.reports.markdown import render as render_markdown
from bench.scorers.clip import WORLD_ARCH as WORLD_CLIP
from bench.scorers.clip import load_clip_model, register_model_configs
from bench.scorers.dino import IMAGENET_MEAN, IMAGENET_STD, load_dino_model
from bench.scorers.dino import WORLD_ARCH as WORLD_DINO_ARCH
from bench.scorers.dino import WORLD_KWARGS as WORLD_DINO_KWARGS
from bench.scorers.dino import WORLD_MODEL as WORLD_DINO


def load_method(name: str) -> type:
    """The method class a name registers (built in or a plugin); its `Config` lists the options
    `bench run --set` takes. An unknown name gets the list and a did-you-mean."""
    return _load_entry_point(METHODS, name)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_INTERVAL_SUBJECTS",
    "PRIOR_PROMPT_ID",
    "WORLD_CLIP",
    "WORLD_CONTEXT_LENGTH",
    "WORLD_DINO",
    "WORLD_DINO_ARCH",
    "WORLD_DINO_KWARGS",
    "WORLD_NOISE_SCHEDULE",
    "Backbone",
    "BenchError",
    "Code",
    "Document",
    "Figure",
    "Interval",
    "IntervalValue",
    "Number",
    "Paragraph",
    "Section",
    "Table",
    "apply_umask",
    "atomic_path",
    "bootstrap_interval",
    "cache_dir",
    "interval",
    "load_backbone",
    "load_clip_model",
    "load_dino_model",
    "load_method",
    "load_world_text_encoder",
    "metric_name",
    "ordered",
    "read_image",
    "register_model_configs",
    "render_markdown",
    "world_asset",
    "world_tokenizer",
    "write_json",
    "write_text",
]
