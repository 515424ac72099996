//! Hostile shape attributes (issue 7): sizes derived from attributes never wrap; each bad
//! value is an import error naming the node and its op, never a panic or a wrong shape.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::build::{values, Model, A};

const BIG: i64 = 1 << 62;
const MAX: i64 = i64::MAX;

/// Imports `m`, which must fail with an error naming `node "X" (op)`; returns the message.
fn rejected(m: &Model, node: &str, op: &str) -> String {
    let want = format!("node \"{node}\" ({op})");
    match m.import() {
        Ok(g) => panic!(
            "{want} was accepted; output type {}",
            g.ty(g.outputs[0].1).display(&g.sym_names)
        ),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(&want), "{e}\n(wanted {want})");
            e
        }
    }
}

/// `x[1,1,h,w] -> Conv(w[1,1,kh,kw]) -> y`.
fn conv(hw: [i64; 2], k: [i64; 2], attrs: &[(&str, A)]) -> Model {
    let n = (k[0] * k[1]) as usize;
    Model::new(13)
        .input("x", &[1, 1, hw[0], hw[1]])
        .f32s("w", &[1, 1, k[0], k[1]], values(n, 1))
        .node("Conv", "c", &["x", "w"], &["y"], attrs)
        .output("y")
}

fn pool(op: &str, x: &[i64], attrs: &[(&str, A)]) -> Model {
    Model::new(13)
        .input("x", x)
        .node(op, "p", &["x"], &["y"], attrs)
        .output("y")
}

#[test]
fn conv_attributes_that_overflow_are_errors_naming_the_node() {
    rejected(
        &conv([5, 5], [5, 5], &[("dilations", A::Is(&[BIG, 1]))]),
        "c",
        "Conv",
    );
    rejected(
        &conv([5, 5], [3, 3], &[("pads", A::Is(&[MAX, 0, MAX, 0]))]),
        "c",
        "Conv",
    );
    rejected(
        &conv([5, 5], [3, 3], &[("pads", A::Is(&[BIG, 0, BIG, 0]))]),
        "c",
        "Conv",
    );
    // absurd but non-overflowing values are refused too (a sane upper bound)
    rejected(
        &conv([5, 5], [3, 3], &[("strides", A::Is(&[BIG, 1]))]),
        "c",
        "Conv",
    );
    let e = rejected(
        &conv(
            [5, 5],
            [3, 3],
            &[
                ("strides", A::Is(&[BIG, 1])),
                ("auto_pad", A::S("SAME_UPPER")),
            ],
        ),
        "c",
        "Conv",
    );
    assert!(e.contains("strides"), "{e}");
    // a zero-extent kernel
    let m = Model::new(13)
        .input("x", &[1, 1, 5, 5])
        .f32s("w", &[1, 1, 0, 3], vec![])
        .node("Conv", "c", &["x", "w"], &["y"], &[])
        .output("y");
    rejected(&m, "c", "Conv");
    // 1-D
    let m = Model::new(13)
        .input("x", &[1, 1, 9])
        .f32s("w", &[1, 1, 3], values(3, 2))
        .node(
            "Conv",
            "c1",
            &["x", "w"],
            &["y"],
            &[("pads", A::Is(&[MAX, MAX]))],
        )
        .output("y");
    rejected(&m, "c1", "Conv");
    // ordinary values still work
    let g = conv(
        [5, 5],
        [3, 3],
        &[
            ("pads", A::Is(&[1, 2, 1, 2])),
            ("dilations", A::Is(&[2, 1])),
        ],
    )
    .import()
    .unwrap();
    assert_eq!(g.ty(g.outputs[0].1).to_string(), "f32[1,1,3,7]");
}

