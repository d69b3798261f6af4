"""Everything a method or scorer plugin needs from bench, in one place. Import from here, not
from bench's internal modules, which may move; `docs/PLUGINS.md` is the guide. bench's own
methods (`bench/methods/`) import from here too, as a plugin does.

    from bench.plugin import MethodContext, Cell, render, stable_seed

What a method uses at run time is imported with this module; the conformance check and the scorer
protocol (`check_method`, `raise_on_failure`, `Scorer`) belong to higher layers and are loaded on
first use, so a method that imports this module pulls in nothing above the methods layer.
"""

from typing import TYPE_CHECKING

from bench.atomic import atomic_path, write_bytes
from bench.config import resolve_config
from bench.data.plan import Cell, stable_seed
from bench.data.subjects import Subject
from bench.data.suites import MAX_RESOLUTION, GenerationProtocol, Suite
from bench.diffusion.backbone import Backbone
from bench.diffusion.class_images import class_images
from bench.diffusion.generation import render
from bench.diffusion.packed_lora import (
    DropoutSeeds,
    PackedLoRA,
    adapted_layers,
    attach_packed_lora,
    detach_packed_lora,
    packed_adapter_state,
    peft_initial_adapters,
)
from bench.diffusion.training import (
    denoising_loss,
    encode_text,
    latent_distribution,
    load_images,
    loss_scaler,
    training_scheduler,
    word_embedding,
)
from bench.errors import BenchError
from bench.methods.limits import (
    MAX_BATCH,
    MAX_CLASS_IMAGES,
    MAX_RANK,
    MAX_STEPS,
    MAX_VECTORS,
    within,
)
from bench.methods.protocol import Capabilities, Method, MethodBase, MethodContext, capabilities
from bench.paths import cache_dir

if TYPE_CHECKING:
    from bench.scorers.protocol import Scorer
    from bench.tools.conformance import check_method, raise_on_failure

# name -> the module that defines it, imported when the name is first asked for
_LOADED_ON_FIRST_USE = {
    "Scorer": "bench.scorers.protocol",
    "check_method": "bench.tools.conformance",
    "raise_on_failure": "bench.tools.conformance",
}


def __getattr__(name: str):
    if name in _LOADED_ON_FIRST_USE:
        import importlib

        return getattr(importlib.import_module(_LOADED_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'bench.plugin' has no attribute {name!r}")


__all__ = [
    "peft_initial_adapters",
    "packed_adapter_state",
    "detach_packed_lora",
    "attach_packed_lora",
    "adapted_layers",
    "PackedLoRA",
    "DropoutSeeds",
    "MAX_BATCH",
    "MAX_CLASS_IMAGES",
    "MAX_RANK",
    "MAX_RESOLUTION",
    "MAX_STEPS",
    "MAX_VECTORS",
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
    "atomic_path",
    "cache_dir",
    "capabilities",
    "check_method",
    "class_images",
    "denoising_loss",
    "encode_text",
    "latent_distribution",
    "load_images",
    "loss_scaler",
    "raise_on_failure",
    "render",
    "resolve_config",
    "stable_seed",
    "training_scheduler",
    "within",
    "word_embedding",
    "write_bytes",
]
