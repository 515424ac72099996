//! Buffer assignment and kernel steps: the execution plan stored in the artifact.
//!
//! This module owns the plan's types and [`build`]: the walk over the graph that gives
//! every value a buffer (input, weight, alias, temporary or output) and every other node
//! one kernel step. Which kernel a node gets, and the prepared arguments it reads, is
//! `kernel`'s; the kernel of each op family is built in `conv`, `linalg`, `se`, `pool`,
//! `elementwise` and `data`.
use crate::blocked::{BlockedConv, View};
use crate::CodegenError;
use secc_artifact::{BufferDecl, BufferKind, DimDecl, DimOp, IoDecl};
use secc_ir::{
    Activation, BinaryOp, Conv2dAttrs, ConvTransposeAttrs, Dim, GemmAttrs, Graph, NodeId, Op,
    ResizeAttrs, SeAttrs, ValueId,
};
use std::collections::BTreeMap;

mod conv;
mod data;
mod elementwise;
mod kernel;
mod linalg;
mod pool;
mod se;

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
        /// output shape
        y: Vec<Dim>,
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
        /// output shape
        y: Vec<Dim>,
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
        /// output shape
        y: Vec<Dim>,
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
    /// (so FC2 vectorises over channels), b2, the residual (with `attrs.residual`), y,
    /// scratch of `block * (C + R)` floats.
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
        /// the gate step only (`se_gate`): y is the gates `[N, C]`, x is read once
        gate_only: bool,
    },
    /// Direct 2-D convolution over plain NCHW, one output element per work item (the GPU's
    /// form: every thread busy, each output written once). Arguments as [`KernelKind::Conv`].
    ConvOut {
        /// attributes
        attrs: Conv2dAttrs,
        /// x shape
        x: Vec<Dim>,
        /// w shape
        w: Vec<Dim>,
        /// has a bias operand
        bias: bool,
    },
    /// A one-group convolution as an implicit GEMM tiled through shared memory, the GPU's
    /// form (`conv2d_gemm`): per CTA a tile of 64 output channels x 64 output pixels of one
    /// image, the reduction (input channel, tap) in chunks of 16. Arguments: x, W as
    /// `[C * KH * KW, O]`, the bias (with `bias`), the gates `[N, C]` (with
    /// `attrs.gated`), y, scratch (CPU: the tiles and the accumulators; PTX uses shared
    /// memory).
    ConvGemm {
        /// attributes (strides, pads, dilations, activation, gated)
        attrs: Conv2dAttrs,
        /// x shape [N, C, H, W]
        x: Vec<Dim>,
        /// w shape [O, C, KH, KW] (as the model gives it; stored transposed)
        w: Vec<Dim>,
        /// y shape [N, O, OH, OW]
        y: Vec<Dim>,
        /// has a bias operand
        bias: bool,
    },
    /// The GPU form of an SE block, phase 1 (`se_pool`): the mean of each of `planes`
    /// contiguous `h * w` planes. Arguments: x, means `[planes]`.
    PlaneMean {
        /// planes (`N * C`)
        planes: Dim,
        /// plane height
        h: Dim,
        /// plane width
        w: Dim,
    },
    /// The GPU form of an SE block, FC1 and FC2 (`se_fc`): `y[i, o] = act(b[o] + sum_k
    /// W[o, k] v[i, k])` for `i < n`, `o < rows`. Arguments: v `[n, cols]`, W `[rows,
    /// cols]`, b `[rows]`, y `[n, rows]`.
    RowDot {
        /// images
        n: Dim,
        /// outputs per image
        rows: u64,
        /// inputs per image
        cols: u64,
        /// applied to each output
        act: secc_ir::Activation,
    },
    /// Convolution over blocked tensors, weights packed at compile time.
    ConvBlocked(BlockedConv),
    /// A Winograd convolution's input transform (`crate::winograd`). Arguments: x, V.
    WinoInput(crate::winograd::Transform),
    /// A Winograd convolution's output transform. Arguments: M, bias, the residual (with
    /// one in the epilogue), y.
    WinoOutput(crate::winograd::Transform),
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
            KernelKind::SqueezeExcite {
                gate_only: true, ..
            } => "se_gate",
            KernelKind::SqueezeExcite { .. } => "squeeze_excite",
            KernelKind::PlaneMean { .. } => "se_pool",
            KernelKind::ConvOut { .. } => "conv2d_out",
            KernelKind::ConvGemm { .. } => "conv2d_gemm",
            KernelKind::RowDot { .. } => "se_fc",
            KernelKind::ConvBlocked(g) if g.depthwise => "conv2d_dw_blocked",
            KernelKind::ConvBlocked(g) if g.weight_sets > 1 => "wino_gemm",
            KernelKind::WinoInput(_) => "wino_input",
            KernelKind::WinoOutput(_) => "wino_output",
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
    /// how the work spreads over a CUDA grid
    pub grid: Grid,
}

