//! The blocked-layout kernels (`nChw16c` / `nChw8c`) against the reference interpreter:
//! every convolution path (1x1 as one long row, KxK, strided, dilated, asymmetric pads, the
//! plain-input stem, depthwise), each epilogue, pooling, global pooling, element-wise ops and
//! the reorders, at channel counts that are not multiples of the block, odd maps, batch 1
//! and 3, 1 and 2 threads, for both vector widths (16 lanes native, 8 lanes x86-64-v3).
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use secc_ir::{
    interp, Activation, BinaryOp, ConstData, Conv2dAttrs, Dim, Graph, Layout, Op, PoolAttrs,
    PoolKind, TensorType, ValueId,
};

/// Kernel vs interpreter, relative to 1 + |reference| (f32 accumulation in another order).
const TOL: f32 = 1e-4;

fn weights(n: usize, seed: u32) -> Vec<f32> {
    common::build::values(n, seed)
}

/// A convolution layer as the importer would build it.
struct Conv {
    o: u64,
    k: [u64; 2],
    strides: [u64; 2],
    pads: [u64; 4],
    dilations: [u64; 2],
    group: u64,
    act: Option<Activation>,
    bias: bool,
    /// weights in [-scale, scale): 1, or 1/sqrt(fan-in) as trained networks have, where a
    /// long dot product of unit values would round past the tolerance
    scale: f32,
}

fn conv(o: u64, k: u64, s: u64, p: u64) -> Conv {
    Conv {
        o,
        k: [k, k],
        strides: [s, s],
        pads: [p; 4],
        dilations: [1, 1],
        group: 1,
        act: None,
        bias: true,
        scale: 1.0,
    }
}

fn add_conv(g: &mut Graph, x: ValueId, c: &Conv, seed: u32) -> ValueId {
    let cin = g.ty(x).shape[1].known().unwrap();
    let cg = cin / c.group;
    let n = (c.o * cg * c.k[0] * c.k[1]) as usize;
    let shape = vec![c.o as usize, cg as usize, c.k[0] as usize, c.k[1] as usize];
    let w: Vec<f32> = weights(n, seed).iter().map(|v| v * c.scale).collect();
    let w = g.add_const(ConstData::new(shape, w), None);
    let mut ins = vec![x, w];
    if c.bias {
        let b = weights(c.o as usize, seed + 1);
        ins.push(g.add_const(ConstData::new(vec![c.o as usize], b), None));
    }
    let a = Conv2dAttrs {
        strides: c.strides,
        pads: c.pads,
        dilations: c.dilations,
        group: c.group,
        act: c.act,
        residual: false,
        gated: false,
        pool: false,
    };
    g.add_node(Op::Conv2d(a), &ins, Some(format!("conv{seed}")))
        .unwrap()
}

/// An SE block's operands over `x`: x, then `w1 [R,C]`, `b1 [R]`, `w2 [C,R]`, `b2 [C]`.
fn se_operands(g: &mut Graph, x: ValueId, [c, r]: [u64; 2], seed: u32) -> Vec<ValueId> {
    let mut ws = vec![x];
    for (i, shape) in [vec![r, c], vec![r], vec![c, r], vec![c]]
        .into_iter()
        .enumerate()
    {
        let n = shape.iter().product::<u64>() as usize;
        let shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
        ws.push(g.add_const(ConstData::new(shape, weights(n, seed + i as u32)), None));
    }
    ws
}

fn graph(c: u64, h: u64, w: u64) -> (Graph, ValueId) {
    let mut g = Graph::new("t");
    let n = g.sym("N");
    let x = g.add_input(
        "x",
        TensorType::f32([Dim::Sym(n, 1), c.into(), h.into(), w.into()]),
    );
    (g, x)
}

/// Lays out `g` for `block` lanes, checks that some value is blocked, compiles for `cpu`,
/// and compares with the interpreter at batch 1 and 3 on 1 and 2 threads.
fn check(name: &str, g: &Graph, block: u32, cpu: &str) {
    check_batches(name, g, block, cpu, &[1, 3, 8], true);
}

/// `g` after the lowering passes for `block`-lane channel blocks.
fn lowered(g: &Graph, block: u32) -> Graph {
    let mut g = g.clone();
    let t = secc_passes::pipeline::TargetOptions { block: Some(block) };
    secc_passes::PassManager::new(secc_passes::pipeline::lowering(&t))
        .run(&mut g, |_, _| {})
        .unwrap();
    g
}

fn check_batches(name: &str, g: &Graph, block: u32, cpu: &str, batches: &[u64], blocks: bool) {
    let g = lowered(g, block);
    let blocked = g
        .node_ids()
        .iter()
        .any(|n| g.node(*n).outputs[0].layout == Layout::Blocked(block));
    assert!(blocked || !blocks, "{name}: nothing was blocked");
    compare(&format!("{name} block {block}"), &g, cpu, batches);
}

/// Compiles `g` as it is for `cpu` and compares with the interpreter at `batches` on 1 and
/// 2 threads.
fn compare(name: &str, g: &Graph, cpu: &str, batches: &[u64]) {
    let opts = secc_codegen::CodegenOptions {
        target: secc_codegen::Target::Cpu { cpu: cpu.into() },
        ..cpu_opts()
    };
    compare_with(name, g, &opts, batches);
}

