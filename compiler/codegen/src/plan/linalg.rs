//! Matrix-product kernels: the general gemm and matmul, and the packed GEMM of FC layers
//! with constant weights (CPU), whose B and bias are packed here.
use super::{push_weight, shape_of, KernelKind, Plan};
use crate::blocked::PackedGemm;
use secc_artifact::DimDecl;
use secc_ir::{GemmAttrs, Graph, NodeId};

/// `alpha * op(A) op(B) + beta * C`.
pub(super) fn gemm(g: &Graph, id: NodeId, a: &GemmAttrs) -> KernelKind {
    let ins = g.inputs(id);
    KernelKind::Gemm {
        attrs: a.clone(),
        a: shape_of(g, ins[0]),
        b: shape_of(g, ins[1]),
        c: ins.get(2).map(|c| shape_of(g, *c)),
    }
}

/// Batched matmul with broadcasting.
pub(super) fn matmul(g: &Graph, id: NodeId) -> KernelKind {
    let ins = g.inputs(id);
    KernelKind::MatMul {
        a: shape_of(g, ins[0]),
        b: shape_of(g, ins[1]),
    }
}

/// The packed GEMM of a gemm node, if it has one: A plain `[M, K]` (not transposed), B a
/// constant, C absent or a constant row (`[N]`, `[1, N]`) or scalar broadcast over rows.
pub(super) fn packed(g: &Graph, id: NodeId, a: &GemmAttrs) -> Option<PackedGemm> {
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
    Some(PackedGemm {
        m: ta.shape[0],
        k,
        n,
    })
}

/// Replaces a packed GEMM's B and C arguments by the packed weights and the padded bias.
pub(super) fn pack_args(
    g: &Graph,
    id: NodeId,
    pg: &PackedGemm,
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
