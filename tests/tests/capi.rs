//! The C API: `examples/c/` built with the system C compiler against `libsecc.a` and
//! `libsecc.so` (built here with `cargo build -p secc-capi --release`) and run; and every
//! function called from Rust with null pointers, bad indices and bad tensors, which must be
//! error statuses with messages, never a crash.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc::*;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// Builds libsecc (release) and returns the folder holding libsecc.so and libsecc.a.
fn libsecc() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(&cargo)
        .args(["build", "--release", "-p", "secc-capi"])
        .current_dir(workspace())
        .status()
        .unwrap();
    assert!(st.success(), "cargo build -p secc-capi --release failed");
    let meta = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let dir = PathBuf::from(v["target_directory"].as_str().unwrap()).join("release");
    for f in ["libsecc.so", "libsecc.a"] {
        assert!(dir.join(f).is_file(), "{} missing", dir.join(f).display());
    }
    dir
}

fn cc(out: &Path, src: &str, link: &[String]) {
    let ws = workspace();
    let st = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(ws.join("runtime/capi/include"))
        .arg(ws.join("examples/c").join(src))
        .args(link)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "cc {src} failed");
}

fn artifact(dir: &Path) -> (secc_ir::Graph, PathBuf) {
    let mut g = import(&models_dir().join("se_residual.onnx"));
    run_passes(&mut g);
    let p = dir.join("se_residual.bin");
    std::fs::write(&p, secc_codegen::compile(&g, &cpu_opts()).unwrap()).unwrap();
    (g, p)
}

/// The inputs `run_model.c` makes: xorshift64 from the same seed, in [-2, 2).
fn c_inputs(m: &secc_runtime::Model, batch: usize) -> Vec<secc_runtime::Tensor> {
    let mut seed = 0x2545F4914F6CDD1Du64;
    m.inputs()
        .iter()
        .map(|io| {
            let shape: Vec<usize> = io
                .shape
                .iter()
                .map(|d| d.fixed().map_or(batch, |v| v as usize))
                .collect();
            let data = (0..shape.iter().product::<usize>())
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
                })
                .collect();
            secc_runtime::Tensor::new(shape, data).unwrap()
        })
        .collect()
}

