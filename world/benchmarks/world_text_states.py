"""Where the world's UNet reads a prompt, and where DreamBooth-LoRA binds the subject.

1. Attention: the share of the UNet's cross-attention (conditional branch, every layer, pixel
   and sampling step) that each kind of text position takes: the start token, the words, the
   end-of-text token, and the padding positions after it (SD-1.x pads with end-of-text).
2. The swap probe: DreamBooth-LoRA fitted on one world subject with the suite's defaults, then
   images of "a sks {class} {context}" from three text states: as encoded; its words with the
   padding states of the training caption "a sks {class}"; the training caption's words with
   the context caption's padding. The oracle reads whether the whole subject (every trait) and
   the context are drawn.

    python world/benchmarks/world_text_states.py --subject green_teapot --context beach
    python world/benchmarks/world_text_states.py --backbone DIR  # another world pipeline

Prints the shares and, per text state, the share of images with the whole subject and with the
context. About 2 minutes on 2 CPU cores (one torch job at a time).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

PROMPTS = ("a teapot on the beach", "a sks teapot on the beach", "a red mug wearing a santa hat")


def attention_shares(pipe, prompt: str, steps: int = 10) -> dict[str, float]:
    """Mean cross-attention probability mass per kind of text position, for `prompt`."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor

    taken = []

    class Recording(AttnProcessor):  # computes the probabilities again, then attends as usual
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
            if encoder_hidden_states is not None:
                query = attn.head_to_batch_dim(attn.to_q(hidden_states))
                key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
                probs = attn.get_attention_scores(query, key, None)
                taken.append(probs[probs.shape[0] // 2 :].mean(dim=(0, 1)))  # conditional half
            return super().__call__(attn, hidden_states, encoder_hidden_states, *args, **kwargs)

    before = pipe.unet.attn_processors
    pipe.unet.set_attn_processor(Recording())
    try:
        pipe(
            [prompt],
            height=64,
            width=64,
            num_inference_steps=steps,
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
    finally:
        pipe.unet.set_attn_processor(before)
    mass = torch.stack(taken).mean(0).numpy()
    words = len(pipe.tokenizer(prompt).input_ids) - 2
    return {
        "start": float(mass[0]),
        "words": float(mass[1 : 1 + words].sum()),
        "end": float(mass[1 + words]),
        "padding": float(mass[2 + words :].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subject", default="green_teapot", help="a subject of the world suite")
    parser.add_argument("--context", default="beach", help="a context of bench_world.render")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument(
        "--backbone", default="world", help="the shipped world, or a world pipeline directory"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    import bench
    from bench.lab import load_backbone
    from bench.plugin import encode_text
    from bench_world.oracle import load_oracle
    from bench_world.render import CONTEXTS
    from bench_world.subjects import SUBJECTS

    places = [c for c, words in CONTEXTS.items() if words]
    if args.context not in places:
        parser.error(f"--context {args.context!r}: use one of {', '.join(places)}")
    if args.subject not in SUBJECTS:
        parser.error(f"--subject {args.subject!r}: use one of {', '.join(SUBJECTS)}")
    pipe = load_backbone(args.backbone, device="cpu").pipe
    pipe.set_progress_bar_config(disable=True)
    print("cross-attention mass by text position (conditional branch):")
    for prompt in PROMPTS:
        shares = attention_shares(pipe, prompt)
        print(f"  {prompt!r}: " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))

    instance = SUBJECTS[args.subject]
    with tempfile.TemporaryDirectory() as runs:
        suite = bench.load_suite("world", backbone=args.backbone, subjects=[args.subject])
        result = bench.run("dreambooth_lora", suite, runs=runs, device="cpu", score=False)
        unit = Path(result.run_dir) / args.subject / "replicate-0"
        pipe.load_lora_weights(str(unit), weight_name="pytorch_lora_weights.safetensors")

        def encode(text: str):
            with torch.no_grad():
                return encode_text(pipe, [text])

        training = encode(f"a sks {instance.cls}")
        asked = f"a sks {instance.cls} {CONTEXTS[args.context]}"
        placed = encode(asked)
        end = len(pipe.tokenizer(asked).input_ids)  # start token .. end-of-text
        swapped_padding, swapped_words = placed.clone(), training.clone()
        swapped_padding[:, end:] = training[:, end:]
        swapped_words[:, end:] = placed[:, end:]
        states = {
            f"{asked!r} as encoded": placed,
            "its words, the training caption's padding": swapped_padding,
            "the training caption's words, its padding": swapped_words,
        }
        oracle, empty = load_oracle(), encode("")
        want = (instance.body, instance.secondary, instance.pattern, instance.part)
        print(f"DreamBooth-LoRA on {args.subject}, {args.images} images per text state:")
        for label, state in states.items():
            images = pipe(
                prompt_embeds=state.repeat(args.images, 1, 1),
                negative_prompt_embeds=empty.repeat(args.images, 1, 1),
                height=64,
                width=64,
                num_inference_steps=25,
                guidance_scale=7.5,
                generator=torch.Generator().manual_seed(5),
                output_type="np",
            ).images
            read = oracle.read(list((images * 255).round().astype(np.uint8)))
            whole = np.mean(
                [(r["body"], r["secondary"], r["pattern"], r["part"]) == want for r in read]
            )
            there = np.mean([r["context"] == args.context for r in read])
            print(f"  {label}: whole subject {whole:.0%}, {args.context} {there:.0%}")


if __name__ == "__main__":
    main()
