"""DreamBooth with LoRA: low-rank adapters on the UNet's attention projections (and, optionally,
the text encoder's), trained on the subject's photos captioned "a {token} {class}".

fit:      photos -> VAE latents -> noised latents -> denoising loss -> AdamW on the LoRA weights.
          With prior preservation, images of the class made by the frozen backbone ("a {class}")
          share each batch, and their loss (weighted by prior_loss_weight) keeps the class prior.
          With train_identifier (pivotal tuning), the identifier's input embedding learns too,
          from the class noun's, and is saved in Textual Inversion's format
          (identifier_embedding.safetensors, {token: (1, dim)}).
          The adapter is saved in diffusers' LoRA format (pytorch_lora_weights.safetensors,
          loadable with `StableDiffusionPipeline.load_lora_weights(workdir)`), and on request in
          the kohya/A1111 key format that common UIs load (lora_kohya.safetensors).
generate: load the adapter (and the identifier's embedding), render the suite's prompts from the
          given noise, unload on release.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.plugin import (
    MAX_BATCH,
    MAX_CLASS_IMAGES,
    MAX_RANK,
    MAX_RESOLUTION,
    MAX_STEPS,
    BenchError,
    Cell,
    MethodContext,
    cache_dir,
    class_images,
    denoising_loss,
    encode_text,
    latent_distribution,
    load_images,
    loss_scaler,
    stable_seed,
    training_scheduler,
    within,
    word_embedding,
    write_bytes,
)

ARTIFACT = "pytorch_lora_weights.safetensors"
KOHYA_ARTIFACT = "lora_kohya.safetensors"
IDENTIFIER_ARTIFACT = "identifier_embedding.safetensors"
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
TIMESTEP_SAMPLINGS = ("uniform", "stratified")


@dataclass(frozen=True)
class Config:
    rank: int = 4
    alpha: float | None = None  # LoRA scale is alpha / rank; None means alpha = rank
    dropout: float = 0.0
    lr: float = 1e-4
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    # "stratified": each batch takes one timestep from each of batch_size equal bands of the
    # noise schedule, in random order: the same expected loss as "uniform" (diffusers'), with
    # less variance between batches.
    timestep_sampling: str = "uniform"
    steps: int = 400
    batch_size: int = 1
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    resolution: int | None = None  # training resolution; None: the suite's
    seed: int = 0
    instance_prompt: str = "a {token} {class}"
    prior_preservation: bool = False
    prior_loss_weight: float = 1.0
    class_prompt: str = "a {class}"  # any text; {class} is replaced by the class noun
    num_class_images: int = 100
    # The UNet modules the LoRA adapts, as peft's target_modules: a module named so, or whose
    # name ends with "." and one of these. diffusers' DreamBooth LoRA adapts the attention
    # projections; adding ResNet convolutions ("conv1", "conv2", or one block's by its full
    # name) reaches the levels that have no attention, as LoCon does.
    unet_targets: tuple[str, ...] = UNET_TARGETS
    train_text_encoder: bool = False
    te_lr: float = 5e-5
    # Pivotal tuning: the identifier's row of the token table learns with the adapter, starting
    # from the class noun's, so that the text encoder reads "a red sks dog" as a kind of dog.
    train_identifier: bool = False
    identifier_lr: float = 5e-3
    checkpoint_every: int = 0  # also keep the adapter every N steps (0: final only)
    export_kohya: bool = False

    def __post_init__(self) -> None:
        within("rank", self.rank, 1, MAX_RANK)
        within("steps", self.steps, 1, MAX_STEPS)
        within("batch_size", self.batch_size, 1, MAX_BATCH)
        within("gradient_accumulation", self.gradient_accumulation, 1, MAX_BATCH)
        within("lr_warmup_steps", self.lr_warmup_steps, 0, MAX_STEPS)
        for name in ("lr", "te_lr", "identifier_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        if self.alpha is not None and not 0 < self.alpha < math.inf:
            raise ValueError(f"alpha must be finite and > 0 (or unset), got {self.alpha}")
        if not 0 <= self.prior_loss_weight < math.inf:
            raise ValueError(
                f"prior_loss_weight must be finite and >= 0, got {self.prior_loss_weight}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}")
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise ValueError(f"timestep_sampling must be one of {', '.join(TIMESTEP_SAMPLINGS)}")
        if not self.unet_targets or not all(
            isinstance(t, str) and t.strip() == t and t for t in self.unet_targets
        ):
            raise ValueError(
                f"unet_targets must be module names, e.g. {list(UNET_TARGETS)}, "
                f"got {list(self.unet_targets)}"
            )
        if "{token}" not in self.instance_prompt:
            raise ValueError("instance_prompt must contain {token}")
        within("num_class_images", self.num_class_images, 1, MAX_CLASS_IMAGES)
        within("checkpoint_every", self.checkpoint_every, 0, MAX_STEPS)
        if self.resolution is not None:
            within("resolution", self.resolution, 16, MAX_RESOLUTION)
            if self.resolution % 8:
                raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")


class DreamBoothLoRA:
    name = "dreambooth_lora"
    Config = Config
    supports_checkpoints = True  # checkpoint_every: an adapter every N steps

    def __init__(self) -> None:
        self._loaded = None  # workdir whose adapter is in the backbone now
        self._token_table = None  # the text encoder's own, while a learned identifier stands in

    def check(self, config: Config, backbone, subjects) -> None:
        """Options this backbone cannot take fail before the run writes anything: targets that
        name no layer of the UNet, an identifier the tokenizer splits (train_identifier)."""
        unmatched = _unmatched_targets(backbone.pipe.unet, config.unet_targets)
        if unmatched:
            raise BenchError(
                f"unet_targets: {', '.join(map(repr, unmatched))} names no linear or convolution "
                "layer of the UNet; use module names such as 'to_q' or 'conv1' "
                "(--set unet_targets=[...])"
            )
        if config.train_identifier:
            for subject in subjects:
                _identifier_id(backbone.pipe, subject)

    def fit(self, ctx: MethodContext) -> dict:
        import torch
        from diffusers.optimization import get_scheduler
        from peft import LoraConfig

        cfg, pipe, subject = ctx.config, ctx.backbone.pipe, ctx.subject
        device, unet, text_encoder = ctx.backbone.device, pipe.unet, pipe.text_encoder
        resolution = cfg.resolution or ctx.suite.resolution
        self.check(cfg, ctx.backbone, [subject])  # before any work, when fit is called alone
        identifier_id = _identifier_id(pipe, subject) if cfg.train_identifier else None
        generator = torch.Generator("cpu").manual_seed(
            stable_seed("fit", subject.id, ctx.replicate, cfg.seed)
        )
        torch.manual_seed(stable_seed("fit-init", subject.id, ctx.replicate, cfg.seed))

        # The frozen parts are computed once: the photos' latent posterior and the captions.
        instance = latent_distribution(pipe.vae, load_images(subject.images, resolution))
        instance_text = cfg.instance_prompt.replace("{token}", subject.token)
        instance_text = instance_text.replace("{class}", subject.class_noun)
        prior, class_text = None, cfg.class_prompt.replace("{class}", subject.class_noun)
        if cfg.prior_preservation:
            paths = class_images(
                ctx.backbone,
                ctx.suite.generation,
                class_text,
                resolution,
                cfg.num_class_images,
                cfg.seed,
                ctx.cache or cache_dir(),
            )
            prior = latent_distribution(pipe.vae, load_images(paths, resolution))
        noise_scheduler = training_scheduler(pipe)
        num_timesteps = noise_scheduler.config.num_train_timesteps

        alpha = cfg.alpha if cfg.alpha is not None else cfg.rank
        adapted = [(unet, list(cfg.unet_targets), cfg.lr)]
        if cfg.train_text_encoder:
            adapted.append((text_encoder, TEXT_ENCODER_TARGETS, cfg.te_lr))
        groups = []
        for module, targets, lr in adapted:  # one LoRA recipe; each part has its own lr
            module.add_adapter(
                LoraConfig(
                    r=cfg.rank,
                    lora_alpha=alpha,
                    lora_dropout=cfg.dropout,
                    init_lora_weights="gaussian",
                    target_modules=targets,
                )
            )
            groups.append({"params": [p for p in module.parameters() if p.requires_grad], "lr": lr})
        token_table = text_encoder.get_input_embeddings()
        identifier_row = None  # the table with the identifier's row learned; in place in `try`
        if cfg.train_identifier:
            start = word_embedding(pipe, subject.class_noun)
            identifier_row = _with_identifier(
                token_table, identifier_id, subject.token, start, trainable=True
            )
            # No weight decay: it would pull the vector towards zero, off the table's words.
            groups.append(
                {"params": [identifier_row.vector], "lr": cfg.identifier_lr, "weight_decay": 0.0}
            )
        for group in groups:  # adapters train in fp32 even on a half-precision backbone
            for p in group["params"]:
                p.data = p.data.float()
        optimizer = torch.optim.AdamW(groups)
        lr_schedule = get_scheduler(
            cfg.lr_scheduler,
            optimizer,
            num_warmup_steps=cfg.lr_warmup_steps,
            num_training_steps=max(cfg.steps, 1),
        )
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        autocast = torch.autocast(
            device.type, dtype=ctx.backbone.dtype, enabled=ctx.backbone.dtype != torch.float32
        )
        scaler = loss_scaler(device, ctx.backbone.dtype)

        def draw(distribution, n):
            mean, std = distribution
            index = torch.randint(len(mean), (n,), generator=generator)
            eps = torch.randn(mean[index].shape, generator=generator).to(device)
            return mean[index] + std[index] * eps

        def stratified_timesteps(n):  # one from each of n equal bands of [0, T), shuffled
            band = torch.randperm(n, generator=generator) + torch.rand(n, generator=generator)
            return (band * num_timesteps / n).long().clamp(max=num_timesteps - 1)

        losses, prior_losses, learning_rates = [], [], []
        n = cfg.batch_size
        unet.train()
        text_encoder.train(cfg.train_text_encoder)
        texts = [instance_text] * n + ([class_text] * n if prior is not None else [])
        frozen_captions = None
        if not (cfg.train_text_encoder or cfg.train_identifier):  # the same captions each step
            with autocast, torch.no_grad():
                frozen_captions = encode_text(pipe, texts)
        try:
            if identifier_row is not None:
                text_encoder.set_input_embeddings(identifier_row)
            for step in range(1, cfg.steps + 1):
                for _ in range(cfg.gradient_accumulation):
                    latents = draw(instance, n)
                    if prior is not None:  # instance and class examples in one batch
                        latents = torch.cat([latents, draw(prior, n)])
                    noise = torch.randn(latents.shape, generator=generator).to(device)
                    if cfg.timestep_sampling == "stratified":  # instance and class halves each
                        halves = len(latents) // n
                        timesteps = torch.cat([stratified_timesteps(n) for _ in range(halves)])
                    else:
                        timesteps = torch.randint(
                            num_timesteps, (len(latents),), generator=generator
                        )
                    timesteps = timesteps.to(device)
                    with autocast, torch.set_grad_enabled(True):
                        if frozen_captions is not None:
                            embeddings = frozen_captions
                        else:
                            embeddings = encode_text(pipe, texts)
                        per_example = denoising_loss(
                            unet,
                            noise_scheduler,
                            latents,
                            embeddings,
                            noise,
                            timesteps,
                            reduction="none",
                        )
                    per_example = per_example.mean(dim=(1, 2, 3))
                    loss = per_example[:n].mean()
                    if prior is not None:
                        prior_loss = per_example[n:].mean()
                        loss = loss + cfg.prior_loss_weight * prior_loss
                    scaler.scale(loss / cfg.gradient_accumulation).backward()
                learning_rates.append(optimizer.param_groups[0]["lr"])  # the UNet's, this step
                scaler.step(optimizer)
                scaler.update()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                if prior is not None:
                    prior_losses.append(prior_loss.item())
                ctx.progress(1, {"loss": losses[-1]})
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    _save_adapters(pipe, cfg, ctx.checkpoint(step), identifier_row)
            if not all(math.isfinite(v) for v in losses):
                raise BenchError(
                    f"{subject.id}: training diverged (non-finite loss at lr={cfg.lr}); "
                    "lower lr with --set lr=..."
                )
            _save_adapters(pipe, cfg, ctx.workdir, identifier_row)
        finally:
            text_encoder.set_input_embeddings(token_table)
            _remove_adapters(pipe, cfg)
        log = {
            "losses": losses,
            "learning_rates": learning_rates,
            "artifact": ARTIFACT,
            "steps": cfg.steps,
        }
        if prior is not None:
            log.update(
                prior_losses=prior_losses, class_prompt=class_text, class_images=len(prior[0])
            )
        return log

    def generate(self, ctx: MethodContext, cells: list[Cell], latents):
        pipe = ctx.backbone.pipe
        if self._loaded != ctx.workdir:
            self.release(ctx)
            pipe.load_lora_weights(ctx.workdir, weight_name=ARTIFACT, adapter_name="subject")
            self._loaded = ctx.workdir
            if ctx.config.train_identifier:
                try:
                    vector = _identifier_vector(
                        ctx.workdir / IDENTIFIER_ARTIFACT, ctx.subject.token
                    )
                except BenchError:
                    self.release(ctx)  # not the adapter without its identifier
                    raise
                self._token_table = pipe.text_encoder.get_input_embeddings()
                identifier_id = _identifier_id(pipe, ctx.subject)
                pipe.text_encoder.set_input_embeddings(
                    _with_identifier(
                        self._token_table, identifier_id, ctx.subject.token, vector, trainable=False
                    )
                )
        return ctx.render([self.prompt(ctx, cell) for cell in cells], latents, cells)

    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        """The suite's prompt with the subject's identifier: "a sks dog on the beach"."""
        return cell.text

    def release(self, ctx: MethodContext) -> None:
        if self._token_table is not None:
            ctx.backbone.pipe.text_encoder.set_input_embeddings(self._token_table)
            self._token_table = None
        if self._loaded is not None:
            ctx.backbone.pipe.unload_lora_weights()
            self._loaded = None


def _identifier_id(pipe, subject) -> int:
    """The identifier's one row of the token table: a word the tokenizer splits has no one row."""
    ids = pipe.tokenizer(subject.token, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise BenchError(
            f"{subject.id}: train_identifier learns one row of the token table, and the identifier "
            f"{subject.token!r} is {len(ids)} tokens to this tokenizer; give the subject a "
            'one-token identifier (token = "sks" in its subject.toml)'
        )
    return ids[0]


def _identifier_vector(path: Path, token: str):
    """The learned row of a train_identifier fit, (dim,)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)[token][0]
    except (OSError, KeyError, SafetensorError) as error:
        raise BenchError(
            f"{path}: the identifier's learned row ({token!r}) is missing or unreadable "
            f"({error}); remove the unit's fit.json to fit it again"
        ) from None


def _with_identifier(token_table, identifier_id: int, token: str, vector, trainable: bool):
    """The text encoder's token table with the identifier's row read from `vector`;
    the table itself is never written, so the backbone stays as it was. To train, the vector is
    an fp32 parameter; to generate, a frozen one in the table's dtype."""
    import torch

    class WithIdentifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table, self.token = token_table, token
            dtype = torch.float32 if trainable else token_table.weight.dtype
            # In a child registered after the table: the text encoder's dtype is read off its
            # first parameter, which must stay the table's.
            self.learned = torch.nn.ParameterDict(
                {
                    "vector": torch.nn.Parameter(
                        vector.detach().to(token_table.weight.device, dtype).clone(),
                        requires_grad=trainable,
                    )
                }
            )

        @property
        def vector(self):
            return self.learned["vector"]

        @property
        def weight(self):  # it stands for the table
            return self.table.weight

        def forward(self, ids):
            rows = self.table(ids)
            is_identifier = (ids == identifier_id).unsqueeze(-1)
            return torch.where(is_identifier, self.vector.to(rows.dtype), rows)

    return WithIdentifier()


def _save_adapters(pipe, cfg: Config, folder: Path, identifier_row=None) -> None:
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    unet_lora = _diffusers_keys(get_peft_model_state_dict(pipe.unet))
    text_lora = text_metadata = None
    if cfg.train_text_encoder:
        text_lora = _diffusers_keys(get_peft_model_state_dict(pipe.text_encoder))
        text_metadata = _lora_metadata(pipe.text_encoder)
    folder.mkdir(parents=True, exist_ok=True)
    # The LoRA config goes into the file's metadata: without it a loader infers alpha = rank,
    # and an adapter trained with another alpha would be applied at the wrong scale.
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=unet_lora,
        text_encoder_lora_layers=text_lora,
        unet_lora_adapter_metadata=_lora_metadata(pipe.unet),
        text_encoder_lora_adapter_metadata=text_metadata,
        safe_serialization=True,
    )
    _sort_safetensors_header(folder / ARTIFACT)
    if identifier_row is not None:  # Textual Inversion's format: {token: (1, dim)}
        vector = identifier_row.vector.detach().cpu().float().contiguous()
        save_file({identifier_row.token: vector[None]}, str(folder / IDENTIFIER_ARTIFACT))
    if cfg.export_kohya:
        alpha = float(cfg.alpha if cfg.alpha is not None else cfg.rank)
        save_file(
            kohya_state_dict(
                get_peft_model_state_dict(pipe.unet),
                get_peft_model_state_dict(pipe.text_encoder) if cfg.train_text_encoder else {},
                alpha,
            ),
            str(folder / KOHYA_ARTIFACT),
            metadata={"ss_network_dim": str(cfg.rank), "ss_network_alpha": str(alpha)},
        )
        _sort_safetensors_header(folder / KOHYA_ARTIFACT)


