"""The real CLIP BPE tokenizer, built offline from the vocabulary that open_clip_torch ships.

CLIP's vocabulary is the 256 byte-level symbols, the same with `</w>`, one entry per BPE merge
(the first 48,894 merge lines after the header), then `<|startoftext|>` and `<|endoftext|>`:
49,408 entries. Written as vocab.json + merges.txt, `transformers.CLIPTokenizer` loads it and its
ids match OpenAI's ("a photo of sks dog" -> 49406, 320, 1125, 539, 48136, 1929, 49407).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

N_MERGES = 49408 - 256 * 2 - 2  # 48,894


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP's reversible byte -> printable-character map.
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def write_clip_tokenizer_files(directory: Path, max_length: int = 77) -> None:
    """Write vocab.json, merges.txt and the tokenizer config that CLIPTokenizer reads; prompts
    pad to `max_length` tokens (SD-1.x's 77, the text encoder's positions)."""
    import open_clip

    with gzip.open(open_clip.tokenizer.default_bpe(), "rt", encoding="utf-8") as f:
        merge_lines = f.read().split("\n")[1 : N_MERGES + 1]
    merges = [tuple(line.split()) for line in merge_lines]
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        # Without model_max_length, transformers 5 overflows when padding to max_length.
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        # SD-1.x pads with <|endoftext|> (49407).
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
