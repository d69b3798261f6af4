import json

import pytest
import torch

from bench.diffusion.backbone import load_backbone
from bench.diffusion.random_backbones import tiny_backbone_dir
from bench.errors import BenchError


def test_tiny_backbone_is_saved_in_diffusers_layout_and_loaded_from_it():
    path = tiny_backbone_dir()
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert (path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(path.rglob("*.bin"))  # safetensors only
    backbone = load_backbone("tiny", scheduler="DDIMScheduler", device="cpu")
    assert backbone.realness == "random weights"
    assert backbone.pipe.safety_checker is None
    assert type(backbone.pipe.scheduler).__name__ == "DDIMScheduler"
    assert backbone.latent_size(64) == 32
    # Weights are frozen and identical to the saved copy.
    assert not any(p.requires_grad for p in backbone.pipe.unet.parameters())
    again = load_backbone("tiny", device="cpu")
    for a, b in zip(backbone.pipe.unet.parameters(), again.pipe.unet.parameters(), strict=True):
        assert torch.equal(a, b)


def test_tiny_uses_the_real_clip_tokenizer():
    backbone = load_backbone("tiny", device="cpu")
    ids = backbone.pipe.tokenizer("a photo of sks dog").input_ids
    assert ids == [49406, 320, 1125, 539, 48136, 1929, 49407]
    assert len(backbone.pipe.tokenizer) == 49408
    padded = backbone.pipe.tokenizer(
        "a dog", padding="max_length", max_length=backbone.pipe.tokenizer.model_max_length
    ).input_ids
    assert len(padded) == 77 and padded[-1] == 49407


def test_tiny_unet_has_self_attention_only_at_low_resolution():
    unet = load_backbone("tiny", device="cpu").pipe.unet
    kinds = [type(b).__name__ for b in unet.down_blocks]
    assert kinds == ["DownBlock2D", "CrossAttnDownBlock2D"]


def test_local_directory_backbone_gets_a_content_revision():
    backbone = load_backbone(str(tiny_backbone_dir()), device="cpu")
    assert backbone.revision.startswith("local:") and backbone.realness == "real"


def test_uncached_hub_id_offline_is_one_clear_error():
    with pytest.raises(BenchError, match="not in the local Hugging Face cache.*--backbone DIR"):
        load_backbone("nobody-here/no-such-model", device="cpu")


def test_bad_device_and_dtype():
    with pytest.raises(BenchError, match="--device 'tpu'"):
        load_backbone("tiny", device="tpu")
    with pytest.raises(BenchError, match="--dtype 'int8'"):
        load_backbone("tiny", device="cpu", dtype="int8")