/// [`compare`] with explicit code generation options.
fn compare_with(name: &str, g: &Graph, opts: &secc_codegen::CodegenOptions, batches: &[u64]) {
    let cpu = match &opts.target {
        secc_codegen::Target::Cpu { cpu } => cpu.as_str(),
        _ => "?",
    };
    let bytes = secc_codegen::compile(g, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    for threads in [1, 2] {
        let mut m = secc_runtime::Model::from_bytes(bytes.clone())
            .and_then(|m| m.session(threads))
            .unwrap();
        for (i, &batch) in batches.iter().enumerate() {
            let seed = 7 + i as u64;
            let ins = random_inputs(g, batch, seed);
            let want = interp::run(g, &ins).unwrap();
            let rt: Vec<secc_runtime::Tensor> = ins
                .iter()
                .map(|t| secc_runtime::Tensor::new(t.shape.clone(), t.data.clone()).unwrap())
                .collect();
            let got = m.run(&rt).unwrap();
            for (a, b) in got.iter().zip(&want) {
                let e = max_rel_err(&from_runtime(a), b);
                assert!(
                    e <= TOL,
                    "{name} {cpu} batch {batch} threads {threads}: err {e}"
                );
            }
        }
    }
}

fn check_both(name: &str, g: &Graph) {
    check(name, g, 16, "native");
    check(name, g, 8, "x86-64-v3");
}

fn single(name: &str, [c, h, w]: [u64; 3], layer: Conv) {
    let (mut g, x) = graph(c, h, w);
    let y = add_conv(&mut g, x, &layer, 1);
    g.add_output("y", y);
    check_both(name, &g);
}

/// Blocked input: a 1x1 conv first, then the layer under test.
fn after_pointwise(name: &str, [c, h, w]: [u64; 3], layer: Conv) {
    let (mut g, x) = graph(c, h, w);
    let mut first = conv(c, 1, 1, 0);
    first.act = Some(Activation::Relu);
    let t = add_conv(&mut g, x, &first, 1);
    let y = add_conv(&mut g, t, &layer, 3);
    g.add_output("y", y);
    check_both(name, &g);
}

#[test]
fn pointwise_convs_as_one_long_row() {
    let mut l = conv(120, 1, 1, 0);
    l.act = Some(Activation::Relu);
    after_pointwise("1x1 72->120 7x7", [72, 7, 7], l);
    after_pointwise("1x1 200->24 25x19", [200, 25, 19], conv(24, 1, 1, 0));
    let mut l = conv(40, 1, 1, 0);
    l.bias = false;
    after_pointwise("1x1 no bias 3->40 2x96", [3, 2, 96], l);
}

#[test]
fn kxk_convs_with_padding_stride_and_dilation() {
    let mut l = conv(33, 3, 1, 1);
    l.act = Some(Activation::Silu);
    after_pointwise("3x3 20->33 25x19", [20, 25, 19], l);
    after_pointwise("3x3 s2 20->33 2x96", [20, 2, 96], conv(33, 3, 2, 1));
    after_pointwise("1x1 s2 40->200 25x19", [40, 25, 19], conv(200, 1, 2, 0));
    let mut l = conv(16, 3, 1, 2);
    l.dilations = [2, 2];
    l.act = Some(Activation::HardSwish);
    after_pointwise("3x3 d2 16->16 9x11", [16, 9, 11], l);
    let mut l = conv(24, 3, 1, 0);
    l.pads = [0, 1, 2, 0];
    l.strides = [2, 1];
    l.k = [3, 5];
    after_pointwise("3x5 asymmetric 17->24 13x7", [17, 13, 7], l);
}

/// The plan's lines for `conv{seed}` (one kernel, or a Winograd convolution's three)
/// after lowering for `block` lanes.
fn plan_line(g: &Graph, block: u32, seed: u32) -> String {
    let p = secc_codegen::plan::build(&lowered(g, block), true).unwrap();
    let text = secc_codegen::plan::describe(&p);
    let origin = format!(" conv{seed} ");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&origin)).collect();
    assert!(!lines.is_empty(), "no conv{seed} in\n{text}");
    lines.join("\n")
}

/// The cache-blocking choices that change the loop order or add prefetches keep results:
/// output channel groups innermost (an input over 1 MiB, small weights), and software
/// prefetches of weights that come from memory (256 KiB and more), at both vector widths.
#[test]
fn cache_blocking_choices_keep_results() {
    let big = Conv {
        scale: 1.0 / (300.0f32 * 9.0).sqrt(),
        ..conv(392, 3, 1, 1)
    };
    let big_s2 = Conv {
        scale: big.scale,
        ..conv(392, 3, 2, 1)
    };
    let cases: [(&str, [u64; 3], Conv, &str); 4] = [
        // inputs over 1 MiB per image (20 and 24 channels padded to the block)
        (
            "1x1 20->72 128x103",
            [20, 128, 103],
            conv(72, 1, 1, 0),
            "groups-inner",
        ),
        (
            "3x3 s2 24->72 128x103",
            [24, 128, 103],
            conv(72, 3, 2, 1),
            "groups-inner",
        ),
        ("3x3 s2 300->392 9x13", [300, 9, 13], big_s2, "prefetch="),
        // the Winograd form's GEMM streams 16 weight sets of 460 KiB
        (
            "3x3 300->392 5x7",
            [300, 5, 7],
            big,
            "prefetch=1024 sets=16",
        ),
    ];
    for (name, chw, layer, choice) in cases {
        let (mut g, x) = graph(chw[0], chw[1], chw[2]);
        let first = Conv {
            scale: 1.0 / (chw[0] as f32).sqrt(),
            ..conv(chw[0], 1, 1, 0)
        };
        let t = add_conv(&mut g, x, &first, 1);
        let y = add_conv(&mut g, t, &layer, 3);
        g.add_output("y", y);
        for block in [16, 8] {
            let line = plan_line(&g, block, 3);
            assert!(
                line.contains(choice),
                "{name} block {block}: no {choice} in {line}"
            );
        }
        // batch 1 and 3 only: these maps are large for the interpreter
        check_batches(name, &g, 16, "native", &[1, 3], true);
        check_batches(name, &g, 8, "x86-64-v3", &[1, 3], true);
    }
}

