#!/usr/bin/env bash
# The GPU measurements for a lent machine with no network (see benchmarks/README.md): installs
# bench and the packages it needs from wheels carried in .whl/, then runs the named stages, each
# under its own time limit so that one stage's failure or overrun leaves the others' figures.
#
#   bash benchmarks/gpu_session.sh STAGE [STAGE ...]
#
# Stages, in the order a new lease should take them (on an H200 a perf workload spent about 30 s
# starting: loading SD-1.5's 4.3 GB and initialising CUDA; a 15-minute lease holds two calls):
#   packing     packing.py: packed DreamBooth-LoRA with prior preservation at K = 1 ... 30 (step
#               time, memory), generation at batches 8-64, scoring, and the DreamBench protocol
#               projected from them (~8 min)
#   sharing     scale_out.py: fits sharing the card as Ray tasks of 1, 1/2 and 1/4 GPU against one
#               process (needs ray's wheel in .whl/) (~6 min)
#   perf-prior  perf.py: DreamBooth-LoRA with prior preservation beside diffusers' script, then
#               generation and scoring: the memory target and the protocol projection (~8 min)
#   perf-rest   perf.py: plain, text-encoder LoRA and Textual Inversion beside diffusers' (~9 min)
#   precision   precision_check.py: fp32, bf16 and fp16 fits of one subject (~2.5 min)
#   variants    unet_variants.py: channels-last, each attention kernel, torch.compile (~2.5 min)
#   smoke       the README's first command on the toy world's smoke suite (~3 min)
# diffusers' example scripts travel in .ref/ (dreambooth/, textual_inversion/). Logs and results
# go to $OUT (log.txt, RESULTS-gpu.md).
set -u
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
LOG=$OUT/log.txt
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 BENCH_CACHE=${BENCH_CACHE:-/tmp/bench-cache}
PERF=(python3 benchmarks/perf.py --backbone sd15-random --resolution 512 --dtype bfloat16
  --device cuda --diffusers-examples .ref --reps 1 --steps 40 --results "$OUT/RESULTS-gpu.md")

stage() {  # stage LIMIT_SECONDS COMMAND...
  local limit=$1
  shift
  echo "=== $(date -u +%T) [limit ${limit}s] $*" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | grep --line-buffered -v "it/s]$" | tee -a "$LOG"
  echo "=== $(date -u +%T) exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

if ! python3 -c "import bench, diffusers, open_clip" 2>/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
  python3 -m pip install -q --no-index --no-deps .whl/*.whl 2>&1 | tail -3 | tee -a "$LOG"
  python3 -m pip install -q --no-index --no-deps --no-build-isolation . 2>&1 | tail -3 |
    tee -a "$LOG"
  python3 - <<'EOF' 2>&1 | tee -a "$LOG" || exit 1
from importlib import metadata
import torch
names = ("bench", "torch", "diffusers", "transformers", "peft", "open_clip_torch", "timm",
         "accelerate", "huggingface_hub", "tokenizers")
print(", ".join(f"{n} {metadata.version(n)}" for n in names))
print(torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
EOF
fi

for name in "$@"; do
  case $name in
  packing)
    stage 540 python3 benchmarks/packing.py steps --backbone sd15-random --resolution 512 \
      --dtype bfloat16 --device cuda --packs 1,2,4,8,16,30 --steps 12 --protocol \
      --generation-batches 8,16,32,64 --results "$OUT/RESULTS-gpu.md" ;;
  sharing)
    stage 400 python3 benchmarks/scale_out.py --backbone sd15-random --resolution 512 \
      --device cuda --gpu-fractions 1,0.5,0.25 --subjects 8 --steps 20 \
      --results "$OUT/RESULTS-gpu.md" ;;
  perf-prior)
    stage 540 "${PERF[@]}" --variants "dreambooth_lora + prior" --images 8 ;;
  perf-rest)
    stage 580 "${PERF[@]}" --stages train \
      --variants "dreambooth_lora,dreambooth_lora + text encoder,textual_inversion" ;;
  precision)
    stage 170 python3 benchmarks/precision_check.py --backbone sd15-random --resolution 512 \
      --device cuda ;;
  variants)
    stage 170 python3 benchmarks/unet_variants.py --backbone sd15-random --resolution 512 \
      --device cuda --variants eager,channels_last,flash,efficient,math,compile ;;
  smoke)
    stage 200 python3 -m bench run --method dreambooth_lora --suite smoke --runs /tmp/smoke ;;
  *) echo "unknown stage $name" | tee -a "$LOG" ;;
  esac
done