def _lora_metadata(module) -> dict:
    """The module's peft LoRA config as diffusers stores it, its target set as a sorted list."""
    config = module.peft_config["default"].to_dict()
    config["target_modules"] = sorted(config["target_modules"])
    return config


def _sort_safetensors_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys sorted. safetensors writes metadata in hash
    order, which changes from call to call: sorted, the same adapter gives the same bytes."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + length]), sort_keys=True, separators=(",", ":"))
    header += " " * (-len(header) % 8)  # the format pads the header to 8-byte alignment
    data = raw[8 + length :]  # tensor offsets count from here, so they stay valid
    write_bytes(path, len(header).to_bytes(8, "little") + header.encode() + data)


def kohya_state_dict(unet_lora: dict, text_lora: dict, alpha: float) -> dict:
    """peft LoRA weights renamed to the kohya/A1111 keys: `lora_unet_<module path with _>`
    and `lora_te_text_model_<...>`, with `.lora_down`/`.lora_up` and one `.alpha` per module.

    Not diffusers' `convert_state_dict_to_kohya`: it writes alpha = rank whatever the adapter was
    trained with, and SDXL's text-encoder names (`lora_te1_encoder_...`), not SD-1.x's."""
    import torch

    out = {}
    for prefix, state in (("lora_unet_", unet_lora), ("lora_te_text_model_", text_lora)):
        for key, tensor in state.items():
            module, _, kind = key.rpartition(".lora_")  # "...to_q", "A.weight"
            module = module.removeprefix("text_model.")
            name = prefix + module.replace(".", "_")
            out[f"{name}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = (
                tensor.detach().float().contiguous()
            )
            out[f"{name}.alpha"] = torch.tensor(alpha)
    return out


