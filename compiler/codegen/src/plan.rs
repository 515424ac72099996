//! Buffer assignment and kernel steps: the execution plan stored in the artifact.
use crate::blocked::{BlockedConv, View};
use crate::CodegenError;
use secc_artifact::{BufferDecl, BufferKind, DimDecl, IoDecl};
use secc_ir::{
    Activation, BinaryOp, Conv2dAttrs, ConvTransposeAttrs, Dim, GemmAttrs, Graph, NodeId, Op,
    ResizeAttrs, SeAttrs, ValueId,
};
use std::collections::BTreeMap;

/// What a kernel computes, with every shape it needs.
#[derive(Debug, Clone)]
pub enum KernelKind {
    /// Broadcasting element-wise op over `ins` producing `out`.
    Elementwise {
        /// function
        f: EwFn,
        /// output shape
        out: Vec<Dim>,
        /// operand shapes
        ins: Vec<Vec<Dim>>,
    },
    /// Mean (or max) over `axes` of `input` (the keep flag does not change the layout).
    ReduceMean {
        /// input shape
        input: Vec<Dim>,
        /// reduced axes (sorted)
        axes: Vec<usize>,
        /// which reduction (`None` = mean)
        op: Option<secc_ir::ReduceKind>,
    },
    /// Concatenation along `axis`.
    Concat {
        /// axis
        axis: usize,
        /// operand shapes
        ins: Vec<Vec<Dim>>,
    },
    /// Border padding. Arguments: x, the fill value when the mode is `ConstantInput`, y.
    Pad {
        /// per-axis (before, after)
        pads: Vec<(u64, u64)>,
        /// fill mode
        mode: secc_ir::PadMode,
        /// input shape
        input: Vec<Dim>,
    },
    /// Strided window (Slice, Split, constant-index Gather).
    Slice {
        /// first input index per axis
        starts: Vec<u64>,
        /// step per axis
        steps: Vec<i64>,
        /// input shape
        input: Vec<Dim>,
        /// output shape
        out: Vec<Dim>,
    },
    /// Spatial resize. Arguments: x, row taps, column taps (3 floats per output coordinate:
    /// first index, second index, weight of the second), y.
    Resize {
        /// attributes
        attrs: ResizeAttrs,
        /// x shape [N, C, H, W]
        x: Vec<Dim>,
        /// channels per block of x and y (1: plain NCHW)
        lanes: u64,
    },
    /// Transposed 2-D convolution, each output pixel gathering the inputs that map to it.
    ConvTranspose {
        /// attributes
        attrs: ConvTransposeAttrs,
        /// x shape
        x: Vec<Dim>,
        /// w shape [Cin, Cout/group, kh, kw]
        w: Vec<Dim>,
        /// has a bias operand
        bias: bool,
    },
    /// Axis permutation.
    Transpose {
        /// output axis i = input axis perm[i]
        perm: Vec<usize>,
        /// input shape
        input: Vec<Dim>,
    },
    /// Softmax along `axis`.
    Softmax {
        /// axis
        axis: usize,
        /// shape
        shape: Vec<Dim>,
    },
    /// Argmax of each max-pooling window, as int64 flat input indices.
    MaxPoolIndices {
        /// attributes
        attrs: secc_ir::PoolAttrs,
        /// input shape [N, C, H, W]
        x: Vec<Dim>,
        /// ONNX storage_order = 1
        column_major: bool,
    },
    /// An int64 tensor known up to the symbolic batch, written by thread 0.
    IntTensor {
        /// row-major elements
        values: Vec<secc_ir::IntElem>,
    },
    /// Windowed 2-D pooling.
    Pool {
        /// attributes
        attrs: secc_ir::PoolAttrs,
        /// input shape [N, C, H, W]
        x: Vec<Dim>,
    },
    /// `alpha * op(A) op(B) + beta * C`.
    Gemm {
        /// attributes
        attrs: GemmAttrs,
        /// A shape
        a: Vec<Dim>,
        /// B shape
        b: Vec<Dim>,
        /// C shape, if present
        c: Option<Vec<Dim>>,
    },
    /// Batched matmul with broadcasting.
    MatMul {
        /// A shape
        a: Vec<Dim>,
        /// B shape
        b: Vec<Dim>,
    },
    /// Direct 2-D convolution.
    Conv {
        /// attributes
        attrs: Conv2dAttrs,
        /// x shape
        x: Vec<Dim>,
        /// w shape
        w: Vec<Dim>,
        /// has a bias operand
        bias: bool,
    },
    /// Fused squeeze-and-excitation. Arguments: x, w1 [R,C], b1, w2 transposed to [R,C]
    /// (so FC2 vectorises over channels), b2, y, scratch of `block * (C + R)` floats.
    SqueezeExcite {
        /// activations
        attrs: SeAttrs,
        /// x shape [N, C, H, W]
        x: Vec<Dim>,
        /// squeeze width R
        r: u64,
        /// images processed together, so the FC weights are read once per block
        block: u64,
        /// channels per block of x and y (1: plain NCHW)
        lanes: u64,
    },
    /// Convolution over blocked tensors, weights packed at compile time.
    ConvBlocked(BlockedConv),
    /// Channel concatenation of blocked images. Arguments: the operands, y.
    ConcatBlocked {
        /// the batch
        n: Dim,
        /// operands
        ins: Vec<View>,
        /// result
        y: View,
    },
    /// GEMM with constant weights packed at compile time (CPU).
    GemmPacked(crate::blocked::PackedGemm),
    /// Plain `[N, C, H, W]` to blocked, or back.
    Reorder {
        /// the batch
        n: Dim,
        /// the blocked view (its `block` is the channel block)
        view: View,
        /// direction
        to_blocked: bool,
    },
    /// Global average or max pool of a blocked tensor into a plain `[N, C, 1, 1]`.
    GlobalPoolBlocked {
        /// the batch
        n: Dim,
        /// the input
        view: View,
        /// max instead of mean
        max: bool,
    },
    /// Windowed pooling of blocked tensors.
    PoolBlocked {
        /// attributes
        attrs: secc_ir::PoolAttrs,
        /// the batch
        n: Dim,
        /// input
        x: View,
        /// output
        y: View,
    },
}

