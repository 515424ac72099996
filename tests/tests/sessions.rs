//! One model, many sessions: concurrent runs are bit-identical to serial ones, sessions at
//! different batch sizes run at once, and the typed metadata and error kinds.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_runtime::{Dim, ErrorKind, Model, Tensor, TensorView};

/// SE block behind a conv and a residual add: blocked convs, the SE kernel (its barrier
/// inside), element-wise epilogues.
fn model() -> (secc_ir::Graph, Model) {
    let mut g = import(&models_dir().join("se_residual.onnx"));
    run_passes(&mut g);
    let bytes = secc_codegen::compile(&g, &cpu_opts()).unwrap();
    (g, Model::from_bytes(bytes).unwrap())
}

fn inputs(g: &secc_ir::Graph, batch: u64, seed: u64) -> Vec<Tensor> {
    random_inputs(g, batch, seed)
        .into_iter()
        .map(|t| Tensor::new(t.shape, t.data).unwrap())
        .collect()
}

fn run_serial(m: &Model, threads: usize, ins: &[Vec<Tensor>]) -> Vec<Vec<Tensor>> {
    let mut s = m.session(threads).unwrap();
    ins.iter().map(|i| s.run(i).unwrap().to_vec()).collect()
}

#[test]
fn eight_threads_with_a_session_each_match_a_serial_run_bit_for_bit() {
    let (g, m) = model();
    for session_threads in [1, 2] {
        let ins: Vec<Vec<Tensor>> = (0..8).map(|i| inputs(&g, 2, 100 + i)).collect();
        let want = run_serial(&m, session_threads, &ins);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let (m, ins, want) = (m.clone(), &ins, &want);
                scope.spawn(move || {
                    let mut s = m.session(session_threads).unwrap();
                    for r in 0..50 {
                        let k = (t + r) % ins.len();
                        let got = s.run(&ins[k]).unwrap();
                        assert!(
                            got == want[k].as_slice(),
                            "thread {t} run {r} (input {k}, {session_threads} thread(s) per session) differs from the serial run"
                        );
                    }
                });
            }
        });
    }
}

#[test]
fn sessions_at_different_batch_sizes_run_at_once() {
    let (g, m) = model();
    std::thread::scope(|scope| {
        for (i, batch) in [1u64, 2, 3, 8].into_iter().enumerate() {
            let (m, g) = (&m, &g);
            scope.spawn(move || {
                let ins = random_inputs(g, batch, 7 + i as u64);
                let want = secc_ir::interp::run(g, &ins).unwrap();
                let rt: Vec<Tensor> = ins
                    .iter()
                    .map(|t| Tensor::new(t.shape.clone(), t.data.clone()).unwrap())
                    .collect();
                let mut s = m.session(1 + i % 2).unwrap();
                let first = s.run(&rt).unwrap().to_vec();
                let e = max_rel_err(&from_runtime(&first[0]), &want[0]);
                assert!(e <= 1e-4, "batch {batch}: max rel err {e}");
                for _ in 0..20 {
                    assert!(s.run(&rt).unwrap() == first.as_slice(), "batch {batch}");
                }
            });
        }
    });
}

#[test]
fn borrowed_views_named_inputs_and_taken_outputs() {
    let (g, m) = model();
    let ins = inputs(&g, 3, 5);
    let mut s = m.session(2).unwrap();
    let want = s.run(&ins).unwrap().to_vec();
    let (shape, data) = (ins[0].shape.clone(), ins[0].data.clone());
    let v = TensorView::new(&shape, &data).unwrap();
    assert!(s.run(&[v]).unwrap() == want.as_slice());
    assert!(s.outputs() == want.as_slice());
    let name = m.inputs()[0].name.clone();
    assert!(s.run_named(&[(name.as_str(), v)]).unwrap() == want.as_slice());
    assert_eq!(s.take_outputs(), want);
    assert!(s.outputs().is_empty());
    assert!(
        s.run(&[v]).unwrap() == want.as_slice(),
        "runs after take_outputs"
    );
    assert!(TensorView::new(&shape, &data[1..]).is_err());
}

