#!/usr/bin/env bash
# Installs what is missing, then compiles the SE block shipped in examples/ and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-python --no-ptxas
cargo build --release --locked -p secc -p run_cpu
S=target/release/secc
mkdir -p target/demo
$S examples/se_block.onnx -o target/demo/se_block.bin
$S inspect target/demo/se_block.bin
$S run target/demo/se_block.bin --input x=examples/se_block.x.npy --output-dir target/demo/out
echo "output written to target/demo/out/y.npy"
$S run target/demo/se_block.bin --input x=examples/se_block.x.npy --threads 2 --bench 200 --json
target/release/run_cpu target/demo/se_block.bin 8 2