#[test]
fn c_examples_build_and_run_against_the_static_and_shared_library() {
    let lib = libsecc();
    let tmp = tempfile::tempdir().unwrap();
    let (_, model) = artifact(tmp.path());
    // run_model, linked statically
    let exe = tmp.path().join("run_model");
    let static_link = vec![
        lib.join("libsecc.a").display().to_string(),
        "-lpthread".into(),
        "-ldl".into(),
        "-lm".into(),
    ];
    cc(&exe, "run_model.c", &static_link);
    let out = Command::new(&exe)
        .arg(&model)
        .args(["2", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the same numbers through the Rust API
    let m = secc_runtime::Model::load(&model).unwrap();
    let ins = c_inputs(&m, 2);
    let mut s = m.session(1).unwrap();
    let outs = s.run(&ins).unwrap();
    let mut want = String::new();
    for io in m.inputs() {
        let dims: Vec<String> = io
            .shape
            .iter()
            .map(|d| d.fixed().map_or("N".into(), |v| v.to_string()))
            .collect();
        want += &format!("input {}: [{}]\n", io.name, dims.join(", "));
    }
    for (io, t) in m.outputs().iter().zip(outs) {
        let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        let sum: f64 = t.data.iter().map(|&v| v as f64).sum();
        want += &format!(
            "output {}: shape [{}], sum {sum:.6}\n",
            io.name,
            dims.join(", ")
        );
    }
    assert_eq!(text, want);
    // a missing file: the runtime's message, exit status 1
    let out = Command::new(&exe)
        .arg(tmp.path().join("missing.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("cannot read artifact") && err.contains("missing.bin"),
        "{err}"
    );

    // multi_session, linked dynamically: 8 threads x 50 runs, bit-identical to serial
    let exe = tmp.path().join("multi_session");
    let dynamic_link = vec![
        format!("-L{}", lib.display()),
        "-lsecc".into(),
        format!("-Wl,-rpath,{}", lib.display()),
        "-lpthread".into(),
    ];
    cc(&exe, "multi_session.c", &dynamic_link);
    // cargo's LD_LIBRARY_PATH lists target/debug/deps, which may hold another libsecc.so
    let out = Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .arg(&model)
        .args(["8", "50"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("8 threads x 50 runs")
            && text.contains("bit-identical"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn last_error() -> String {
    // SAFETY: secc_last_error never returns NULL.
    unsafe { CStr::from_ptr(secc_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn bad_arguments_are_statuses_with_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, model) = artifact(tmp.path());
    let path = CString::new(model.display().to_string()).unwrap();
    // SAFETY: the pointers passed are NULL, live locals, or from this API.
    unsafe {
        let mut m: *mut SeccModel = std::ptr::null_mut();
        assert_eq!(
            secc_model_load(std::ptr::null(), &mut m),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert!(m.is_null() && last_error().contains("path is NULL"));
        assert_eq!(
            secc_model_load(path.as_ptr(), std::ptr::null_mut()),
            SECC_ERR_INVALID_ARGUMENT
        );
        let junk = tmp.path().join("junk.bin");
        std::fs::write(&junk, b"not an artifact").unwrap();
        let junk = CString::new(junk.display().to_string()).unwrap();
        assert_eq!(secc_model_load(junk.as_ptr(), &mut m), SECC_ERR_FORMAT);
        assert!(
            last_error().contains("not a secc artifact"),
            "{}",
            last_error()
        );
        let missing = CString::new("/nonexistent/x.bin").unwrap();
        assert_eq!(secc_model_load(missing.as_ptr(), &mut m), SECC_ERR_IO);

        assert_eq!(secc_model_load(path.as_ptr(), &mut m), SECC_OK);
        assert_eq!(secc_model_input_count(std::ptr::null()), 0);
        assert_eq!(secc_model_input_count(m), 1);
        assert!(secc_model_input_name(m, 1).is_null());
        assert!(
            last_error().contains("input index 1 out of range"),
            "{}",
            last_error()
        );
        let name = CStr::from_ptr(secc_model_input_name(m, 0)).to_owned();
        let mut index = 9usize;
        assert_eq!(
            secc_model_input_index(m, name.as_ptr(), &mut index),
            SECC_OK
        );
        assert_eq!(index, 0);
        let nope = CString::new("nope").unwrap();
        assert_eq!(
            secc_model_input_index(m, nope.as_ptr(), &mut index),
            SECC_ERR_INVALID_ARGUMENT
        );
        let rank = secc_model_input_rank(m, 0);
        let mut dims = vec![0i64; rank];
        assert_eq!(secc_model_input_shape(m, 0, dims.as_mut_ptr()), SECC_OK);
        assert_eq!(dims[0], -1, "the batch is symbolic");
        assert_eq!(
            secc_model_input_shape(m, 0, std::ptr::null_mut()),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert_eq!(secc_model_output_dtype(m, 0), SECC_DTYPE_F32);

        let mut s: *mut SeccSession = std::ptr::null_mut();
        assert_eq!(
            secc_session_new(std::ptr::null(), 1, &mut s),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert_eq!(secc_session_new(m, 1, &mut s), SECC_OK);
        let mut out = SeccTensor {
            data: std::ptr::null(),
            shape: std::ptr::null(),
            rank: 0,
        };
        assert_eq!(
            secc_session_output(s, 0, &mut out),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("has not run"), "{}", last_error());
        assert_eq!(
            secc_session_run(std::ptr::null_mut(), std::ptr::null(), 0),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            secc_session_run(s, std::ptr::null(), 1),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            secc_session_run(s, std::ptr::null(), 0),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("1 input(s)"), "{}", last_error());

        dims[0] = 2;
        let n: i64 = dims.iter().product();
        let data = vec![0.25f32; n as usize];
        let mut t = SeccTensor {
            data: data.as_ptr(),
            shape: dims.as_ptr(),
            rank,
        };
        // a wrong extent: the runtime's shape message
        dims[1] += 1;
        assert_eq!(secc_session_run(s, &t, 1), SECC_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("expected shape"), "{}", last_error());
        dims[1] -= 1;
        let mut neg = dims.clone();
        neg[2] = -3;
        t.shape = neg.as_ptr();
        assert_eq!(secc_session_run(s, &t, 1), SECC_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("negative"), "{}", last_error());
        t.shape = dims.as_ptr();
        t.data = std::ptr::null();
        assert_eq!(secc_session_run(s, &t, 1), SECC_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("data is NULL"), "{}", last_error());
        t.data = data.as_ptr();
        assert_eq!(secc_session_run(s, &t, 1), SECC_OK, "{}", last_error());
        assert_eq!(secc_session_output(s, 0, &mut out), SECC_OK);
        assert_eq!(std::slice::from_raw_parts(out.shape, out.rank), &dims[..]);
        assert_eq!(
            secc_session_output(s, 1, &mut out),
            SECC_ERR_INVALID_ARGUMENT
        );
        let mut i64_out = SeccTensorI64 {
            data: std::ptr::null(),
            shape: std::ptr::null(),
            rank: 0,
        };
        assert_eq!(
            secc_session_output_i64(s, 0, &mut i64_out),
            SECC_ERR_INVALID_ARGUMENT
        );
        let mut copy = vec![0f32; n as usize];
        assert_eq!(
            secc_session_output_copy(s, 0, copy.as_mut_ptr(), copy.len() - 1),
            SECC_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            secc_session_output_copy(s, 0, copy.as_mut_ptr(), copy.len()),
            SECC_OK
        );
        assert_eq!(copy, std::slice::from_raw_parts(out.data, copy.len()));

        // the model may be freed before its sessions
        secc_model_free(m);
        assert_eq!(secc_session_run(s, &t, 1), SECC_OK, "{}", last_error());
        secc_session_free(s);
        secc_session_free(std::ptr::null_mut());
        secc_model_free(std::ptr::null_mut());
        assert!(!CStr::from_ptr(secc_version()).to_bytes().is_empty());
    }
}
