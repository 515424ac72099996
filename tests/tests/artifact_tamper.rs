//! Artifacts edited after compilation, with every checksum recomputed (so the format's own
//! integrity checks pass): the runtime must reject them before any kernel runs, because the
//! code embeds a digest of the manifest and weights it was compiled for. Before that
//! digest, each edit below loaded, and several crashed the process when run.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_artifact::{Artifact, DimDecl, Manifest};

fn artifact(model: &str) -> Vec<u8> {
    let mut g = import(&models_dir().join(model));
    run_passes(&mut g);
    secc_codegen::compile(&g, &cpu_opts()).unwrap()
}

/// Re-packs an artifact after `edit`, checksums recomputed.
fn repack(bytes: &[u8], edit: impl FnOnce(&mut Manifest, &mut Vec<u8>)) -> Vec<u8> {
    let a = Artifact::parse(bytes.to_vec()).unwrap();
    let mut m = a.manifest.clone();
    let mut w = a.section("weights").unwrap().to_vec();
    edit(&mut m, &mut w);
    let c = a.section("cpu_code").unwrap().to_vec();
    secc_artifact::write(m, &[("weights", &w), ("cpu_code", &c)]).unwrap()
}

fn load_err(bytes: Vec<u8>) -> String {
    match secc_runtime::Model::from_bytes(bytes) {
        Ok(_) => panic!("an edited artifact loaded"),
        Err(e) => e.to_string(),
    }
}

/// An edit of the manifest and the weights bytes.
type Edit = Box<dyn Fn(&mut Manifest, &mut Vec<u8>)>;
/// An edit of the manifest alone.
type ManifestEdit = Box<dyn Fn(&mut Manifest)>;

const MISMATCH: &str = "do not match the code";

#[test]
fn an_unedited_repack_still_loads_and_runs() {
    let good = artifact("se_torchvision.onnx");
    let mut m = secc_runtime::Model::from_bytes(repack(&good, |_, _| {}))
        .and_then(|m| m.session(2))
        .unwrap();
    let x = secc_runtime::Tensor::new(vec![1, 40, 25, 19], vec![0.5; 40 * 25 * 19]).unwrap();
    assert_eq!(m.run(&[x]).unwrap()[0].data.len(), 40 * 25 * 19);
}

#[test]
fn edited_shapes_kernels_and_weights_are_rejected() {
    let good = artifact("se_torchvision.onnx");
    let edits: Vec<(&str, Edit)> = vec![
        (
            "a buffer's extent set to 0",
            Box::new(|m, _| {
                let o = m.outputs[0].buffer as usize;
                m.buffers[o].shape[1] = DimDecl::Known(0);
            }),
        ),
        (
            "the output made larger",
            Box::new(|m, _| {
                let o = m.outputs[0].buffer as usize;
                m.buffers[o].shape[2] = DimDecl::Known(2500);
            }),
        ),
        (
            "the SE kernel's barrier flag cleared",
            Box::new(|m, _| m.kernels[0].barrier = false),
        ),
        (
            "a kernel's arguments swapped",
            Box::new(|m, _| m.kernels[0].args.swap(0, 1)),
        ),
        ("one weight changed", Box::new(|_, w| w[0] ^= 0x40)),
    ];
    for (what, edit) in edits {
        let e = load_err(repack(&good, |m, w| edit(m, w)));
        assert!(e.contains(MISMATCH), "{what}: {e}");
    }
}

/// Resize taps live in the weights as indices: editing them is an edit of the weights.
#[test]
fn edited_resize_index_tables_are_rejected() {
    let Some(model) = fixtures().into_iter().find(|p| stem(p).contains("resize")) else {
        panic!("no resize fixture in tests/models");
    };
    let good = artifact(model.file_name().unwrap().to_str().unwrap());
    let e = load_err(repack(&good, |_, w| {
        let n = w.len();
        w[n - 8..n - 4].copy_from_slice(&1e9f32.to_le_bytes());
    }));
    assert!(e.contains(MISMATCH), "{e}");
}

/// Structural edits fail the manifest's own validation, with the reason, never a panic.
#[test]
fn inconsistent_manifests_are_rejected_by_validation() {
    let good = artifact("se_torchvision.onnx");
    let cases: Vec<(&str, ManifestEdit)> = vec![
        (
            "writes buffer",
            Box::new(|m| {
                let i = m.inputs[0].buffer;
                m.kernels[0].writes.push(i);
            }),
        ),
        (
            "0 * symbol",
            Box::new(|m| m.buffers[0].shape[0] = DimDecl::Sym { sym: 0, coeff: 0 }),
        ),
        (
            "size overflows",
            Box::new(|m| m.buffers[0].shape[1] = DimDecl::Known(u64::MAX / 2)),
        ),
        (
            "bad buffer",
            Box::new(|m| m.outputs[0].buffer = m.inputs[0].buffer),
        ),
    ];
    for (want, edit) in cases {
        let e = load_err(repack(&good, |m, _| edit(m)));
        assert!(
            e.contains("manifest is invalid") && e.contains(want),
            "{want}: {e}"
        );
    }
}
