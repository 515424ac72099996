//! PTX: the CUDA target emits PTX for the same kernel bodies. A snapshot of the PTX for one
//! fixture, and validation with NVIDIA's `ptxas` for sm_80 and sm_90 (skipped, with a
//! message, when ptxas is not installed: scripts/setup.sh extracts it into .tools/).
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_codegen::{compile, CodegenOptions, Target};
use std::path::PathBuf;

fn ptx_for(name: &str, arch: &str) -> String {
    ptx_of(&models_dir().join(format!("{name}.onnx")), arch)
}

fn ptx_of(model: &std::path::Path, arch: &str) -> String {
    let target = Target::Cuda { arch: arch.into() };
    let mut g = import(model);
    // The CUDA pipeline (plain NCHW: no channel blocks, so no cross-CTA barriers).
    run_passes_for(&mut g, secc_codegen::vector_block(&target));
    let bytes = compile(
        &g,
        &CodegenOptions {
            target,
            compiler_version: "test".into(),
            memory_limit: None,
            gpu_form: false,
            winograd: true,
        },
    )
    .unwrap();
    let a = secc_artifact::Artifact::parse(bytes).unwrap();
    assert_eq!(a.manifest.targets[0].kind, "cuda");
    String::from_utf8(a.section("ptx").expect("ptx section").to_vec()).unwrap()
}

fn ptxas() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SECC_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/cuda/usr/bin/ptxas");
    if local.exists() {
        return Some(local);
    }
    std::process::Command::new("ptxas")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("ptxas"))
}

#[test]
fn ptx_snapshot_se_block() {
    let ptx = ptx_for("se_torchvision", "sm_80");
    // the GPU's split form: pool (CTA per plane), FC1, FC2 (warp per row), scale
    for k in ["k0_se_pool", "k1_se_fc", "k2_se_fc", "k3_elementwise"] {
        assert!(
            ptx.contains(&format!(".visible .entry {k}(")),
            "no {k}: {ptx}"
        );
    }
    assert!(
        ptx.contains("bar.sync"),
        "the pool must synchronise its CTA"
    );
    assert!(
        ptx.contains("shfl.sync.bfly.b32"),
        "pool and FC layers reduce by warp shuffles"
    );
    insta::assert_snapshot!("se_torchvision_sm80_ptx", ptx);
}

/// `ptxas -arch=ARCH` accepts the PTX of every model in `models` for every arch of `archs`.
fn ptxas_accepts(models: &[PathBuf], archs: &[&str]) {
    let Some(ptxas) = ptxas() else {
        eprintln!("SKIPPED: ptxas not found (run scripts/setup.sh, or set SECC_PTXAS)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for p in models {
        for &arch in archs {
            let ptx = ptx_of(p, arch);
            let f = dir.path().join(format!("{}_{arch}.ptx", stem(p)));
            std::fs::write(&f, &ptx).unwrap();
            let out = std::process::Command::new(&ptxas)
                .arg(format!("-arch={arch}"))
                .arg(&f)
                .arg("-o")
                .arg(f.with_extension("cubin"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ptxas rejected {} for {arch}: {}",
                stem(p),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn ptxas_accepts_every_fixture_for_sm80_and_sm90() {
    ptxas_accepts(&fixtures(), &["sm_80", "sm_90"]);
}

/// Every architecture `--arch` accepts: the SE steps' warp shuffles need PTX 6.0, older
/// than some architectures' LLVM default (LLVM aborted the process on them before the
/// target asked for it).
#[test]
fn ptxas_accepts_the_se_steps_for_every_accepted_arch() {
    let se = [models_dir().join("se_torchvision.onnx")];
    ptxas_accepts(&se, secc_codegen::target::PTX_ARCHS);
}

/// The dynamic-size models (symbolic height and width: every kernel takes run-time extents)
/// compile for the CUDA target too (sm_80 only: these are large, and the fixtures above
/// cover sm_90's code paths).
#[test]
fn ptxas_accepts_the_dynamic_size_models() {
    let dir = models_dir().join("dynamic");
    let models: Vec<PathBuf> = [
        "se_dynamic_hw",
        "se_dynamic_anon",
        "ppocr_cls",
        "ppocr_rec",
        "ppocr_det",
    ]
    .iter()
    .map(|n| dir.join(format!("{n}.onnx")))
    .collect();
    ptxas_accepts(&models, &["sm_80"]);
}
