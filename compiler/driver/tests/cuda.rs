//! A CUDA artifact on a machine as users have it: `secc inspect` shows each kernel's launch
//! contract; `secc run` runs it on the GPU where there is one and otherwise fails with exit
//! status 1 and a message naming the cause (no driver library; a driver that finds no
//! GPU, tested with Debian's libcuda from `.tools/libcuda/`, which scripts/setup.sh
//! fetches), never a panic or an abort.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use std::path::Path;
use std::process::Command;
mod common;
use common::{models, ok, s, secc};

fn compile_cuda(dir: &Path) -> std::path::PathBuf {
    let model = models().join("se_torchvision.onnx");
    let bin = dir.join("se_cuda.bin");
    ok(&secc(&[s(&model), "-o", s(&bin), "--target", "cuda"]));
    bin
}

#[test]
fn inspect_shows_the_launch_contracts() {
    let d = tempfile::tempdir().unwrap();
    let bin = compile_cuda(d.path());
    let j: serde_json::Value =
        serde_json::from_str(&ok(&secc(&["inspect", s(&bin), "--json"]))).unwrap();
    let k = &j["kernels"][0];
    assert_eq!(k["kind"], "se_pool");
    // the SE pool: one CTA per (image, channel) plane (C = 40), a shared float per warp
    assert_eq!(
        k["launch"]["grid"],
        serde_json::json!([{"sym": 0, "coeff": 40}, 1, 1])
    );
    assert_eq!(k["launch"]["shared_bytes"], 16);
    let text = ok(&secc(&["inspect", s(&bin)]));
    assert!(
        text.contains("grid [40*batch, 1, 1] x [128, 1, 1], shared 16 B"),
        "{text}"
    );
}

/// `secc run` of the CUDA artifact with `LD_LIBRARY_PATH` set to `lib` (or unset).
fn run_with(bin: &Path, lib: Option<&Path>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_secc"));
    c.args(["run", s(bin), "--random-inputs", "--batch", "2"]);
    match lib {
        Some(l) => c.env("LD_LIBRARY_PATH", l),
        None => c.env_remove("LD_LIBRARY_PATH"),
    };
    c.output().unwrap()
}

#[test]
fn without_a_gpu_running_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let bin = compile_cuda(d.path());
    if secc_runtime::cuda_devices().is_ok_and(|n| n > 0) {
        // a GPU is here: the run must succeed (tests/tests/gpu.rs checks the results)
        ok(&run_with(&bin, None));
        eprintln!("SKIPPED: the no-GPU errors (this machine has a GPU)");
        return;
    }
    let o = run_with(&bin, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("libcuda.so was not found") || err.contains("no CUDA GPU"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/libcuda");
    if !lib.join("libcuda.so.1").exists() {
        eprintln!("SKIPPED: a driver without a GPU (run scripts/setup.sh for .tools/libcuda)");
        return;
    }
    let o = run_with(&bin, Some(&lib));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no CUDA GPU: the NVIDIA driver is installed but finds no device"),
        "{err}"
    );
}