#[test]
fn pool_attributes_that_overflow_are_errors_naming_the_node() {
    for op in ["MaxPool", "AveragePool"] {
        let k = ("kernel_shape", A::Is(&[5, 1]));
        rejected(
            &pool(op, &[1, 1, 5, 5], &[k, ("dilations", A::Is(&[BIG, 1]))]),
            "p",
            op,
        );
        let k = ("kernel_shape", A::Is(&[3, 3]));
        rejected(
            &pool(op, &[1, 1, 5, 5], &[k, ("pads", A::Is(&[MAX, 0, MAX, 0]))]),
            "p",
            op,
        );
        let k = ("kernel_shape", A::Is(&[3, 3]));
        rejected(
            &pool(op, &[1, 1, 5, 5], &[k, ("pads", A::Is(&[BIG, 0, BIG, 0]))]),
            "p",
            op,
        );
        rejected(
            &pool(op, &[1, 1, 5, 5], &[("kernel_shape", A::Is(&[BIG, 1]))]),
            "p",
            op,
        );
        let k = ("kernel_shape", A::Is(&[3, 3]));
        rejected(
            &pool(
                op,
                &[1, 1, 5, 5],
                &[
                    k,
                    ("strides", A::Is(&[BIG, BIG])),
                    ("auto_pad", A::S("SAME_LOWER")),
                ],
            ),
            "p",
            op,
        );
        // each value within the bound, the dilated window beyond it
        let k = ("kernel_shape", A::Is(&[1 << 32, 1]));
        let e = rejected(
            &pool(op, &[1, 1, 5, 5], &[k, ("dilations", A::Is(&[1 << 32, 1]))]),
            "p",
            op,
        );
        assert!(e.contains("exceeds the size limit"), "{e}");
        // 1-D, with ceil_mode
        let k = ("kernel_shape", A::Is(&[3]));
        let e = rejected(
            &pool(
                op,
                &[1, 1, 10],
                &[k, ("pads", A::Is(&[MAX, MAX])), ("ceil_mode", A::I(1))],
            ),
            "p",
            op,
        );
        // named with the values the model wrote, not their 2-D form
        assert!(e.contains(&format!("'pads': [{MAX}, {MAX}]")), "{e}");
        let k = ("kernel_shape", A::Is(&[3]));
        rejected(
            &pool(op, &[1, 1, 10], &[k, ("dilations", A::Is(&[MAX]))]),
            "p",
            op,
        );
    }
}

#[test]
fn conv_transpose_attributes_that_overflow_are_errors_naming_the_node() {
    let ct = |attrs: &[(&str, A)]| {
        Model::new(13)
            .input("x", &[1, 1, 5, 5])
            .f32s("w", &[1, 1, 3, 3], values(9, 3))
            .node("ConvTranspose", "t", &["x", "w"], &["y"], attrs)
            .output("y")
    };
    rejected(&ct(&[("strides", A::Is(&[BIG, 1]))]), "t", "ConvTranspose");
    rejected(
        &ct(&[("dilations", A::Is(&[BIG, 1]))]),
        "t",
        "ConvTranspose",
    );
    rejected(
        &ct(&[("output_padding", A::Is(&[BIG, 0]))]),
        "t",
        "ConvTranspose",
    );
    rejected(
        &ct(&[("output_shape", A::Is(&[BIG, BIG]))]),
        "t",
        "ConvTranspose",
    );
    rejected(
        &ct(&[("output_shape", A::Is(&[MAX, MAX]))]),
        "t",
        "ConvTranspose",
    );
    rejected(
        &ct(&[("output_shape", A::Is(&[-MAX, 3]))]),
        "t",
        "ConvTranspose",
    );
    rejected(
        &ct(&[
            ("strides", A::Is(&[BIG, 2])),
            ("auto_pad", A::S("SAME_UPPER")),
        ]),
        "t",
        "ConvTranspose",
    );
    let g = ct(&[
        ("strides", A::Is(&[2, 2])),
        ("output_padding", A::Is(&[1, 0])),
    ])
    .import()
    .unwrap();
    assert_eq!(g.ty(g.outputs[0].1).to_string(), "f32[1,1,12,11]");
}

