"""Everything a method or scorer plugin needs from bench, in one place. Import from here, not
from bench's internal modules, which may move; `docs/PLUGINS.md` is the guide.

    from bench.plugin import MethodContext, Cell, render, stable_seed
"""

from bench.config import resolve_config
from bench.data.plan import Cell, stable_seed
from bench.data.subjects import Subject
from bench.data.suites import GenerationProtocol, Suite
from bench.diffusion.backbone import Backbone
from bench.diffusion.class_images import class_images
from bench.diffusion.generation import render
from bench.diffusion.training import (
    denoising_loss,
    encode_text,
    latent_distribution,
    load_images,
    training_scheduler,
)
from bench.errors import BenchError
from bench.methods.limits import within
from bench.methods.protocol import Capabilities, Method, MethodBase, MethodContext, capabilities
from bench.scorers.protocol import Scorer
from bench.tools.conformance import check_method, raise_on_failure

__all__ = [
    "Backbone",
    "BenchError",
    "Capabilities",
    "Cell",
    "GenerationProtocol",
    "Method",
    "MethodBase",
    "MethodContext",
    "Scorer",
    "Subject",
    "Suite",
    "capabilities",
    "check_method",
    "class_images",
    "denoising_loss",
    "encode_text",
    "latent_distribution",
    "load_images",
    "raise_on_failure",
    "render",
    "resolve_config",
    "stable_seed",
    "training_scheduler",
    "within",
]
