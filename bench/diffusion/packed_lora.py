"""LoRA adapters for K subjects trained in one batch: packed fitting.

A packed batch is K equal, contiguous blocks; block k holds subject k's examples and goes through
adapter k in every adapted layer. The backbone is frozen and the adapters share nothing, so the
gradient of the summed per-subject losses with respect to adapter k is subject k's own gradient,
and an element-wise optimizer (Adam, AdamW) updates each adapter as a separate fit would: K packed
fits are K separate fits, up to the rounding of the frozen layers on a larger batch. A pack of one
computes exactly what peft's LoRA layer computes.

peft's LoRA layers mix adapters in one batch only for inference (peft refuses `adapter_names` in
training mode, diffusers' UNet does not pass them down, and its per-adapter path gathers and
scatters each sub-batch), so the layer is written here. The adapters start as peft's own
(`peft_initial_adapters`: peft adds each subject's adapter from its seed) and leave as peft's
state dict (`packed_adapter_state`), so a packed fit saves the files a separate fit saves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class DropoutSeeds:
    """Each subject's dropout seed for the current micro-batch, set by the training loop. A layer's
    mask for block k is drawn from seeds[k] + its index: a subject's masks do not depend on its
    partners, and gradient checkpointing's second forward draws the same masks."""

    seeds: list[int] = field(default_factory=list)


class PackedLoRA(torch.nn.Module):
    """A frozen linear or 2-d convolution layer plus K LoRA adapters, block k of the batch
    through adapter k: `base(x) + scaling * up_k(down_k(dropout(x)))`, as peft's layer."""

    def __init__(self, base, down, up, scaling: float, dropout: float, seeds, index: int) -> None:
        super().__init__()
        self.base = base
        self.down = torch.nn.Parameter(down)  # (K, rank, in) or (K, rank, in, kh, kw)
        self.up = torch.nn.Parameter(up)  # (K, out, rank) or (K, out, rank, 1, 1)
        self.scaling, self.dropout, self.seeds, self.index = scaling, dropout, seeds, index

    @property
    def pack(self) -> int:
        return self.down.shape[0]

    def forward(self, x, *args, **kwargs):
        result = self.base(x, *args, **kwargs)
        x = x.to(self.down.dtype)  # peft's cast: the adapter's dtype (autocast still applies)
        if self.training and self.dropout > 0:
            x = self._drop(x)
        lora = self._conv(x) if isinstance(self.base, torch.nn.Conv2d) else self._linear(x)
        return (result + lora * self.scaling).to(result.dtype)

    def _linear(self, x):
        if self.pack == 1:
            return F.linear(F.linear(x, self.down[0]), self.up[0])
        # (K * b, ..., in) -> (K, b * ..., in): one batched product per factor for all subjects.
        blocks = x.reshape(self.pack, -1, x.shape[-1])
        hidden = torch.bmm(blocks, self.down.transpose(1, 2))
        out = torch.bmm(hidden, self.up.transpose(1, 2))
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _conv(self, x):
        base = self.base
        if self.pack == 1:
            return F.conv2d(F.conv2d(x, self.down[0], None, base.stride, base.padding), self.up[0])
        # Subjects become channel groups: (K * b, C, H, W) -> (b, K * C, H, W), groups = K.
        k, b = self.pack, x.shape[0] // self.pack
        grouped = x.reshape(k, b, *x.shape[1:]).transpose(0, 1).reshape(b, -1, *x.shape[2:])
        down = self.down.reshape(-1, *self.down.shape[2:])
        hidden = F.conv2d(grouped, down, None, base.stride, base.padding, groups=k)
        out = F.conv2d(hidden, self.up.reshape(-1, *self.up.shape[2:]), groups=k)
        out = out.reshape(b, k, -1, *out.shape[2:]).transpose(0, 1)
        return out.reshape(k * b, *out.shape[2:])

    def _drop(self, x):
        keep = 1.0 - self.dropout
        blocks = x.reshape(self.pack, -1)
        masks = []
        for seed, block in zip(self.seeds.seeds, blocks, strict=True):
            generator = torch.Generator(x.device).manual_seed(seed + self.index)
            masks.append(torch.empty_like(block).bernoulli_(keep, generator=generator))
        return (blocks * torch.stack(masks) / keep).reshape(x.shape)


def adapted_layers(module, targets) -> list[str]:
    """The names of `module`'s linear and 2-d convolution layers that `targets` names, in module
    order: the whole name, or its end after a dot (peft's matching of a target list)."""
    return [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d))
        and any(name == t or name.endswith("." + t) for t in targets)
    ]


def peft_initial_adapters(parts, lora_config, seeds: list[int]):
    """Each subject's initial adapters, as peft makes them: for each seed, the global generator
    is seeded and peft adds the adapter to every part in turn (a separate fit's draws, in its
    order). `parts` is [(module, targets)]; returns, per part, ({layer name: (down, up)} stacked
    over the seeds, the adapter's config as peft records it)."""
    from peft import LoraConfig
    from peft.tuners.lora import LoraLayer

    starts = [dict() for _ in parts]
    configs = [None] * len(parts)
    for seed in seeds:
        torch.manual_seed(seed)
        for i, (module, targets) in enumerate(parts):
            module.add_adapter(LoraConfig(**lora_config, target_modules=list(targets)))
            for name, layer in module.named_modules():
                if not isinstance(layer, LoraLayer):
                    continue
                pair = (layer.lora_A["default"].weight, layer.lora_B["default"].weight)
                starts[i].setdefault(name, []).append(
                    tuple(w.detach().float().clone() for w in pair)
                )
            configs[i] = module.peft_config["default"].to_dict()
            remove_peft(module)
    stacked = [
        {
            name: tuple(torch.stack(ws) for ws in zip(*pairs, strict=True))
            for name, pairs in s.items()
        }
        for s in starts
    ]
    return list(zip(stacked, configs, strict=True))


def remove_peft(module) -> None:
    """Take peft's layers and config off a diffusers or transformers model."""
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    recurse_remove_peft_layers(module)
    if hasattr(module, "peft_config"):
        del module.peft_config
    module._hf_peft_config_loaded = False


def attach_packed_lora(module, start: dict, scaling: float, dropout: float, seeds: DropoutSeeds):
    """Put a PackedLoRA on each layer of `module` named in `start` ({name: (down, up)});
    returns the layers, to train and later `detach_packed_lora`."""
    layers = {}
    modules = dict(module.named_modules())
    for index, (name, (down, up)) in enumerate(start.items()):
        parent, _, child = name.rpartition(".")
        base = modules[name]
        packed = PackedLoRA(
            base,
            down.to(base.weight.device),
            up.to(base.weight.device),
            scaling,
            dropout,
            seeds,
            index * 7919,
        )
        setattr(modules[parent] if parent else module, child, packed)
        layers[name] = packed
    return layers


def detach_packed_lora(module, layers: dict) -> None:
    """Put the frozen layers back where `attach_packed_lora` found them."""
    modules = dict(module.named_modules())
    for name, packed in layers.items():
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else module, child, packed.base)


def packed_adapter_state(layers: dict, k: int) -> dict:
    """Subject k's adapter as peft's state dict (`get_peft_model_state_dict`'s keys)."""
    state = {}
    for name, packed in layers.items():
        state[f"{name}.lora_A.weight"] = packed.down[k].detach()
        state[f"{name}.lora_B.weight"] = packed.up[k].detach()
    return state