#[test]
fn run_into_writes_the_callers_buffers() {
    let (g, m) = model();
    let ins = inputs(&g, 3, 9);
    let mut s = m.session(2).unwrap();
    let want = s.run(&ins).unwrap().to_vec();
    let shapes = s.output_shapes(&ins).unwrap();
    assert_eq!(shapes[0], want[0].shape);
    let mut buf = vec![f32::NAN; shapes[0].iter().product()];
    s.run_into(&ins, &mut [buf.as_mut_slice()]).unwrap();
    assert_eq!(buf, want[0].data);
    let e = s
        .run_into(&ins, &mut [&mut buf[1..]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("elements given"), "{e}");
    let e = s.run_into(&ins, &mut []).unwrap_err().to_string();
    assert!(e.contains("1 output(s), got 0"), "{e}");
}

#[test]
fn alternating_batch_sizes_reuse_cached_plans() {
    let (g, m) = model();
    let mut s = m.session(1).unwrap();
    let (a, b) = (inputs(&g, 1, 1), inputs(&g, 3, 2));
    let (wa, wb) = (s.run(&a).unwrap().to_vec(), s.run(&b).unwrap().to_vec());
    for _ in 0..3 {
        assert!(s.run(&a).unwrap() == wa.as_slice());
        assert!(s.run(&b).unwrap() == wb.as_slice());
    }
    assert_eq!(s.cached_plans(), 2);
    // more sizes than the cache holds: the oldest plans go, results stay right
    for batch in 1..=(secc_runtime::PLAN_CACHE as u64 + 3) {
        let ins = inputs(&g, batch, 40 + batch);
        let want = secc_ir::interp::run(&g, &random_inputs(&g, batch, 40 + batch)).unwrap();
        let got = s.run(&ins).unwrap();
        let e = max_rel_err(&from_runtime(&got[0]), &want[0]);
        assert!(e <= 1e-4, "batch {batch}: max rel err {e}");
    }
    assert_eq!(s.cached_plans(), secc_runtime::PLAN_CACHE);
    assert!(s.run(&a).unwrap() == wa.as_slice());
}

#[test]
fn metadata_is_typed() {
    let (g, m) = model();
    assert_eq!(m.inputs().len(), g.inputs.len());
    let x = &m.inputs()[0];
    assert_eq!(x.dtype, secc_runtime::DType::F32);
    assert!(
        matches!(&x.shape[0], Dim::Symbolic { name, multiple: 1 } if m.symbols().contains(name))
    );
    assert!(x.shape[1..].iter().all(|d| d.fixed().is_some()));
    let shown = x.to_string();
    assert!(
        shown.starts_with(&format!("{}: float32[", x.name)),
        "{shown}"
    );
    assert_eq!(m.outputs().len(), g.outputs.len());
    assert_eq!(m.output_names()[0], m.outputs()[0].name);
    let p = m
        .session(1)
        .unwrap()
        .profile(&inputs(&g, 1, 3), 1, 2)
        .unwrap();
    assert_eq!(p.len(), m.manifest().kernels.len());
    assert!(p.iter().all(|k| k.mean_us >= 0.0 && !k.kind.is_empty()));
}

#[test]
fn errors_have_kinds() {
    let kind = |r: Result<Model, secc_runtime::RuntimeError>| r.unwrap_err().kind();
    assert_eq!(
        kind(Model::load("/nonexistent/m.bin".as_ref())),
        ErrorKind::Io
    );
    assert_eq!(
        kind(Model::from_bytes(b"not an artifact".to_vec())),
        ErrorKind::Format
    );
    let (g, m) = model();
    let mut s = m.session(1).unwrap();
    let mut ins = inputs(&g, 1, 1);
    ins[0].shape[1] += 1;
    let n = ins[0].shape.iter().product();
    ins[0].data.resize(n, 0.5);
    let e = s.run(&ins).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
