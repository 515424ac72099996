//! Dynamic shapes (issue 10): models with symbolic image sizes, as Paddle2ONNX and PyTorch
//! export them (tests/models/dynamic/, written by tests/models/gen_dynamic.py with ONNX
//! Runtime's outputs at two sizes each). One imported graph must reproduce ONNX Runtime at
//! both sizes, its SE blocks must still fuse, and a binding that breaks a shape rule must
//! be refused with the node and the values.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::build::{values, Model, A};
use common::*;
use secc_codegen::compile;
use secc_ir::{interp, Dim};
use std::path::PathBuf;

fn dynamic(name: &str) -> PathBuf {
    models_dir().join("dynamic").join(format!("{name}.onnx"))
}

/// Input and ONNX Runtime output of size `k`.
fn case(name: &str, k: usize) -> (interp::Tensor, interp::Tensor) {
    let dir = models_dir().join("dynamic");
    let x = npy::read(&dir.join(format!("{name}.s{k}.in0.npy")));
    let y = npy::read(&dir.join(format!("{name}.s{k}.ort0.npy")));
    (x, y)
}

/// The models (all of them) whose every op takes symbolic image sizes in the IR.
const IMPORTED: [&str; 5] = [
    "se_dynamic_hw",
    "se_dynamic_anon",
    "ppocr_cls",
    "ppocr_rec",
    "ppocr_det",
];

#[test]
fn one_graph_matches_onnx_runtime_at_two_image_sizes() {
    for name in IMPORTED {
        let mut g = import(&dynamic(name));
        for k in 0..2 {
            let (x, want) = case(name, k);
            let got = interp::run(&g, std::slice::from_ref(&x)).unwrap();
            let e = max_rel_err(&got[0], &want);
            assert!(e < 1e-4, "{name} size {k} {:?}: error {e}", x.shape);
        }
        // and after the optimisation pipeline (SE fusion, layouts)
        run_passes(&mut g);
        for k in 0..2 {
            let (x, want) = case(name, k);
            let got = interp::run(&g, std::slice::from_ref(&x)).unwrap();
            let e = max_rel_err(&got[0], &want);
            assert!(e < 1e-4, "{name} after passes, size {k}: error {e}");
        }
    }
}

#[test]
fn se_blocks_fuse_with_symbolic_height_and_width() {
    for (name, want) in [("se_dynamic_hw", 2), ("se_dynamic_anon", 1)] {
        let mut g = import(&dynamic(name));
        run_passes(&mut g);
        assert_eq!(count_se(&g), want, "{name}:\n{}", secc_ir::print::print(&g));
    }
    let mut g = import(&dynamic("ppocr_rec"));
    run_passes(&mut g);
    assert!(count_se(&g) >= 2, "{}", secc_ir::print::print(&g));
}

#[test]
fn anonymous_dims_are_each_their_own_symbol() {
    // `?` on N, H and W (Paddle2ONNX): three symbols, named after input and axis
    let g = import(&dynamic("se_dynamic_anon"));
    let x = g.ty(g.inputs[0].1.into());
    assert_eq!(x.display(&g.sym_names), "f32[x.0,32,x.2,x.3]");
    // `-1`, unnamed and `?` alike; equal names are one symbol
    let g = Model::new(13)
        .input_params("a", &["-1", "3", "", "?"])
        .input_params("b", &["H", "H"])
        .node("Identity", "i", &["a"], &["y"], &[])
        .node("Identity", "j", &["b"], &["z"], &[])
        .output("y")
        .output("z")
        .import()
        .unwrap();
    assert_eq!(g.sym_names, ["a.0", "a.2", "a.3", "H"]);
}

/// `x: f32[1, 2, ?, ?]` through `nodes`.
fn spatial_model(build: impl FnOnce(Model) -> Model) -> Model {
    build(Model::new(13).input_params("x", &["1", "2", "?", "?"])).output("y")
}