/// How a kernel's work spreads over a CUDA grid (the launch contract follows from it:
/// `crate::launch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// one CTA per unit of `units`, whose threads share a barrier and `shared_floats` of
    /// shared memory (SE: one CTA per image, its scratch in shared memory)
    PerUnit {
        /// the extent with one CTA per unit
        units: Dim,
        /// floats of dynamic shared memory per CTA
        shared_floats: u64,
    },
    /// any number of threads split this many work items (the elements of the first
    /// result; `None` when that count is not representable); each thread computes its
    /// share from the global thread index
    Stride(Option<Dim>),
}

/// The element count of a value's logical shape (`None` when the product of symbolic
/// extents is not representable).
fn elements(g: &Graph, v: ValueId) -> Option<Dim> {
    g.ty(v)
        .shape
        .iter()
        .try_fold(Dim::Known(1), |a, &d| a.checked_mul(d))
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
                " x={}x{}x{}/{} y={}x{}x{}/{} k={}x{} s={}x{} tile={}px x {}blk chunk={} seg={} band={}{}{}{}{}{} epilogue=[{}]",
                c.x.c, ext(c.x.h), ext(c.x.w), c.x.block, c.y.c, ext(c.y.h), ext(c.y.w), c.y.block, c.k[0], c.k[1],
                c.strides[0], c.strides[1], c.tile.px, c.tile.qn, c.blocking.chunk, c.blocking.seg, c.blocking.band,
                if c.blocking.groups_inner { " groups-inner" } else { "" },
                if c.blocking.prefetch > 0 { format!(" prefetch={}", c.blocking.prefetch) } else { String::new() },
                match (c.gated, crate::blocked::gated_pass_floats(c)) {
                    (false, _) => "",
                    (true, Some(_)) => " gated=pass",
                    (true, None) => " gated=load",
                },
                c.pool.map_or(String::new(), |p| format!(" pool={p}")),
                if c.weight_sets > 1 { format!(" sets={}", c.weight_sets) } else { String::new() },
                ep.join(", ")
            ));
        }
        if let KernelKind::GemmPacked(g) = &s.kind {
            out.push_str(&format!(" k={} n={} tile=4 rows x 4 blk", g.k, g.n));
        }
        if let KernelKind::WinoInput(t) | KernelKind::WinoOutput(t) = &s.kind {
            let ep: Vec<String> = t.epilogue.iter().map(|e| format!("{e:?}")).collect();
            out.push_str(&format!(
                " {}={}x{}x{}/{} F({m}x{m},3x3) tiles={}x{} epilogue=[{}]",
                if matches!(s.kind, KernelKind::WinoInput(_)) {
                    "x"
                } else {
                    "y"
                },
                t.image.c,
                ext(t.image.h),
                ext(t.image.w),
                t.image.block,
                ext(t.tiles[0]),
                ext(t.tiles[1]),
                ep.join(", "),
                m = t.m
            ));
        }
        out.push('\n');
    }
    out
}

/// An extent as `describe` prints it: the number, or the expression over symbols
/// (`s0` for the first symbol).
fn ext(d: Dim) -> String {
    d.display(&[])
}

/// IR constraint to manifest constraint.
pub fn constraint_decl(c: &secc_ir::Constraint) -> secc_artifact::ConstraintDecl {
    secc_artifact::ConstraintDecl {
        lhs: dim_decl(c.lhs),
        rel: match c.rel {
            secc_ir::Rel::Ge => secc_artifact::Relation::Ge,
            secc_ir::Rel::Eq => secc_artifact::Relation::Eq,
        },
        rhs: dim_decl(c.rhs),
        origin: c.origin.clone(),
    }
}