/// 3x3 stride-1 convolutions in both Winograd forms (input transform, batched GEMM,
/// output transform): maps that are not multiples of the tile (a last tile row and column half outside), channel counts that are
/// not multiples of either block, no padding, asymmetric padding, maps smaller than a
/// tile, and the bias-free, activation and residual epilogues.
#[test]
fn winograd_convs() {
    let scaled = |c: u64, o: u64, p: u64| Conv {
        scale: 1.0 / ((c * 9) as f32).sqrt(),
        ..conv(o, 3, 1, p)
    };
    let mut relu = scaled(37, 45, 1);
    relu.act = Some(Activation::Relu);
    let mut asym = scaled(32, 48, 1);
    asym.pads = [0, 2, 2, 1];
    let mut no_bias = scaled(40, 33, 0);
    no_bias.bias = false;
    let mut relu4 = scaled(35, 40, 1);
    relu4.act = Some(Activation::Relu);
    let mut asym4 = scaled(32, 48, 1);
    asym4.pads = [2, 0, 1, 2];
    // F(2x2) where the weights are large for the map, F(4x4) where the map is large
    let cases: [(&str, [u64; 3], Conv, &str); 7] = [
        ("3x3 relu 37->45 13x11", [37, 13, 11], relu, "F(2x2"),
        (
            "3x3 asymmetric pads 32->48 7x10",
            [32, 7, 10],
            asym,
            "F(2x2",
        ),
        ("3x3 valid no bias 40->33 9x8", [40, 9, 8], no_bias, "F(2x2"),
        ("3x3 32->32 1x1", [32, 1, 1], scaled(32, 32, 1), "F(2x2"),
        ("3x3 50->64 2x3", [50, 2, 3], scaled(50, 64, 1), "F(2x2"),
        ("3x3 relu 35->40 26x21", [35, 26, 21], relu4, "F(4x4"),
        (
            "3x3 asymmetric pads 32->48 23x30",
            [32, 23, 30],
            asym4,
            "F(4x4",
        ),
    ];
    for (name, chw, layer, form) in cases {
        let (mut g, x) = graph(chw[0], chw[1], chw[2]);
        let mut first = conv(chw[0], 1, 1, 0);
        first.act = Some(Activation::Relu);
        let t = add_conv(&mut g, x, &first, 1);
        let y = add_conv(&mut g, t, &layer, 3);
        g.add_output("y", y);
        for block in [16, 8] {
            let line = plan_line(&g, block, 3);
            assert!(
                line.contains("wino_gemm") && line.contains(form),
                "{name} block {block}: no {form} in {line}"
            );
        }
        check_both(name, &g);
    }
}

#[test]
fn plain_input_stems() {
    let mut l = conv(64, 7, 2, 3);
    l.act = Some(Activation::Relu);
    single("7x7 s2 stem 3->64 25x19", [3, 25, 19], l);
    let mut l = conv(24, 3, 2, 1);
    l.act = Some(Activation::HardSwish);
    single("3x3 s2 stem 3->24 odd", [3, 19, 25], l);
    // one output block (a 16 x 1 tile and a 5-pixel tail at 16 lanes)
    let mut l = conv(16, 3, 2, 1);
    l.act = Some(Activation::Silu);
    single("3x3 s2 stem 3->16 41x43", [3, 41, 43], l);
    // three output blocks in tiles of two (the last tile one block), 5x5 stride 1
    single("5x5 stem 3->40 9x35", [3, 9, 35], conv(40, 5, 1, 2));
}

#[test]
fn depthwise_convs() {
    for (name, c, k, s, hw) in [
        ("dw 3x3 72 7x7", 72u64, 3u64, 1u64, [7u64, 7u64]),
        ("dw 5x5 s2 120 25x19", 120, 5, 2, [25, 19]),
        ("dw 3x3 s2 20 2x96", 20, 3, 2, [2, 96]),
    ] {
        let mut l = conv(c, k, s, k / 2);
        l.group = c;
        l.act = Some(Activation::Sigmoid);
        after_pointwise(name, [c, hw[0], hw[1]], l);
    }
}

fn pool(kind: PoolKind, k: u64, s: u64, p: u64, ceil: bool, include_pad: bool) -> Op {
    Op::Pool2d(PoolAttrs {
        kind,
        kernel: [k, k],
        strides: [s, s],
        pads: [p; 4],
        dilations: [1, 1],
        ceil_mode: ceil,
        count_include_pad: include_pad,
    })
}

#[test]
fn pools_elementwise_global_pool_and_reorders() {
    for (name, op) in [
        ("max 3x3 s2", pool(PoolKind::Max, 3, 2, 1, false, false)),
        ("avg 3x3 s2 ceil", pool(PoolKind::Avg, 3, 2, 1, true, false)),
        ("avg include pad", pool(PoolKind::Avg, 3, 1, 1, false, true)),
    ] {
        let (mut g, x) = graph(3, 25, 19);
        let t = add_conv(&mut g, x, &conv(40, 3, 1, 1), 1);
        let y = g.add_node(op, &[t], None).unwrap();
        g.add_output("y", y);
        check_both(name, &g);
    }
    // residual add + relu of two blocked convs, a global pool, and a reshape (plain) of a
    // blocked value as a second output
    let (mut g, x) = graph(3, 9, 7);
    let a = add_conv(&mut g, x, &conv(120, 3, 1, 1), 1);
    let b = add_conv(&mut g, a, &conv(120, 1, 1, 0), 3);
    let s = g
        .add_node(Op::Binary(BinaryOp::Add), &[a, b], None)
        .unwrap();
    let r = g.add_node(Op::Act(Activation::Relu), &[s], None).unwrap();
    let p = g.add_node(Op::GlobalAvgPool, &[r], None).unwrap();
    let m = g.add_node(Op::GlobalMaxPool, &[b], None).unwrap();
    let flat = g
        .add_node(
            Op::Reshape {
                shape: [Dim::Sym(secc_ir::SymId(0), 1), Dim::Known(120 * 63)]
                    .into_iter()
                    .collect(),
            },
            &[r],
            None,
        )
        .unwrap();
    g.add_output("pool", p);
    g.add_output("max", m);
    g.add_output("flat", flat);
    g.add_output("b", b);
    check_both("residual, pools, reorders", &g);
}