def _diffusers_keys(peft_state: dict) -> dict:
    """diffusers' key format, `.lora.down`/`.lora.up`, for every adapted module: its converter
    renames the linear layers' keys only, and a file mixing both formats loads with the
    convolutions' adapters alone."""
    from diffusers.utils import convert_state_dict_to_diffusers

    return {
        key.replace(".lora_A.", ".lora.down.").replace(".lora_B.", ".lora.up."): tensor
        for key, tensor in convert_state_dict_to_diffusers(peft_state).items()
    }


def _unmatched_targets(module, targets) -> list[str]:
    """The targets that name no linear or convolution layer of `module` (peft's matching: the
    whole name, or its end after a dot)."""
    import torch

    names = [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d))
    ]
    return [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]


def _remove_adapters(pipe, cfg: Config) -> None:
    """Leave the backbone as it was found: no LoRA layers, eval mode, no checkpointing."""
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    pipe.unet.unload_lora()
    pipe.unet.eval()
    if cfg.gradient_checkpointing:
        pipe.unet.disable_gradient_checkpointing()
    if cfg.train_text_encoder:
        recurse_remove_peft_layers(pipe.text_encoder)
        pipe.text_encoder._hf_peft_config_loaded = False
        if hasattr(pipe.text_encoder, "peft_config"):
            del pipe.text_encoder.peft_config
    pipe.text_encoder.eval()
