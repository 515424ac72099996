#!/usr/bin/env bash
# Compiles every fixture (and the exporter networks) for CUDA into gpu-check/, with the
# fixtures' inputs and ONNX Runtime outputs, for scripts/gpu_check.py on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECC=${SECC:-target/release/secc}
[ -n "${SECC_SKIP_BUILD:-}" ] || cargo build -q --release -p secc
rm -rf gpu-check && mkdir -p gpu-check
for m in tests/models/*.onnx tests/models/exporters/*.onnx; do
  n=$(basename "$m" .onnx)
  if "$SECC" "$m" -o "gpu-check/$n.bin" --target cuda >/dev/null 2>&1; then
    cp "${m%.onnx}".in*.npy "${m%.onnx}".ort*.npy gpu-check/ 2>/dev/null || true
  else
    echo "skip $n (does not compile for CUDA)"
  fi
done
du -sh gpu-check