/// FC layers with constant weights run as the packed GEMM: both weight orientations, alpha
/// and beta, a bias row, a scalar bias, no bias, columns not a multiple of 16, and batches
/// below, at and above its 4-row tile.
#[test]
fn packed_gemm_layers() {
    use secc_ir::GemmAttrs;
    for (name, trans_b, alpha, beta, c) in [
        ("fc trans_b", true, 1.0, 1.0, Some(vec![1000usize])),
        (
            "fc plain B, alpha beta",
            false,
            0.5,
            2.0,
            Some(vec![1, 1000]),
        ),
        ("fc scalar C", true, 1.0, -1.5, Some(vec![1])),
        ("fc no C", false, 1.0, 1.0, None),
    ] {
        let mut g = Graph::new("t");
        let n = g.sym("N");
        let x = g.add_input("x", TensorType::f32([Dim::Sym(n, 1), Dim::Known(37)]));
        let bshape = if trans_b {
            vec![1000, 37]
        } else {
            vec![37, 1000]
        };
        let b = g.add_const(ConstData::new(bshape, weights(37000, 5)), None);
        let mut ins = vec![x, b];
        if let Some(cs) = c {
            let len = cs.iter().product();
            ins.push(g.add_const(ConstData::new(cs, weights(len, 6)), None));
        }
        let a = GemmAttrs {
            alpha,
            beta,
            trans_a: false,
            trans_b,
        };
        let y = g.add_node(Op::Gemm(a), &ins, None).unwrap();
        g.add_output("y", y);
        check_batches(name, &g, 16, "native", &[1, 3, 4, 9], false);
        check_batches(name, &g, 8, "x86-64-v3", &[1, 9], false);
    }
}

/// Residual adds become convolution epilogues (`fuse-conv-residual`): `add(x, conv(x))`,
/// either operand order, and `relu(add(..))` as a fused program, after dense and depthwise
/// convolutions, with and without a bias of their own.
/// `add`, or `relu(add(..))` as one fused element-wise program (as `fuse-elementwise` leaves it).
fn residual_add_op(program: bool) -> Op {
    use secc_ir::EwInstr;
    if program {
        Op::Elementwise {
            prog: vec![
                EwInstr::Binary(BinaryOp::Add, 0, 1),
                EwInstr::Act(Activation::Relu, 2),
            ],
        }
    } else {
        Op::Binary(BinaryOp::Add)
    }
}

#[test]
fn residual_add_epilogues() {
    for (name, depthwise, program, conv_first) in [
        ("dense add", false, false, true),
        ("dense add, other order", false, false, false),
        ("dense add+relu program", false, true, true),
        ("depthwise add", true, false, true),
        ("winograd add+relu program", false, true, false),
    ] {
        let (mut g, x) = graph(3, 13, 11);
        let a = add_conv(&mut g, x, &conv(40, 3, 1, 1), 1);
        // the last case's second conv is 3x3: the Winograd form, its epilogue after the
        // output transform
        let winograd = name.starts_with("winograd");
        let k = if depthwise || winograd { 3 } else { 1 };
        let mut l = conv(40, k, 1, u64::from(k == 3));
        if winograd {
            l.scale = 1.0 / (40.0f32 * 9.0).sqrt();
        }
        l.group = if depthwise { 40 } else { 1 };
        l.bias = !depthwise;
        let b = add_conv(&mut g, a, &l, 3);
        let ops = if conv_first { [b, a] } else { [a, b] };
        let y = g.add_node(residual_add_op(program), &ops, None).unwrap();
        g.add_output("y", y);
        let lowered = lowered(&g, 16);
        let fused = lowered
            .node_ids()
            .iter()
            .any(|n| matches!(&lowered.node(*n).op, Op::Conv2d(c) if c.residual));
        assert!(fused, "{name}: the add was not fused");
        if winograd {
            let line = plan_line(&g, 16, 3);
            assert!(
                line.contains("wino_output") && line.contains("epilogue=[Residual, Act(Relu)]"),
                "{name}: {line}"
            );
        }
        check_both(name, &g);
    }
}

/// `relu(x * gate + shortcut)` (SE-ResNet) and a plain `x * gate + shortcut`: the add (and
/// activation) run in the SE kernel's scale, in both operand orders, at 40 channels (not a
/// multiple of either block) over an odd 13x11 map.
#[test]
fn se_residual_epilogues() {
    use secc_ir::SeAttrs;
    for (name, program, se_first) in [
        ("se add+relu program", true, true),
        ("se add, other order", false, false),
        ("se add+relu, other order", true, false),
    ] {
        let (c, r) = (40u64, 10u64);
        let (mut g, x) = graph(3, 13, 11);
        let a = add_conv(&mut g, x, &conv(c, 3, 1, 1), 1);
        let t = add_conv(&mut g, a, &conv(c, 1, 1, 0), 3);
        let ws = se_operands(&mut g, t, [c, r], 20);
        let attrs = SeAttrs {
            inner: Activation::Relu,
            gate: Activation::Sigmoid,
            residual: false,
            act: None,
            pooled: false,
        };
        let se = g.add_node(Op::SqueezeExcite(attrs), &ws, None).unwrap();
        let ops = if se_first { [se, a] } else { [a, se] };
        let y = g.add_node(residual_add_op(program), &ops, None).unwrap();
        g.add_output("y", y);
        for block in [16, 8] {
            let low = lowered(&g, block);
            let fused = low.node_ids().iter().any(|n| {
                matches!(&low.node(*n).op, Op::SqueezeExcite(a)
                    if a.residual && a.act == program.then_some(Activation::Relu))
            });
            assert!(
                fused,
                "{name} block {block}: the add was not fused into the SE block"
            );
            // the fused graph computes what the graph before the pass did
            let ins = random_inputs(&g, 3, 5);
            let (want, got) = (
                interp::run(&g, &ins).unwrap(),
                interp::run(&low, &ins).unwrap(),
            );
            let e = max_rel_err(&got[0], &want[0]);
            assert!(
                e <= 1e-5,
                "{name} block {block}: lowering changed results by {e}"
            );
        }
        check_both(name, &g);
    }
}

