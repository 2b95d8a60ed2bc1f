#!/usr/bin/env bash
# Training throughput on a GPU: the project's trainer (train.build_gan + GAN.train_steps, what the train
# stage runs) against the TensorFlow DCGAN tutorial's plain @tf.function loop, same layer stack (dcgan,
# 28×28×1, 64 base filters), batch 256, MNIST t10k when ../shared/data/mnist-t10k exists, else digits at 28×28:
#   1. float32 without XLA (reference), 2. mixed_float16 with XLA (the train stage's GPU default).
# Each prints its medians; the last line is images_per_s=<trainer, mixed_float16 + XLA>.
#
# Run from anywhere, on a machine with a GPU (one GPU is used: the plain loop is single-device); about
# 2–4 minutes on a recent GPU, each configuration capped at PART_SECONDS (default 220 s, so ≤ 8 minutes):
#     bash benchmarks/gpu_throughput.sh
#     STEPS=3 WARMUP=1 REPEATS=1 bash benchmarks/gpu_throughput.sh   # smoke run; without a GPU it says so
#                                                                    # and runs on the CPU (not a GPU figure)
# PYTHON picks the interpreter (default: .venv/bin/python, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
STEPS=${STEPS:-200}
WARMUP=${WARMUP:-20}
REPEATS=${REPEATS:-5}
PART_SECONDS=${PART_SECONDS:-220}
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

gpus=$("$PYTHON" -c 'import tensorflow as tf; print(len(tf.config.list_physical_devices("GPU")))' 2>/dev/null | tail -1)
if [ "${gpus:-0}" = "0" ]; then
  echo "gpu_throughput: no GPU visible to TensorFlow; running on the CPU instead (these are NOT GPU figures)"
else
  echo "gpu_throughput: $gpus GPU visible (CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi

common=(--arch dcgan --image-size 28 --batch 256 --base-filters 64 --steps "$STEPS" --warmup "$WARMUP"
        --repeats "$REPEATS")
echo "== float32, XLA off (reference)"
timeout "$PART_SECONDS" "$PYTHON" benchmarks/train_throughput.py "${common[@]}" --precision float32 \
  --jit-compile false | tee "$out/fp32.txt"
echo "== mixed_float16, XLA on"
timeout "$PART_SECONDS" "$PYTHON" benchmarks/train_throughput.py "${common[@]}" --precision mixed_float16 \
  --jit-compile true | tee "$out/mixed.txt"
fp32=$(grep '^images_per_s=' "$out/fp32.txt" | cut -d= -f2)
mixed=$(grep '^images_per_s=' "$out/mixed.txt" | cut -d= -f2)
echo "trainer images/s: float32 ${fp32}, mixed_float16+XLA ${mixed}"
echo "images_per_s=${mixed}"
