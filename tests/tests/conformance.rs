//! ONNX backend node conformance: the ONNX project's own node tests
//! (`onnx/backend/test/data/node/*` from the onnx 1.22.0 wheel, unpacked by
//! `scripts/setup.sh` into `.tools/onnx-node/`), for every op secc supports.
//!
//! Each test's model is imported, run through the default pass pipeline, compiled for the
//! host CPU and run by secc-runtime on the test's inputs; the outputs must match the test's
//! expected outputs within `|got - want| <= ATOL + RTOL * |want|`. The reference interpreter
//! is held to the same bound. Integer and bool inputs (shapes, axes, pads, indices) are bound
//! as constants, since secc folds those at compile time; when the importer needs a float
//! operand to be constant too (Resize scales), the test is retried with every input but the
//! first bound as a constant, and the report lists it. Ops whose float operands secc takes
//! at run time ([`RUNTIME_OPERANDS`]) must pass without that retry. int64 outputs (MaxPool
//! indices, Shape, Size) must match exactly. A test is *skipped*, with the reason
//! recorded, when it needs a float32-only compiler to do what it cannot: non-float32 data,
//! an op other than its own that secc does not support, or an attribute value the importer
//! reports as unsupported. Everything else must pass: a failure fails this test.
//!
//! The per-op report is written to `target/conformance.md`, and to `docs/conformance.md`
//! when `SECC_WRITE_CONFORMANCE=1`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::cpu_opts;
use onnx_protobuf::{Message, ModelProto, TensorProto};
use secc_ir::interp::{self, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Relative tolerance: the ONNX backend runner's default.
const RTOL: f32 = 1e-3;
/// Absolute tolerance (the ONNX runner uses 1e-7; float32 kernels with polynomial exp and
/// reordered sums differ from numpy's float64-then-rounded references by a few ulps of 1).
const ATOL: f32 = 1e-5;

/// A single node test that takes longer than this is reported as stuck (they take
/// milliseconds each).
const STUCK_SECS: u64 = 120;

const FLOAT: i32 = 1;
const INT64: i32 = 7;
const BOOL: i32 = 9;

/// Ops whose float operands beyond the first may be computed at run time (graph inputs in
/// these tests): their tests must pass with those operands as inputs, never by the retry
/// that binds them as constants.
const RUNTIME_OPERANDS: &[&str] = &["BatchNormalization", "Clip", "Pad"];

fn data_dir() -> Option<PathBuf> {
    let d = match std::env::var_os("SECC_ONNX_NODE_TESTS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.tools/onnx-node/onnx/backend/test/data/node"),
    };
    d.is_dir().then_some(d)
}

fn snake(op: &str) -> String {
    let mut s = String::new();
    for (i, c) in op.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

/// The supported op a test exercises: the single node's op, or for function-expanded and
/// other multi-node tests the supported op whose snake-case name prefixes the test name.
fn classify(test: &str, ops: &[String]) -> Option<String> {
    let name = test.strip_prefix("test_").unwrap_or(test);
    if ops.len() == 1 {
        return secc_onnx::SUPPORTED_OPS
            .contains(&ops[0].as_str())
            .then(|| ops[0].clone());
    }
    let mut best: Option<&str> = None;
    for op in secc_onnx::SUPPORTED_OPS {
        let s = snake(op);
        let hit = name == s
            || name
                .strip_prefix(&s)
                .is_some_and(|rest| rest.starts_with('_'));
        // multi-node tests count for an op only when they are its expansion or contain it
        if hit
            && (name.contains("_expanded") || ops.iter().any(|o| o == op))
            && best.is_none_or(|b| s.len() > snake(b).len())
        {
            best = Some(op);
        }
    }
    best.map(str::to_string)
}

fn dtype(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "a non-float32 type",
    }
}

/// An expected int64 output.
fn i64_tensor(t: &TensorProto) -> Result<Tensor, String> {
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let ints: Vec<i64> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        t.int64_data.clone()
    };
    if ints.len() != shape.iter().product::<usize>() {
        return Err("tensor data does not match its shape".into());
    }
    Ok(Tensor::new_i64(shape, ints))
}

