"""Textual Inversion: a new token whose input embedding (one or a few vectors) is optimised so that
the frozen model draws the subject for it; nothing else in the model changes.

fit:      photos -> VAE latents -> denoising loss under prompts like "a photo of a <sks>" -> Adam
          on the resized token embedding, every old row put back after each step, so only the
          new rows learn; the vectors are saved in diffusers' format
          (learned_embeds.safetensors, {token: (num_vectors, dim)}), loadable with
          `StableDiffusionPipeline.load_textual_inversion(path)`.
generate: load the embedding, render the suite's prompts with the learned token in place of the
          identifier, unload on release.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from bench.plugin import (
    MAX_BATCH,
    MAX_STEPS,
    MAX_VECTORS,
    BenchError,
    Cell,
    MethodContext,
    denoising_loss,
    latent_distribution,
    load_images,
    loss_scaler,
    stable_seed,
    training_scheduler,
    within,
    word_embedding,
)

ARTIFACT = "learned_embeds.safetensors"
# The initial embedding when init_from_class is off: a neutral word.
FALLBACK_INIT = "object"
# Captions in the style of the Textual Inversion paper's object templates; {} is the new token.
TEMPLATES = [
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a dark photo of the {}",
    "a good photo of a {}",
    "a photo of one {}",
    "a photo of the small {}",
    "a rendition of the {}",
    "a photo of my {}",
]


@dataclass(frozen=True)
class Config:
    num_vectors: int = 1
    lr: float = 5e-3
    steps: int = 3000
    batch_size: int = 1
    seed: int = 0
    token: str = "<sks>"  # the placeholder; extra vectors are named <sks>_1, <sks>_2, ...
    init_from_class: bool = True  # start from the class noun's embedding (mean over its tokens)

    def __post_init__(self) -> None:
        within("num_vectors", self.num_vectors, 1, MAX_VECTORS)
        within("steps", self.steps, 1, MAX_STEPS)
        within("batch_size", self.batch_size, 1, MAX_BATCH)
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be finite and > 0, got {self.lr}")
        # CLIP's tokenizer lower-cases prompts before matching added tokens, so an upper-case
        # token would never be found in a prompt.
        if not self.token or self.token.split() != [self.token] or self.token != self.token.lower():
            raise ValueError(f"token must be one lower-case word, e.g. '<sks>', got {self.token!r}")
        if "{" in self.token or "}" in self.token:
            raise ValueError(f"token must not contain braces, got {self.token!r}")


def token_names(cfg: Config) -> list[str]:
    """The tokens added for `cfg`, in diffusers' multi-vector naming: <sks>, <sks>_1, ..."""
    return [cfg.token] + [f"{cfg.token}_{i}" for i in range(1, cfg.num_vectors)]


