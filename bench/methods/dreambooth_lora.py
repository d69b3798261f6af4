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
    DropoutSeeds,
    MethodContext,
    adapted_layers,
    attach_packed_lora,
    cache_dir,
    class_images,
    denoising_loss,
    detach_packed_lora,
    encode_text,
    latent_distribution,
    load_images,
    loss_scaler,
    packed_adapter_state,
    peft_initial_adapters,
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
        """One subject's fit: a pack of one."""
        return self.fit_pack([ctx])[0]

    def fit_pack(self, ctxs: list[MethodContext]) -> list[dict]:
        """Fit one adapter per context in one loop (packed fitting, `bench.plugin.PackedLoRA`):
        each step's batch holds every subject's examples, drawn from the subject's own
        generators, and each example goes through its own subject's adapter. The contexts share
        the backbone, suite and config. Returns each subject's log."""
        import torch
        from diffusers.optimization import get_scheduler

        first = ctxs[0]
        cfg, backbone, suite = first.config, first.backbone, first.suite
        pipe, device = backbone.pipe, backbone.device
        unet, text_encoder = pipe.unet, pipe.text_encoder
        subjects = [ctx.subject for ctx in ctxs]
        pack, n = len(ctxs), cfg.batch_size
        resolution = cfg.resolution or suite.resolution
        self.check(cfg, backbone, subjects)  # before any work, when fit is called alone
        # A subject's draws come from its own generator, seeded as a separate fit's: they do
        # not depend on who it is packed with.
        generators = [
            torch.Generator("cpu").manual_seed(
                stable_seed("fit", ctx.subject.id, ctx.replicate, cfg.seed)
            )
            for ctx in ctxs
        ]

        # The frozen parts are computed once: the photos' latent posterior and the captions.
        instance = [
            latent_distribution(pipe.vae, load_images(s.images, resolution)) for s in subjects
        ]
        instance_texts = [
            cfg.instance_prompt.replace("{token}", s.token).replace("{class}", s.class_noun)
            for s in subjects
        ]
        class_texts = [cfg.class_prompt.replace("{class}", s.class_noun) for s in subjects]
        prior = [None] * pack
        if cfg.prior_preservation:
            prior = [
                latent_distribution(
                    pipe.vae,
                    load_images(
                        class_images(
                            backbone,
                            suite.generation,
                            text,
                            resolution,
                            cfg.num_class_images,
                            cfg.seed,
                            ctx.cache or cache_dir(),
                        ),
                        resolution,
                    ),
                )
                for ctx, text in zip(ctxs, class_texts, strict=True)
            ]
        noise_scheduler = training_scheduler(pipe)
        num_timesteps = noise_scheduler.config.num_train_timesteps

        # Each subject's adapter starts as peft makes it from the subject's "fit-init" seed.
        alpha = cfg.alpha if cfg.alpha is not None else cfg.rank
        parts = [(unet, cfg.unet_targets, cfg.lr)]
        if cfg.train_text_encoder:
            parts.append((text_encoder, TEXT_ENCODER_TARGETS, cfg.te_lr))
        starts = peft_initial_adapters(
            [(module, targets) for module, targets, _ in parts],
            {
                "r": cfg.rank,
                "lora_alpha": alpha,
                "lora_dropout": cfg.dropout,
                "init_lora_weights": "gaussian",
            },
            [stable_seed("fit-init", c.subject.id, c.replicate, cfg.seed) for c in ctxs],
        )
        dropout_seeds = DropoutSeeds()
        adapters, adapter_configs, groups = [], [], []  # per part: its layers, config, lr
        token_table = text_encoder.get_input_embeddings()
        identifier_rows = None  # the table with each subject's identifier row learned
        try:
            for (module, _, lr), (start, config) in zip(parts, starts, strict=True):
                layers = attach_packed_lora(
                    module, start, alpha / cfg.rank, cfg.dropout, dropout_seeds
                )
                adapters.append(layers)
                adapter_configs.append(config)
                # Adapters train in fp32 even on a half-precision backbone (they start so).
                groups.append(
                    {
                        "params": [p for layer in layers.values() for p in (layer.down, layer.up)],
                        "lr": lr,
                    }
                )
            if cfg.train_identifier:
                identifier_rows = _with_identifiers(
                    token_table,
                    [_identifier_id(pipe, s) for s in subjects],
                    [s.token for s in subjects],
                    torch.stack([word_embedding(pipe, s.class_noun) for s in subjects]),
                    trainable=True,
                )
                # No weight decay: it would pull the vector towards zero, off the table's words.
                groups.append(
                    {
                        "params": [identifier_rows.vectors],
                        "lr": cfg.identifier_lr,
                        "weight_decay": 0.0,
                    }
                )
            # AdamW is element-wise: each subject's slice of a packed tensor moves as it would
            # in a separate fit.
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
                device.type, dtype=backbone.dtype, enabled=backbone.dtype != torch.float32
            )
            scaler = loss_scaler(device, backbone.dtype)

            def draw(distribution, count, generator):
                mean, std = distribution
                index = torch.randint(len(mean), (count,), generator=generator)
                eps = torch.randn(mean[index].shape, generator=generator).to(device)
                return mean[index] + std[index] * eps

            def stratified_timesteps(count, generator):  # one from each of `count` equal bands
                band = torch.randperm(count, generator=generator)
                band = band + torch.rand(count, generator=generator)
                return (band * num_timesteps / count).long().clamp(max=num_timesteps - 1)

            # The batch is one block per subject: its n instance examples, then its n class
            # examples under prior preservation. Captions follow the same layout.
            texts = []
            for k in range(pack):
                texts += [instance_texts[k]] * n
                texts += [class_texts[k]] * n if cfg.prior_preservation else []
            block = len(texts) // pack
            logs = [{"losses": [], "learning_rates": []} for _ in ctxs]
            if cfg.prior_preservation:
                for log in logs:
                    log["prior_losses"] = []
            unet.train()
            text_encoder.train(cfg.train_text_encoder)
            frozen_captions = None
            if not (cfg.train_text_encoder or cfg.train_identifier):  # the same each step
                with autocast, torch.no_grad():
                    frozen_captions = encode_text(pipe, texts)
            if identifier_rows is not None:
                text_encoder.set_input_embeddings(identifier_rows)
            for step in range(1, cfg.steps + 1):
                for micro in range(cfg.gradient_accumulation):
                    latents, noise, timesteps = [], [], []
                    for k in range(pack):  # subject k's draws, in a separate fit's order
                        generator = generators[k]
                        x = draw(instance[k], n, generator)
                        if prior[k] is not None:  # instance and class examples in one block
                            x = torch.cat([x, draw(prior[k], n, generator)])
                        latents.append(x)
                        noise.append(torch.randn(x.shape, generator=generator).to(device))
                        if cfg.timestep_sampling == "stratified":  # per half of the block
                            halves = block // n
                            t = torch.cat(
                                [stratified_timesteps(n, generator) for _ in range(halves)]
                            )
                        else:
                            t = torch.randint(num_timesteps, (block,), generator=generator)
                        timesteps.append(t)
                    dropout_seeds.seeds = [
                        stable_seed("fit-dropout", c.subject.id, c.replicate, cfg.seed, step, micro)
                        for c in ctxs
                    ]
                    with autocast, torch.set_grad_enabled(True):
                        if frozen_captions is not None:
                            embeddings = frozen_captions
                        else:
                            embeddings = encode_text(pipe, texts)
                        per_example = denoising_loss(
                            unet,
                            noise_scheduler,
                            torch.cat(latents),
                            embeddings,
                            torch.cat(noise),
                            torch.cat(timesteps).to(device),
                            reduction="none",
                        )
                    per_example = per_example.mean(dim=(1, 2, 3)).view(pack, block)
                    # Each subject's loss is its own block's, as in a separate fit; the gradient
                    # of their sum with respect to adapter k is subject k's own.
                    loss = per_example[:, :n].mean(1)
                    if cfg.prior_preservation:
                        prior_loss = per_example[:, n:].mean(1)
                        loss = loss + cfg.prior_loss_weight * prior_loss
                    scaler.scale(loss.sum() / cfg.gradient_accumulation).backward()
                learning_rate = optimizer.param_groups[0]["lr"]  # the UNet's, this step
                scaler.step(optimizer)
                scaler.update()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step_losses = loss.tolist()
                step_prior = prior_loss.tolist() if cfg.prior_preservation else None
                for k, (ctx, log) in enumerate(zip(ctxs, logs, strict=True)):
                    log["losses"].append(step_losses[k])
                    log["learning_rates"].append(learning_rate)
                    if step_prior is not None:
                        log["prior_losses"].append(step_prior[k])
                    ctx.progress(1, {"loss": step_losses[k]})
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    for k, ctx in enumerate(ctxs):
                        _save_adapters(
                            ctx.checkpoint(step), cfg, adapters, adapter_configs, k, identifier_rows
                        )
            diverged = [
                s.id
                for s, log in zip(subjects, logs, strict=True)
                if not all(math.isfinite(v) for v in log["losses"])
            ]
            if diverged:
                raise BenchError(
                    f"{', '.join(diverged)}: training diverged (non-finite loss at lr={cfg.lr}); "
                    "lower lr with --set lr=..."
                )
            for k, ctx in enumerate(ctxs):
                _save_adapters(ctx.workdir, cfg, adapters, adapter_configs, k, identifier_rows)
        finally:  # leave the backbone as it was found
            text_encoder.set_input_embeddings(token_table)
            for (module, _, _), layers in zip(parts, adapters, strict=False):
                detach_packed_lora(module, layers)
            unet.eval()
            text_encoder.eval()
            if cfg.gradient_checkpointing:
                unet.disable_gradient_checkpointing()
        for log, class_text, prior_k in zip(logs, class_texts, prior, strict=True):
            log.update(artifact=ARTIFACT, steps=cfg.steps)
            if prior_k is not None:
                log.update(class_prompt=class_text, class_images=len(prior_k[0]))
        return logs

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
                    _with_identifiers(
                        self._token_table,
                        [identifier_id],
                        [ctx.subject.token],
                        vector[None],
                        trainable=False,
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


def _with_identifiers(token_table, identifier_ids, tokens, vectors, trainable: bool):
    """The text encoder's token table with subject k's identifier row read from vectors[k] in
    block k of the batch (one block per packed subject); the table itself is never written, so
    the backbone stays as it was. To train, the vectors are an fp32 parameter; to generate, a
    frozen one in the table's dtype."""
    import torch

    class WithIdentifiers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table, self.tokens = token_table, tokens
            self.register_buffer("ids", torch.tensor(identifier_ids), persistent=False)
            dtype = torch.float32 if trainable else token_table.weight.dtype
            # In a child registered after the table: the text encoder's dtype is read off its
            # first parameter, which must stay the table's.
            self.learned = torch.nn.ParameterDict(
                {
                    "vectors": torch.nn.Parameter(
                        vectors.detach().to(token_table.weight.device, dtype).clone(),
                        requires_grad=trainable,
                    )
                }
            )

        @property
        def vectors(self):
            return self.learned["vectors"]

        @property
        def weight(self):  # it stands for the table
            return self.table.weight

        def forward(self, ids):
            rows = self.table(ids)
            subject = torch.arange(len(ids), device=ids.device) // (len(ids) // len(self.tokens))
            is_identifier = (ids == self.ids.to(ids.device)[subject, None]).unsqueeze(-1)
            return torch.where(is_identifier, self.vectors[subject, None].to(rows.dtype), rows)

    return WithIdentifiers()


def _save_adapters(folder: Path, cfg: Config, adapters, configs, k: int, identifiers) -> None:
    """Subject k's adapter (and identifier row) as a separate fit saves it: diffusers' LoRA
    format with peft's config in the metadata."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    unet_state = packed_adapter_state(adapters[0], k)
    text_state = packed_adapter_state(adapters[1], k) if cfg.train_text_encoder else {}
    folder.mkdir(parents=True, exist_ok=True)
    # The LoRA config goes into the file's metadata: without it a loader infers alpha = rank,
    # and an adapter trained with another alpha would be applied at the wrong scale.
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=_diffusers_keys(unet_state),
        text_encoder_lora_layers=_diffusers_keys(text_state) if text_state else None,
        unet_lora_adapter_metadata=_lora_metadata(configs[0]),
        text_encoder_lora_adapter_metadata=_lora_metadata(configs[1]) if text_state else None,
        safe_serialization=True,
    )
    _sort_safetensors_header(folder / ARTIFACT)
    if identifiers is not None:  # Textual Inversion's format: {token: (1, dim)}
        vector = identifiers.vectors[k].detach().cpu().float().contiguous()
        save_file({identifiers.tokens[k]: vector[None]}, str(folder / IDENTIFIER_ARTIFACT))
    if cfg.export_kohya:
        alpha = float(cfg.alpha if cfg.alpha is not None else cfg.rank)
        save_file(
            kohya_state_dict(unet_state, text_state, alpha),
            str(folder / KOHYA_ARTIFACT),
            metadata={"ss_network_dim": str(cfg.rank), "ss_network_alpha": str(alpha)},
        )
        _sort_safetensors_header(folder / KOHYA_ARTIFACT)


def _lora_metadata(config: dict) -> dict:
    """peft's LoRA config as diffusers stores it, its target set as a sorted list."""
    return {**config, "target_modules": sorted(config["target_modules"])}


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
    """The targets that name no linear or convolution layer of `module`."""
    return [t for t in targets if not adapted_layers(module, [t])]