/// Element-wise functions.
#[derive(Debug, Clone)]
pub enum EwFn {
    /// binary arithmetic
    Binary(BinaryOp),
    /// activation
    Act(Activation),
    /// plain copy (also a broadcast, when the output is larger)
    Copy,
    /// `cond != 0 ? a : b`
    Where,
    /// a fused program over the operands
    Program(Vec<secc_ir::EwInstr>),
}

impl KernelKind {
    /// Short kind name for the manifest.
    pub fn name(&self) -> &'static str {
        match self {
            KernelKind::Elementwise { .. } => "elementwise",
            KernelKind::ReduceMean { op: None, .. } => "reduce_mean",
            KernelKind::ReduceMean {
                op: Some(secc_ir::ReduceKind::Sum),
                ..
            } => "reduce_sum",
            KernelKind::ReduceMean {
                op: Some(secc_ir::ReduceKind::Max),
                ..
            } => "reduce_max",
            KernelKind::ReduceMean {
                op: Some(secc_ir::ReduceKind::Min),
                ..
            } => "reduce_min",
            KernelKind::Pool { .. } => "pool2d",
            KernelKind::MaxPoolIndices { .. } => "max_pool2d_indices",
            KernelKind::IntTensor { .. } => "int_tensor",
            KernelKind::Concat { .. } => "concat",
            KernelKind::Pad { .. } => "pad",
            KernelKind::Transpose { .. } => "transpose",
            KernelKind::Slice { .. } => "slice",
            KernelKind::Resize { .. } => "resize",
            KernelKind::ConvTranspose { .. } => "conv_transpose2d",
            KernelKind::Softmax { .. } => "softmax",
            KernelKind::Gemm { .. } => "gemm",
            KernelKind::MatMul { .. } => "matmul",
            KernelKind::Conv { .. } => "conv2d",
            KernelKind::SqueezeExcite { .. } => "squeeze_excite",
            KernelKind::ConvBlocked(g) if g.depthwise => "conv2d_dw_blocked",
            KernelKind::ConvBlocked(_) => "conv2d_blocked",
            KernelKind::GemmPacked(_) => "gemm_packed",
            KernelKind::ConcatBlocked { .. } => "concat_blocked",
            KernelKind::Reorder {
                to_blocked: true, ..
            } => "reorder_to_blocked",
            KernelKind::Reorder { .. } => "reorder_to_plain",
            KernelKind::GlobalPoolBlocked { .. } => "global_pool_blocked",
            KernelKind::PoolBlocked { .. } => "pool2d_blocked",
        }
    }
}

/// One kernel launch.
#[derive(Debug, Clone)]
pub struct Step {
    /// symbol name
    pub name: String,
    /// what it computes
    pub kind: KernelKind,
    /// ONNX provenance
    pub origin: String,
    /// argument buffers: operands, then the output (then scratch)
    pub args: Vec<u32>,
    /// written buffers
    pub writes: Vec<u32>,
    /// PTX: one CTA per unit of this dim (SE: per image)
    pub grid: Option<Dim>,
}

/// The whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// buffers by id
    pub buffers: Vec<BufferDecl>,
    /// packed weights, each 64-byte aligned
    pub weights: Vec<u8>,
    /// kernels in order
    pub steps: Vec<Step>,
    /// inputs
    pub inputs: Vec<IoDecl>,
    /// outputs
    pub outputs: Vec<IoDecl>,
    /// number of fused SE kernels
    pub se_blocks: u32,
}

