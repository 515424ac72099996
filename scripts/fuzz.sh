#!/usr/bin/env bash
# Runs one cargo-fuzz target (fuzz/fuzz_targets/) for a fixed time:
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]     TARGET: onnx_import | artifact_load
#   scripts/fuzz.sh --install                               only install cargo-fuzz
# Self-sufficient on a fresh machine: installs cargo-fuzz (crates.io, --locked) into
# ~/.cargo/bin when missing. cargo-fuzz passes nightly-only flags (-Zsanitizer=address):
# a nightly toolchain is used when one is installed, else the pinned stable toolchain with
# RUSTC_BOOTSTRAP=1 (SECC_FUZZ_TOOLCHAIN=stable forces that, =nightly forces nightly).
# New corpus entries go to fuzz/target/corpus/TARGET; the committed seeds in
# fuzz/corpus/TARGET are only read. Crashes land in fuzz/artifacts/TARGET/ and fail the run.
# Runs at nice 10 so other work on the machine keeps its CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

install_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
  fi
}

if [ "${1:-}" = "--install" ]; then
  install_cargo_fuzz
  exit 0
fi
usage="usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]"
target=${1:?$usage}
secs=${2:?$usage}
shift 2
case "$target" in
  onnx_import | artifact_load) ;;
  *) echo "fuzz: unknown target $target (onnx_import, artifact_load)" >&2; exit 2 ;;
esac
install_cargo_fuzz

toolchain=()
case "${SECC_FUZZ_TOOLCHAIN:-auto}" in
  nightly) toolchain=(+nightly) ;;
  stable) export RUSTC_BOOTSTRAP=1 ;;
  auto)
    if rustup run nightly rustc --version >/dev/null 2>&1; then
      toolchain=(+nightly)
    else
      export RUSTC_BOOTSTRAP=1
    fi ;;
  *) echo "fuzz: SECC_FUZZ_TOOLCHAIN must be auto, nightly or stable" >&2; exit 2 ;;
esac
echo "fuzz: $target for ${secs}s with $(cargo "${toolchain[@]}" --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

work=fuzz/target/corpus/$target
mkdir -p "$work" "fuzz/artifacts/$target"
# -rss_limit_mb: compiling a model legitimately needs memory in proportion to its weights;
# 4 GiB keeps room for that while still catching runaway allocations
nice -n 10 cargo "${toolchain[@]}" fuzz run "$target" "$work" "fuzz/corpus/$target" -- \
  -max_total_time="$secs" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 "$@"