/// An SE block's gate step and a gated convolution (the scale in the consumer): 1x1
/// (weights scaled once per pass, on the stack), with a residual epilogue, and the forms
/// the rule does not make but the IR allows: a strided padded 7x7 over a blocked input whose
/// pass is too large for the stack at 16 lanes (weights scaled as the tile loads them) and the
/// plain-input stem. Channels 37 and 19 are not multiples of either block.
#[test]
fn gated_convolutions() {
    use secc_ir::SeGateAttrs;
    let cases: [(&str, u64, Conv, bool); 4] = [
        ("gated 1x1", 37, conv(19, 1, 1, 0), false),
        ("gated 1x1 + residual", 37, conv(37, 1, 1, 0), true),
        ("gated 7x7 s2", 70, conv(150, 7, 2, 3), false),
        ("gated stem 3x3", 3, conv(19, 3, 1, 1), false),
    ];
    for (name, c, layer, residual) in cases {
        let (mut g, x) = graph(c, 11, 9);
        // a blocked input where the case has one: the SE block reads a convolution's output
        let t = if c > 3 {
            add_conv(&mut g, x, &conv(c, 3, 1, 1), 1)
        } else {
            x
        };
        let r = 5u64;
        let ws = se_operands(&mut g, t, [c, r], 30);
        let ga = SeGateAttrs {
            inner: Activation::Relu,
            gate: Activation::Sigmoid,
        };
        let gate = g.add_node(Op::SeGate(ga), &ws, Some("se".into())).unwrap();
        let w = (layer.o * c * layer.k[0] * layer.k[1]) as usize;
        let wshape = vec![
            layer.o as usize,
            c as usize,
            layer.k[0] as usize,
            layer.k[1] as usize,
        ];
        // trained-network scale, so the long dot products stay within the tolerance
        let ws = 1.0 / ((c * layer.k[0] * layer.k[1]) as f32).sqrt();
        let wdata = weights(w, 40).iter().map(|v| v * ws).collect();
        let wv = g.add_const(ConstData::new(wshape, wdata), None);
        let bv = g.add_const(
            ConstData::new(vec![layer.o as usize], weights(layer.o as usize, 41)),
            None,
        );
        let a = Conv2dAttrs {
            strides: layer.strides,
            pads: layer.pads,
            dilations: layer.dilations,
            group: 1,
            // the residual add fuses into a convolution without an activation yet
            act: (!residual).then_some(Activation::Relu),
            residual: false,
            gated: true,
            pool: false,
        };
        let mut y = g
            .add_node(Op::Conv2d(a), &[t, wv, bv, gate], Some("gated".into()))
            .unwrap();
        if residual {
            y = g
                .add_node(Op::Binary(BinaryOp::Add), &[y, t], None)
                .unwrap();
        }
        g.add_output("y", y);
        for block in [16, 8] {
            let low = lowered(&g, block);
            let gated_blocked = low.node_ids().iter().any(|n| {
                matches!(&low.node(*n).op, Op::Conv2d(a) if a.gated && a.residual == residual)
                    && low.node(*n).outputs[0].layout == Layout::Blocked(block)
            });
            assert!(
                gated_blocked,
                "{name} block {block}: the gated conv is not blocked"
            );
            let p = secc_codegen::plan::build(&low, true).unwrap();
            let text = secc_codegen::plan::describe(&p);
            let line = text.lines().find(|l| l.contains(" gated ")).unwrap();
            let form = if name.contains("7x7") && block == 16 {
                "gated=load"
            } else {
                "gated=pass"
            };
            assert!(
                line.contains(form),
                "{name} block {block}: not {form}: {line}"
            );
            assert!(text.contains("se_gate"), "{name}: no gate step in\n{text}");
        }
        check_both(name, &g);
        // plain NCHW kernels (the CUDA target's form): the gate scales each weight
        compare(&format!("{name} plain"), &g, "native", &[1, 3]);
    }
}

