//! Bad input gets a clear error, never a panic: each case checks the message.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_codegen::{compile, CodegenOptions, Target};
use std::path::PathBuf;

fn bad(name: &str) -> PathBuf {
    models_dir().join("bad").join(name)
}

fn import_err(name: &str) -> String {
    match secc_onnx::import_file(&bad(name), &Default::default()) {
        Ok(_) => panic!("{name} imported without error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn garbage_and_truncated_onnx_are_rejected() {
    let e = import_err("garbage.onnx");
    assert!(
        e.contains("not a valid ONNX model") || e.contains("invalid model"),
        "{e}"
    );
    let e = import_err("truncated.onnx");
    assert!(
        e.contains("not a valid ONNX model") || e.contains("invalid model"),
        "{e}"
    );
    let e = secc_onnx::import_file(&bad("does_not_exist.onnx"), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read") && e.contains("does_not_exist.onnx"),
        "{e}"
    );
}

#[test]
fn all_unsupported_ops_are_listed_at_once_with_node_names() {
    let e = import_err("unsupported_ops.onnx");
    for want in [
        "\"my_lrn\" (LRN)",
        "\"my_topk\" (TopK)",
        "\"my_lpnorm\" (LpNormalization)",
        "3 node(s)",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn out_of_range_gather_index_is_reported_not_panicked() {
    let e = import_err("float_gather.onnx");
    assert!(
        e.contains("\"float_gather\" (Gather)") && e.contains("index 99 out of range"),
        "{e}"
    );
}

#[test]
fn bad_attribute_names_node_op_and_attribute() {
    let e = import_err("bad_pads.onnx");
    assert!(
        e.contains("\"conv_bad_pads\" (Conv)") && e.contains("attribute 'pads'"),
        "{e}"
    );
}

#[test]
fn unsupported_opset_is_named() {
    let e = import_err("old_opset.onnx");
    assert!(e.contains("opset 6"), "{e}");
}

#[test]
fn external_data_is_read_and_escapes_are_refused() {
    let g = secc_onnx::import_file(&bad("external_ok.onnx"), &Default::default()).unwrap();
    assert_eq!(g.consts.len(), 1);
    assert!(g
        .consts
        .get(secc_ir::ConstId(0))
        .data
        .iter()
        .any(|v| *v != 0.0));
    let e = import_err("external_escape.onnx");
    assert!(
        e.contains("leaves the model's folder") && e.contains("refused"),
        "{e}"
    );
}

#[test]
fn external_data_that_is_not_a_regular_file_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("external_ok.onnx");
    std::fs::copy(bad("external_ok.onnx"), &model).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(d.path().join("external_ok.weights"))
        .status()
        .unwrap();
    assert!(st.success());
    // import on another thread: reading a FIFO with no writer would block forever
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = secc_onnx::import_file(&model, &Default::default()).map(|_| ());
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("import blocks on a FIFO");
    let e = r.unwrap_err();
    assert!(
        e.contains("external_ok.weights") && e.contains("not a regular file") && e.contains("FIFO"),
        "{e}"
    );
}

fn artifact() -> Vec<u8> {
    let mut g = import(&models_dir().join("se_torchvision.onnx"));
    run_passes(&mut g);
    compile(&g, &cpu_opts()).unwrap()
}

fn load_err(bytes: Vec<u8>) -> String {
    match secc_runtime::Model::from_bytes(bytes) {
        Ok(_) => panic!("damaged artifact loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn corrupted_truncated_and_foreign_artifacts_are_rejected_before_running() {
    let good = artifact();
    // a flipped byte in the code section
    let a = secc_artifact::Artifact::parse(good.clone()).unwrap();
    let code = a.manifest.section("cpu_code").unwrap().clone();
    let mut b = good.clone();
    b[code.offset as usize + code.len as usize / 2] ^= 0xff;
    let e = load_err(b);
    assert!(e.contains("corrupted") && e.contains("cpu_code"), "{e}");
    // truncated
    let e = load_err(good[..good.len() - 100].to_vec());
    assert!(e.contains("truncated"), "{e}");
    // another format version
    let mut b = good.clone();
    b[8..12].copy_from_slice(&7u32.to_le_bytes());
    let e = load_err(b);
    assert!(e.contains("format version 7"), "{e}");
    // not an artifact
    let e = load_err(b"\x7fELF not an artifact".to_vec());
    assert!(e.contains("not a secc artifact"), "{e}");
    // a CUDA artifact without a GPU: a clear error naming why (tests/tests/gpu.rs runs it
    // where there is one)
    let mut g = import(&models_dir().join("se_torchvision.onnx"));
    run_passes(&mut g);
    let cuda = compile(
        &g,
        &CodegenOptions {
            target: Target::Cuda {
                arch: "sm_80".into(),
            },
            compiler_version: "t".into(),
            memory_limit: None,
            gpu_form: false,
            winograd: true,
        },
    )
    .unwrap();
    if secc_runtime::cuda_devices().is_ok_and(|n| n > 0) {
        return;
    }
    let e = load_err(cuda);
    assert!(
        e.contains("libcuda.so was not found") || e.contains("no CUDA GPU"),
        "{e}"
    );
}

#[test]
fn wrong_input_shape_count_or_name_is_a_clear_error() {
    let mut m = secc_runtime::Model::from_bytes(artifact())
        .and_then(|m| m.session(2))
        .unwrap();
    let t = |s: Vec<usize>| {
        secc_runtime::Tensor::new(s.clone(), vec![0.5; s.iter().product()]).unwrap()
    };
    let e = m.run(&[t(vec![1, 41, 25, 19])]).unwrap_err().to_string();
    assert!(
        e.contains("input \"x\"")
            && e.contains("[batch, 40, 25, 19]")
            && e.contains("[1, 41, 25, 19]"),
        "{e}"
    );
    let e = m.run(&[t(vec![1, 40, 25])]).unwrap_err().to_string();
    assert!(e.contains("expected shape"), "{e}");
    let e = m.run::<secc_runtime::Tensor>(&[]).unwrap_err().to_string();
    assert!(e.contains("1 input(s)") && e.contains("got 0"), "{e}");
    let x = t(vec![2, 40, 25, 19]);
    let e = m.run_named(&[("y", &x)]).unwrap_err().to_string();
    assert!(e.contains("no input named \"y\""), "{e}");
    assert!(m.run_named(&[("x", &x)]).is_ok());
    assert!(secc_runtime::Tensor::new(vec![2, 2], vec![1.0; 3]).is_err());
}

#[test]
fn impossible_allocations_are_errors_not_aborts() {
    let e = secc_runtime::Tensor::zeros(vec![1 << 40, 1 << 20])
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of memory"), "{e}");
}

/// Re-packs an artifact with an edited manifest (checksums recomputed), as a foreign
/// compiler would have written it.
fn repack(bytes: Vec<u8>, edit: impl FnOnce(&mut secc_artifact::Manifest)) -> Vec<u8> {
    let a = secc_artifact::Artifact::parse(bytes).unwrap();
    let mut m = a.manifest.clone();
    edit(&mut m);
    let w = a.section("weights").unwrap().to_vec();
    let c = a.section("cpu_code").unwrap().to_vec();
    secc_artifact::write(m, &[("weights", &w), ("cpu_code", &c)]).unwrap()
}

#[test]
fn artifacts_for_another_machine_are_refused_with_the_reason() {
    let e = load_err(repack(artifact(), |m| {
        m.targets[0].triple = "aarch64-unknown-linux-gnu".into()
    }));
    assert!(
        e.contains("target mismatch") && e.contains("aarch64"),
        "{e}"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let absent = [
            (
                "avx512fp16",
                std::arch::is_x86_feature_detected!("avx512fp16"),
            ),
            (
                "avx512vbmi2",
                std::arch::is_x86_feature_detected!("avx512vbmi2"),
            ),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("gfni", std::arch::is_x86_feature_detected!("gfni")),
            ("sha", std::arch::is_x86_feature_detected!("sha")),
        ]
        .into_iter()
        .find(|(_, has)| !has);
        match absent {
            Some((f, _)) => {
                let e = load_err(repack(artifact(), |m| m.targets[0].features.push(f.into())));
                assert!(
                    e.contains("CPU features") && e.contains(f) && e.contains("x86-64-v3"),
                    "{e}"
                );
            }
            None => eprintln!("SKIPPED feature check: this CPU has every candidate feature"),
        }
    }
}

#[test]
fn a_model_too_large_for_memory_is_refused_at_compile_time_naming_the_node() {
    let mut g = secc_onnx::import_file(&bad("huge_tensors.onnx"), &Default::default()).unwrap();
    run_passes(&mut g);
    let opts = |limit| CodegenOptions {
        memory_limit: limit,
        gpu_form: false,
        winograd: true,
        ..cpu_opts()
    };
    let e = match compile(&g, &opts(Some(1 << 30))) {
        Ok(_) => panic!("a 2 GiB model compiled under a 1 GiB limit"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("model too large") && e.contains("big_") && e.contains("1.00 GiB limit"),
        "{e}"
    );
    // sizes themselves must not overflow even without a limit
    assert!(compile(&g, &opts(Some(64 << 30))).is_ok());
}

#[test]
fn a_symbolic_image_size_imports_and_fix_dim_specialises_it() {
    let g = secc_onnx::import_file(&bad("dynamic_hw.onnx"), &Default::default()).unwrap();
    let out = g.ty(g.outputs[0].1);
    assert!(
        out.shape[2].is_symbolic() && out.shape[3].is_symbolic(),
        "{out}"
    );
    let text = out.display(&g.sym_names);
    assert!(text.contains("height") && text.contains("width"), "{text}");
    let mut opts = secc_onnx::ImportOptions::default();
    opts.fixed_dims.insert("height".into(), 17);
    opts.fixed_dims.insert("width".into(), 9);
    let g = secc_onnx::import_file(&bad("dynamic_hw.onnx"), &opts).unwrap();
    assert_eq!(g.ty(g.outputs[0].1).shape[2], secc_ir::Dim::Known(17));
}

#[test]
fn fixed_dims_must_name_a_dimension_of_the_model_and_be_positive() {
    let with = |name: &str, v| {
        let mut opts = secc_onnx::ImportOptions::default();
        opts.fixed_dims.insert(name.into(), v);
        secc_onnx::import_file(&bad("dynamic_hw.onnx"), &opts)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = with("hieght", 17);
    assert!(
        e.contains("\"hieght\"") && e.contains("\"height\"") && e.contains("\"width\""),
        "{e}"
    );
    let e = with("N", 0);
    assert!(e.contains("\"N\"") && e.contains("at least 1"), "{e}");
}

#[test]
fn int64_indices_are_refused_as_float_data_with_the_node_named() {
    let e = import_err("int64_cast.onnx");
    assert!(
        e.contains("\"cast_indices\" (Cast)") && e.contains("int64 results"),
        "{e}"
    );
    let e = import_err("int64_as_float.onnx");
    assert!(
        e.contains("graph output \"y\"") && e.contains("declared float32 but computed as i64"),
        "{e}"
    );
}

#[test]
fn run_time_operands_of_the_wrong_shape_are_named() {
    let e = import_err("clip_tensor_bound.onnx");
    assert!(
        e.contains("\"clip_tensor_min\" (Clip)")
            && e.contains("input 1 (min) must be a scalar, got f32[N,8,4,4]"),
        "{e}"
    );
    let e = import_err("bn_pixel_mean.onnx");
    assert!(
        e.contains("\"bn_pixel_mean\" (BatchNormalization)")
            && e.contains("input 3 has type f32[N,8,4,4], expected one value per channel (8)"),
        "{e}"
    );
}