#[test]
fn data_movement_sizes_that_overflow_are_errors_naming_the_node() {
    // the Reshape libFuzzer found: 4 * (2^62 + 3) wraps to 12
    let m = Model::new(13)
        .input("x", &[3, 4])
        .i64s("s", &[2], vec![4, BIG + 3])
        .node("Reshape", "r", &["x", "s"], &["y"], &[])
        .output("y");
    rejected(&m, "r", "Reshape");
    let m = Model::new(13)
        .input("x", &[1, 4])
        .i64s("s", &[2], vec![-1, BIG])
        .node("Reshape", "r", &["x", "s"], &["y"], &[])
        .output("y");
    rejected(&m, "r", "Reshape");
    let m = Model::new(13)
        .input("x", &[1, 1])
        .i64s("s", &[2], vec![BIG, BIG])
        .node("Expand", "e", &["x", "s"], &["y"], &[])
        .output("y");
    rejected(&m, "e", "Expand");
    let m = Model::new(13)
        .input("x", &[1, 1, 4, 4])
        .i64s("p", &[8], vec![0, 0, MAX, 0, 0, 0, MAX, 0])
        .node("Pad", "pad", &["x", "p"], &["y"], &[])
        .output("y");
    rejected(&m, "pad", "Pad");
    let m = Model::new(13)
        .input("x", &[1, 1, 4, 4])
        .i64s("p", &[8], vec![0, 0, BIG, 0, 0, 0, 1, 0])
        .node("Pad", "pad", &["x", "p"], &["y"], &[])
        .output("y");
    rejected(&m, "pad", "Pad");
    let m = Model::new(13)
        .input("x", &[1, 6])
        .i64s("sp", &[3], vec![MAX, MAX, 2])
        .node(
            "Split",
            "sp",
            &["x", "sp"],
            &["a", "b", "c"],
            &[("axis", A::I(1))],
        )
        .output("a");
    rejected(&m, "sp", "Split");
    let m = Model::new(13)
        .i64s("s", &[2], vec![BIG, 4])
        .node("ConstantOfShape", "k", &["s"], &["y"], &[])
        .output("y");
    rejected(&m, "k", "ConstantOfShape");
    // an int64 ConstantOfShape and an integer broadcast are shape math: kept small (each
    // would otherwise allocate gigabytes from a few bytes of model)
    let mut value = onnx_protobuf::TensorProto::new();
    value.data_type = 7;
    value.dims = vec![1];
    value.int64_data = vec![3];
    let m = Model::new(13)
        .i64s("s", &[1], vec![(1 << 20) + 1])
        .node_with_tensor("ConstantOfShape", "k", &["s"], &["y"], "value", value)
        .output("y");
    rejected(&m, "k", "ConstantOfShape");
    let m = Model::new(13)
        .input("x", &[1, 4])
        .i64s("a", &[1 << 11, 1], vec![1; 1 << 11])
        .i64s("b", &[1, 1 << 10], vec![1; 1 << 10])
        .node("Add", "add", &["a", "b"], &["t"], &[])
        .node("Reshape", "r", &["x", "t"], &["y"], &[])
        .output("y");
    rejected(&m, "add", "Add");
    // Concat of two extents that together pass the bound
    let m = Model::new(13)
        .input("x", &[1, 1])
        .i64s("s", &[2], vec![1, 1 << 31])
        .node("Expand", "e", &["x", "s"], &["big"], &[])
        .node(
            "Concat",
            "cat",
            &["big", "big", "big"],
            &["y"],
            &[("axis", A::I(1))],
        )
        .output("y");
    rejected(&m, "cat", "Concat");
}

