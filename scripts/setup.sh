#!/usr/bin/env bash
# Installs what secc needs on a fresh Debian 12 (bookworm) machine, as root, idempotently:
#   - LLVM 19 (llvm-19-dev; dynamic linking, see docs/toolchain.md), a C toolchain and
#     Graphviz (`secc dot -o graph.svg`, and the test that parses every `secc dot` output)
#   - ptxas (extracted from Debian non-free's nvidia-cuda-toolkit .deb into .tools/, not installed)
#   - a Python venv in .venv with onnx, numpy and onnxruntime (fixture generation, benchmarks),
#     and pytest and Ray Serve (the Python package's and the Ray example's tests)
#   - the ONNX backend node tests from the onnx 1.22.0 wheel, unpacked into .tools/onnx-node/
#   - every crate of Cargo.lock, for all platforms, into the cargo cache (cargo fetch)
#   - with --fuzz: cargo-fuzz (into ~/.cargo/bin; see scripts/fuzz.sh)
#   - with --bench: OpenVINO in .venv (scripts/requirements-bench.txt; benches/net_bench.py)
# Usage: scripts/setup.sh [--no-python] [--no-ptxas] [--fuzz] [--bench]
set -euo pipefail
cd "$(dirname "$0")/.."
want_python=1; want_ptxas=1; want_fuzz=0; want_bench=0
for a in "$@"; do
  case "$a" in
    --no-python) want_python=0 ;;
    --no-ptxas) want_ptxas=0 ;;
    --fuzz) want_fuzz=1 ;;
    --bench) want_bench=1 ;;
    *) echo "unknown flag $a" >&2; exit 2 ;;
  esac
done

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

need_pkgs=()
for p in llvm-19-dev build-essential zlib1g-dev graphviz python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
# python3 may come from pyenv rather than Debian; venv then works without python3-venv.
if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_pkgs=("${need_pkgs[@]/python3-venv}")
fi
need_pkgs=($(printf '%s\n' "${need_pkgs[@]}" | grep -v '^$' || true))
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
fi

# Debian's non-free component, where NVIDIA's packages are (nothing is installed from it:
# packages are downloaded and extracted into .tools/)
nonfree_sources() {
  src=/etc/apt/sources.list.d/secc-nonfree.sources
  if [ ! -f "$src" ]; then
    $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: non-free contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -q
  fi
}

if [ "$want_ptxas" = 1 ] && [ ! -x .tools/cuda/usr/bin/ptxas ] && ! command -v ptxas >/dev/null 2>&1; then
  echo "setup: fetching ptxas from Debian non-free (nvidia-cuda-toolkit), extracted into .tools/"
  nonfree_sources
  mkdir -p .tools/deb .tools/cuda
  (cd .tools/deb && apt-get download nvidia-cuda-toolkit)
  dpkg -x .tools/deb/nvidia-cuda-toolkit_*.deb .tools/cuda
  rm -rf .tools/deb
  .tools/cuda/usr/bin/ptxas --version | tail -1
fi

# NVIDIA's driver library alone (libcuda1, 3 MB), for the test of a machine with a driver
# but no GPU: the runtime must report that, not crash (compiler/driver/tests/cuda.rs)
if [ "$want_ptxas" = 1 ] && [ ! -e .tools/libcuda/libcuda.so.1 ]; then
  echo "setup: fetching libcuda1 from Debian non-free, extracted into .tools/libcuda/"
  nonfree_sources
  mkdir -p .tools/deb .tools/libcuda
  (cd .tools/deb && apt-get download libcuda1)
  dpkg -x .tools/deb/libcuda1_*.deb .tools/deb/root
  cp -P .tools/deb/root/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so* .tools/libcuda/
  rm -rf .tools/deb
fi

if [ "$want_python" = 1 ]; then
  if ! .venv/bin/python -c 'import onnx, onnxruntime, numpy' >/dev/null 2>&1; then
    echo "setup: creating .venv (onnx, numpy, onnxruntime)"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements.txt
  fi
fi
if [ "$want_python" = 1 ] && ! .venv/bin/python -c 'import pytest, ray.serve, requests' >/dev/null 2>&1; then
  echo "setup: installing pytest and Ray Serve into .venv (scripts/requirements-test.txt)"
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
fi
# ONNX backend node tests (conformance): onnx 1.22.0 is the last wheel that ships them;
# only its test data is unpacked, into .tools/onnx-node/ (the venv keeps its own onnx)
if [ "$want_python" = 1 ] && [ ! -d .tools/onnx-node/onnx/backend/test/data/node ]; then
  echo "setup: fetching the ONNX backend node tests (onnx 1.22.0 wheel from PyPI)"
  rm -rf .tools/wheel .tools/onnx-node.tmp
  mkdir -p .tools/wheel .tools/onnx-node.tmp
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    onnx==1.22.0 -d .tools/wheel
  .venv/bin/python - .tools/wheel/onnx-1.22.0-*.whl .tools/onnx-node.tmp <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
members = [m for m in z.namelist() if m.startswith("onnx/backend/test/data/node/")]
z.extractall(sys.argv[2], members)
print(f"setup: unpacked {len(members)} files of the ONNX node tests")
PY
  rm -rf .tools/onnx-node && mv .tools/onnx-node.tmp .tools/onnx-node && rm -rf .tools/wheel
fi
# every platform's crates into the cargo cache: `cargo metadata --offline` (the architecture
# test) resolves the whole lock file, including Windows-only crates a Linux build never fetches
if command -v cargo >/dev/null 2>&1; then
  cargo fetch --locked -q
fi
if [ "$want_bench" = 1 ] && ! .venv/bin/python -c 'import openvino' >/dev/null 2>&1; then
  echo "setup: installing OpenVINO into .venv (benchmarks)"
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-bench.txt
fi
if [ "$want_fuzz" = 1 ]; then
  bash scripts/fuzz.sh --install
fi
echo "setup: done"
