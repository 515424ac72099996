//! Element-wise kernels: copies (reshape, identity, expand), broadcasting binary ops,
//! `where` and fused programs, activations, and the same ops over blocked tensors.
use super::{flat, shape_of, stored_shape, unsupported, EwFn, KernelKind};
use crate::CodegenError;
use secc_ir::{Graph, NodeId, Op, ValueId};

/// A reshape or identity that needs its own buffer: a flat copy of the elements.
pub(super) fn copy(g: &Graph, id: NodeId) -> Result<KernelKind, CodegenError> {
    let n = flat(g, id.into())
        .ok_or_else(|| unsupported(g, id, "element count is a product of symbols"))?;
    Ok(KernelKind::Elementwise {
        f: EwFn::Copy,
        out: n.clone(),
        ins: vec![n],
    })
}

/// `f` over every operand, each broadcast to the output.
pub(super) fn broadcast(g: &Graph, id: NodeId, f: EwFn) -> KernelKind {
    KernelKind::Elementwise {
        f,
        out: shape_of(g, id.into()),
        ins: g.inputs(id).iter().map(|x| shape_of(g, *x)).collect(),
    }
}

/// `f` over the first operand, broadcast to the output (an activation, or expand's copy).
pub(super) fn unary(g: &Graph, id: NodeId, f: EwFn) -> KernelKind {
    KernelKind::Elementwise {
        f,
        out: shape_of(g, id.into()),
        ins: vec![shape_of(g, g.inputs(id)[0])],
    }
}

/// Same-shape operands in one blocked layout: element-wise over the stored elements.
pub(super) fn blocked(g: &Graph, id: NodeId) -> Result<KernelKind, CodegenError> {
    let v: ValueId = id.into();
    let words: Vec<secc_ir::Dim> = stored_shape(g, v);
    let total = words
        .iter()
        .try_fold(secc_ir::Dim::Known(1), |a, d| a.checked_mul(*d))
        .ok_or_else(|| unsupported(g, id, "element count is a product of symbols"))?;
    let f = match &g.node(id).op {
        Op::Act(a) => EwFn::Act(*a),
        Op::Binary(b) => EwFn::Binary(*b),
        Op::Elementwise { prog } => EwFn::Program(prog.clone()),
        _ => unreachable!("only element-wise ops are planned here"),
    };
    // scalar operands broadcast over the stored elements, padding lanes included
    let ins = g
        .inputs(id)
        .iter()
        .map(|x| {
            if secc_ir::layout::is_scalar(g.ty(*x)) {
                vec![secc_ir::Dim::Known(1)]
            } else {
                vec![total]
            }
        })
        .collect();
    Ok(KernelKind::Elementwise {
        f,
        out: vec![total],
        ins,
    })
}