/// The pool in the producer's epilogue: a gate step reading a blocked convolution's result
/// reads its channel means (`conv2d {pool=true}`, a second result) after lowering, for a
/// depthwise producer (tile partials), a 1x1 (one long row, segment partials) with a
/// residual epilogue, and a strided 3x3 with an activation; channels 37 and 19, odd maps.
#[test]
fn pooling_producers() {
    use secc_ir::{SeAttrs, SeGateAttrs};
    let mut dw = conv(37, 3, 1, 1);
    dw.group = 37;
    dw.act = Some(Activation::HardSwish);
    let mut s2 = conv(19, 3, 2, 1);
    s2.act = Some(Activation::Relu);
    let cases: [(&str, Conv, bool); 3] = [
        ("depthwise 3x3 producer", dw, false),
        ("1x1 producer + residual", conv(37, 1, 1, 0), true),
        ("3x3 s2 producer", s2, false),
    ];
    // each producer feeds a gate step, or a whole SE block (which keeps reading x for its
    // scale; with a residual add where the shapes allow)
    let cases = cases
        .iter()
        .flat_map(|(n, l, r)| [(*n, l, *r, false), (*n, l, *r, true)]);
    for (name, layer, residual, whole) in cases {
        let (mut g, x) = graph(37, 13, 11);
        let t = add_conv(&mut g, x, &conv(37, 1, 1, 0), 1);
        let mut p = add_conv(&mut g, t, layer, 3);
        if residual {
            p = g
                .add_node(Op::Binary(BinaryOp::Add), &[p, t], None)
                .unwrap();
        }
        let c = g.ty(p).shape[1].known().unwrap();
        let r = 6u64;
        let ws = se_operands(&mut g, p, [c, r], 50);
        let ga = SeGateAttrs {
            inner: Activation::Relu,
            gate: Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
        };
        if whole {
            let a = SeAttrs {
                inner: ga.inner,
                gate: ga.gate,
                residual: false,
                act: None,
                pooled: false,
            };
            let mut y = g
                .add_node(Op::SqueezeExcite(a), &ws, Some("se".into()))
                .unwrap();
            if g.ty(y) == g.ty(t) {
                y = g.add_node(residual_add_op(true), &[y, t], None).unwrap();
            }
            g.add_output("y", y);
        } else {
            let gate = g.add_node(Op::SeGate(ga), &ws, Some("se".into())).unwrap();
            g.add_output("gate", gate);
        }
        g.add_output("p", p);
        let name = format!("{name}{}", if whole { ", whole SE block" } else { "" });
        let name = name.as_str();
        for block in [16, 8] {
            let low = lowered(&g, block);
            let pooled = low.node_ids().iter().any(|n| {
                matches!(&low.node(*n).op, Op::Conv2d(a) if a.pool)
                    && low.node(*n).outputs.len() == 2
            });
            assert!(pooled, "{name} block {block}: no pooling convolution");
            let se_pooled = low
                .node_ids()
                .iter()
                .any(|n| matches!(&low.node(*n).op, Op::SqueezeExcite(a) if a.pooled));
            assert_eq!(se_pooled, whole, "{name} block {block}");
            low.verify().unwrap();
            let text = secc_ir::print::print(&low);
            assert!(text.contains("#1: f32[N,"), "{name}: {text}");
            // the lowered graph computes what the graph before did
            let ins = random_inputs(&g, 3, 5);
            let (want, got) = (
                interp::run(&g, &ins).unwrap(),
                interp::run(&low, &ins).unwrap(),
            );
            for (a, b) in got.iter().zip(&want) {
                let e = max_rel_err(a, b);
                assert!(
                    e <= 1e-5,
                    "{name} block {block}: lowering changed results by {e}"
                );
            }
        }
        check_both(name, &g);
    }
}

/// A pooling window too large to unroll pools plain behind a reorder, so compile time stays
/// bounded (the blocked pool unrolls its taps).
#[test]
fn huge_pool_windows_stay_plain() {
    let (mut g, x) = graph(3, 40, 40);
    let t = add_conv(&mut g, x, &conv(20, 3, 1, 1), 1);
    let y = g
        .add_node(pool(PoolKind::Avg, 30, 1, 0, false, false), &[t], None)
        .unwrap();
    g.add_output("y", y);
    let lowered = lowered(&g, 16);
    let pool_plain = lowered.node_ids().iter().any(|n| {
        matches!(lowered.node(*n).op, Op::Pool2d(_))
            && lowered.node(*n).outputs[0].layout == Layout::Plain
    });
    assert!(pool_plain, "the 30x30 pool was blocked");
    check("30x30 avg pool", &g, 16, "native");
}

/// Channel concatenation stays blocked: operands that start on a block boundary or inside a
/// block (16 + 24 + 3 + 20 channels), a plain graph input among them (reordered to blocked),
/// and a convolution reading the result.
#[test]
fn channel_concat_stays_blocked() {
    let (mut g, x) = graph(3, 9, 7);
    let a = add_conv(&mut g, x, &conv(16, 3, 1, 1), 1);
    let b = add_conv(&mut g, x, &conv(24, 1, 1, 0), 3);
    let c = add_conv(&mut g, a, &conv(20, 3, 1, 1), 5);
    let cat = g
        .add_node(Op::Concat { axis: 1 }, &[a, b, x, c], None)
        .unwrap();
    let y = add_conv(&mut g, cat, &conv(33, 1, 1, 0), 7);
    g.add_output("cat", cat);
    g.add_output("y", y);
    let lowered = lowered(&g, 16);
    let blocked_cat = lowered.node_ids().iter().any(|n| {
        matches!(lowered.node(*n).op, Op::Concat { .. })
            && lowered.node(*n).outputs[0].layout == Layout::Blocked(16)
    });
    assert!(blocked_cat, "the concat was not blocked");
    check_both("concat 16+24+3+20", &g);
}

/// Element-wise programs with scalar constants (hard-swish as Paddle2ONNX and tf2onnx spell
/// it: `x * clip(x + 3, 0, 6) / 6`) stay blocked between convolutions: the scalars broadcast
/// over the stored elements.
#[test]
fn elementwise_with_scalar_constants_stays_blocked() {
    use secc_ir::EwInstr;
    let (mut g, x) = graph(3, 11, 9);
    let a = add_conv(&mut g, x, &conv(24, 3, 2, 1), 1);
    let three = g.add_const(ConstData::new(vec![1], vec![3.0]), None);
    let six = g.add_const(ConstData::new(vec![1, 1, 1, 1], vec![6.0]), None);
    let prog = vec![
        EwInstr::Binary(BinaryOp::Add, 0, 1),
        EwInstr::Act(Activation::Clip { min: 0.0, max: 6.0 }, 3),
        EwInstr::Binary(BinaryOp::Mul, 0, 4),
        EwInstr::Binary(BinaryOp::Div, 5, 2),
    ];
    let hs = g
        .add_node(Op::Elementwise { prog }, &[a, three, six], None)
        .unwrap();
    let y = add_conv(&mut g, hs, &conv(8, 1, 1, 0), 3);
    g.add_output("y", y);
    let lowered = lowered(&g, 16);
    let reorders = lowered
        .node_ids()
        .iter()
        .filter(|n| matches!(lowered.node(**n).op, Op::Reorder { .. }))
        .count();
    assert_eq!(reorders, 1, "only the output should be reordered");
    check_both("hard-swish with scalar constants", &g);
}