/// One line per kernel: name, ONNX origin, and for blocked convolutions the register tile
/// and the loop blocking chosen for the target (what `--print-after plan` shows).
pub fn describe(p: &Plan) -> String {
    let mut out = String::new();
    for s in &p.steps {
        out.push_str(&format!("{:<28} {:<20}", s.name, s.origin));
        if let KernelKind::ConvBlocked(c) = &s.kind {
            let ep: Vec<String> = c.epilogue.iter().map(|e| format!("{e:?}")).collect();
            out.push_str(&format!(
                " x={}x{}x{}/{} y={}x{}x{}/{} k={}x{} s={}x{} tile={}px x {}blk chunk={} seg={} band={} epilogue=[{}]",
                c.x.c, c.x.h, c.x.w, c.x.block, c.y.c, c.y.h, c.y.w, c.y.block, c.k[0], c.k[1],
                c.strides[0], c.strides[1], c.tile.px, c.tile.qn, c.blocking.chunk, c.blocking.seg, c.blocking.band,
                ep.join(", ")
            ));
        }
        if let KernelKind::GemmPacked(g) = &s.kind {
            out.push_str(&format!(" k={} n={} tile=4 rows x 4 blk", g.k, g.n));
        }
        out.push('\n');
    }
    out
}

/// IR dim to manifest dim.
pub fn dim_decl(d: Dim) -> DimDecl {
    match d {
        Dim::Known(v) => DimDecl::Known(v),
        Dim::Sym(s, k) => DimDecl::Sym { sym: s.0, coeff: k },
    }
}

/// The value viewed as one flat dimension of f32 words (for copies between shapes; an i64
/// element is two words, copied bit for bit).
fn flat(g: &Graph, v: ValueId) -> Option<Vec<Dim>> {
    let t = g.ty(v);
    let words = Dim::Known(t.dtype.size() as u64 / 4);
    t.numel()
        .and_then(|n| n.checked_mul(words))
        .map(|n| vec![n])
}

fn shape_of(g: &Graph, v: ValueId) -> Vec<Dim> {
    g.ty(v).shape.to_vec()
}

fn push_weight(p: &mut Plan, shape: Vec<DimDecl>, data: &[f32]) -> u32 {
    let off = p.weights.len().div_ceil(secc_artifact::ALIGN) * secc_artifact::ALIGN;
    p.weights.resize(off, 0);
    for x in data {
        p.weights.extend_from_slice(&x.to_le_bytes());
    }
    p.buffers.push(BufferDecl {
        dtype: "f32".into(),
        shape,
        kind: BufferKind::Weight { offset: off as u64 },
    });
    p.buffers.len() as u32 - 1
}

/// Images per SE block iteration on the CPU: weight-heavy blocks (small maps, many channels)
/// take many images per pass over the FC weights; otherwise as many as keep the block's X in
/// cache between the pool and the scale.
fn se_block_images(c: u64, r: u64, hw: u64) -> u64 {
    let img = c * hw * 4;
    let weights = 2 * c * r * 4;
    if weights >= 2 * img {
        16
    } else {
        ((1536 * 1024) / img.max(1)).clamp(1, 16)
    }
}

/// The shape a value's buffer has in memory: the logical shape, or `[N, C/c, H, W, c]` for
/// a blocked tensor (channels padded).
fn stored_shape(g: &Graph, v: ValueId) -> Vec<Dim> {
    let t = g.ty(v);
    match (t.layout.block(), t.shape.as_slice()) {
        (Some(c), [n, ch, h, w]) => {
            let cb = ch.known().unwrap_or(0).div_ceil(u64::from(c));
            vec![*n, Dim::Known(cb), *h, *w, Dim::Known(u64::from(c))]
        }
        _ => t.shape.to_vec(),
    }
}

/// The view of a `[N, C, H, W]` value with known C, H, W (the layout pass blocks no other).
fn view_of(g: &Graph, v: ValueId) -> View {
    let t = g.ty(v);
    let k = |i: usize| t.shape.get(i).and_then(|d| d.known()).unwrap_or(1);
    View {
        c: k(1),
        h: k(2),
        w: k(3),
        block: t.layout.block().map_or(1, u64::from),
    }
}

/// Vector registers of the target a blocked kernel is tiled for, by its vector width:
/// AVX-512 has 32 (16 lanes), AVX2 16 (8 lanes).
fn vector_registers(lanes: u64) -> u64 {
    if lanes >= 16 {
        32
    } else {
        16
    }
}

