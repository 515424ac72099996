//! The CLI as a user drives it: exact command spellings from the foundation issue.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use std::path::Path;
use std::process::{Command, Output};
mod common;
use common::{models, ok, s, secc};

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
    // on a machine with a GPU it runs (tests/cuda.rs); without one it says why it cannot
    if secc_runtime::cuda_devices().is_ok_and(|n| n > 0) {
        ok(&o);
    } else {
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("GPU: "));
    }
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

/// Runs secc with a deadline: a hang is a test failure, not a stuck CI job.
fn secc_within(args: &[&str], secs: u64) -> Output {
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_secc"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run secc");
    let end = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("secc {args:?} still running after {secs} s (hangs)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().expect("mkfifo");
    assert!(st.success());
}

fn err_of(o: &Output) -> String {
    assert!(!o.status.success(), "unexpectedly succeeded");
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn output_that_is_not_a_regular_file_is_refused_with_or_without_force() {
    use std::os::unix::fs::FileTypeExt;
    let d = tempfile::tempdir().unwrap();
    let model = models().join("se_torchvision.onnx");
    let art = d.path().join("good.bin");
    ok(&secc(&[s(&model), "-o", s(&art)]));
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let link = d.path().join("link.bin");
    std::os::unix::fs::symlink(&art, &link).unwrap();
    let sock = d.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let dir = d.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    // a character device of our own, where the system lets us make one (root with CAP_MKNOD)
    let dev = d.path().join("null");
    let have_dev = Command::new("mknod")
        .args([s(&dev), "c", "1", "3"])
        .status()
        .is_ok_and(|st| st.success());
    let mut cases = vec![
        (&fifo, "FIFO"),
        (&link, "symbolic link"),
        (&sock, "socket"),
        (&dir, "directory"),
    ];
    if have_dev {
        cases.push((&dev, "character device"));
    } else {
        eprintln!("SKIPPED device case: mknod not permitted");
    }
    for (p, what) in cases {
        for force in [false, true] {
            let mut args = vec![s(&model), "-o", s(p)];
            if force {
                args.push("--force");
            }
            let e = err_of(&secc_within(&args, 60));
            assert!(e.contains(what) && e.contains(s(p)), "{what}: {e}");
        }
    }
    let ft = |p: &Path| std::fs::symlink_metadata(p).unwrap().file_type();
    assert!(ft(&fifo).is_fifo() && ft(&link).is_symlink() && ft(&sock).is_socket());
    assert!(!have_dev || ft(&dev).is_char_device());
    // no temporary file is left behind
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn external_data_next_to_a_bare_model_name_is_found() {
    let d = tempfile::tempdir().unwrap();
    for f in ["external_ok.onnx", "external_ok.weights"] {
        std::fs::copy(models().join("bad").join(f), d.path().join(f)).unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_secc"))
        .args(["external_ok.onnx", "-o", "x.bin"])
        .current_dir(d.path())
        .output()
        .unwrap();
    ok(&o);
    assert!(d.path().join("x.bin").exists());
}

#[test]
fn unknown_cpu_and_arch_names_are_errors_listing_the_valid_ones() {
    let d = tempfile::tempdir().unwrap();
    let model = models().join("se_torchvision.onnx");
    let bin = d.path().join("m.bin");
    // pentium4 is a real LLVM CPU, but 32-bit only: LLVM aborts on it for x86-64
    for cpu in ["pentium9000", "pentium4"] {
        let e = err_of(&secc(&[s(&model), "-o", s(&bin), "--cpu", cpu]));
        assert!(
            e.contains(&format!("{cpu:?}")) && e.contains("x86-64-v3") && e.contains("skylake"),
            "{e}"
        );
        assert!(
            !e.contains("LLVM ERROR") && !e.contains("is not a recognized"),
            "{e}"
        );
    }
    for arch in ["foo", "sm_90a", "sm_30"] {
        let e = err_of(&secc(&[
            s(&model),
            "-o",
            s(&bin),
            "--target",
            "cuda",
            "--arch",
            arch,
        ]));
        assert!(
            e.contains(&format!("{arch:?}")) && e.contains("sm_80") && e.contains("sm_90"),
            "{e}"
        );
    }
    assert!(!bin.exists());
    ok(&secc(&[s(&model), "-o", s(&bin), "--cpu", "x86-64-v2"]));
    ok(&secc(&[
        s(&model),
        "-o",
        s(&bin),
        "--target",
        "cuda",
        "--arch",
        "sm_90",
    ]));
}

#[test]
fn fix_dim_of_an_unknown_name_or_zero_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let model = models().join("se_torchvision.onnx");
    let bin = d.path().join("m.bin");
    let e = err_of(&secc(&[s(&model), "-o", s(&bin), "--fix-dim", "N=1"]));
    assert!(e.contains("\"N\"") && e.contains("batch"), "{e}");
    let e = err_of(&secc(&[s(&model), "-o", s(&bin), "--fix-dim", "batch=0"]));
    assert!(e.contains("batch=0") && e.contains("at least 1"), "{e}");
    assert!(!bin.exists());
    ok(&secc(&[s(&model), "-o", s(&bin), "--fix-dim", "batch=2"]));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("m.bin");
    ok(&secc(&[
        s(&models().join("se_torchvision.onnx")),
        "-o",
        s(&bin),
    ]));
    let input = format!("x={}", s(&models().join("se_torchvision.in0.npy")));
    let cases: [&[&str]; 3] = [
        &["inspect", s(&bin)],
        &["inspect", s(&bin), "--json"],
        &["run", s(&bin), "--input", &input],
    ];
    for args in cases {
        for _ in 0..3 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_secc"))
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take()); // the reader goes away before secc writes
            let o = child.wait_with_output().unwrap();
            let e = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "{args:?}: {e}");
            assert!(e.is_empty(), "{args:?}: {e}");
        }
    }
}