/// IR dim to manifest dim.
pub fn dim_decl(d: Dim) -> DimDecl {
    match d {
        Dim::Known(v) => DimDecl::Known(v),
        Dim::Sym(s, k) => DimDecl::Sym { sym: s.0, coeff: k },
        Dim::Expr(_) => {
            use secc_ir::dim_expr::PostfixOp as P;
            let mut ops = vec![];
            d.expr().postfix(&mut ops);
            let expr = ops
                .into_iter()
                .map(|op| match op {
                    P::Const(c) => DimOp::Const(c),
                    P::Sym(s) => DimOp::Sym(s.0),
                    P::Add => DimOp::Add,
                    P::Sub => DimOp::Sub,
                    P::Mul => DimOp::Mul,
                    P::Div(k) => DimOp::Div(k),
                    P::CeilDiv(k) => DimOp::CeilDiv(k),
                    P::Min => DimOp::Min,
                    P::Max => DimOp::Max,
                })
                .collect();
            DimDecl::Expr { expr }
        }
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

/// Extent every symbol takes when the compiler sizes tiles and blocks for a symbolic
/// extent: the image side of the classifiers and detectors this compiler targets, so a
/// dynamic-size model run at 224x224 gets the tiles the 224x224 model gets. The kernels
/// handle every other value; only the cache blocking is tuned for this one.
pub const TYPICAL_EXTENT: u64 = 224;

/// `d`, or for a symbolic `d` its value with every symbol at [`TYPICAL_EXTENT`] (at least 1).
pub fn typical(d: Dim) -> u64 {
    d.known().unwrap_or_else(|| {
        let n = d
            .symbols()
            .iter()
            .map(|s| s.0 as usize + 1)
            .max()
            .unwrap_or(0);
        d.eval(&vec![TYPICAL_EXTENT; n])
            .unwrap_or(TYPICAL_EXTENT)
            .max(1)
    })
}

/// The view of a `[N, C, H, W]` value with known C (the layout pass blocks no other); H and
/// W may be symbolic.
fn view_of(g: &Graph, v: ValueId) -> View {
    let t = g.ty(v);
    let d = |i: usize| t.shape.get(i).copied().unwrap_or(Dim::Known(1));
    View {
        c: d(1).known().unwrap_or(1),
        h: d(2),
        w: d(3),
        block: t.layout.block().map_or(1, u64::from),
    }
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
                Op::Gemm(a) => cpu && linalg::packed(g, u, a).is_some(),
                _ => false,
            };
            (slot == 1 || slot == 2) && packed
        })
}

/// The error for a node the code generator cannot plan.
fn unsupported(g: &Graph, id: NodeId, msg: &str) -> CodegenError {
    CodegenError::Unsupported {
        node: g.node_ref(id).to_string(),
        msg: msg.into(),
    }
}

/// The buffer declaration of value `v`, in its stored shape.
fn decl(g: &Graph, v: ValueId, kind: BufferKind) -> BufferDecl {
    BufferDecl {
        dtype: g.ty(v).dtype.name().into(),
        shape: stored_shape(g, v).iter().map(|d| dim_decl(*d)).collect(),
        kind,
    }
}

/// Buffer ids by the value they hold (a node with several results has a buffer for each),
/// and which values are graph outputs.
struct Buffers {
    /// the buffer of each planned value
    of: BTreeMap<ValueId, u32>,
    /// graph outputs: value -> first output index it feeds
    out_index: BTreeMap<ValueId, u32>,
}

/// Builds the plan from a verified graph; `cpu` selects CPU-specific layout choices. SE
/// blocks take the GPU's split form off the CPU ([`build_with`]).
pub fn build(g: &Graph, cpu: bool) -> Result<Plan, CodegenError> {
    let forms = Forms {
        gpu: !cpu,
        winograd: true,
    };
    build_with(g, cpu, forms)
}

/// The kernel forms a plan may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forms {
    /// the GPU's forms (see [`build_with`])
    pub gpu: bool,
    /// Winograd convolutions where [`crate::winograd::form`] finds them cheaper
    pub winograd: bool,
}

/// [`build`], choosing the kernels' form: `forms.gpu` plans the GPU's (SE blocks as pool,
/// FC1, FC2 and scale steps, `se::push_split`; plain convolutions one output per work
/// item, [`gpu_kernel`]), otherwise the CPU's (one fused SE kernel, convolutions by output
/// plane). A CPU plan in the GPU's form exists so that the interpreter checks that form
/// where there is no GPU. `forms.winograd` lets 3x3 convolutions run in a Winograd form.
pub fn build_with(g: &Graph, cpu: bool, forms: Forms) -> Result<Plan, CodegenError> {
    let gpu_form = forms.gpu;
    let order = g
        .topo_order()
        .ok_or_else(|| CodegenError::Llvm("graph has a cycle".into()))?;
    let mut p = Plan::default();
    let mut bufs = Buffers {
        of: BTreeMap::new(),
        out_index: BTreeMap::new(),
    };
    for (i, (_, v)) in g.outputs.iter().enumerate() {
        bufs.out_index.entry(*v).or_insert(i as u32);
    }
    for (i, (name, id)) in g.inputs.iter().enumerate() {
        p.buffers
            .push(decl(g, (*id).into(), BufferKind::Input { index: i as u32 }));
        let b = p.buffers.len() as u32 - 1;
        bufs.of.insert((*id).into(), b);
        p.inputs.push(IoDecl {
            name: name.clone(),
            buffer: b,
        });
    }
    for &id in &order {
        if buffer_only(g, id, cpu, &mut p, &mut bufs) {
            continue;
        }
        match &g.node(id).op {
            Op::SqueezeExcite(_) | Op::SeGate(_) if gpu_form => {
                se::push_split(g, id, &mut p, &mut bufs)?
            }
            _ => {
                push_step(g, id, (cpu, forms.winograd), &mut p, &mut bufs)?;
                if gpu_form {
                    gpu_kernel(&mut p, &shape_of(g, id.into()));
                }
            }
        }
    }
    push_outputs(g, &mut p, &bufs)?;
    Ok(p)
}