/// A float32 tensor, or a bool tensor as 0.0/1.0 (how secc returns comparison results).
fn f32_tensor(t: &TensorProto) -> Result<Tensor, String> {
    if t.data_type == INT64 {
        return i64_tensor(t);
    }
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = if t.data_type == BOOL {
        if !t.raw_data.is_empty() {
            t.raw_data.iter().map(|&b| f32::from(b != 0)).collect()
        } else {
            t.int32_data.iter().map(|&b| f32::from(b != 0)).collect()
        }
    } else if t.data_type != FLOAT {
        return Err(format!("{} tensor", dtype(t.data_type)));
    } else if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if data.len() != shape.iter().product::<usize>() {
        return Err("tensor data does not match its shape".into());
    }
    Ok(Tensor::new(shape, data))
}

enum Outcome {
    Pass,
    /// passed, but only with its float operands bound as constants
    PassBound,
    Skip(String),
    Fail(String),
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape != want.shape || got.dtype != want.dtype {
        return Err(format!(
            "{} {:?}, expected {} {:?}",
            got.dtype.name(),
            got.shape,
            want.dtype.name(),
            want.shape
        ));
    }
    if let Some(i) = (0..got.ints.len()).find(|&i| got.ints[i] != want.ints[i]) {
        return Err(format!(
            "element {i}: got {}, expected {}",
            got.ints[i], want.ints[i]
        ));
    }
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= ATOL + RTOL * b.abs();
        if !ok {
            let e = (a - b).abs();
            if e.is_nan() || e > worst.0 {
                worst = (if e.is_nan() { f32::INFINITY } else { e }, i);
            }
        }
    }
    if worst.0 > 0.0 {
        let i = worst.1;
        return Err(format!(
            "element {i}: got {}, expected {} (|diff| {})",
            got.data[i], want.data[i], worst.0
        ));
    }
    Ok(())
}

/// Runs one test directory.
fn run_test(dir: &Path) -> Outcome {
    let model_bytes = match std::fs::read(dir.join("model.onnx")) {
        Ok(b) => b,
        Err(e) => return Outcome::Fail(format!("cannot read model: {e}")),
    };
    let model = match ModelProto::parse_from_bytes(&model_bytes) {
        Ok(m) => m,
        Err(e) => return Outcome::Fail(format!("cannot parse model: {e}")),
    };
    let g = model.graph.get_or_default();
    let data = dir.join("test_data_set_0");
    let read = |p: PathBuf| -> Result<TensorProto, String> {
        let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        TensorProto::parse_from_bytes(&b).map_err(|e| format!("{}: {e}", p.display()))
    };
    let inits: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|vi| !inits.contains(&vi.name.as_str()))
        .collect();
    let mut in_tensors = Vec::new();
    for (k, vi) in inputs.iter().enumerate() {
        let tt = vi.type_.as_ref();
        if !tt.is_some_and(|t| t.has_tensor_type()) {
            return Outcome::Skip("input is not a tensor (sequence/optional)".into());
        }
        match read(data.join(format!("input_{k}.pb"))) {
            Ok(mut t) => {
                t.name = vi.name.clone();
                in_tensors.push(t);
            }
            Err(e) => return Outcome::Fail(e),
        }
    }
    let mut want = Vec::new();
    for (k, vi) in g.output.iter().enumerate() {
        let et = vi
            .type_
            .as_ref()
            .filter(|t| t.has_tensor_type())
            .map(|t| t.tensor_type().elem_type);
        match et {
            Some(FLOAT | BOOL | INT64) => {}
            Some(t) => return Outcome::Skip(format!("{} output", dtype(t))),
            None => return Outcome::Skip("output is not a tensor".into()),
        }
        match read(data.join(format!("output_{k}.pb"))).and_then(|t| f32_tensor(&t)) {
            Ok(t) => want.push(t),
            Err(e) => return Outcome::Fail(e),
        }
    }
    for t in &in_tensors {
        if t.data_type != FLOAT && !matches!(t.data_type, 6 | 7 | 9) {
            return Outcome::Skip(format!("{} input", dtype(t.data_type)));
        }
    }
    // attempt 1: integer/bool inputs constant; attempt 2: all inputs but the first constant
    let mut last = None;
    for attempt in 0..2 {
        let bind: Vec<bool> = in_tensors
            .iter()
            .enumerate()
            .map(|(k, t)| t.data_type != FLOAT || (attempt == 1 && k > 0))
            .collect();
        if attempt == 1
            && bind
                .iter()
                .zip(&in_tensors)
                .all(|(b, t)| *b == (t.data_type != FLOAT))
        {
            break;
        }
        let mut m = model.clone();
        let mg = m.graph.mut_or_insert_default();
        for (t, &b) in in_tensors.iter().zip(&bind) {
            if b {
                mg.input.retain(|vi| vi.name != t.name);
                mg.initializer.push(t.clone());
            }
        }
        let bytes = m.write_to_bytes().unwrap();
        let outcome = compile_and_run(&bytes, dir, &in_tensors, &bind, &want);
        match outcome {
            Outcome::Pass if attempt == 1 => return Outcome::PassBound,
            Outcome::Skip(ref r) if attempt == 0 && r.contains("must be a constant") => {
                last = Some(outcome);
            }
            o => return o,
        }
    }
    last.unwrap_or_else(|| Outcome::Fail("no attempt ran".into()))
}

