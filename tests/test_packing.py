"""Packed fitting: K subjects fitted in one loop (`fit_pack`, `bench run --pack K`) are K
separate fits.

The method tests fit the smoke suite's three subjects on the toy world's backbone in fp32, once
packed and once one by one, and compare what each subject ends with: its adapter's tensors, its
fit log's losses, and images rendered from its saved files.

Tolerances. A pack changes one thing in the arithmetic: the frozen layers run on a K-times
larger batch, and a CPU kernel may round a larger batch differently in the last bit (float32,
about 1e-7 relative). Each subject's own loss is unchanged by that to about 1e-7 (LOSS_ATOL).
Adam divides each gradient by its running scale, so a last-bit difference in a coordinate whose
gradient is near zero can grow to a fraction of a step (lr) per step; over these fits of a few
steps at lr 1e-3, that stays far below 1e-2 of a tensor's largest entry (ADAPTER_RTOL), and a
rendered image moves by at most a level or two (PIXEL_ATOL). On the machine these were written
on, packs of three give the same bits as separate fits. A subject routed through a partner's
adapter differs by the order of the adapter itself, and a loss averaged over the pack puts the
pack's mean into every subject's log; both fail these bounds by orders of magnitude.
"""

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bench.config import resolve_config
from bench.data.plan import cells_for, initial_latents
from bench.data.suites import load_suite
from bench.diffusion.backbone import load_backbone
from bench.methods.dreambooth_lora import ARTIFACT, IDENTIFIER_ARTIFACT, DreamBoothLoRA
from bench.methods.protocol import MethodContext
from bench.methods.textual_inversion import ARTIFACT as TI_ARTIFACT
from bench.methods.textual_inversion import TextualInversion

LOSS_ATOL = 1e-6
ADAPTER_RTOL = 1e-2
PIXEL_ATOL = 2

# Every routed path at once: UNet attention and convolution adapters, text-encoder adapters,
# each subject's identifier row, and a class half of each batch.
LORA_OPTIONS = {
    "steps": 3,
    "lr": 1e-3,
    "rank": 4,
    "batch_size": 2,
    "unet_targets": ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"],
    "train_text_encoder": True,
    "train_identifier": True,
    "prior_preservation": True,
    "num_class_images": 2,
}


@pytest.fixture(scope="module")
def suite():
    return load_suite("smoke")


@pytest.fixture(scope="module")
def backbone(suite):
    return load_backbone("world", scheduler=suite.generation.scheduler, device="cpu")


def contexts(method_cls, backbone, suite, folder, subjects, options):
    config = resolve_config(method_cls.Config, options)
    for subject in subjects:
        (folder / subject.id).mkdir(parents=True, exist_ok=True)
    return [
        MethodContext(
            backbone=backbone,
            suite=suite,
            subject=subject,
            config=config,
            replicate=0,
            workdir=folder / subject.id,
            cache=folder.parent / "cache",
        )
        for subject in subjects
    ]


def fit_both_ways(method_cls, backbone, suite, tmp_path, options):
    """{subject id: (separate log, packed log)}, with each fit's files in separate/ and packed/;
    the third subject is also fitted in a pack of two, with a partner and in a place it did not
    have before (partners/)."""
    subjects = suite.subjects
    assert len(subjects) == 3
    method = method_cls()
    separate = [
        method.fit(ctx)
        for ctx in contexts(method_cls, backbone, suite, tmp_path / "separate", subjects, options)
    ]
    packed = method.fit_pack(
        contexts(method_cls, backbone, suite, tmp_path / "packed", subjects, options)
    )
    reordered = [subjects[2], subjects[0]]
    repacked = method.fit_pack(
        contexts(method_cls, backbone, suite, tmp_path / "partners", reordered, options)
    )
    logs = {s.id: (a, b) for s, a, b in zip(subjects, separate, packed, strict=True)}
    logs["partners"] = (separate[2], repacked[0])
    return logs


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        scale = a[key].abs().max().item()
        difference = (a[key] - b[key]).abs().max().item()
        assert difference <= ADAPTER_RTOL * scale, (key, difference, scale)


def assert_same_losses(a: list, b: list) -> None:
    assert len(a) == len(b)
    assert np.abs(np.array(a) - np.array(b)).max() <= LOSS_ATOL, (a, b)


def rendered(method_cls, backbone, suite, folder, subject, options):
    """The subject's first two cells rendered from the files its fit saved in `folder`."""
    [ctx] = contexts(method_cls, backbone, suite, folder, [subject], options)
    cells = cells_for(suite, subject, 0)[:2]
    latents = initial_latents(
        cells, backbone.latent_channels, backbone.latent_size(suite.resolution)
    )
    method = method_cls()
    try:
        return np.stack(method.generate(ctx, cells, latents)).astype(int)
    finally:
        method.release(ctx)


