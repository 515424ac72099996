#!/usr/bin/env bash
# The GPU check, in two halves.
#
#   bash scripts/gpu.sh prepare   # here (any machine with the build): fills gpu-check/
#   bash scripts/gpu.sh           # on the GPU machine: runs gpu-check/gpu_check on it
#
# prepare builds secc and the runtime-only runner (examples/gpu_check), and compiles for
# CUDA (--arch, default sm_90) every fixture, dynamic-size model and exporter network, each
# with its CPU artifact (x86-64-v3) or ONNX Runtime's recorded outputs; the SE benchmark
# shapes and two networks go to gpu-check/bench. The GPU machine needs only the NVIDIA
# driver: no Rust, LLVM or Python (the runner loads libcuda at run time). Then:
#
#   gpu_check gpu-check --bench   # exit 1 if any check fails
#
# The networks are NETS (default efficientnet_b0, 23 MB): with MobileNetV3-Large too
# gpu-check/ is 72 MiB, over what travels to a lent GPU machine (64 MiB), and SE-ResNet-50
# alone is 108 MB of weights.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu-check

if [ "${1:-run}" = run ]; then
  [ -x "$OUT/gpu_check" ] || { echo "no $OUT/gpu_check: run 'bash scripts/gpu.sh prepare' first" >&2; exit 1; }
  # where GPU containers mount the driver, in case the loader's path lacks it
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64:/usr/local/nvidia/lib
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
  exec "$OUT/gpu_check" "$OUT" --bench
fi
[ "$1" = prepare ] || { echo "usage: scripts/gpu.sh [run|prepare]" >&2; exit 2; }

ARCH=${ARCH:-sm_90}
PY=${PY:-.venv/bin/python}
cargo build -q --release -p secc -p gpu_check
SECC=target/release/secc
rm -rf "$OUT" && mkdir -p "$OUT/bench"
cp target/release/gpu_check "$OUT/"

# compile MODEL.onnx into DIR as NAME.cuda.bin (and NAME.cpu.bin with "cpu")
both() {
  local m=$1 dir=$2 cpu=${3:-}
  local n; n=$(basename "$m" .onnx)
  "$SECC" "$m" -o "$dir/$n.cuda.bin" --target cuda --arch "$ARCH" >/dev/null
  if [ -n "$cpu" ]; then
    "$SECC" "$m" -o "$dir/$n.cpu.bin" --cpu x86-64-v3 >/dev/null
  fi
}
# ONNX Runtime's recorded inputs and outputs of MODEL.onnx into DIR
refs() { cp "${1%.onnx}".*in[0-9].npy "${1%.onnx}".*ort[0-9].npy "$2/" 2>/dev/null || true; }

# the fixtures against their CPU artifacts (themselves checked against ONNX Runtime by CI)
for m in tests/models/*.onnx; do both "$m" "$OUT" cpu; done
for m in tests/models/dynamic/*.onnx; do both "$m" "$OUT" cpu; refs "$m" "$OUT"; done
for m in tests/models/exporters/*.onnx; do both "$m" "$OUT"; refs "$m" "$OUT"; done

# the SE micro benchmark's shapes (benches/se_bench.py), batch symbolic, r = C / 16
"$PY" - "$OUT/bench" <<'EOF'
import sys
sys.path.insert(0, "benches")
from se_bench import se_model
for c, h in [(64, 56), (256, 56), (512, 28), (1024, 14), (2048, 7)]:
    se_model(f"{sys.argv[1]}/se_{c}x{h}x{h}.onnx", c, h, h, c // 16)
EOF
for m in "$OUT"/bench/*.onnx; do both "$m" "$OUT/bench" cpu; rm "$m"; done
for n in ${NETS:-efficientnet_b0}; do
  m=tests/models/networks/$n.onnx
  if [ -f "$m" ]; then both "$m" "$OUT/bench"; refs "$m" "$OUT/bench"
  else echo "skip $n: run '$PY tests/models/gen_networks.py' first"; fi
done
du -sh "$OUT"