class TextualInversion:
    name = "textual_inversion"
    Config = Config

    def __init__(self) -> None:
        self._loaded = None  # workdir whose embedding is in the backbone now
        self._original = None  # (embedding module, its weight, vocab size) before loading

    def fit(self, ctx: MethodContext) -> dict:
        """One subject's fit: a pack of one."""
        return self.fit_pack([ctx])[0]

    def fit_pack(self, ctxs: list[MethodContext]) -> list[dict]:
        """Learn each context's token vectors in one loop (packed fitting): each step's batch
        holds every subject's examples, drawn from the subject's own generator, and subject k's
        captions read subject k's rows of the token table. The contexts share the backbone,
        suite and config. Returns each subject's log."""
        import torch
        from safetensors.torch import save_file

        first = ctxs[0]
        cfg, backbone = first.config, first.backbone
        pipe, device, text_encoder = backbone.pipe, backbone.device, backbone.pipe.text_encoder
        subjects = [ctx.subject for ctx in ctxs]
        pack, n = len(ctxs), cfg.batch_size
        # A subject's draws come from its own generator, seeded as a separate fit's: they do
        # not depend on who it is packed with.
        generators = [
            torch.Generator("cpu").manual_seed(
                stable_seed("fit", ctx.subject.id, ctx.replicate, cfg.seed)
            )
            for ctx in ctxs
        ]

        # The new tokens go into a copy of the tokenizer: the backbone's own is never touched.
        names = token_names(cfg)
        tokenizer = copy.deepcopy(pipe.tokenizer)
        if tokenizer.add_tokens(names) != len(names):
            raise ValueError(f"token {cfg.token!r} is already in the tokenizer's vocabulary")
        original = text_encoder.get_input_embeddings()
        n_old = original.weight.shape[0]
        ids = tokenizer.convert_tokens_to_ids(names)
        if ids != list(range(n_old, n_old + len(names))):
            raise ValueError("the tokenizer and the text encoder's embedding disagree in size")

        # Initial vectors: the mean embedding of the class noun's tokens, once per vector.
        init_texts = [s.class_noun if cfg.init_from_class else FALLBACK_INIT for s in subjects]
        inits = [word_embedding(pipe, text) for text in init_texts]

        # The frozen parts are computed once: the photos' latent posterior and the captions.
        pixels = [load_images(s.images, first.suite.resolution) for s in subjects]
        posteriors = [latent_distribution(pipe.vae, p) for p in pixels]
        placeholder = " ".join(names)  # multi-vector: "<sks> <sks>_1 ..."
        caption_ids = tokenizer(
            [t.format(placeholder) for t in TEMPLATES],
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        # Subject k's tokens are rows n_old + k * len(names) onwards: its captions read them.
        is_new = caption_ids >= n_old
        subject_captions = [caption_ids + is_new * k * len(names) for k in range(pack)]
        noise_scheduler = training_scheduler(pipe)

        # The resized token embedding, in fp32 even on a half-precision backbone: the original
        # rows, then each subject's new ones. It replaces the text encoder's own only while
        # training.
        extended = torch.nn.Embedding(
            n_old + pack * len(names), inits[0].shape[0], device=device, dtype=torch.float32
        )
        with torch.no_grad():
            extended.weight[:n_old] = original.weight.float()
            for k, init in enumerate(inits):
                start = n_old + k * len(names)
                extended.weight[start : start + len(names)] = init
        frozen_rows = extended.weight[:n_old].detach().clone()
        # Adam is element-wise: each subject's rows move as they would in a separate fit.
        optimizer = torch.optim.Adam([extended.weight], lr=cfg.lr)
        autocast = torch.autocast(
            device.type, dtype=backbone.dtype, enabled=backbone.dtype != torch.float32
        )
        scaler = loss_scaler(device, backbone.dtype)
        losses = [[] for _ in ctxs]
        # Its rows enter the frozen encoder in the encoder's own dtype (on a CPU, a layer norm
        # with bf16 weights refuses fp32 input); gradients flow back to the fp32 rows.
        text_encoder.set_input_embeddings(_in_dtype(extended, original.weight.dtype))
        try:
            for _step in range(cfg.steps):
                latents, noise, timesteps, captions = [], [], [], []
                for k in range(pack):  # subject k's draws, in a separate fit's order
                    generator, (latent_mean, latent_std) = generators[k], posteriors[k]
                    index = torch.randint(len(pixels[k]), (n,), generator=generator)
                    eps = torch.randn(latent_mean[index].shape, generator=generator)
                    x = latent_mean[index] + latent_std[index] * eps.to(device)
                    latents.append(x)
                    noise.append(torch.randn(x.shape, generator=generator).to(device))
                    timesteps.append(
                        torch.randint(
                            noise_scheduler.config.num_train_timesteps, (n,), generator=generator
                        ).to(device)
                    )
                    chosen = torch.randint(len(TEMPLATES), (n,), generator=generator)
                    captions.append(subject_captions[k][chosen])
                with autocast:
                    text = text_encoder(torch.cat(captions).to(device))[0]
                    per_example = denoising_loss(
                        pipe.unet,
                        noise_scheduler,
                        torch.cat(latents),
                        text,
                        torch.cat(noise),
                        torch.cat(timesteps),
                        reduction="none",
                    )
                # Each subject's loss is its own block's mean; the gradient of their sum with
                # respect to subject k's rows is subject k's own.
                loss = per_example.view(pack, -1).mean(1)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss.sum()).backward()
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():  # only the new rows learn: put every other row back
                    extended.weight[:n_old] = frozen_rows
                step_losses = loss.tolist()
                for k, ctx in enumerate(ctxs):
                    losses[k].append(step_losses[k])
                    ctx.progress(1, {"loss": step_losses[k]})
            diverged = [
                s.id
                for s, subject_losses in zip(subjects, losses, strict=True)
                if not all(math.isfinite(v) for v in subject_losses)
            ]
            if diverged:
                raise BenchError(
                    f"{', '.join(diverged)}: training diverged (non-finite loss at lr={cfg.lr}); "
                    "lower lr with --set lr=..."
                )
            # diffusers' format: one key, the token, holding (num_vectors, dim).
            for k, ctx in enumerate(ctxs):
                start = n_old + k * len(names)
                vectors = extended.weight[start : start + len(names)].detach().cpu().contiguous()
                save_file({cfg.token: vectors}, ctx.workdir / ARTIFACT)
        finally:
            text_encoder.set_input_embeddings(original)  # leave the backbone as it was found
        return [
            {"losses": subject_losses, "artifact": ARTIFACT, "tokens": names, "init": init_text}
            for subject_losses, init_text in zip(losses, init_texts, strict=True)
        ]

    def generate(self, ctx: MethodContext, cells: list[Cell], latents):
        cfg, pipe = ctx.config, ctx.backbone.pipe
        if self._loaded != ctx.workdir:
            self.release(ctx)
            # Loading resizes the embedding module in place (a new weight tensor); keep the old.
            embedding = pipe.text_encoder.get_input_embeddings()
            self._original = (embedding, embedding.weight.data, pipe.text_encoder.config.vocab_size)
            pipe.load_textual_inversion(ctx.workdir / ARTIFACT, token=cfg.token)
            self._loaded = ctx.workdir
        # DreamBench's convention for Textual Inversion keeps the class noun: "a <sks> dog on
        # the beach". Only the first token is written: the pipeline expands a multi-vector token
        # itself ("<sks>" -> "<sks> <sks>_1 ..."), and would garble an already expanded one.
        return ctx.render([self.prompt(ctx, cell) for cell in cells], latents, cells)

    def prompt(self, ctx: MethodContext, cell: Cell) -> str:
        """The learned token in place of the identifier; the class noun stays (DreamBench's
        convention for Textual Inversion). Multi-vector tokens are expanded by the pipeline."""
        return cell.prompt.render(ctx.config.token, cell.subject.class_noun)

    def release(self, ctx: MethodContext) -> None:
        if self._loaded is not None:
            pipe = ctx.backbone.pipe
            pipe.unload_textual_inversion(token_names(ctx.config))  # out of the tokenizer
            # Unloading swaps in a new, trainable embedding module and leaves config.vocab_size
            # grown: put back the original module, with its original weight tensor, and size.
            embedding, weight, vocab_size = self._original
            embedding.weight.data = weight
            embedding.num_embeddings = weight.shape[0]
            pipe.text_encoder.set_input_embeddings(embedding)
            pipe.text_encoder.config.vocab_size = vocab_size
            self._loaded = self._original = None


def _in_dtype(embedding, dtype):
    """`embedding`, its output cast to `dtype` (a module, as the text encoder expects)."""
    import torch

    class InDtype(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = embedding

        @property
        def weight(self):  # it stands for the embedding: its rows are the embedding's
            return self.embedding.weight

        def forward(self, ids):
            return self.embedding(ids).to(dtype)

    return InDtype()