/// The kernel of a node that reads or writes blocked tensors, if it does.
fn blocked_kind(g: &Graph, id: NodeId) -> Result<Option<KernelKind>, CodegenError> {
    let v: ValueId = id.into();
    let ins = g.inputs(id);
    let out = g.ty(v);
    let in_blocked = ins
        .first()
        .is_some_and(|x| g.ty(*x).layout.block().is_some());
    if out.layout.block().is_none() && !in_blocked {
        return Ok(None);
    }
    let n = out.shape.first().copied().unwrap_or(Dim::Known(1));
    Ok(Some(match &g.node(id).op {
        Op::Reorder { to } => KernelKind::Reorder {
            n,
            view: if to.block().is_some() {
                view_of(g, v)
            } else {
                view_of(g, ins[0])
            },
            to_blocked: to.block().is_some(),
        },
        Op::Conv2d(a) => KernelKind::ConvBlocked(blocked_conv(g, id, a)?),
        Op::Resize(a) => KernelKind::Resize {
            attrs: a.clone(),
            x: shape_of(g, ins[0]),
            lanes: view_of(g, ins[0]).block,
        },
        Op::Concat { .. } => KernelKind::ConcatBlocked {
            n,
            ins: ins.iter().map(|x| view_of(g, *x)).collect(),
            y: view_of(g, v),
        },
        Op::Pool2d(a) => KernelKind::PoolBlocked {
            attrs: a.clone(),
            n,
            x: view_of(g, ins[0]),
            y: view_of(g, v),
        },
        Op::GlobalAvgPool | Op::GlobalMaxPool => KernelKind::GlobalPoolBlocked {
            n,
            view: view_of(g, ins[0]),
            max: g.node(id).op == Op::GlobalMaxPool,
        },
        // same-shape operands in one layout: element-wise over the stored elements
        Op::Act(_) | Op::Binary(_) | Op::Elementwise { .. } => {
            let words: Vec<Dim> = stored_shape(g, v);
            let total = words
                .iter()
                .try_fold(Dim::Known(1), |a, d| a.checked_mul(*d))
                .ok_or_else(|| CodegenError::Unsupported {
                    node: g.node_ref(id).to_string(),
                    msg: "element count is a product of symbols".into(),
                })?;
            let f = match &g.node(id).op {
                Op::Act(a) => EwFn::Act(*a),
                Op::Binary(b) => EwFn::Binary(*b),
                Op::Elementwise { prog } => EwFn::Program(prog.clone()),
                _ => unreachable!("matched above"),
            };
            // scalar operands broadcast over the stored elements, padding lanes included
            let ins = ins
                .iter()
                .map(|x| {
                    if secc_ir::layout::is_scalar(g.ty(*x)) {
                        vec![Dim::Known(1)]
                    } else {
                        vec![total]
                    }
                })
                .collect();
            KernelKind::Elementwise {
                f,
                out: vec![total],
                ins,
            }
        }
        // the SE kernel reads the layout from its operand
        Op::SqueezeExcite(_) => return Ok(None),
        _ => {
            return Err(CodegenError::Unsupported {
                node: g.node_ref(id).to_string(),
                msg: "no kernel for blocked tensors (layout pass bug)".into(),
            })
        }
    }))
}

/// The blocked convolution of a conv node; a 1x1 stride-1 unpadded conv runs over its
/// pixels as one long row.
fn blocked_conv(g: &Graph, id: NodeId, a: &Conv2dAttrs) -> Result<BlockedConv, CodegenError> {
    let ins = g.inputs(id);
    let (mut x, mut y) = (view_of(g, ins[0]), view_of(g, id.into()));
    let w = &g.ty(ins[1]).shape;
    let k = [w[2].known().unwrap_or(1), w[3].known().unwrap_or(1)];
    let pointwise = k == [1, 1] && a.strides == [1, 1] && a.pads == [0; 4];
    if pointwise {
        (x.w, x.h) = (x.h * x.w, 1);
        (y.w, y.h) = (y.h * y.w, 1);
    }
    let depthwise = a.group > 1;
    let tile = crate::blocked::conv_tile(y.blocks(), y.w, vector_registers(y.block), depthwise);
    let groups = y.blocks().div_ceil(tile.qn);
    let taps = k[0] * k[1];
    let b = crate::blocked::conv_blocking(
        tile,
        [x.blocks(), taps, x.block, y.block],
        [groups, y.h, y.w],
    );
    Ok(BlockedConv {
        n: g.ty(ins[0]).shape[0],
        x,
        y,
        k,
        strides: a.strides,
        dilations: a.dilations,
        pads: [a.pads[0], a.pads[1]],
        depthwise,
        epilogue: a
            .residual
            .then_some(crate::blocked::Epilogue::Residual)
            .into_iter()
            .chain(a.act.map(crate::blocked::Epilogue::Act))
            .collect(),
        tile,
        blocking: b,
    })
}