/// Resizes (nearest x2 as PP-OCR's neck writes it, bilinear half-pixel to an odd size) run
/// blocked between convolutions.
#[test]
fn resizes_stay_blocked() {
    use secc_ir::{CoordMode, NearestMode, ResizeAttrs, ResizeMode};
    for (name, mode, coord, sizes) in [
        (
            "nearest x2",
            ResizeMode::Nearest(NearestMode::Floor),
            CoordMode::Asymmetric,
            [18u64, 14u64],
        ),
        (
            "linear to 13x10",
            ResizeMode::Linear,
            CoordMode::HalfPixel,
            [13, 10],
        ),
    ] {
        let (mut g, x) = graph(3, 9, 7);
        let a = add_conv(&mut g, x, &conv(20, 3, 1, 1), 1);
        let r = ResizeAttrs {
            mode,
            coord,
            scales: [sizes[0] as f32 / 9.0, sizes[1] as f32 / 7.0],
            sizes: [Dim::Known(sizes[0]), Dim::Known(sizes[1])],
            lengths: [Some(sizes[0] as f32), Some(sizes[1] as f32)],
        };
        let y = g.add_node(Op::Resize(r), &[a], None).unwrap();
        let z = add_conv(&mut g, y, &conv(8, 1, 1, 0), 3);
        g.add_output("z", z);
        check_both(name, &g);
    }
}

/// `x: f32[N, c, H, W]` with symbolic batch, height and width.
fn symbolic_graph(c: u64) -> (Graph, ValueId) {
    let mut g = Graph::new("t");
    let (n, h, w) = (g.sym("N"), g.sym("H"), g.sym("W"));
    let x = g.add_input(
        "x",
        TensorType::f32([Dim::sym(n), c.into(), Dim::sym(h), Dim::sym(w)]),
    );
    (g, x)
}

