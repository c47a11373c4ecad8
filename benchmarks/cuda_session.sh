#!/usr/bin/env bash
# One lent GPU session, as one command: every CUDA check (bench_cuda.py), then PoDD on real
# CIFAR-10 pixels with the quick profile (quality_cifar10.py), each within a hard time limit, so
# the whole fits the minutes a GPU is lent for. Everything it writes ends up in OUT.
#
#   bash benchmarks/cuda_session.sh OUT [CIFAR10_NPZ] [SECONDS_FOR_QUALITY]
#
# The quality run's outer steps are sized from the quick-profile step time bench_cuda.py measures
# (three distillations share the GPU, so each gets about half its speed): as many as fit in the
# seconds given, between 300 and 3000. To try the script without a GPU (bench_cuda.py then
# reports that it needs one): QUALITY_PROFILE=smoke QUALITY_STEPS=5 PYTHON=.venv/bin/python.
# BENCH=0 skips bench_cuda.py (a second session for the quality run alone: give QUALITY_STEPS);
# QUALITY_SEEDS="0 1 2" distils more seeds (default 0). Then cross_arch.py evaluates its posters.
# bench_engine.py (eager vs compiled, the four paper presets) runs after it; ENGINE=0 skips it.
set -u
OUT=${1:?give an output folder}
DATA=${2:-}
QUALITY_S=${3:-240}
WORK=$(mktemp -d /tmp/podd_cuda.XXXX)
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
mkdir -p "$OUT"

{ date -u; nvidia-smi; "$PY" -c "import torch; print(torch.__version__, torch.version.cuda)"; } \
    > "$WORK/environment.txt" 2>&1

if [ "${BENCH:-1}" != 0 ]; then
    timeout -s INT 290 "$PY" benchmarks/bench_cuda.py --out "$WORK/bench" --budget-s 210 \
        > "$WORK/bench_cuda.log" 2>&1
    echo "bench_cuda exit $?" >> "$WORK/bench_cuda.log"
fi

# The engines side by side on the four paper presets (ms/step, peak memory; CUDA graphs for
# the compiled one). ENGINE=0 skips it. Each row is written as soon as it is measured.
if [ "${ENGINE:-1}" != 0 ]; then
    timeout -s INT "${ENGINE_S:-300}" "$PY" benchmarks/bench_engine.py --sections gpu \
        --out "$WORK/engine" > "$WORK/bench_engine.log" 2>&1
    echo "bench_engine exit $?" >> "$WORK/bench_engine.log"
fi

if [ -n "$DATA" ]; then
    STEPS=$("$PY" - "$WORK/bench/bench_cuda.json" "$QUALITY_S" <<'EOF'
import json, sys
try:
    ms = json.load(open(sys.argv[1]))["sections"]["quick"]["ms_per_outer_step"]
except Exception:
    ms = 150.0                      # not measured: a cautious guess
seconds = float(sys.argv[2]) - 60   # start-up, the evaluation and the random-real row
steps = int(seconds * 1000 / (2.0 * ms)) // 100 * 100
print(max(300, min(3000, steps)))
EOF
)
    STEPS=${QUALITY_STEPS:-$STEPS}
    echo "quality_cifar10: $STEPS outer steps" | tee "$WORK/quality.log"
    timeout -s INT "$QUALITY_S" "$PY" benchmarks/quality_cifar10.py --data "$DATA" \
        --profile "${QUALITY_PROFILE:-quick}" --seeds ${QUALITY_SEEDS:-0} \
        --eval-models 8 --methods ${QUALITY_METHODS:-baseline-1 podd-1 podd-0.5} --set width=64 --steps "$STEPS" \
        --workers 4 --resume --runs "$WORK/runs" --out "$WORK/quality_cifar10_gpu" >> "$WORK/quality.log" 2>&1
    echo "quality_cifar10 exit $?" >> "$WORK/quality.log"
fi

# The quality run's posters on other networks (ConvNet -> ResNet-18, VGG-11, AlexNet): on a CPU
# this is hours (ResNet-18 on a 96-patch poster), here minutes. CROSS_ARCH=0 skips it;
# CROSS_ARCH_STEPS trains fewer steps than the runs' protocol (the table then says so).
if [ -n "$DATA" ] && [ "${CROSS_ARCH:-1}" != 0 ]; then
    timeout -s INT "${CROSS_ARCH_S:-180}" "$PY" benchmarks/cross_arch.py \
        --quality "$WORK/quality_cifar10_gpu.json" --eval-models 4 ${CROSS_ARCH_STEPS:+--steps "$CROSS_ARCH_STEPS"} \
        --out "$WORK/cross_arch_cifar10_gpu" > "$WORK/cross_arch.log" 2>&1
    echo "cross_arch exit $?" >> "$WORK/cross_arch.log"
fi

# At most 8 files come back from a lent machine: one log, the JSON at the top, the rest packed.
cat "$WORK/environment.txt" "$WORK"/*.log > "$OUT/session.log" 2>/dev/null
cp "$WORK/bench/bench_cuda.json" "$OUT"/ 2>/dev/null
cp "$WORK/engine/bench_engine.json" "$OUT"/ 2>/dev/null
cp "$WORK"/quality_cifar10_gpu.json "$OUT"/ 2>/dev/null
cp "$WORK"/cross_arch_cifar10_gpu.json "$OUT"/ 2>/dev/null
# Without the .pt files: each poster carries its ZCA matrix (tens of MB at CIFAR's shape).
tar czf "$OUT/session.tgz" --exclude='*.pt' -C "$WORK" . 2>/dev/null
ls -la "$OUT"