#[test]
fn a_binding_that_breaks_a_shape_rule_names_the_node_and_the_values() {
    // a 3x3 valid convolution needs H >= 3 and W >= 3
    let m = spatial_model(|m| {
        m.f32s("w", &[4, 2, 3, 3], values(72, 3)).node(
            "Conv",
            "conv_valid",
            &["x", "w"],
            &["y"],
            &[],
        )
    });
    let g = m.import().unwrap();
    let text = secc_ir::print::print(&g);
    assert!(
        text.contains("require x.2 >= 3  (node \"conv_valid\" (conv2d))"),
        "{text}"
    );
    let ok = interp::Tensor::new(vec![1, 2, 3, 5], values(30, 1));
    assert_eq!(interp::run(&g, &[ok]).unwrap()[0].shape, vec![1, 4, 1, 3]);
    let small = interp::Tensor::new(vec![1, 2, 2, 5], values(20, 1));
    let e = interp::run(&g, &[small]).unwrap_err().to_string();
    assert!(
        e.contains("conv_valid") && e.contains(">= 3") && e.contains("x.2 = 2"),
        "{e}"
    );
}

#[test]
fn two_operands_of_unrelated_sizes_must_agree_when_bound() {
    let g = Model::new(13)
        .input_params("a", &["1", "4", "H", "W"])
        .input_params("b", &["1", "4", "P", "W"])
        .node("Add", "add_hw", &["a", "b"], &["y"], &[])
        .output("y")
        .import()
        .unwrap();
    let text = secc_ir::print::print(&g);
    assert!(
        text.contains("require H == P  (node \"add_hw\" (add))"),
        "{text}"
    );
    let t = |h| interp::Tensor::new(vec![1, 4, h, 3], values(12 * h, 2));
    assert!(interp::run(&g, &[t(5), t(5)]).is_ok());
    let e = interp::run(&g, &[t(5), t(6)]).unwrap_err().to_string();
    assert!(
        e.contains("add_hw") && e.contains("H = 5") && e.contains("P = 6"),
        "{e}"
    );
}

#[test]
fn strided_windows_give_exact_symbolic_extents() {
    // stride-2 3x3 pad 1 conv, a ceil-mode 3x3 stride-2 max pool, a 2x2 stride-2
    // transposed conv, a concat with itself along W: every extent an expression
    let m = spatial_model(|m| {
        m.f32s("w", &[3, 2, 3, 3], values(54, 5))
            .f32s("t", &[3, 2, 2, 2], values(24, 6))
            .node(
                "Conv",
                "c",
                &["x", "w"],
                &["c"],
                &[("strides", A::Is(&[2, 2])), ("pads", A::Is(&[1, 1, 1, 1]))],
            )
            .node(
                "MaxPool",
                "p",
                &["c"],
                &["p"],
                &[
                    ("kernel_shape", A::Is(&[3, 3])),
                    ("strides", A::Is(&[2, 2])),
                    ("ceil_mode", A::I(1)),
                ],
            )
            .node(
                "ConvTranspose",
                "u",
                &["p", "t"],
                &["u"],
                &[("strides", A::Is(&[2, 2]))],
            )
            .node("Concat", "cat", &["u", "u"], &["y"], &[("axis", A::I(3))])
    });
    let g = m.import().unwrap();
    for (h, w) in [(7usize, 9usize), (8, 5), (13, 6), (5, 5), (6, 17)] {
        let x = interp::Tensor::new(vec![1, 2, h, w], values(2 * h * w, 7));
        let y = &interp::run(&g, &[x]).unwrap()[0];
        // the same model imported at this fixed size is the oracle
        let mut opts = secc_onnx::ImportOptions::default();
        opts.fixed_dims.insert("x.2".into(), h as u64);
        opts.fixed_dims.insert("x.3".into(), w as u64);
        let fixed = secc_onnx::import_bytes(&m.bytes(), None, &opts).unwrap();
        let want: Vec<usize> = fixed
            .ty(fixed.outputs[0].1)
            .shape
            .iter()
            .map(|d| d.known().unwrap() as usize)
            .collect();
        assert_eq!(y.shape, want, "{h}x{w}");
    }
    let out = g.ty(g.outputs[0].1);
    assert!(
        matches!(out.shape[2], Dim::Expr(_)),
        "{}",
        out.display(&g.sym_names)
    );
    // H = 3 leaves the pool a 2-row input: refused with the pool's rule
    let x = interp::Tensor::new(vec![1, 2, 3, 9], values(54, 7));
    let e = interp::run(&g, &[x]).unwrap_err().to_string();
    assert!(
        e.contains("\"p\" (max_pool2d)") && e.contains("x.2 = 3"),
        "{e}"
    );
}