/// The packed GEMM of a gemm node, if it has one: A plain `[M, K]` (not transposed), B a
/// constant, C absent or a constant row (`[N]`, `[1, N]`) or scalar broadcast over rows.
fn packed_gemm(g: &Graph, id: NodeId, a: &GemmAttrs) -> Option<crate::blocked::PackedGemm> {
    let ins = g.inputs(id);
    let (ta, tb) = (g.ty(ins[0]), g.ty(ins[1]));
    if a.trans_a || ta.rank() != 2 || tb.rank() != 2 || g.const_of(ins[1]).is_none() {
        return None;
    }
    let (k, n) = if a.trans_b {
        (tb.shape[1].known()?, tb.shape[0].known()?)
    } else {
        (tb.shape[0].known()?, tb.shape[1].known()?)
    };
    if let Some(c) = ins.get(2) {
        let cd = g.const_of(*c)?;
        let row = cd.shape.iter().rev().skip(1).all(|&d| d == 1);
        let last = cd.shape.last().copied().unwrap_or(1) as u64;
        if !row || cd.shape.len() > 2 || (last != n && last != 1) {
            return None;
        }
    }
    Some(crate::blocked::PackedGemm {
        m: ta.shape[0],
        k,
        n,
    })
}

/// Replaces a packed GEMM's B and C arguments by the packed weights and the padded bias.
fn pack_gemm_args(
    g: &Graph,
    id: NodeId,
    pg: &crate::blocked::PackedGemm,
    a: &GemmAttrs,
    p: &mut Plan,
    args: &mut Vec<u32>,
) {
    let ins = g.inputs(id);
    let lanes = crate::blocked::GEMM_LANES as usize;
    let (k, n) = (pg.k as usize, pg.n as usize);
    let b = g
        .const_of(ins[1])
        .map(|c| c.data.to_vec())
        .unwrap_or_default();
    let packed = crate::blocked::pack_gemm(&b, [k, n], a.trans_b, a.alpha);
    args[1] = push_weight(p, vec![DimDecl::Known(packed.len() as u64)], &packed);
    let mut bias = vec![0f32; n.div_ceil(lanes) * lanes];
    if let Some(c) = ins.get(2).and_then(|c| g.const_of(*c)) {
        for (j, v) in bias.iter_mut().take(n).enumerate() {
            *v = a.beta * c.data[if c.data.len() == 1 { 0 } else { j }];
        }
    }
    let bb = push_weight(p, vec![DimDecl::Known(bias.len() as u64)], &bias);
    args.truncate(2);
    args.push(bb);
}

/// Whether every use of a constant is as the weights or bias of a blocked convolution,
/// which stores its own packed copy: then the constant itself is not stored.
fn packed_only(g: &Graph, id: NodeId, cpu: bool) -> bool {
    let users = g.users(id.into());
    !users.is_empty()
        && !g.is_output(id.into())
        && users.iter().all(|&(u, slot)| {
            let packed = match &g.node(u).op {
                Op::Conv2d(_) => g.ty(u.into()).layout.block().is_some(),
                Op::Gemm(a) => cpu && packed_gemm(g, u, a).is_some(),
                _ => false,
            };
            (slot == 1 || slot == 2) && packed
        })
}

/// Replaces a blocked convolution's weight and bias arguments by their packed forms.
fn pack_conv_args(
    g: &Graph,
    id: NodeId,
    c: &BlockedConv,
    p: &mut Plan,
    args: &mut Vec<u32>,
) -> Result<(), CodegenError> {
    let ins = g.inputs(id);
    let missing = || CodegenError::Unsupported {
        node: g.node_ref(id).to_string(),
        msg: "blocked convolution weights must be constants".into(),
    };
    let w = g.const_of(ins[1]).ok_or_else(missing)?;
    let ob = c.y.block as usize;
    let [kh, kw] = [c.k[0] as usize, c.k[1] as usize];
    let packed = if c.depthwise {
        crate::blocked::pack_depthwise(&w.data, [c.y.c as usize, kh, kw], ob)
    } else {
        let shape = [c.y.c as usize, c.x.c as usize, kh, kw];
        crate::blocked::pack_dense(&w.data, shape, c.x.block as usize, ob)
    };
    args[1] = push_weight(p, vec![DimDecl::Known(packed.len() as u64)], &packed);
    let bias = match ins.get(2) {
        Some(b) => g.const_of(*b).ok_or_else(missing)?.data.to_vec(),
        None => vec![0.0; c.y.c as usize],
    };
    let bias = crate::blocked::pad_to(&bias, ob);
    let b = push_weight(p, vec![DimDecl::Known(bias.len() as u64)], &bias);
    let residual = c.residual().then(|| args[3]);
    args.truncate(2);
    args.push(b);
    args.extend(residual);
    Ok(())
}