#[test]
fn resize_sizes_and_scales_that_overflow_are_errors_naming_the_node() {
    let m = Model::new(13)
        .input("x", &[1, 1, 4, 4])
        .i64s("sz", &[4], vec![1, 1, 1 << 40, 1 << 40])
        .node("Resize", "rs", &["x", "", "", "sz"], &["y"], &[])
        .output("y");
    rejected(&m, "rs", "Resize");
    let m = Model::new(13)
        .input("x", &[1, 1, 4, 4])
        .f32s("sc", &[4], vec![1.0, 1.0, 1e30, 1e30])
        .node("Resize", "rs", &["x", "", "sc"], &["y"], &[])
        .output("y");
    let e = rejected(&m, "rs", "Resize");
    assert!(e.contains("scale"), "{e}");
}

#[test]
fn integer_shape_arithmetic_that_overflows_is_an_error_naming_the_node() {
    let reshape_by = |op: &str, ins: &[&str], attrs: &[(&str, A)], extra: Model| {
        let mut v = vec!["k"];
        v.extend_from_slice(ins);
        extra
            .input("x", &[2, 3])
            .node(op, "int_op", &v, &["t"], attrs)
            .node("Reshape", "r", &["x", "t"], &["y"], &[])
            .output("y")
    };
    let m = reshape_by(
        "Neg",
        &[],
        &[],
        Model::new(13).i64s("k", &[1], vec![i64::MIN]),
    );
    rejected(&m, "int_op", "Neg");
    let m = reshape_by(
        "Div",
        &["d"],
        &[],
        Model::new(13)
            .i64s("k", &[1], vec![i64::MIN])
            .i64s("d", &[1], vec![-1]),
    );
    rejected(&m, "int_op", "Div");
    let m = reshape_by(
        "Slice",
        &["st", "en", "ax", "step"],
        &[],
        Model::new(13)
            .i64s("k", &[3], vec![2, 3, 1])
            .i64s("st", &[1], vec![1])
            .i64s("en", &[1], vec![MAX])
            .i64s("ax", &[1], vec![0])
            .i64s("step", &[1], vec![MAX]),
    );
    // a valid slice ([3]) that must not overflow while stepping: Reshape [2,3] -> [3] fails
    let e = rejected(&m, "r", "Reshape");
    assert!(e.contains("element count"), "{e}");
    let m = reshape_by(
        "Reshape",
        &["s2"],
        &[],
        Model::new(13)
            .i64s("k", &[2], vec![2, 3])
            .i64s("s2", &[2], vec![BIG, 4]),
    );
    rejected(&m, "int_op", "Reshape");
}

#[test]
fn graph_inputs_beyond_the_size_bound_are_refused() {
    let m = Model::new(13)
        .input("x", &[1 << 40, 1 << 40])
        .node("Relu", "r", &["x"], &["y"], &[])
        .output("y");
    let e = m.import().unwrap_err().to_string();
    assert!(
        e.contains("graph input \"x\"") && e.contains("elements"),
        "{e}"
    );
}

// ---- large windows (issue 7 item 4): compile time stays bounded, results stay right ----

/// Compiles after the default passes, returning the artifact and the seconds it took.
fn compile_timed(g: &mut secc_ir::Graph) -> (Vec<u8>, f64) {
    common::run_passes(g);
    let t = std::time::Instant::now();
    let bytes = secc_codegen::compile(g, &common::cpu_opts()).unwrap();
    (bytes, t.elapsed().as_secs_f64())
}

/// The issue's models: a 200-tap window at dilation 10 over 220000 columns (a MaxPool took
/// over 120 s and gigabytes, the Conv 17-43 s). Loops now: a few seconds even unoptimised.
#[test]
fn huge_windows_compile_in_bounded_time() {
    let pool = Model::new(13)
        .input("x", &[1, 1, 220_000])
        .node(
            "MaxPool",
            "mp",
            &["x"],
            &["y"],
            &[("kernel_shape", A::Is(&[200])), ("dilations", A::Is(&[10]))],
        )
        .output("y");
    let conv = Model::new(13)
        .input("x", &[1, 1, 220_000])
        .f32s("w", &[1, 1, 200], values(200, 4))
        .node(
            "Conv",
            "cv",
            &["x", "w"],
            &["y"],
            &[("dilations", A::Is(&[10]))],
        )
        .output("y");
    for m in [pool, conv] {
        let (bytes, secs) = compile_timed(&mut m.import().unwrap());
        assert!(secs < 60.0, "compile took {secs:.1} s");
        assert!(bytes.len() < 1 << 20, "artifact of {} bytes", bytes.len());
    }
}