/// The models whose compiled kernels take symbolic image sizes.
const COMPILED: [&str; 5] = [
    "se_dynamic_hw",
    "se_dynamic_anon",
    "ppocr_cls",
    "ppocr_rec",
    "ppocr_det",
];

/// One artifact per model and vector width (the host's, 8-lane AVX2 blocks, and plain NCHW
/// kernels: the form the CUDA target runs), run at both sizes on 1 and 2 threads, then back
/// at the first (a cached binding): ONNX Runtime's outputs within 1e-4 (relative to 1 + |y|)
/// every time.
#[test]
fn one_artifact_runs_every_image_size_on_1_and_2_threads() {
    let host = secc_codegen::vector_block(&cpu_opts().target);
    for name in COMPILED {
        for (block, cpu) in [(host, "native"), (Some(8), "x86-64-v3"), (None, "native")] {
            let mut g = import(&dynamic(name));
            run_passes_for(&mut g, block);
            let opts = secc_codegen::CodegenOptions {
                target: secc_codegen::Target::Cpu { cpu: cpu.into() },
                ..cpu_opts()
            };
            let bytes = compile(&g, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let model = secc_runtime::Model::from_bytes(bytes).unwrap();
            for threads in [1, 2] {
                let mut s = model.session(threads).unwrap();
                for k in [0, 1, 0] {
                    let (x, want) = case(name, k);
                    let x = secc_runtime::Tensor::new(x.shape.clone(), x.data.clone()).unwrap();
                    let y = s
                        .run(&[x])
                        .unwrap_or_else(|e| panic!("{name} size {k}: {e}"));
                    let e = max_rel_err(&from_runtime(&y[0]), &want);
                    assert!(
                        e < 1e-4,
                        "{name} ({cpu}, {threads} threads) size {k} {:?}: error {e}",
                        want.shape
                    );
                }
            }
        }
    }
}

/// Runs `g` compiled once (plain NCHW kernels: the form the CUDA target runs) at every
/// `[N, H, W]` of `sizes` on 1 and 2 threads against the interpreter (int64 outputs equal).
fn check_plain_sizes(g: &secc_ir::Graph, sizes: &[[usize; 3]]) {
    let mut g = g.clone();
    run_passes_for(&mut g, None);
    let bytes = compile(&g, &cpu_opts()).unwrap();
    let c = g.ty(g.inputs[0].1.into()).shape[1].known().unwrap() as usize;
    let model = secc_runtime::Model::from_bytes(bytes).unwrap();
    for threads in [1, 2] {
        let mut s = model.session(threads).unwrap();
        for (i, &[n, h, w]) in sizes.iter().enumerate() {
            let data = values(n * c * h * w, 30 + i as u32);
            let x = interp::Tensor::new(vec![n, c, h, w], data.clone());
            let want = interp::run(&g, &[x]).unwrap();
            let rt = secc_runtime::Tensor::new(vec![n, c, h, w], data).unwrap();
            let got = s.run(&[rt]).unwrap_or_else(|e| panic!("{n}x{h}x{w}: {e}"));
            for ((name, _), (a, b)) in g.outputs.iter().zip(got.iter().zip(&want)) {
                let e = max_rel_err(&from_runtime(a), b);
                assert!(e <= 1e-5, "{name} {n}x{c}x{h}x{w}, {threads} threads: {e}");
            }
        }
    }
}

/// The plain (unblocked) pools, MaxPool's indices in both storage orders and every pad mode
/// take run-time heights and widths: one artifact at sizes with odd, even and minimal
/// extents, and batch 1 and >1.
#[test]
fn plain_pools_and_pads_take_run_time_extents() {
    let pads = |m: Model, mode: &str, out: &str| {
        let name = format!("pad_{mode}");
        m.node(
            "Pad",
            &name,
            &["x", "pads"],
            &[out],
            &[("mode", A::S(mode))],
        )
    };
    let g = Model::new(13)
        .input_params("x", &["N", "3", "H", "W"])
        .i64s("pads", &[8], vec![0, 0, 1, 2, 0, 0, 2, 1])
        .node(
            "MaxPool",
            "max_ceil",
            &["x"],
            &["max_ceil"],
            &[
                ("kernel_shape", A::Is(&[3, 3])),
                ("strides", A::Is(&[2, 2])),
                ("pads", A::Is(&[1, 1, 1, 1])),
                ("ceil_mode", A::I(1)),
            ],
        )
        .node(
            "AveragePool",
            "avg_incl",
            &["x"],
            &["avg_incl"],
            &[
                ("kernel_shape", A::Is(&[3, 3])),
                ("pads", A::Is(&[1, 1, 1, 1])),
                ("count_include_pad", A::I(1)),
            ],
        )
        .node(
            "AveragePool",
            "avg_excl",
            &["x"],
            &["avg_excl"],
            &[
                ("kernel_shape", A::Is(&[2, 3])),
                ("strides", A::Is(&[2, 2])),
                ("pads", A::Is(&[0, 1, 1, 0])),
                ("ceil_mode", A::I(1)),
            ],
        )
        .node(
            "MaxPool",
            "max_rows",
            &["x"],
            &["max_rows", "idx_rows"],
            &[
                ("kernel_shape", A::Is(&[2, 2])),
                ("dilations", A::Is(&[2, 1])),
            ],
        )
        .node(
            "MaxPool",
            "max_cols",
            &["x"],
            &["max_cols", "idx_cols"],
            &[
                ("kernel_shape", A::Is(&[3, 2])),
                ("strides", A::Is(&[1, 2])),
                ("pads", A::Is(&[1, 0, 1, 1])),
                ("storage_order", A::I(1)),
            ],
        );
    let g = pads(
        pads(pads(g, "reflect", "reflect"), "edge", "edge"),
        "constant",
        "zero",
    );
    let mut g = g;
    for out in [
        "max_ceil", "avg_incl", "avg_excl", "max_rows", "idx_rows", "max_cols", "idx_cols",
        "reflect", "edge", "zero",
    ] {
        g = g.output(out);
    }
    let g = g.import().unwrap();
    check_plain_sizes(&g, &[[1, 5, 7], [2, 3, 3], [1, 8, 4], [3, 4, 11]]);
}

/// A compiled model refuses, before running, a binding that breaks a constraint (naming
/// the node and the values) and a symbol that two inputs bind to different values.
#[test]
fn the_runtime_names_broken_constraints_and_conflicting_inputs() {
    let g = spatial_model(|m| {
        m.f32s("w", &[4, 2, 3, 3], values(72, 3)).node(
            "Conv",
            "conv_valid",
            &["x", "w"],
            &["y"],
            &[],
        )
    })
    .import()
    .unwrap();
    let model = secc_runtime::Model::from_bytes(compile(&g, &cpu_opts()).unwrap()).unwrap();
    let mut s = model.session(1).unwrap();
    let x = |h: usize, w: usize| {
        secc_runtime::Tensor::new(vec![1, 2, h, w], values(2 * h * w, 1)).unwrap()
    };
    assert_eq!(s.run(&[x(3, 5)]).unwrap()[0].shape, vec![1, 4, 1, 3]);
    let e = s.run(&[x(2, 5)]).unwrap_err().to_string();
    assert!(
        e.contains("conv_valid") && e.contains(">= 3") && e.contains("x.2 = 2"),
        "{e}"
    );
    // two inputs whose H is one symbol
    let g = Model::new(13)
        .input_params("a", &["1", "4", "H", "W"])
        .input_params("b", &["1", "4", "H", "W"])
        .node("Add", "add", &["a", "b"], &["y"], &[])
        .output("y")
        .import()
        .unwrap();
    let model = secc_runtime::Model::from_bytes(compile(&g, &cpu_opts()).unwrap()).unwrap();
    let mut s = model.session(1).unwrap();
    let t = |h: usize| secc_runtime::Tensor::new(vec![1, 4, h, 3], values(12 * h, 2)).unwrap();
    assert!(s.run(&[t(5), t(5)]).is_ok());
    let e = s.run(&[t(5), t(6)]).unwrap_err().to_string();
    assert!(
        e.contains("input \"b\"") && e.contains("\"H\" is 6 here but 5"),
        "{e}"
    );
}

/// Python's `range(start, end, step)` of a slice over `n` (ONNX clamps the same way),
/// forward steps.
fn py_slice(n: usize, start: i64, end: i64, step: usize) -> Vec<usize> {
    let clamp = |v: i64| (if v < 0 { v + n as i64 } else { v }).clamp(0, n as i64) as usize;
    (clamp(start)..clamp(end)).step_by(step).collect()
}

/// Forward slices of symbolic heights and widths (a crop `1:-1`, a Focus layer's `1::2`,
/// a fixed-size head `0:5` clamped to short images) have expression extents and run at every
/// size, checked against Python's slicing rule.
#[test]
fn slices_of_symbolic_extents_follow_the_onnx_rule() {
    let big = i64::MAX;
    // (name, [start, end, step] for H, then for W)
    let cases: [(&str, [i64; 6]); 3] = [
        ("crop", [1, -1, 1, 1, -1, 1]),
        ("focus", [1, big, 2, 0, big, 2]),
        ("head", [0, 5, 1, 2, 7, 3]),
    ];
    let mut m = Model::new(13).input_params("x", &["N", "3", "H", "W"]);
    for (name, [hs, he, hk, ws, we, wk]) in cases {
        m = m
            .i64s(&format!("{name}_s"), &[2], vec![hs, ws])
            .i64s(&format!("{name}_e"), &[2], vec![he, we])
            .i64s(&format!("{name}_a"), &[2], vec![2, 3])
            .i64s(&format!("{name}_k"), &[2], vec![hk, wk])
            .node(
                "Slice",
                name,
                &[
                    "x",
                    &format!("{name}_s"),
                    &format!("{name}_e"),
                    &format!("{name}_a"),
                    &format!("{name}_k"),
                ],
                &[name],
                &[],
            )
            .output(name);
    }
    let g = m.import().unwrap();
    let model = secc_runtime::Model::from_bytes(compile(&g, &cpu_opts()).unwrap()).unwrap();
    let mut s = model.session(2).unwrap();
    for (n, h, w) in [(1, 9, 10), (2, 3, 8), (1, 12, 5)] {
        let data = values(n * 3 * h * w, 40);
        let x = secc_runtime::Tensor::new(vec![n, 3, h, w], data.clone()).unwrap();
        let got = s.run(&[x]).unwrap();
        for ((name, [hs, he, hk, ws, we, wk]), y) in cases.iter().zip(got) {
            let rows = py_slice(h, *hs, *he, *hk as usize);
            let cols = py_slice(w, *ws, *we, *wk as usize);
            assert_eq!(
                y.shape,
                vec![n, 3, rows.len(), cols.len()],
                "{name} {h}x{w}"
            );
            let mut want = vec![];
            for p in 0..n * 3 {
                for &r in &rows {
                    want.extend(cols.iter().map(|&c| data[(p * h + r) * w + c]));
                }
            }
            assert_eq!(y.data, want, "{name} {n}x{h}x{w}");
        }
    }
    // a crop of a 2-row image would be empty: the slice's rule refuses it
    let x = secc_runtime::Tensor::new(vec![1, 3, 2, 8], values(48, 41)).unwrap();
    let e = s.run(&[x]).unwrap_err().to_string();
    assert!(e.contains("\"crop\"") && e.contains("H = 2"), "{e}");
}
