//! The tools of issue 13: `secc explain`, `secc check`, `secc dot`, and the CLI habits (one
//! JSON style, errors as JSON, help with an example, exit codes, .npz and cast inputs).
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
mod common;
use common::{models, ok, s, secc};

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", o))
}

/// Every `*.onnx` in `dir` whose name starts with `prefix`, sorted.
fn onnx(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "onnx")
                && p.file_name().unwrap().to_str().unwrap().starts_with(prefix)
        })
        .collect();
    v.sort();
    v
}

fn explain(model: &Path) -> Vec<Value> {
    let j = json(&secc(&["explain", s(model), "--json"]));
    j["candidates"].as_array().unwrap().clone()
}

#[test]
fn explain_names_each_near_miss_pool_and_its_reason() {
    // (fixture, pool node, reason code, words the reason must contain)
    let want: &[(&str, &str, &str, &[&str])] = &[
        (
            "nm_classifier",
            "GlobalAveragePool_2",
            "no_excitation",
            &["Gemm_8", "classifier"],
        ),
        (
            "nm_gate_shared",
            "GlobalAveragePool_2",
            "other_consumer",
            &["Sigmoid_14", "Mul_16", "graph output"],
        ),
        (
            "nm_other_tensor",
            "GlobalAveragePool_2",
            "other_tensor",
            &["\"z\"", "\"x\"", "Mul_16"],
        ),
    ];
    for (name, pool, code, words) in want {
        let cs = explain(&models().join(format!("{name}.onnx")));
        assert_eq!(cs.len(), 1, "{name}: {cs:?}");
        let c = &cs[0];
        assert_eq!(c["kind"], "pool", "{name}");
        assert!(c["node"].as_str().unwrap().contains(pool), "{name}: {c}");
        assert_eq!(c["fused"], false, "{name}");
        assert_eq!(c["reason_code"], *code, "{name}: {c}");
        let reason = c["reason"].as_str().unwrap();
        for w in *words {
            assert!(reason.contains(w), "{name}: {w:?} not in {reason:?}");
        }
    }
    // SiLU alone has no pool and no per-channel gate
    assert!(explain(&models().join("nm_silu_alone.onnx")).is_empty());
    let text = ok(&secc(&[
        "explain",
        s(&models().join("nm_other_tensor.onnx")),
    ]));
    assert!(
        text.contains("not fused: the gate multiplies graph input \"z\""),
        "{text}"
    );
}

#[test]
fn explain_says_fused_for_every_se_fixture() {
    let fixtures = onnx(&models(), "se_");
    assert!(fixtures.len() >= 15);
    for m in fixtures {
        let cs = explain(&m);
        assert!(!cs.is_empty(), "{}: no candidates", m.display());
        for (k, c) in cs.iter().enumerate() {
            assert_eq!(c["fused"], true, "{}: {c}", m.display());
            assert_eq!(c["block"], k + 1, "{}: {c}", m.display());
            assert!(c["mul"].as_str().is_some() && c["reason"].is_null());
        }
        let text = ok(&secc(&["explain", s(&m)]));
        assert!(text.contains("fused as SE block 1"), "{text}");
    }
}

