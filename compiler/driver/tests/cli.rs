//! The CLI as a user drives it: exact command spellings from the foundation issue.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn secc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secc"))
        .args(args)
        .output()
        .expect("run secc")
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/models")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn compile_inspect_run_bench() {
    let d = tempfile::tempdir().unwrap();
    let model = models().join("se_torchvision.onnx");
    let bin = d.path().join("se.bin");
    ok(&secc(&[s(&model), "-o", s(&bin)]));
    let j: serde_json::Value =
        serde_json::from_str(&ok(&secc(&["inspect", s(&bin), "--json"]))).unwrap();
    assert_eq!(j["se_blocks"], 1);
    assert_eq!(j["format_version"], secc_artifact::FORMAT_VERSION);
    assert_eq!(j["inputs"][0]["name"], "x");
    assert_eq!(
        j["inputs"][0]["shape"],
        serde_json::json!(["batch", 40, 25, 19])
    );
    assert_eq!(j["kernels"][0]["kind"], "squeeze_excite");
    assert!(j["arena_bytes"].as_u64().is_some());
    assert!(
        j["targets"][0]["triple"]
            .as_str()
            .unwrap()
            .contains("x86_64")
            || cfg!(not(target_arch = "x86_64"))
    );
    let out = d.path().join("out");
    let input = format!("x={}", s(&models().join("se_torchvision.in0.npy")));
    ok(&secc(&[
        "run",
        s(&bin),
        "--input",
        &input,
        "--output-dir",
        s(&out),
    ]));
    assert!(out.join("mul_15.npy").exists());
    let j: serde_json::Value = serde_json::from_str(&ok(&secc(&[
        "run",
        s(&bin),
        "--input",
        &input,
        "--threads",
        "2",
        "--bench",
        "20",
        "--json",
    ])))
    .unwrap();
    for k in ["median_us", "p90_us", "iterations", "threads"] {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    assert_eq!(j["threads"], 2);
    assert_eq!(j["iterations"], 20);
}

