"""Half precision done right: on a bf16 or fp16 backbone the adapters and the optimizer state
stay fp32, fp16 training scales the loss, and the bf16 path runs end to end (fit, generate,
score) here on a CPU."""

import json
import math

import pytest
import torch
from safetensors import safe_open

ARTIFACTS = {"dreambooth_lora": "pytorch_lora_weights.safetensors",
             "textual_inversion": "learned_embeds.safetensors"}  # fmt: skip


@pytest.fixture
def spies(monkeypatch):
    """Call-through spies on the loss scaler and on every optimizer step: whether scaling was on,
    and the dtypes of the parameters and optimizer state each step updated."""
    seen = {"scaled": [], "params": set(), "state": set()}
    scale = torch.amp.GradScaler.scale

    def scaling(self, outputs):
        seen["scaled"].append(self.is_enabled())
        return scale(self, outputs)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", scaling)
    for optimizer in (torch.optim.AdamW, torch.optim.Adam):
        step = optimizer.step

        def stepping(self, *args, _step=step, **kwargs):
            out = _step(self, *args, **kwargs)
            for group in self.param_groups:
                for p in group["params"]:
                    seen["params"].add(p.dtype)
                    seen["state"] |= {v.dtype for v in self.state[p].values() if v.ndim > 0}
            return out

        monkeypatch.setattr(optimizer, "step", stepping)
    return seen


@pytest.mark.parametrize(
    ("method", "options", "artifacts"),
    [
        ("dreambooth_lora", {}, [ARTIFACTS["dreambooth_lora"]]),
        ("textual_inversion", {}, [ARTIFACTS["textual_inversion"]]),
        # pivotal tuning: the identifier's row is learned in fp32 beside the adapter
        pytest.param(
            "dreambooth_lora",
            {"train_identifier": True},
            [ARTIFACTS["dreambooth_lora"], "identifier_embedding.safetensors"],
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bf16_runs_end_to_end_with_fp32_adapters(method, options, artifacts, spies, tmp_path):
    import bench

    result = bench.run(
        method,
        "micro",
        options=options,
        dtype="bfloat16",
        runs=tmp_path,
        stats=bench.StatsOptions(n_resamples=100),
    )
    unit = result.run_dir / "red_mug" / "replicate-0"
    manifest = json.loads((unit / "manifest.json").read_text())
    assert manifest["backbone"]["dtype"] == "bfloat16"
    assert result.fitted == 1 and result.generated == 2
    fit = json.loads((unit / "fit.json").read_text())
    assert all(math.isfinite(x) for x in fit["losses"])
    for artifact in artifacts:
        with safe_open(str(unit / artifact), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}  # noqa: SIM118
    assert spies["params"] == spies["state"] == {torch.float32}
    assert spies["scaled"] and not any(spies["scaled"])  # bf16 needs no loss scaling
    assert all(math.isfinite(iv.mean) for iv in result.intervals.values())


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("dreambooth_lora", {}),
        pytest.param("textual_inversion", {}, marks=pytest.mark.slow),
        pytest.param("dreambooth_lora", {"train_identifier": True}, marks=pytest.mark.slow),
    ],
)
def test_fp16_training_scales_the_loss(method, options, spies, tmp_path):
    import bench

    result = bench.run(
        method, "micro", options=options, dtype="float16", runs=tmp_path, score=False
    )
    unit = result.run_dir / "red_mug" / "replicate-0"
    steps = len(json.loads((unit / "fit.json").read_text())["losses"])
    assert spies["scaled"] == [True] * steps  # every backward pass went through the scaler
    assert spies["params"] == spies["state"] == {torch.float32}
    manifest = json.loads((unit / "manifest.json").read_text())
    assert manifest["backbone"]["dtype"] == "float16"


def test_fp32_training_is_not_scaled(spies, tmp_path):
    import bench

    bench.run("dreambooth_lora", "micro", dtype="float32", runs=tmp_path, score=False)
    assert spies["scaled"] and not any(spies["scaled"])
