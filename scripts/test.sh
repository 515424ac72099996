#!/usr/bin/env bash
# Installs what is missing (LLVM 19, a C toolchain, ptxas) and runs every check CI runs:
# formatting, clippy with warnings denied, and the whole test suite with snapshots locked.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)" >&2
  exit 1
fi
bash scripts/setup.sh --no-python
export CI=${CI:-true}            # insta: never write snapshots, fail on mismatch
export INSTA_UPDATE=no
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