#[test]
fn explain_on_exporter_networks_fuses_the_counted_blocks() {
    for m in onnx(&models().join("exporters"), "") {
        let want: usize = std::fs::read_to_string(m.with_extension("se_blocks"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let cs = explain(&m);
        let fused = cs.iter().filter(|c| c["fused"] == true).count();
        assert_eq!(fused, want, "{}: {cs:?}", m.display());
        for c in cs.iter().filter(|c| c["fused"] == false) {
            assert!(!c["reason"].as_str().unwrap().is_empty());
        }
    }
}

#[test]
fn check_passes_on_every_fixture_and_network() {
    let mut all = onnx(&models(), "");
    all.extend(onnx(&models().join("exporters"), ""));
    let nets = models().join("networks");
    if nets.is_dir() {
        all.extend(onnx(&nets, ""));
    } else if std::env::var_os("SECC_REQUIRE_NETWORKS").is_some() {
        panic!("SECC_REQUIRE_NETWORKS is set but tests/models/networks is missing");
    } else {
        eprintln!("SKIPPED networks: run `.venv/bin/python tests/models/gen_networks.py`");
    }
    for m in &all {
        let j = json(&secc(&["check", s(m), "--json", "--threads", "2"]));
        assert_eq!(j["ok"], true, "{}: {j}", m.display());
        let cases = j["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            for o in c["outputs"].as_array().unwrap() {
                assert!(
                    o["max_rel"].as_f64().unwrap() <= 1e-4,
                    "{}: {o}",
                    m.display()
                );
            }
        }
    }
}

#[test]
fn check_fails_naming_the_output_when_weights_were_changed() {
    let m = models().join("se_conv_bn.onnx");
    let o = secc(&["check", s(&m), "--perturb-weights"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("over the tolerance") && err.contains("\"relu_40\""),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));
    // with --json: one report on stdout, ok false, no second document
    let o = secc(&["check", s(&m), "--perturb-weights", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["cases"][0]["outputs"][0]["name"], "relu_40");
    assert_eq!(j["cases"][0]["outputs"][0]["ok"], false);
}

#[test]
fn check_against_a_reference_directory() {
    let d = tempfile::tempdir().unwrap();
    let m = models().join("se_torchvision.onnx");
    // an ONNX-style test directory of .npy files: ONNX Runtime's outputs pass...
    let set = d.path().join("test_data_set_0");
    std::fs::create_dir(&set).unwrap();
    std::fs::copy(
        models().join("se_torchvision.in0.npy"),
        set.join("input_0.npy"),
    )
    .unwrap();
    std::fs::copy(
        models().join("se_torchvision.ort0.npy"),
        set.join("output_0.npy"),
    )
    .unwrap();
    let j = json(&secc(&[
        "check",
        s(&m),
        "--reference",
        s(d.path()),
        "--json",
    ]));
    assert_eq!(j["ok"], true, "{j}");
    // ...and altered ones fail, naming the output
    let other = models().join("se_conv_bn.ort0.npy");
    let bad = d.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::copy(
        models().join("se_torchvision.in0.npy"),
        bad.join("input_0.npy"),
    )
    .unwrap();
    std::fs::copy(&other, bad.join("output_0.npy")).unwrap();
    let o = secc(&["check", s(&m), "--reference", s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mul_15"), "{err}");
}

#[test]
fn check_input_shape_fixes_symbolic_dims_only() {
    let m = models().join("se_torchvision.onnx");
    let j = json(&secc(&[
        "check",
        s(&m),
        "--input-shape",
        "x=2,40,25,19",
        "--json",
    ]));
    assert_eq!(j["cases"][0]["outputs"][0]["shape"][0], 2);
    assert_eq!(j["cases"].as_array().unwrap().len(), 1);
    let o = secc(&["check", s(&m), "--input-shape", "x=2,40,25,20"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dimension 3 of input \"x\" is 19, not 20"),
        "{err}"
    );
}

#[test]
fn compile_input_shape_fixes_the_batch_and_names_bad_flags() {
    let m = models().join("se_torchvision.onnx");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.bin");
    // `?` keeps the batch symbolic; a number fixes it
    let o = secc(&[s(&m), "-o", s(&out), "--input-shape", "x=?,40,25,19"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&secc(&["inspect", s(&out), "--json"]));
    assert!(j["inputs"][0]["shape"][0].is_string(), "{j}");
    let o = secc(&[s(&m), "-o", s(&out), "--input-shape", "x=3,40,25,19"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&secc(&["inspect", s(&out), "--json"]));
    assert_eq!(j["inputs"][0]["shape"][0], 3, "{j}");
    for (flag, want) in [
        ("y=1,40,25,19", "no input named \"y\" (inputs: x)"),
        ("x=1,40,25", "3 dimensions given, input \"x\" has rank 4"),
        ("x=1,40,0,19", "integers >= 1 or ?"),
        ("x", "expected NAME=D0,D1"),
    ] {
        let o = secc(&[s(&m), "-o", s(&out), "--input-shape", flag]);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{flag}: {err}");
    }
}

/// Graphviz's `dot`, or None (then the test is skipped, unless CI requires it).
fn graphviz() -> Option<()> {
    let found = Command::new("dot").arg("-V").output().is_ok();
    if !found {
        let required =
            std::env::var_os("SECC_REQUIRE_NETWORKS").is_some() || std::env::var_os("CI").is_some();
        assert!(!required, "Graphviz's dot is missing; run scripts/setup.sh");
        eprintln!("SKIPPED: Graphviz's dot not found (run scripts/setup.sh)");
        return None;
    }
    Some(())
}

#[test]
fn dot_output_parses_for_every_fixture_before_and_after_se_fuse() {
    let Some(()) = graphviz() else { return };
    let d = tempfile::tempdir().unwrap();
    for m in onnx(&models(), "") {
        for after in ["affine-fold", "se-fuse", "fuse-elementwise"] {
            let f = d.path().join("g.dot");
            ok(&secc(&["dot", s(&m), "--after", after, "-o", s(&f)]));
            let o = Command::new("dot").arg("-Tsvg").arg(&f).output().unwrap();
            assert!(
                o.status.success(),
                "{} after {after}: {}",
                m.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    // SE blocks are clusters before fusion and the fused node after it
    let m = models().join("se_two_blocks.onnx");
    let before = ok(&secc(&["dot", s(&m), "--after", "affine-fold"]));
    assert!(before.contains("cluster_se1") && before.contains("cluster_se2"));
    let after = ok(&secc(&["dot", s(&m)]));
    assert!(after.contains("squeeze_excite") && after.contains("cluster_se2"));
    let svg = d.path().join("g.svg");
    ok(&secc(&["dot", s(&m), "-o", s(&svg)]));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn dot_rejects_unknown_passes() {
    let o = secc(&[
        "dot",
        s(&models().join("se_conv_bn.onnx")),
        "--after",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown pass \"nope\""));
}

#[test]
fn json_outputs_and_json_errors_parse() {
    let d = tempfile::tempdir().unwrap();
    let m = models().join("se_torchvision.onnx");
    let bin = d.path().join("m.bin");
    let j = json(&secc(&[s(&m), "-o", s(&bin), "--json"]));
    assert_eq!(j["se_blocks"], 1);
    assert!(j["timings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["stage"] == "codegen: LLVM O3"));
    let j = json(&secc(&["inspect", s(&bin), "--json"]));
    assert_eq!(j["se_blocks"], 1);
    let j = json(&secc(&["run", s(&bin), "--random-inputs", "--json"]));
    assert_eq!(j["outputs"][0]["shape"], serde_json::json!([1, 40, 25, 19]));
    let j = json(&secc(&[
        "run",
        s(&bin),
        "--random-inputs",
        "--batch",
        "2",
        "--bench",
        "5",
        "--json",
    ]));
    for k in [
        "mean_us",
        "median_us",
        "p90_us",
        "p99_us",
        "min_us",
        "max_us",
        "model",
    ] {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    assert_eq!(j["batch"], 2);
    // an error with --json is a JSON object on stdout, exit status 1
    let o = secc(&["inspect", s(&m), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["error"].as_str().unwrap().contains("reading"), "{j}");
    // usage errors exit 2
    assert_eq!(secc(&["run"]).status.code(), Some(2));
}

#[test]
fn npz_and_float64_inputs_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let m = models().join("se_torchvision.onnx");
    let bin = d.path().join("m.bin");
    ok(&secc(&[s(&m), "-o", s(&bin)]));
    // a float64 .npy (header rewritten, data widened) is cast with a note
    let f32s = std::fs::read(models().join("se_torchvision.in0.npy")).unwrap();
    let hl = u16::from_le_bytes([f32s[8], f32s[9]]) as usize;
    let header = String::from_utf8_lossy(&f32s[10..10 + hl]).replace("<f4", "<f8");
    let mut f64s = b"\x93NUMPY\x01\x00".to_vec();
    f64s.extend((header.len() as u16).to_le_bytes());
    f64s.extend(header.bytes());
    for c in f32s[10 + hl..].chunks_exact(4) {
        f64s.extend((f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes());
    }
    let p64 = d.path().join("x64.npy");
    std::fs::write(&p64, &f64s).unwrap();
    let o = secc(&["run", s(&bin), "--input", s(&p64), "--json"]);
    let a = json(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cast from float64 to float32"));
    // the same array in a .npz (stored, as np.savez writes it) gives the same output
    let npz = d.path().join("x.npz");
    {
        use std::io::Write;
        let mut z = zip_writer(&npz);
        z.write_all(&f32s).unwrap();
        z.finish().unwrap();
    }
    let b = json(&secc(&["run", s(&bin), "--input", s(&npz), "--json"]));
    assert_eq!(a["outputs"], b["outputs"]);
}

/// A .npz with one member `x.npy`; write its bytes, then `finish`.
fn zip_writer(p: &Path) -> zip::ZipWriter<std::fs::File> {
    let mut z = zip::ZipWriter::new(std::fs::File::create(p).unwrap());
    let o =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("x.npy", o).unwrap();
    z
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in ["compile", "run", "inspect", "explain", "check", "dot"] {
        let h = ok(&secc(&[sub, "--help"]));
        assert!(h.contains("Example:\n  secc "), "{sub}: {h}");
    }
    let h = ok(&secc(&["--help"]));
    assert!(h.contains("Exit status: 0 success, 1 error"), "{h}");
    for sub in ["explain", "check", "dot"] {
        assert!(h.contains(sub), "{sub} not listed: {h}");
    }
}