/// Plans the nodes that run no kernel: inputs (declared up front), constants (stored in
/// the weights section unless only packed copies are read) and reshapes or identities
/// that are not outputs (an alias of their operand's root buffer). Returns whether `id`
/// was one of them.
fn buffer_only(g: &Graph, id: NodeId, cpu: bool, p: &mut Plan, bufs: &mut Buffers) -> bool {
    let v: ValueId = id.into();
    match &g.node(id).op {
        Op::Input { .. } => {}
        Op::Const(_) if packed_only(g, id, cpu) => {}
        Op::Const(c) => {
            let d = g.consts.get(*c);
            let off = p.weights.len().div_ceil(secc_artifact::ALIGN) * secc_artifact::ALIGN;
            p.weights.resize(off, 0);
            for x in d.data.iter() {
                p.weights.extend_from_slice(&x.to_le_bytes());
            }
            p.buffers
                .push(decl(g, v, BufferKind::Weight { offset: off as u64 }));
            bufs.of.insert(v, p.buffers.len() as u32 - 1);
        }
        Op::Reshape { .. } | Op::Identity if !bufs.out_index.contains_key(&v) => {
            let src = bufs.of[&g.inputs(id)[0]];
            let root = match p.buffers[src as usize].kind {
                BufferKind::Alias { of } => of,
                _ => src,
            };
            p.buffers.push(decl(g, v, BufferKind::Alias { of: root }));
            bufs.of.insert(v, p.buffers.len() as u32 - 1);
        }
        _ => return false,
    }
    true
}

/// Appends the kernel step of node `id` with its arguments: operands (packed where the
/// kernel packs them), any tables, the output buffer, then any scratch.
fn push_step(
    g: &Graph,
    id: NodeId,
    (cpu, winograd): (bool, bool),
    p: &mut Plan,
    bufs: &mut Buffers,
) -> Result<(), CodegenError> {
    let kind = kernel::kind(g, id, cpu)?;
    if let KernelKind::ConvBlocked(c) = &kind {
        let form = winograd.then(|| crate::winograd::form(c)).flatten();
        if let Some(w) = form.and_then(|m| conv::winograd_plan(c, m)) {
            return conv::push_winograd(g, id, c, w, p, bufs);
        }
    }
    // constants only a blocked convolution reads have no buffer: it packs its own
    let mut args: Vec<u32> = g
        .inputs(id)
        .iter()
        .map(|x| bufs.of.get(x).copied().unwrap_or(u32::MAX))
        .collect();
    kernel::prepare_args(g, id, &kind, p, &mut args)?;
    let mut writes = result_buffers(g, id, p, bufs);
    args.extend_from_slice(&writes);
    if let KernelKind::ConvBlocked(c) = &kind {
        if let Some(s) = conv::declare_partials(p, c) {
            args.push(s);
            writes.push(s);
        }
    }
    let mut grid = Grid::Stride(elements(g, ValueId { node: id, slot: 0 }));
    if let KernelKind::SqueezeExcite {
        x, r, block, lanes, ..
    } = &kind
    {
        p.se_blocks += 1;
        let s = se::scratch(p, x, *r, *block, *lanes);
        args.push(s);
        writes.push(s);
        grid = Grid::PerUnit {
            units: x[0],
            shared_floats: DimDecl::elements(&p.buffers[s as usize].shape, &[]).unwrap_or(0),
        };
    }
    p.steps.push(Step {
        name: format!("k{}_{}", p.steps.len(), kind.name()),
        kind,
        origin: g.node(id).origin.clone().unwrap_or_default(),
        args,
        writes,
        grid,
    });
    Ok(())
}