/// Builds the plan from a verified graph; `cpu` selects CPU-specific layout choices.
pub fn build(g: &Graph, cpu: bool) -> Result<Plan, CodegenError> {
    let order = g
        .topo_order()
        .ok_or_else(|| CodegenError::Llvm("graph has a cycle".into()))?;
    let mut p = Plan::default();
    let mut buf_of: BTreeMap<NodeId, u32> = BTreeMap::new();
    let decl = |g: &Graph, v: ValueId, kind: BufferKind| BufferDecl {
        dtype: g.ty(v).dtype.name().into(),
        shape: stored_shape(g, v).iter().map(|d| dim_decl(*d)).collect(),
        kind,
    };
    // graph outputs: value -> first output index it feeds
    let mut out_index: BTreeMap<NodeId, u32> = BTreeMap::new();
    for (i, (_, v)) in g.outputs.iter().enumerate() {
        out_index.entry(v.node).or_insert(i as u32);
    }
    for (i, (name, id)) in g.inputs.iter().enumerate() {
        p.buffers
            .push(decl(g, (*id).into(), BufferKind::Input { index: i as u32 }));
        let b = p.buffers.len() as u32 - 1;
        buf_of.insert(*id, b);
        p.inputs.push(IoDecl {
            name: name.clone(),
            buffer: b,
        });
    }
    let unsupported = |g: &Graph, id: NodeId, msg: &str| CodegenError::Unsupported {
        node: g.node_ref(id).to_string(),
        msg: msg.into(),
    };
    for &id in &order {
        let n = g.node(id);
        let v: ValueId = id.into();
        let ins = g.inputs(id);
        let origin = n.origin.clone().unwrap_or_default();
        match &n.op {
            Op::Input { .. } => continue,
            Op::Const(_) if packed_only(g, id, cpu) => continue,
            Op::Const(c) => {
                let d = g.consts.get(*c);
                let off = p.weights.len().div_ceil(secc_artifact::ALIGN) * secc_artifact::ALIGN;
                p.weights.resize(off, 0);
                for x in d.data.iter() {
                    p.weights.extend_from_slice(&x.to_le_bytes());
                }
                p.buffers
                    .push(decl(g, v, BufferKind::Weight { offset: off as u64 }));
                buf_of.insert(id, p.buffers.len() as u32 - 1);
                continue;
            }
            Op::Reshape { .. } | Op::Identity if !out_index.contains_key(&id) => {
                let src = buf_of[&ins[0].node];
                let root = match p.buffers[src as usize].kind {
                    BufferKind::Alias { of } => of,
                    _ => src,
                };
                p.buffers.push(decl(g, v, BufferKind::Alias { of: root }));
                buf_of.insert(id, p.buffers.len() as u32 - 1);
                continue;
            }
            _ => {}
        }
        // kernels chosen from more than the op: blocked operands, packed constant weights
        let special = match (blocked_kind(g, id)?, &n.op) {
            (Some(k), _) => Some(k),
            (None, Op::Gemm(a)) if cpu => packed_gemm(g, id, a).map(KernelKind::GemmPacked),
            _ => None,
        };
        let kind = match &n.op {
            _ if special.is_some() => special.expect("checked"),
            Op::Input { .. } | Op::Const(_) => unreachable!("handled above"),
            Op::Reorder { .. } => unreachable!("reorders are blocked kernels"),
            Op::Reshape { .. } | Op::Identity => {
                let n = flat(g, v)
                    .ok_or_else(|| unsupported(g, id, "element count is a product of symbols"))?;
                KernelKind::Elementwise {
                    f: EwFn::Copy,
                    out: n.clone(),
                    ins: vec![n],
                }
            }
            Op::Binary(b) => KernelKind::Elementwise {
                f: EwFn::Binary(*b),
                out: shape_of(g, v),
                ins: ins.iter().map(|x| shape_of(g, *x)).collect(),
            },
            Op::Elementwise { prog } => KernelKind::Elementwise {
                f: EwFn::Program(prog.clone()),
                out: shape_of(g, v),
                ins: ins.iter().map(|x| shape_of(g, *x)).collect(),
            },
            Op::Where => KernelKind::Elementwise {
                f: EwFn::Where,
                out: shape_of(g, v),
                ins: ins.iter().map(|x| shape_of(g, *x)).collect(),
            },
            Op::Expand { .. } => KernelKind::Elementwise {
                f: EwFn::Copy,
                out: shape_of(g, v),
                ins: vec![shape_of(g, ins[0])],
            },
            Op::Slice { starts, steps, .. } => KernelKind::Slice {
                starts: starts.clone(),
                steps: steps.clone(),
                input: shape_of(g, ins[0]),
                out: shape_of(g, v),
            },
            Op::Resize(a) => KernelKind::Resize {
                attrs: a.clone(),
                x: shape_of(g, ins[0]),
                lanes: 1,
            },
            Op::ConvTranspose2d(a) => {
                let x = shape_of(g, ins[0]);
                if x[1..].iter().any(|d| d.known().is_none()) {
                    return Err(unsupported(
                        g,
                        id,
                        "convolution needs known channel and spatial extents",
                    ));
                }
                KernelKind::ConvTranspose {
                    attrs: a.clone(),
                    x,
                    w: shape_of(g, ins[1]),
                    bias: ins.len() == 3,
                }
            }
            Op::Act(a) => KernelKind::Elementwise {
                f: EwFn::Act(*a),
                out: shape_of(g, v),
                ins: vec![shape_of(g, ins[0])],
            },
            Op::GlobalAvgPool | Op::GlobalMaxPool => {
                let s = shape_of(g, ins[0]);
                KernelKind::ReduceMean {
                    axes: (2..s.len()).collect(),
                    input: s,
                    op: (n.op == Op::GlobalMaxPool).then_some(secc_ir::ReduceKind::Max),
                }
            }
            Op::ReduceMean { axes, .. } => KernelKind::ReduceMean {
                input: shape_of(g, ins[0]),
                axes: axes.clone(),
                op: None,
            },
            Op::Reduce { kind, axes, .. } => KernelKind::ReduceMean {
                input: shape_of(g, ins[0]),
                axes: axes.clone(),
                op: Some(*kind),
            },
            Op::Concat { axis } => KernelKind::Concat {
                axis: *axis,
                ins: ins.iter().map(|x| shape_of(g, *x)).collect(),
            },
            Op::Pad { pads, mode } => KernelKind::Pad {
                pads: pads.clone(),
                mode: *mode,
                input: shape_of(g, ins[0]),
            },
            Op::Transpose { perm } => KernelKind::Transpose {
                perm: perm.clone(),
                input: shape_of(g, ins[0]),
            },
            Op::Softmax { axis } => KernelKind::Softmax {
                axis: *axis,
                shape: shape_of(g, ins[0]),
            },
            Op::Pool2d(a) => {
                let x = shape_of(g, ins[0]);
                if x[2..].iter().any(|d| d.known().is_none()) {
                    return Err(unsupported(g, id, "pooling needs known spatial extents"));
                }
                KernelKind::Pool {
                    attrs: a.clone(),
                    x,
                }
            }
            Op::MaxPoolIndices { pool, column_major } => {
                let x = shape_of(g, ins[0]);
                if x[2..].iter().any(|d| d.known().is_none()) {
                    return Err(unsupported(g, id, "pooling needs known spatial extents"));
                }
                KernelKind::MaxPoolIndices {
                    attrs: pool.clone(),
                    x,
                    column_major: *column_major,
                }
            }
            Op::IntTensor { values, .. } => KernelKind::IntTensor {
                values: values.clone(),
            },
            Op::Gemm(a) => KernelKind::Gemm {
                attrs: a.clone(),
                a: shape_of(g, ins[0]),
                b: shape_of(g, ins[1]),
                c: ins.get(2).map(|c| shape_of(g, *c)),
            },
            Op::MatMul => KernelKind::MatMul {
                a: shape_of(g, ins[0]),
                b: shape_of(g, ins[1]),
            },
            Op::Conv2d(a) => {
                let x = shape_of(g, ins[0]);
                if x[1..].iter().any(|d| d.known().is_none()) {
                    return Err(unsupported(
                        g,
                        id,
                        "convolution needs known channel and spatial extents",
                    ));
                }
                KernelKind::Conv {
                    attrs: a.clone(),
                    x,
                    w: shape_of(g, ins[1]),
                    bias: ins.len() == 3,
                }
            }
            Op::SqueezeExcite(a) => {
                let x = shape_of(g, ins[0]);
                if x[1..].iter().any(|d| d.known().is_none()) {
                    return Err(unsupported(
                        g,
                        id,
                        "SE block needs known channel and spatial extents",
                    ));
                }
                let r = g.ty(ins[1]).shape[0]
                    .known()
                    .ok_or_else(|| unsupported(g, id, "squeeze width must be known"))?;
                p.se_blocks += 1;
                let (c, hw) = (
                    x[1].known().unwrap_or(1),
                    x[2].known().unwrap_or(1) * x[3].known().unwrap_or(1),
                );
                let block = if cpu { se_block_images(c, r, hw) } else { 1 };
                KernelKind::SqueezeExcite {
                    attrs: *a,
                    x,
                    r,
                    block,
                    lanes: g.ty(ins[0]).layout.block().map_or(1, u64::from),
                }
            }
        };
        // constants only a blocked convolution reads have no buffer: it packs its own
        let mut args: Vec<u32> = ins
            .iter()
            .map(|x| buf_of.get(&x.node).copied().unwrap_or(u32::MAX))
            .collect();
        if let KernelKind::ConvBlocked(c) = &kind {
            pack_conv_args(g, id, c, &mut p, &mut args)?;
        }
        if let (KernelKind::GemmPacked(pg), Op::Gemm(a)) = (&kind, &n.op) {
            pack_gemm_args(g, id, pg, a, &mut p, &mut args);
        }
        if args.contains(&u32::MAX) {
            return Err(unsupported(g, id, "operand without a buffer (internal)"));
        }
        if let KernelKind::SqueezeExcite { x, r, .. } = &kind {
            // FC2 weights [C, R] are stored transposed, [R, C]
            let w2 = g
                .const_of(ins[3])
                .ok_or_else(|| unsupported(g, id, "SE weights must be constants"))?;
            let c = x[1].known().unwrap_or(0) as usize;
            let r = *r as usize;
            let mut t = vec![0f32; w2.data.len()];
            for ci in 0..c {
                for j in 0..r {
                    t[j * c + ci] = w2.data[ci * r + j];
                }
            }
            args[3] = push_weight(
                &mut p,
                vec![DimDecl::Known(r as u64), DimDecl::Known(c as u64)],
                &t,
            );
        }
        if let KernelKind::Resize { attrs, x, .. } = &kind {
            // per output coordinate (first index, second index, weight), as f32 (exact for
            // indices below 2^24, far above any image extent)
            for axis in 0..2 {
                let inl = x[2 + axis]
                    .known()
                    .ok_or_else(|| unsupported(g, id, "resize needs known spatial extents"))?;
                if inl >= 1 << 24 {
                    return Err(unsupported(g, id, "resize input extent of 2^24 or more"));
                }
                let taps = attrs.taps(axis, inl);
                // the kernel loads through these indices unchecked: they must be in range
                if taps.iter().any(|t| t.i0 >= inl || t.i1 >= inl) {
                    return Err(unsupported(
                        g,
                        id,
                        "resize tap outside the input (internal)",
                    ));
                }
                let tab: Vec<f32> = taps
                    .iter()
                    .flat_map(|t| [t.i0 as f32, t.i1 as f32, t.w])
                    .collect();
                let b = push_weight(&mut p, vec![DimDecl::Known(tab.len() as u64)], &tab);
                args.push(b);
            }
        }
        let out_kind = match out_index.get(&id) {
            Some(&i) => BufferKind::Output { index: i },
            None => BufferKind::Temp,
        };
        p.buffers.push(decl(g, v, out_kind));
        let out = p.buffers.len() as u32 - 1;
        buf_of.insert(id, out);
        args.push(out);
        let mut writes = vec![out];
        let mut grid = None;
        if let KernelKind::SqueezeExcite {
            x, r, block, lanes, ..
        } = &kind
        {
            let c = x[1].known().unwrap_or(0).div_ceil(*lanes) * lanes;
            p.buffers.push(BufferDecl {
                dtype: "f32".into(),
                shape: vec![DimDecl::Known(block * (c + r))],
                kind: BufferKind::Temp,
            });
            let s = p.buffers.len() as u32 - 1;
            args.push(s);
            writes.push(s);
            grid = Some(x[0]);
        }
        let name = format!("k{}_{}", p.steps.len(), kind.name());
        p.steps.push(Step {
            name,
            kind,
            origin,
            args,
            writes,
            grid,
        });
    }
    // outputs: each needs its own Output buffer written by a kernel
    for (i, (name, v)) in g.outputs.iter().enumerate() {
        let b = buf_of[&v.node];
        let ok =
            matches!(p.buffers[b as usize].kind, BufferKind::Output { index } if index == i as u32);
        let b = if ok {
            b
        } else {
            let s = flat(g, *v).ok_or_else(|| CodegenError::Unsupported {
                node: format!("output {name}"),
                msg: "element count is a product of symbols".into(),
            })?;
            p.buffers
                .push(decl(g, *v, BufferKind::Output { index: i as u32 }));
            let out = p.buffers.len() as u32 - 1;
            p.steps.push(Step {
                name: format!("k{}_copy", p.steps.len()),
                kind: KernelKind::Elementwise {
                    f: EwFn::Copy,
                    out: s.clone(),
                    ins: vec![s],
                },
                origin: format!("output {name}"),
                args: vec![b, out],
                writes: vec![out],
                grid: None,
            });
            out
        };
        p.outputs.push(IoDecl {
            name: name.clone(),
            buffer: b,
        });
    }
    Ok(p)
}