fn compile_and_run(
    bytes: &[u8],
    dir: &Path,
    in_tensors: &[TensorProto],
    bind: &[bool],
    want: &[Tensor],
) -> Outcome {
    let mut g = match secc_onnx::import_bytes(bytes, Some(dir), &Default::default()) {
        Ok(g) => g,
        Err(secc_onnx::ImportError::Unsupported(list)) => {
            let msgs: Vec<String> = list.iter().map(|e| e.to_string()).collect();
            return Outcome::Skip(msgs.join("; "));
        }
        Err(e) => {
            let m = e.to_string();
            if m.contains("must be a constant")
                || m.contains("only float32")
                || m.contains("zero-size")
                || (m.contains("opset") && m.contains("is not supported"))
            {
                return Outcome::Skip(m);
            }
            return Outcome::Fail(format!("import: {m}"));
        }
    };
    let ins: Vec<Tensor> = match in_tensors
        .iter()
        .zip(bind)
        .filter(|(_, b)| !**b)
        .map(|(t, _)| f32_tensor(t))
        .collect::<Result<_, _>>()
    {
        Ok(v) => v,
        Err(e) => return Outcome::Fail(e),
    };
    // the reference interpreter, on the graph as imported
    match interp::run(&g, &ins) {
        Ok(outs) => {
            for (k, (a, b)) in outs.iter().zip(want).enumerate() {
                if let Err(e) = close(a, b) {
                    return Outcome::Fail(format!("interpreter output {k}: {e}"));
                }
            }
        }
        Err(e) => return Outcome::Fail(format!("interpreter: {e}")),
    }
    let mut pm = secc_passes::PassManager::new(secc_passes::pipeline::default_pipeline());
    if let Err(e) = pm.run(&mut g, |_, _| {}) {
        return Outcome::Fail(format!("passes: {e}"));
    }
    let art = match secc_codegen::compile(&g, &cpu_opts()) {
        Ok(b) => b,
        Err(secc_codegen::CodegenError::Unsupported { node, msg }) => {
            return Outcome::Skip(format!("codegen: {node}: {msg}"))
        }
        Err(e) => return Outcome::Fail(format!("codegen: {e}")),
    };
    let mut model = match secc_runtime::Model::from_bytes(art).and_then(|m| m.session(1)) {
        Ok(m) => m,
        Err(e) => return Outcome::Fail(format!("load: {e}")),
    };
    let rt_ins: Vec<secc_runtime::Tensor> = ins
        .iter()
        .map(|t| secc_runtime::Tensor::new(t.shape.clone(), t.data.clone()).unwrap())
        .collect();
    let got = match model.run(&rt_ins) {
        Ok(o) => o,
        Err(e) => return Outcome::Fail(format!("run: {e}")),
    };
    if got.len() != want.len() {
        return Outcome::Fail(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        let a = match a.dtype {
            secc_runtime::DType::F32 => Tensor::new(a.shape.clone(), a.data.clone()),
            secc_runtime::DType::I64 => Tensor::new_i64(a.shape.clone(), a.ints.clone()),
        };
        if let Err(e) = close(&a, b) {
            return Outcome::Fail(format!("output {k}: {e}"));
        }
    }
    Outcome::Pass
}

#[derive(Default)]
struct OpReport {
    passed: Vec<String>,
    /// passed with float operands bound as constants (a subset of `passed`)
    bound: Vec<String>,
    failed: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
}

/// Shortens a skip reason to its gist: node names differ per test, so
/// `node "n" (Op): msg; node "m" (Op2): msg2` becomes `Op: msg; Op2: msg2`.
fn gist(reason: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for p in reason.split("; ") {
        let p = match (p.strip_prefix("node \""), p.find("\" (")) {
            (Some(_), Some(i)) => {
                let rest = &p[i + 3..];
                match rest.find("): ") {
                    Some(j) => format!("{}: {}", &rest[..j], &rest[j + 3..]),
                    None => rest.to_string(),
                }
            }
            _ => p.to_string(),
        };
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    parts.join("; ")
}

fn report(ops: &BTreeMap<String, OpReport>) -> String {
    let (mut p, mut f, mut s) = (0, 0, 0);
    for r in ops.values() {
        p += r.passed.len();
        f += r.failed.len();
        s += r.skipped.len();
    }
    let mut out = String::new();
    out.push_str("# ONNX backend node conformance\n\n");
    out.push_str(
        "Generated by `tests/tests/conformance.rs` (`SECC_WRITE_CONFORMANCE=1 cargo test -p secc-tests --test conformance`)\n\
         from the node tests shipped in the `onnx` 1.22.0 wheel (`scripts/setup.sh` unpacks them into\n\
         `.tools/onnx-node/`). Each test is imported, optimised, compiled for the host CPU, run by\n\
         secc-runtime and compared with the test's expected outputs:\n\
         `|got - want| <= 1e-5 + 1e-3 * |want|` (the ONNX runner's rtol; atol 1e-5 instead of 1e-7).\n\
         The reference interpreter is held to the same bound. Integer and bool inputs are bound as\n\
         constants (secc folds shapes, axes, pads and indices at compile time); tests whose float\n\
         operands must be constants for secc (Resize scales) are run with every input but the\n\
         first bound as a constant, and are listed below. int64 outputs (MaxPool indices, Shape,\n\
         Size) must match exactly.\n\n\
         A test counts for an op when its model is that single op, or when it is the op's\n\
         function expansion (`*_expanded`). Every skip has its reason below.\n\n",
    );
    out.push_str(&format!(
        "**Total: {p} passed, {f} failed, {s} skipped** over {} supported ops.\n\n",
        ops.len()
    ));
    out.push_str("| op | passed | failed | skipped |\n|---|---:|---:|---:|\n");
    for (op, r) in ops {
        out.push_str(&format!(
            "| {op} | {} | {} | {} |\n",
            r.passed.len(),
            r.failed.len(),
            r.skipped.len()
        ));
    }
    out.push_str("\n## Failures\n\n");
    if f == 0 {
        out.push_str("None.\n");
    }
    for (op, r) in ops {
        for (t, why) in &r.failed {
            out.push_str(&format!("- {op}: `{t}`: {why}\n"));
        }
    }
    out.push_str("\n## Passed with float operands bound as constants\n\n");
    let bound: Vec<String> = ops
        .iter()
        .flat_map(|(op, r)| r.bound.iter().map(move |t| format!("- {op}: `{t}`\n")))
        .collect();
    out.push_str(if bound.is_empty() { "None.\n" } else { "" });
    out.push_str(&bound.concat());
    out.push_str("\n## Skips, by reason\n\n");
    for (op, r) in ops {
        if r.skipped.is_empty() {
            continue;
        }
        out.push_str(&format!("### {op}\n\n"));
        let mut by: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (t, why) in &r.skipped {
            by.entry(gist(why)).or_default().push(t);
        }
        for (why, tests) in by {
            let names: Vec<String> = tests.iter().map(|t| format!("`{t}`")).collect();
            out.push_str(&format!("- {why}: {}\n", names.join(", ")));
        }
        out.push('\n');
    }
    out
}

#[test]
fn onnx_backend_node_tests_pass_for_supported_ops() {
    let Some(dir) = data_dir() else {
        assert!(
            std::env::var_os("SECC_REQUIRE_CONFORMANCE").is_none(),
            "SECC_REQUIRE_CONFORMANCE is set but the ONNX node tests are missing; run scripts/setup.sh"
        );
        eprintln!("SKIPPED: ONNX node tests not found (run scripts/setup.sh to unpack them)");
        return;
    };
    let mut tests: Vec<(String, PathBuf, String)> = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(bytes) = std::fs::read(p.join("model.onnx")) else {
            continue;
        };
        let Ok(m) = ModelProto::parse_from_bytes(&bytes) else {
            continue;
        };
        let ops: Vec<String> = m
            .graph
            .get_or_default()
            .node
            .iter()
            .map(|n| n.op_type.clone())
            .collect();
        if let Some(op) = classify(&name, &ops) {
            tests.push((name, p, op));
        }
    }
    tests.sort();
    let filter = std::env::var("SECC_CONFORMANCE_FILTER").ok();
    tests.retain(|(n, _, _)| filter.as_ref().is_none_or(|f| n.contains(f.as_str())));
    // two workers on detached threads; the main thread watches progress so that a test that
    // never finishes fails this test with its name instead of hanging CI
    let tests = Arc::new(tests);
    let results: Arc<Mutex<BTreeMap<String, OpReport>>> = Arc::default();
    let running: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None, None]));
    let next = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    for w in 0..2 {
        let (tests, results, running, next, done_tx) = (
            tests.clone(),
            results.clone(),
            running.clone(),
            next.clone(),
            done_tx.clone(),
        );
        std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((name, path, op)) = tests.get(i) else {
                running.lock().unwrap()[w] = None;
                let _ = done_tx.send(());
                break;
            };
            running.lock().unwrap()[w] = Some(name.clone());
            let outcome = std::panic::catch_unwind(|| run_test(path))
                .unwrap_or_else(|_| Outcome::Fail("panicked".into()));
            let mut r = results.lock().unwrap();
            let e = r.entry(op.clone()).or_default();
            match outcome {
                Outcome::Pass => e.passed.push(name.clone()),
                Outcome::PassBound => {
                    e.passed.push(name.clone());
                    e.bound.push(name.clone());
                }
                Outcome::Skip(why) => e.skipped.push((name.clone(), why)),
                Outcome::Fail(why) => e.failed.push((name.clone(), why)),
            }
            let _ = done_tx.send(());
        });
    }
    drop(done_tx);
    let stuck = std::env::var("SECC_CONFORMANCE_STUCK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STUCK_SECS);
    let (mut finished, total) = (0usize, tests.len() + 2);
    while finished < total {
        match done_rx.recv_timeout(std::time::Duration::from_millis(stuck * 1000)) {
            Ok(()) => finished += 1,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "no ONNX node test finished in {stuck} s; still running: {:?}",
                running.lock().unwrap()
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // (a worker may still hold its handle for a moment after its last message)
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    for r in results.values_mut() {
        r.passed.sort();
        r.bound.sort();
        r.failed.sort();
        r.skipped.sort();
    }
    let text = report(&results);
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/conformance.md");
    std::fs::write(&target, &text).unwrap();
    if std::env::var_os("SECC_WRITE_CONFORMANCE").is_some() {
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md");
        std::fs::write(doc, &text).unwrap();
    }
    let mut failures: Vec<String> = results
        .iter()
        .flat_map(|(op, r)| r.failed.iter().map(move |(t, w)| format!("{op}: {t}: {w}")))
        .collect();
    for op in RUNTIME_OPERANDS {
        for t in results
            .get(*op)
            .map(|r| r.bound.as_slice())
            .unwrap_or_default()
        {
            failures.push(format!(
                "{op}: {t}: passes only with its float operands bound as constants"
            ));
        }
    }
    let passed: usize = results.values().map(|r| r.passed.len()).sum();
    eprintln!(
        "conformance: {passed} passed, {} failed, report in {}",
        failures.len(),
        target.display()
    );
    assert!(
        failures.is_empty(),
        "{} ONNX node tests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if filter.is_none() {
        assert!(passed > 100, "only {passed} node tests passed");
    }
}