/// The last step (of a node with result shape `y`) in the GPU's form where it has one: a
/// one-group convolution with constant weights as a tiled implicit GEMM
/// ([`KernelKind::ConvGemm`]); any other plain convolution (depthwise, grouped, runtime
/// weights) one output element per work item (the CPU's form gives each thread whole
/// output planes, which leaves all but `N * C_out` threads of a GPU grid idle).
fn gpu_kernel(p: &mut Plan, y: &[Dim]) {
    let Some(mut s) = p.steps.pop() else { return };
    if let KernelKind::Conv { attrs, x, w, bias } = &s.kind {
        let (attrs, x, w, bias) = (attrs.clone(), x.clone(), w.clone(), *bias);
        s.kind = match gemm_form(p, &mut s, &attrs, &w, y) {
            Some(()) => KernelKind::ConvGemm {
                attrs,
                x,
                w,
                y: y.to_vec(),
                bias,
            },
            None => KernelKind::ConvOut { attrs, x, w, bias },
        };
        s.name = format!("k{}_{}", p.steps.len(), s.kind.name());
    }
    p.steps.push(s);
}

/// Floats of a `conv2d_gemm` CTA's shared memory: the W and X tiles, 16 x 64 each.
pub const GEMM_SHARED: u64 = 2 * 16 * 64;
/// Floats of its scratch on a CPU: the tiles, then 128 threads' 32 accumulators.
const GEMM_SCRATCH: u64 = GEMM_SHARED + 128 * 32;

/// Makes step `s` (a plain convolution with result shape `y`) a `conv2d_gemm` if it has
/// one group, known weight extents and constant weights: the weights stored again as
/// `[C * KH * KW, O]`, the scratch appended, a CTA per output tile.
fn gemm_form(p: &mut Plan, s: &mut Step, a: &Conv2dAttrs, w: &[Dim], y: &[Dim]) -> Option<()> {
    if a.group != 1 || a.residual || a.pool {
        return None;
    }
    let o = w[0].known()?;
    let k = w[1].known()? * w[2].known()? * w[3].known()?;
    let BufferKind::Weight { offset } = p.buffers[s.args[1] as usize].kind else {
        return None;
    };
    let pixel_tiles = y[2].checked_mul(y[3])?.div_ceil(64)?;
    let units = y[0]
        .checked_mul(Dim::Known(o.div_ceil(64)))?
        .checked_mul(pixel_tiles)?;
    // W [O, K] as [K, O]: a CTA's W tile then loads coalesced, 64 output channels a row
    let at = |i: u64| -> Option<f32> {
        let b = p
            .weights
            .get((offset + 4 * i) as usize..(offset + 4 * i + 4) as usize)?;
        Some(f32::from_le_bytes(b.try_into().ok()?))
    };
    let mut t = vec![0f32; (o * k) as usize];
    for oc in 0..o {
        for ik in 0..k {
            t[(ik * o + oc) as usize] = at(oc * k + ik)?;
        }
    }
    s.args[1] = push_weight(p, vec![DimDecl::Known(k), DimDecl::Known(o)], &t);
    p.buffers.push(BufferDecl {
        dtype: "f32".into(),
        shape: vec![DimDecl::Known(GEMM_SCRATCH)],
        kind: BufferKind::Temp,
    });
    let scratch = p.buffers.len() as u32 - 1;
    s.args.push(scratch);
    s.writes.push(scratch);
    s.grid = Grid::PerUnit {
        units,
        shared_floats: GEMM_SHARED,
    };
    Some(())
}

/// Declares one buffer per result of node `id`, in result order (an output buffer where
/// the result is a graph output), and returns them.
fn result_buffers(g: &Graph, id: NodeId, p: &mut Plan, bufs: &mut Buffers) -> Vec<u32> {
    (0..g.node(id).outputs.len() as u8)
        .map(|slot| {
            let v = ValueId { node: id, slot };
            let out_kind = match bufs.out_index.get(&v) {
                Some(&i) => BufferKind::Output { index: i },
                None => BufferKind::Temp,
            };
            p.buffers.push(decl(g, v, out_kind));
            let out = p.buffers.len() as u32 - 1;
            bufs.of.insert(v, out);
            out
        })
        .collect()
}

/// Declares the graph outputs: each needs its own Output buffer written by a kernel, so a
/// value that is an input, a constant, an alias or an earlier output is copied into one.
fn push_outputs(g: &Graph, p: &mut Plan, bufs: &Buffers) -> Result<(), CodegenError> {
    for (i, (name, v)) in g.outputs.iter().enumerate() {
        let b = bufs.of[v];
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
                grid: Grid::Stride(elements(g, *v)),
            });
            out
        };
        p.outputs.push(IoDecl {
            name: name.clone(),
            buffer: b,
        });
    }
    Ok(())
}