#[test]
fn output_file_names_are_escaped_reversibly_and_never_replace_other_things() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("m.bin");
    ok(&secc(&[
        s(&models().join("cli/awkward_names.onnx")),
        "-o",
        s(&bin),
    ]));
    let x = d.path().join("x.npy");
    let xs: Vec<f32> = (0..24).map(|i| i as f32 / 8.0 - 1.4).collect();
    ndarray_npy::write_npy(
        &x,
        &ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3, 2, 2]), xs.clone()).unwrap(),
    )
    .unwrap();
    let out = d.path().join("out");
    let j: serde_json::Value = serde_json::from_str(&ok(&secc(&[
        "run",
        s(&bin),
        "-i",
        s(&x),
        "--output-dir",
        s(&out),
        "--json",
    ])))
    .unwrap();
    let want = [
        ("a/b", "a%2Fb.npy", f32::max(xs[5], 0.0)),
        ("a:b", "a%3Ab.npy", 1.0 / (1.0 + (-xs[5]).exp())),
        ("a_b", "a_b.npy", xs[5].tanh()),
        ("a%2Fb", "a%252Fb.npy", xs[5].exp()),
    ];
    for (i, (name, file, v)) in want.into_iter().enumerate() {
        assert_eq!(j["outputs"][i]["name"], name, "{j}");
        assert_eq!(j["outputs"][i]["file"], s(&out.join(file)), "{j}");
        let a: ndarray::ArrayD<f32> = ndarray_npy::read_npy(out.join(file)).unwrap();
        let got = a.as_slice().unwrap()[5];
        assert!((got - v).abs() < 1e-5, "{name}: {got} vs {v}");
    }
    // an output path that is not a regular file is refused (and a FIFO does not block)
    let out2 = d.path().join("out2");
    std::fs::create_dir(&out2).unwrap();
    mkfifo(&out2.join("a_b.npy"));
    let e = err_of(&secc_within(
        &["run", s(&bin), "-i", s(&x), "--output-dir", s(&out2)],
        60,
    ));
    assert!(e.contains("FIFO") && e.contains("a_b.npy"), "{e}");
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

