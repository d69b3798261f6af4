"""One DreamBooth-LoRA training step of the UNet (forward, backward, AdamW on the adapter), in the
execution variants a GPU offers, each against eager: channels-last memory format, each
scaled-dot-product-attention kernel alone, and `torch.compile`. Prints each variant's median step
time and how far its loss and adapter gradients move from eager's on the same inputs.

    python benchmarks/unet_variants.py --backbone sd15-random --resolution 512 --device cuda
    python benchmarks/unet_variants.py --backbone tiny --resolution 64 --device cpu --dtype float32

The step mirrors bench's fit: batch 2 (a photo and a class image, as with prior preservation),
rank-4 LoRA on the attention projections, the backbone in --dtype, the adapter in fp32 (autocast).
Timings: CUDA events (or a host clock on a CPU) around each step after warm-up, median of --reps.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time


def main() -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    from bench.diffusion.random_backbones import random_backbone_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sd15-random", choices=["tiny", "sd15-random"])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--variants", default="eager,channels_last,flash,efficient,math,compile")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cuda = device.type == "cuda"

    def fresh_unet(channels_last: bool = False):
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_pretrained(
            random_backbone_dir(args.backbone) / "unet", torch_dtype=dtype
        ).to(device)
        unet.requires_grad_(False)
        targets = ["to_q", "to_k", "to_v", "to_out.0"]
        unet.add_adapter(
            LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=targets)
        )
        for p in unet.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        if channels_last:
            unet = unet.to(memory_format=torch.channels_last)
        return unet

    generator = torch.Generator().manual_seed(1)
    side = args.resolution // 8
    config = UNet2DConditionModel.load_config(random_backbone_dir(args.backbone) / "unet")
    shape = (2, config["in_channels"], side, side)
    states_dim = config["cross_attention_dim"]
    latents = torch.randn(shape, generator=generator).to(device, dtype)
    noise = torch.randn(shape, generator=generator).to(device, dtype)
    states = torch.randn((2, 77, states_dim), generator=generator).to(device, dtype)
    timesteps = torch.tensor([250, 750], device=device)

    def sdpa(backend):
        if backend is None:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(getattr(SDPBackend, backend))

    def run(name: str) -> tuple[float, float, float] | str:
        unet = fresh_unet(channels_last=name == "channels_last")
        backend = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                   "math": "MATH"}.get(name)  # fmt: skip
        forward = torch.compile(unet) if name == "compile" else unet
        adapter = [p for p in unet.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(adapter, lr=1e-4)

        def step(update: bool = True):
            with (
                sdpa(backend),
                torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32),
            ):
                out = forward(latents, timesteps, encoder_hidden_states=states).sample
                loss = torch.nn.functional.mse_loss(out.float(), noise.float())
            loss.backward()
            # the first step's gradients are compared with eager's; timed steps only update
            grads = None if update else torch.cat([p.grad.reshape(-1) for p in adapter])
            if update:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach(), grads

        try:
            start = time.perf_counter()  # the warm-up figure includes compiling
            first_loss, first_grads = step(update=False)  # before any update: comparable to eager
            for _ in range(args.warmup):
                step()
            if cuda:
                torch.cuda.synchronize()
            warm = time.perf_counter() - start
            times = []
            for _ in range(args.reps):
                if cuda:
                    begin, end = (
                        torch.cuda.Event(enable_timing=True),
                        torch.cuda.Event(enable_timing=True),
                    )
                    begin.record()
                    step()
                    end.record()
                    torch.cuda.synchronize()
                    times.append(begin.elapsed_time(end) / 1000)
                else:
                    start = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - start)
        except Exception as error:  # a kernel the card or the shapes lack: say so, go on
            return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        finally:
            peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
            if cuda:
                torch.cuda.reset_peak_memory_stats()
        results[name] = (first_loss.float().cpu(), first_grads.float().cpu())
        return statistics.median(times), warm, peak

    results: dict[str, tuple] = {}
    rows = []
    eager_median = None
    for name in args.variants.split(","):
        outcome = run(name)
        if isinstance(outcome, str):
            rows.append(f"| {name} | failed: {outcome} | | | | |")
            print(rows[-1], flush=True)
            continue
        median, warm, peak = outcome
        base = results.get("eager")
        if base is not None and name != "eager":
            loss_diff = abs(float(results[name][0] - base[0])) / abs(float(base[0]))
            grad_diff = float((results[name][1] - base[1]).norm() / base[1].norm())
            diffs = f"{loss_diff:.1e} | {grad_diff:.1e}"
        else:
            diffs = "0 | 0"
        if name == "eager":
            eager_median = median
        speedup = f"{eager_median / median:.2f}x" if eager_median else "n.a."
        rows.append(
            f"| {name} | {median * 1000:.1f} ms | {speedup} | {warm:.1f} s | {peak:.0f} | {diffs} |"
        )
        print(rows[-1], flush=True)
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"\n{args.backbone} UNet, {args.resolution} px, batch 2, {args.dtype}, LoRA rank 4, "
          f"on {name}; median of {args.reps} steps after {args.warmup} warm-ups\n")  # fmt: skip
    print("| variant | step | eager / variant | warm-up | peak MiB | loss diff | grad diff |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
