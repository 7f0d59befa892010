#!/usr/bin/env bash
# One pass of the GPU checks and figures that CI (CPU-only) cannot take: the CUDA tests, generator cost
# per preset, a pose training step at batch 4, and `fsv2v demo` on CUDA. Prints everything; writes the demo
# video under ${OUT:-/tmp}. Usage: bash benchmarks/gpu_check.sh   (with fewshotv2v importable)
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
echo "== CUDA tests"
timeout 240 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_cuda_graph.py 2>&1 | tail -8
echo "== generator, bf16, steady-state frame"
for preset in face face512 street; do
  timeout 90 $PY benchmarks/generator.py --preset "$preset" --device cuda --dtype bf16 --frames 20
done
echo "== training step, pose, batch 4, T 2, K 2, VGG (random weights)"
timeout 120 $PY benchmarks/train.py --preset pose --device cuda --precision bf16 --batch-size 4 --clip-len 2 \
    --k 2 --perceptual vgg-random --steps 5
echo "== fsv2v demo on CUDA"
timeout 90 $PY -m fewshotv2v demo -o "$OUT/demo_cuda.mp4" --device cuda --overwrite
echo "== generator, pose, bf16, CUDA graph vs eager (inference.cuda_graph, unmeasured so far)"
timeout 90 $PY benchmarks/generator.py --preset pose --device cuda --dtype bf16 --frames 30 --cuda-graph
timeout 90 $PY benchmarks/generator.py --preset pose --device cuda --dtype bf16 --frames 30