/// `inspect` of a dynamic-size model names its symbols and lists the constraints the
/// runtime checks (text and JSON), with the memory plan at batch 1 and image sides of 224;
/// constraints true at every size (a padded window's) are not listed.
#[test]
fn inspect_shows_symbolic_dims_and_constraints() {
    let d = tempfile::tempdir().unwrap();
    let inspect = |name: &str| {
        let model = models().join("dynamic").join(format!("{name}.onnx"));
        let bin = d.path().join(format!("{name}.bin"));
        ok(&secc(&[s(&model), "-o", s(&bin)]));
        let text = ok(&secc(&["inspect", s(&bin)]));
        let j: serde_json::Value =
            serde_json::from_str(&ok(&secc(&["inspect", s(&bin), "--json"]))).unwrap();
        (text, j)
    };
    let (text, j) = inspect("ppocr_cls");
    assert!(text.contains("input \"x\": f32[N,3,48,W]"), "{text}");
    assert!(text.contains("memory at N=1, W=224"), "{text}");
    assert!(!text.contains("require"), "{text}");
    assert_eq!(
        j["inputs"][0]["shape"],
        serde_json::json!(["N", 3, 48, "W"])
    );
    assert_eq!(j["constraints"], serde_json::json!([]));
    assert_eq!(j["sized_at"], serde_json::json!(["N=1", "W=224"]));
    // the detector's FPN adds maps of 1/4 .. 1/32 scale: sides must agree after rounding
    let (text, j) = inspect("ppocr_det");
    assert!(
        text.contains(
            "require (x.2 - 1) / 16 + 1 == ((x.2 - 1) / 32) * 2 + 2  (node \"Add_916\" (add))"
        ),
        "{text}"
    );
    let c = j["constraints"].as_array().unwrap();
    assert_eq!(c.len(), 12, "{j}");
    assert_eq!(c[0]["rel"], "==");
    assert!(c[0]["origin"].as_str().unwrap().starts_with("node \""));
}

/// `run --random-inputs` of a dynamic-size model: image sides 224 by default, the batch from
/// `--batch`, and `--input-shape` for any other size; bad shapes name the input and the
/// dimension.
#[test]
fn run_random_inputs_of_a_dynamic_model_take_input_shapes() {
    let d = tempfile::tempdir().unwrap();
    let model = models().join("dynamic").join("ppocr_cls.onnx");
    let bin = d.path().join("cls.bin");
    ok(&secc(&[s(&model), "-o", s(&bin)]));
    let shape = |args: &[&str]| {
        let mut a = vec!["run", s(&bin), "--random-inputs", "--json"];
        a.extend_from_slice(args);
        let j: serde_json::Value = serde_json::from_str(&ok(&secc(&a))).unwrap();
        j["outputs"][0]["shape"].clone()
    };
    // the classifier's output is [N, 2] whatever the width; the width shows in the error
    assert_eq!(shape(&[]), serde_json::json!([1, 2]));
    assert_eq!(shape(&["--batch", "3"]), serde_json::json!([3, 2]));
    assert_eq!(
        shape(&["--input-shape", "x=2,3,48,97"]),
        serde_json::json!([2, 2])
    );
    assert_eq!(
        shape(&["--batch", "2", "--input-shape", "x=?,3,48,50"]),
        serde_json::json!([2, 2])
    );
    for (flag, want) in [
        (
            "x=1,3,40,97",
            "dimension 2 is 40, but the model requires 48",
        ),
        ("y=1,3,48,97", "no input named \"y\" (inputs: x)"),
        ("x=1,3,48", "3 dimensions given, input \"x\" has rank 4"),
    ] {
        let o = secc(&["run", s(&bin), "--random-inputs", "--input-shape", flag]);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert!(err_of(&o).contains(want), "{flag}: {}", err_of(&o));
    }
    // the narrowest image runs too (every convolution is padded)
    assert_eq!(
        shape(&["--input-shape", "x=1,3,48,1"]),
        serde_json::json!([1, 2])
    );
    // without --random-inputs the flag is a usage error
    let o = secc(&["run", s(&bin), "--input-shape", "x=1,3,48,97"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn no_winograd_keeps_convolutions_direct() {
    let d = tempfile::tempdir().unwrap();
    let model = models().join("cli/conv3x3.onnx");
    let bin = d.path().join("c.bin");
    let plan = |extra: &[&str]| {
        let mut args = vec![s(&model), "-o", s(&bin), "--print-after", "plan"];
        args.extend_from_slice(extra);
        ok(&secc(&args))
    };
    assert!(
        plan(&[]).contains("wino_gemm"),
        "the 3x3 layer takes a Winograd form"
    );
    let direct = plan(&["--no-winograd"]);
    assert!(!direct.contains("wino_"), "{direct}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&secc(&["inspect", s(&bin), "--json"]))).unwrap();
    let kinds: Vec<&str> = j["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..2],
        ["conv2d_blocked", "conv2d_blocked"],
        "{kinds:?}"
    );
    for extra in [&[][..], &["--no-winograd"][..]] {
        let mut args = vec!["check", s(&model)];
        args.extend_from_slice(extra);
        assert!(ok(&secc(&args)).contains("ok: every output within"));
    }
}
