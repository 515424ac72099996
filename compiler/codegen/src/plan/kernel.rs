//! The choice of kernel for a node: which [`KernelKind`] runs it (blocked operands and
//! packed constant weights first, then one per op), and the arguments that kernel reads in
//! a prepared form (packed weights, transposed FC2, resize tap tables).
use super::{conv, data, elementwise, linalg, pool, se, unsupported, EwFn, KernelKind, Plan};
use crate::CodegenError;
use secc_ir::{Dim, Graph, NodeId, Op};

/// The kernel of a node that is not an input, a stored constant or an alias.
pub(super) fn kind(g: &Graph, id: NodeId, cpu: bool) -> Result<KernelKind, CodegenError> {
    // kernels chosen from more than the op: blocked operands, packed constant weights
    if let Some(k) = blocked(g, id)? {
        return Ok(k);
    }
    let op = &g.node(id).op;
    if let (Op::Gemm(a), true) = (op, cpu) {
        if let Some(pg) = linalg::packed(g, id, a) {
            return Ok(KernelKind::GemmPacked(pg));
        }
    }
    Ok(match op {
        Op::Input { .. } | Op::Const(_) => unreachable!("no kernel: buffers only"),
        Op::Reorder { .. } => unreachable!("reorders are blocked kernels"),
        Op::Reshape { .. } | Op::Identity => elementwise::copy(g, id)?,
        Op::Binary(b) => elementwise::broadcast(g, id, EwFn::Binary(*b)),
        Op::Elementwise { prog } => elementwise::broadcast(g, id, EwFn::Program(prog.clone())),
        Op::Where => elementwise::broadcast(g, id, EwFn::Where),
        Op::Expand { .. } => elementwise::unary(g, id, EwFn::Copy),
        Op::Act(a) => elementwise::unary(g, id, EwFn::Act(*a)),
        Op::Slice { starts, steps, .. } => data::slice(g, id, starts, steps),
        Op::Resize(a) => data::resize(g, id, a, 1),
        Op::Concat { axis } => data::concat(g, id, *axis),
        Op::Pad { pads, mode } => data::pad(g, id, pads, *mode),
        Op::Transpose { perm } => data::transpose(g, id, perm),
        Op::IntTensor { values, .. } => data::int_tensor(values),
        Op::GlobalAvgPool | Op::GlobalMaxPool => pool::global_pool(g, id),
        Op::ReduceMean { axes, .. } => pool::reduce(g, id, axes, None),
        Op::Reduce { kind, axes, .. } => pool::reduce(g, id, axes, Some(*kind)),
        Op::Softmax { axis } => pool::softmax(g, id, *axis),
        Op::Pool2d(a) => pool::pool2d(g, id, a),
        Op::MaxPoolIndices { pool, column_major } => {
            pool::max_pool_indices(g, id, pool, *column_major)
        }
        Op::Gemm(a) => linalg::gemm(g, id, a),
        Op::MatMul => linalg::matmul(g, id),
        Op::Conv2d(a) => conv::conv2d(g, id, a)?,
        Op::ConvTranspose2d(a) => conv::conv_transpose2d(g, id, a)?,
        Op::SqueezeExcite(a) => se::kind(g, id, a, cpu)?,
        Op::SeGate(a) => se::gate_kind(g, id, a, cpu)?,
    })
}

/// The kernel of a node that reads or writes blocked tensors, if it does.
fn blocked(g: &Graph, id: NodeId) -> Result<Option<KernelKind>, CodegenError> {
    let ins = g.inputs(id);
    let out = g.ty(id.into());
    let in_blocked = ins
        .first()
        .is_some_and(|x| g.ty(*x).layout.block().is_some());
    if out.layout.block().is_none() && !in_blocked {
        return Ok(None);
    }
    let n = out.shape.first().copied().unwrap_or(Dim::Known(1));
    Ok(Some(match &g.node(id).op {
        Op::Reorder { to } => data::reorder(g, id, *to, n),
        Op::Conv2d(a) => KernelKind::ConvBlocked(conv::blocked(g, id, a)?),
        Op::Resize(a) => data::resize(g, id, a, super::view_of(g, ins[0]).block),
        Op::Concat { .. } => data::concat_blocked(g, id, n),
        Op::Pool2d(a) => pool::pool_blocked(g, id, a, n),
        Op::GlobalAvgPool | Op::GlobalMaxPool => pool::global_pool_blocked(g, id, n),
        Op::Act(_) | Op::Binary(_) | Op::Elementwise { .. } => elementwise::blocked(g, id)?,
        // the SE kernel reads the layout from its operand
        Op::SqueezeExcite(_) | Op::SeGate(_) => return Ok(None),
        _ => {
            return Err(unsupported(
                g,
                id,
                "no kernel for blocked tensors (layout pass bug)",
            ))
        }
    }))
}

/// Turns the operand buffers `args` into the kernel's arguments: packed weights replace
/// the constants they came from, and tables the kernel reads are appended. Every operand
/// must have a buffer once packing is done.
pub(super) fn prepare_args(
    g: &Graph,
    id: NodeId,
    kind: &KernelKind,
    p: &mut Plan,
    args: &mut Vec<u32>,
) -> Result<(), CodegenError> {
    match (kind, &g.node(id).op) {
        (KernelKind::ConvBlocked(c), _) => conv::pack_args(g, id, c, p, args)?,
        (KernelKind::GemmPacked(pg), Op::Gemm(a)) => linalg::pack_args(g, id, pg, a, p, args),
        _ => {}
    }
    if args.contains(&u32::MAX) {
        return Err(unsupported(g, id, "operand without a buffer (internal)"));
    }
    match kind {
        KernelKind::SqueezeExcite { x, r, .. } => se::transpose_w2(g, id, x, *r, p, args),
        KernelKind::Resize { attrs, x, .. } => data::push_tap_tables(g, id, attrs, x, p, args),
        _ => Ok(()),
    }
}