#[test]
fn print_after_all_and_ptx_target() {
    let model = models().join("se_mobilenetv3.onnx");
    let text = ok(&secc(&[s(&model), "--print-after", "all"]));
    for p in ["import", "remove-identity", "const-fold", "se-fuse", "dce"] {
        assert!(
            text.contains(&format!("IR after {p} ")),
            "no dump after {p}"
        );
    }
    assert!(text.contains("squeeze_excite("));
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("se.ptx.bin");
    ok(&secc(&[s(&model), "-o", s(&bin), "--target", "cuda"]));
    let j: serde_json::Value =
        serde_json::from_str(&ok(&secc(&["inspect", s(&bin), "--json"]))).unwrap();
    assert_eq!(j["targets"][0]["kind"], "cuda");
    let o = secc(&[
        "run",
        s(&bin),
        "--input",
        &format!("x={}", s(&models().join("se_mobilenetv3.in0.npy"))),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("targets CUDA"));
}

#[test]
fn output_names_are_sanitised_and_portable_cpu_works() {
    let d = tempfile::tempdir().unwrap();
    // nm_gate_shared has two outputs
    let model = models().join("nm_gate_shared.onnx");
    let bin = d.path().join("m.bin");
    ok(&secc(&[s(&model), "-o", s(&bin), "--cpu", "x86-64-v3"]));
    let out = d.path().join("o");
    ok(&secc(&[
        "run",
        s(&bin),
        "-i",
        s(&models().join("nm_gate_shared.in0.npy")),
        "--output-dir",
        s(&out),
    ]));
    assert!(out.join("mul_15.npy").exists() && out.join("sigmoid_13.npy").exists());
}

#[test]
fn errors_are_clear_and_nothing_is_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.onnx");
    std::fs::copy(models().join("se_torchvision.onnx"), &model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let o = secc(&[s(&model), "-o", s(&model)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to write"));
    assert_eq!(std::fs::read(&model).unwrap(), before);
    let o = secc(&[
        s(&models().join("bad/unsupported_ops.onnx")),
        "-o",
        s(&d.path().join("x.bin")),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("my_lrn") && e.contains("my_lpnorm"),
        "{e}"
    );
    assert!(!d.path().join("x.bin").exists());
    // an existing file that is not an artifact is not overwritten without --force
    let precious = d.path().join("notes.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let o = secc(&[s(&model), "-o", s(&precious)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    // an earlier artifact is replaced
    let bin = d.path().join("m.bin");
    ok(&secc(&[s(&model), "-o", s(&bin)]));
    ok(&secc(&[s(&model), "-o", s(&bin)]));
    let o = secc(&[
        s(&models().join("bad/garbage.onnx")),
        "-o",
        s(&d.path().join("y.bin")),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("error:"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

#[test]
fn too_large_models_are_refused_and_kernels_can_be_profiled() {
    let d = tempfile::tempdir().unwrap();
    let big = models().join("bad/huge_tensors.onnx");
    let bin = d.path().join("big.bin");
    let o = secc(&[s(&big), "-o", s(&bin), "--max-memory", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("model too large") && err.contains("big_sigmoid"),
        "{err}"
    );
    assert!(!bin.exists(), "no artifact may be written");
    // --profile lists every kernel with its time
    let model = models().join("se_residual.onnx");
    let bin = d.path().join("se.bin");
    ok(&secc(&[s(&model), "-o", s(&bin)]));
    let x = models().join("se_residual.in0.npy");
    let out = ok(&secc(&[
        "run",
        s(&bin),
        "--input",
        s(&x),
        "--profile",
        "3",
        "--warmup",
        "1",
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ks = j["kernels"].as_array().unwrap();
    assert!(ks.iter().any(|k| k["kind"] == "squeeze_excite"), "{out}");
    assert!(ks.iter().all(|k| k["mean_us"].as_f64().unwrap() >= 0.0));
}

/// int64 outputs (a returned shape with the batch in it, a size, MaxPool indices) are
/// written as int64 .npy files with the run's batch size.
#[test]
fn int64_outputs_are_written_as_int64_npy() {
    let d = tempfile::tempdir().unwrap();
    for (name, want) in [
        (
            "ops_shape_output",
            vec![("shape_1.npy", "(4,)"), ("size_5.npy", "()")],
        ),
        (
            "ops_maxpool_indices",
            vec![("maxpool_2.npy", "(2, 3, 6, 5)")],
        ),
    ] {
        let bin = d.path().join(format!("{name}.bin"));
        ok(&secc(&[
            s(&models().join(format!("{name}.onnx"))),
            "-o",
            s(&bin),
        ]));
        let out = d.path().join(name);
        let mut args = vec!["run".to_string(), s(&bin).into()];
        for i in 0..2 {
            let p = models().join(format!("{name}.in{i}.npy"));
            if p.exists() {
                let input = if name == "ops_shape_output" {
                    "x"
                } else {
                    ["x", "s"][i]
                };
                args.extend(["--input".into(), format!("{input}={}", s(&p))]);
            }
        }
        args.extend(["--output-dir".into(), s(&out).into()]);
        let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        ok(&secc(&args));
        for (file, shape) in want {
            let b = std::fs::read(out.join(file)).unwrap();
            let h = String::from_utf8_lossy(&b[..128.min(b.len())]).into_owned();
            assert!(
                h.contains("'descr': '<i8'") && h.contains(&format!("'shape': {shape}")),
                "{file}: {h}"
            );
        }
        if name == "ops_shape_output" {
            // batch 2 (the fixture input): Shape = [2, 3, 4, 5], Size = 120
            let b = std::fs::read(out.join("shape_1.npy")).unwrap();
            let vals: Vec<i64> = b[b.len() - 32..]
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(vals, [2, 3, 4, 5]);
            let b = std::fs::read(out.join("size_5.npy")).unwrap();
            assert_eq!(
                i64::from_le_bytes(b[b.len() - 8..].try_into().unwrap()),
                120
            );
            // without --output-dir the values are printed
            let text = ok(&secc(&args[..args.len() - 2]));
            assert!(text.contains("shape_1: shape [4] [2, 3, 4, 5]"), "{text}");
        }
    }
}