/// Runs `m` compiled for the CPU and in the interpreter on the same random inputs.
fn matches_interpreter(m: &Model, what: &str) {
    let mut g = m.import().unwrap();
    let (bytes, _) = compile_timed(&mut g);
    let ins = common::random_inputs(&g, 2, 7);
    let want = secc_ir::interp::run(&g, &ins).unwrap();
    let mut model = secc_runtime::Model::from_bytes(bytes)
        .and_then(|m| m.session(2))
        .unwrap();
    let rt: Vec<_> = ins
        .iter()
        .map(|t| secc_runtime::Tensor::new(t.shape.clone(), t.data.clone()).unwrap())
        .collect();
    let got = model.run(&rt).unwrap();
    let got = secc_ir::interp::Tensor::new(got[0].shape.clone(), got[0].data.clone());
    let e = common::max_rel_err(&got, &want[0]);
    assert!(e <= 1e-4, "{what}: max rel err {e}");
}

/// Windows over the unroll budget (the looped kernel bodies), with padding, strides and
/// dilations on both axes, against the reference interpreter.
#[test]
fn large_windows_match_the_interpreter() {
    for op in ["MaxPool", "AveragePool"] {
        for include_pad in [0, 1] {
            for ceil in [0, 1] {
                let m = pool(
                    op,
                    &[-1, 3, 2000],
                    &[
                        ("kernel_shape", A::Is(&[150])),
                        ("dilations", A::Is(&[7])),
                        ("strides", A::Is(&[3])),
                        ("pads", A::Is(&[20, 31])),
                        ("count_include_pad", A::I(include_pad)),
                        ("ceil_mode", A::I(ceil)),
                    ],
                );
                matches_interpreter(&m, &format!("1-D {op} pad {include_pad} ceil {ceil}"));
            }
            let m = pool(
                op,
                &[-1, 2, 30, 400],
                &[
                    ("kernel_shape", A::Is(&[5, 40])),
                    ("dilations", A::Is(&[2, 3])),
                    ("strides", A::Is(&[2, 1])),
                    ("pads", A::Is(&[1, 2, 3, 4])),
                    ("count_include_pad", A::I(include_pad)),
                ],
            );
            matches_interpreter(&m, &format!("2-D {op} pad {include_pad}"));
        }
    }
    for (group, stride) in [(1, 1), (2, 2), (1, 5)] {
        let m = Model::new(13)
            .input("x", &[-1, 4, 1500])
            .f32s(
                "w",
                &[6, 4 / group, 40],
                values(6 * 4 / group as usize * 40, 5),
            )
            .f32s("b", &[6], values(6, 6))
            .node(
                "Conv",
                "cv",
                &["x", "w", "b"],
                &["y"],
                &[
                    ("dilations", A::Is(&[9])),
                    ("strides", A::Is(&[stride])),
                    ("pads", A::Is(&[13, 50])),
                    ("group", A::I(group)),
                ],
            )
            .output("y");
        matches_interpreter(&m, &format!("conv group {group} stride {stride}"));
    }
    let m = Model::new(13)
        .input("x", &[-1, 2, 6, 9])
        .f32s("w", &[2, 3, 9, 11], values(2 * 3 * 99, 8))
        .node(
            "ConvTranspose",
            "ct",
            &["x", "w"],
            &["y"],
            &[
                ("strides", A::Is(&[2, 3])),
                ("dilations", A::Is(&[1, 2])),
                ("pads", A::Is(&[1, 2, 3, 4])),
            ],
        )
        .output("y");
    matches_interpreter(&m, "conv transpose 9x11");
}