def test_a_packed_dreambooth_lora_fit_is_each_subjects_separate_fit(backbone, suite, tmp_path):
    logs = fit_both_ways(DreamBoothLoRA, backbone, suite, tmp_path, LORA_OPTIONS)
    subjects = {s.id: s for s in suite.subjects}
    for name, (separate, packed) in logs.items():
        assert_same_losses(separate["losses"], packed["losses"])
        assert_same_losses(separate["prior_losses"], packed["prior_losses"])
        subject = suite.subjects[2] if name == "partners" else subjects[name]
        folder = tmp_path / ("partners" if name == "partners" else "packed")
        for artifact in (ARTIFACT, IDENTIFIER_ARTIFACT):
            assert_same_tensors(
                load_file(tmp_path / "separate" / subject.id / artifact),
                load_file(folder / subject.id / artifact),
            )
    for subject in suite.subjects:  # the saved files render the same images
        one = rendered(
            DreamBoothLoRA, backbone, suite, tmp_path / "separate", subject, LORA_OPTIONS
        )
        many = rendered(DreamBoothLoRA, backbone, suite, tmp_path / "packed", subject, LORA_OPTIONS)
        assert np.abs(one - many).max() <= PIXEL_ATOL
    # The subjects learned different things: a pack that mixed them up could not pass above.
    first, second = (load_file(tmp_path / "packed" / s.id / ARTIFACT) for s in suite.subjects[:2])
    key = next(k for k in first if "up" in k)
    assert (first[key] - second[key]).abs().max() > 100 * ADAPTER_RTOL * first[key].abs().max()


@pytest.mark.slow
def test_a_packed_textual_inversion_fit_is_each_subjects_separate_fit(backbone, suite, tmp_path):
    options = {"steps": 3, "batch_size": 2, "num_vectors": 2}
    logs = fit_both_ways(TextualInversion, backbone, suite, tmp_path, options)
    for name, (separate, packed) in logs.items():
        assert_same_losses(separate["losses"], packed["losses"])
        subject = suite.subjects[2] if name == "partners" else None
        subject_id = subject.id if subject else name
        folder = tmp_path / ("partners" if subject else "packed")
        assert_same_tensors(
            load_file(tmp_path / "separate" / subject_id / TI_ARTIFACT),
            load_file(folder / subject_id / TI_ARTIFACT),
        )
    for subject in suite.subjects:
        one = rendered(TextualInversion, backbone, suite, tmp_path / "separate", subject, options)
        many = rendered(TextualInversion, backbone, suite, tmp_path / "packed", subject, options)
        assert np.abs(one - many).max() <= PIXEL_ATOL


@pytest.mark.slow
def test_a_pack_leaves_the_backbone_as_it_found_it(backbone, suite, tmp_path):
    pipe = backbone.pipe
    before = {
        "unet": {k: v.clone() for k, v in pipe.unet.state_dict().items()},
        "text": {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()},
    }
    modules = [type(m) for m in pipe.unet.modules()] + [
        type(m) for m in pipe.text_encoder.modules()
    ]
    DreamBoothLoRA().fit_pack(
        contexts(DreamBoothLoRA, backbone, suite, tmp_path, suite.subjects, LORA_OPTIONS)
    )
    after = [type(m) for m in pipe.unet.modules()] + [type(m) for m in pipe.text_encoder.modules()]
    assert after == modules
    for name, module in (("unet", pipe.unet), ("text", pipe.text_encoder)):
        state = module.state_dict()
        assert state.keys() == before[name].keys()
        assert all(torch.equal(state[k], before[name][k]) for k in state)
    assert not pipe.unet.training and not pipe.text_encoder.training
    assert not any(p.requires_grad for p in pipe.unet.parameters())


@pytest.mark.slow
def test_dropout_masks_are_each_subjects_own(backbone, suite, tmp_path):
    """With dropout, a subject's masks come from its own seeds: packed or alone, the same fit;
    and gradient checkpointing's second forward draws the same masks as the first."""
    options = {**LORA_OPTIONS, "dropout": 0.3, "steps": 3}
    subjects = suite.subjects[:2]
    method = DreamBoothLoRA()
    alone = method.fit(
        contexts(DreamBoothLoRA, backbone, suite, tmp_path / "a", subjects[1:], options)[0]
    )
    packed = method.fit_pack(
        contexts(DreamBoothLoRA, backbone, suite, tmp_path / "p", subjects, options)
    )
    checkpointed = method.fit(
        contexts(
            DreamBoothLoRA,
            backbone,
            suite,
            tmp_path / "c",
            subjects[1:],
            {**options, "gradient_checkpointing": True},
        )[0]
    )
    assert_same_losses(alone["losses"], packed[1]["losses"])
    assert_same_losses(alone["losses"], checkpointed["losses"])
    for folder in ("p", "c"):
        assert_same_tensors(
            load_file(tmp_path / "a" / subjects[1].id / ARTIFACT),
            load_file(tmp_path / folder / subjects[1].id / ARTIFACT),
        )
    undropped = method.fit(
        contexts(
            DreamBoothLoRA, backbone, suite, tmp_path / "u", subjects[1:], {**options, "dropout": 0}
        )[0]
    )
    assert np.abs(np.array(undropped["losses"]) - np.array(alone["losses"])).max() > 1e-4


def test_a_method_declares_packed_fitting_by_having_fit_pack():
    from bench.methods.real import Real
    from bench.plugin import capabilities
    from bench.registry import METHODS, load

    assert capabilities(DreamBoothLoRA()).fits_packed
    assert capabilities(TextualInversion()).fits_packed
    assert not capabilities(load(METHODS, "base")()).fits_packed
    assert not capabilities(Real()).fits_packed
    assert not capabilities(dataclasses.make_dataclass("Plain", [])()).fits_packed