/// One artifact for `g` (symbolic H and W) run at every size of `sizes` (`[N, H, W]`) on 1
/// and 2 threads against the interpreter; a size the graph's constraints refuse must be
/// refused by the runtime too.
fn check_sizes(name: &str, g: &Graph, block: u32, cpu: &str, sizes: &[[usize; 3]]) {
    let g = lowered(g, block);
    let blocked = g.node_ids().into_iter().any(|n| {
        g.node(n).outputs[0].layout == Layout::Blocked(block)
            && matches!(g.node(n).op, Op::Conv2d(_))
    });
    assert!(blocked, "{name}: no convolution was blocked");
    let opts = secc_codegen::CodegenOptions {
        target: secc_codegen::Target::Cpu { cpu: cpu.into() },
        ..cpu_opts()
    };
    let bytes = secc_codegen::compile(&g, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let c = g.ty(g.inputs[0].1.into()).shape[1].known().unwrap() as usize;
    for threads in [1, 2] {
        let model = secc_runtime::Model::from_bytes(bytes.clone()).unwrap();
        let mut m = model.session(threads).unwrap();
        for (i, &[n, h, w]) in sizes.iter().enumerate() {
            let data = common::build::values(n * c * h * w, 11 + i as u32);
            let x = interp::Tensor::new(vec![n, c, h, w], data.clone());
            let rt = secc_runtime::Tensor::new(vec![n, c, h, w], data).unwrap();
            let got = m.run(&[rt]);
            let Ok(want) = interp::run(&g, &[x]) else {
                assert!(got.is_err(), "{name}: {n}x{h}x{w} must be refused");
                continue;
            };
            for (a, b) in got.unwrap().iter().zip(&want) {
                let e = max_rel_err(&from_runtime(a), b);
                assert!(
                    e <= TOL,
                    "{name} block {block} {cpu} {n}x{c}x{h}x{w} threads {threads}: err {e}"
                );
            }
        }
    }
}

/// Blocked kernels with run-time extents: every convolution path, pools, concat, residual
/// and global pool of one symbolic-size graph, at sizes whose rows leave every tail (1 to
/// 31 columns, so each power-of-two piece of the last tile runs), a 1x1 map, and sizes a
/// valid convolution refuses.
#[test]
fn blocked_kernels_take_run_time_heights_and_widths() {
    let sizes = [
        [1, 7, 9],
        [3, 13, 5],
        [1, 2, 31],
        [2, 25, 19],
        [1, 1, 1],
        [1, 3, 40],
        [1, 6, 3],
    ];
    let (mut g, x) = symbolic_graph(20);
    let mut l = conv(24, 1, 1, 0);
    l.act = Some(Activation::Relu);
    let p = add_conv(&mut g, x, &l, 1);
    let mut l = conv(33, 3, 1, 1);
    l.act = Some(Activation::Silu);
    let a = add_conv(&mut g, p, &l, 3);
    let s2 = add_conv(&mut g, p, &conv(40, 3, 2, 1), 5);
    let mut dw = conv(24, 5, 2, 2);
    dw.group = 24;
    let d = add_conv(&mut g, p, &dw, 7);
    let mut dil = conv(24, 3, 1, 2);
    dil.dilations = [2, 2];
    let r = add_conv(&mut g, p, &dil, 9);
    let sum = g
        .add_node(Op::Binary(BinaryOp::Add), &[p, r], None)
        .unwrap();
    let cat = g.add_node(Op::Concat { axis: 1 }, &[sum, a], None).unwrap();
    let mp = g
        .add_node(pool(PoolKind::Max, 3, 2, 1, true, false), &[cat], None)
        .unwrap();
    let ap = g
        .add_node(pool(PoolKind::Avg, 3, 1, 1, false, true), &[d], None)
        .unwrap();
    let gp = g.add_node(Op::GlobalAvgPool, &[s2], None).unwrap();
    for (k, v) in [("mp", mp), ("ap", ap), ("gp", gp), ("a", a)] {
        g.add_output(k, v);
    }
    // a valid 3x5 convolution with asymmetric pads: W >= 4 is a constraint
    let (mut v, vx) = symbolic_graph(17);
    let mut l = conv(24, 3, 1, 0);
    l.pads = [0, 1, 2, 0];
    l.strides = [2, 1];
    l.k = [3, 5];
    let y = add_conv(&mut v, vx, &l, 2);
    v.add_output("y", y);
    for (block, cpu) in [(16, "native"), (8, "x86-64-v3")] {
        check_sizes("symbolic network", &g, block, cpu, &sizes);
        check_sizes("symbolic 3x5 valid", &v, block, cpu, &sizes);
    }
}

/// `CodegenOptions::winograd = false` (`secc --no-winograd`) keeps every convolution
/// direct: no Winograd step in the plan, and the results still match the interpreter.
#[test]
fn winograd_can_be_turned_off() {
    let (mut g, x) = graph(40, 13, 11);
    let t = add_conv(&mut g, x, &conv(40, 1, 1, 0), 1);
    let layer = Conv {
        scale: 1.0 / 360f32.sqrt(),
        ..conv(48, 3, 1, 1)
    };
    let y = add_conv(&mut g, t, &layer, 3);
    g.add_output("y", y);
    let low = lowered(&g, 16);
    for winograd in [true, false] {
        let forms = secc_codegen::plan::Forms {
            gpu: false,
            winograd,
        };
        let plan = secc_codegen::plan::build_with(&low, true, forms).unwrap();
        let text = secc_codegen::plan::describe(&plan);
        assert_eq!(text.contains("wino_gemm"), winograd, "{text}");
    }
    let opts = secc_codegen::CodegenOptions {
        winograd: false,
        ..cpu_opts()
    };
    compare_with("direct 3x3 with Winograd off", &low, &opts, &[1, 3]);
}

/// Winograd convolutions of run-time extents: the tile counts are expressions of H and W,
/// the last tile row and column check their pixels at run time (every remainder of 2 and 4
/// among the sizes), a padded and a valid 3x3 (which refuses maps under 3x3), with
/// activation and residual epilogues, for the form chosen at the typical extent.
#[test]
fn winograd_at_run_time_extents() {
    let sizes = [
        [1, 7, 9],
        [3, 13, 5],
        [1, 2, 31],
        [2, 26, 19],
        [1, 1, 1],
        [1, 6, 3],
        [1, 33, 30],
        [1, 3, 3],
    ];
    let (mut g, x) = symbolic_graph(35);
    let first = Conv {
        scale: 1.0 / 35f32.sqrt(),
        act: Some(Activation::Relu),
        ..conv(40, 1, 1, 0)
    };
    let p = add_conv(&mut g, x, &first, 1);
    let padded = Conv {
        scale: 1.0 / 360f32.sqrt(),
        act: Some(Activation::Silu),
        ..conv(40, 3, 1, 1)
    };
    let a = add_conv(&mut g, p, &padded, 3);
    let sum = g.add_node(residual_add_op(true), &[a, p], None).unwrap();
    let valid = Conv {
        scale: 1.0 / 360f32.sqrt(),
        ..conv(33, 3, 1, 0)
    };
    let b = add_conv(&mut g, p, &valid, 5);
    g.add_output("sum", sum);
    g.add_output("b", b);
    for (block, cpu) in [(16, "native"), (8, "x86-64-v3")] {
        for seed in [3, 5] {
            let line = plan_line(&g, block, seed);
            assert!(
                line.contains("wino_gemm"),
                "conv{seed} block {block}: {line}"
            );
        }
        check_sizes("symbolic winograd", &g, block, cpu, &sizes);
    }
}

/// Resizes of symbolic extents compute their taps in the kernel: every coordinate mode and
/// rounding rule, integer and fractional scales up and down, blocked (after a blocked
/// convolution) and plain (of the input), against the interpreter's f32 taps.
#[test]
fn resizes_of_run_time_extents_compute_their_taps_in_the_kernel() {
    use secc_ir::{CoordMode as C, NearestMode as Nm, ResizeAttrs, ResizeMode as M};
    let cases = [
        (M::Nearest(Nm::RoundPreferFloor), C::HalfPixel, (2, 1)),
        (M::Linear, C::HalfPixel, (3, 2)),
        (M::Linear, C::AlignCorners, (2, 1)),
        (M::Nearest(Nm::Floor), C::Asymmetric, (1, 2)),
        (M::Linear, C::PytorchHalfPixel, (3, 4)),
        (
            M::Nearest(Nm::RoundPreferCeil),
            C::HalfPixelSymmetric,
            (3, 1),
        ),
        (M::Nearest(Nm::Ceil), C::TfHalfPixelForNn, (5, 4)),
    ];
    for (mode, coord, (num, den)) in cases {
        let (mut g, x) = symbolic_graph(5);
        let ext = |v: ValueId, axis: usize, g: &Graph| {
            g.ty(v).shape[axis]
                .checked_mul(Dim::Known(num))
                .and_then(|d| d.div_floor(den))
                .unwrap()
        };
        let attrs = |v: ValueId, g: &Graph| ResizeAttrs {
            mode,
            coord,
            scales: [num as f32 / den as f32; 2],
            sizes: [ext(v, 2, g), ext(v, 3, g)],
            lengths: [None, None],
        };
        let a = add_conv(&mut g, x, &conv(20, 3, 1, 1), 1);
        let r = attrs(a, &g);
        let blocked = g.add_node(Op::Resize(r), &[a], None).unwrap();
        let r = attrs(x, &g);
        let plain = g.add_node(Op::Resize(r), &[x], None).unwrap();
        g.add_output("blocked", blocked);
        g.add_output("plain", plain);
        let name = format!("{mode:?} {coord:?} x{num}/{den}");
        let sizes = [[1, 7, 9], [2, 4, 5], [1, 1, 1], [1, 2, 13], [1, 12, 3]];
        for (block, cpu) in [(16, "native"), (8, "x86-64-v3")] {
            check_sizes(&name, &g, block, cpu, &sizes);
        }
    }
}
