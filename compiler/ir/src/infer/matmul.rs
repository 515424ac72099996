//! Matrix products: numpy `matmul` (batch broadcasting, 1-D operands promoted and their
//! unit axis dropped again), `gemm` (2-D, optional transposes, a bias broadcast to
//! `[M, N]`), and the fused SE block (two small products around a spatial mean).
use super::Cx;
use crate::error::IrError;
use crate::op::{GemmAttrs, SeAttrs};
use crate::types::{Dim, Shape, TensorType};

/// `matmul(a, b)` with numpy semantics.
pub(super) fn matmul(cx: &Cx) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let (a, b) = (&ins[0].shape, &ins[1].shape);
    if a.is_empty() || b.is_empty() {
        return Err(cx.ty("operands must have rank >= 1".into()));
    }
    let a2: Shape = if a.len() == 1 {
        [Dim::Known(1), a[0]].into_iter().collect()
    } else {
        a.clone()
    };
    let b2: Shape = if b.len() == 1 {
        [b[0], Dim::Known(1)].into_iter().collect()
    } else {
        b.clone()
    };
    let (m, k1) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    inner(cx, k1, k2)?;
    let mut o = cx.broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        o.push(m);
    }
    if b.len() > 1 {
        o.push(n);
    }
    Ok(TensorType::f32(o))
}

/// The inner dimensions of a product agree (a constraint where they are symbolic).
fn inner(cx: &Cx, k1: Dim, k2: Dim) -> Result<(), IrError> {
    if k1.known_ne(k2) {
        let ins = cx.ins;
        return Err(cx.ty(format!("inner dimensions differ: {} vs {}", ins[0], ins[1])));
    }
    cx.require_eq(k1, k2, "inner dimensions").map(|_| ())
}

/// `gemm(a, b[, c])`: `alpha * op(a) @ op(b) + beta * c`.
pub(super) fn gemm(cx: &Cx, g: &GemmAttrs) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let (a, b) = (&ins[0].shape, &ins[1].shape);
    if a.len() != 2 || b.len() != 2 {
        return Err(cx.ty(format!(
            "A and B must be 2-D, got {} and {}",
            ins[0], ins[1]
        )));
    }
    let (m, k1) = if g.trans_a {
        (a[1], a[0])
    } else {
        (a[0], a[1])
    };
    let (k2, n) = if g.trans_b {
        (b[1], b[0])
    } else {
        (b[0], b[1])
    };
    inner(cx, k1, k2)?;
    let out: Shape = [m, n].into_iter().collect();
    if let Some(c) = ins.get(2) {
        let bc = cx.broadcast(&out, &c.shape)?;
        if bc != out {
            return Err(cx.ty(format!("C {} does not broadcast to [M,N]", c)));
        }
    }
    Ok(TensorType::f32(out))
}

/// `squeeze_excite(x[N,C,H,W], w1[R,C], b1[R], w2[C,R], b2[C])` keeps `x`'s type.
pub(super) fn squeeze_excite(cx: &Cx, a: &SeAttrs) -> Result<TensorType, IrError> {
    se_operands(cx, false)?;
    let ins = cx.ins;
    if let Some(res) = a.residual_slot().map(|s| ins[s]) {
        if res.shape != ins[0].shape {
            return Err(cx.ty(format!("the residual {res} must have x's shape {}", ins[0])));
        }
    }
    if let Some(m) = a.means_slot().map(|s| ins[s]) {
        if m.shape.as_slice() != &ins[0].shape[..2] {
            return Err(cx.ty(format!(
                "the channel means {m} must be [N, C] of x {}",
                ins[0]
            )));
        }
    }
    Ok(ins[0].clone())
}

/// `se_gate(x[N,C,H,W], w1[R,C], b1[R], w2[C,R], b2[C])` is `f32[N, C]`, plain; x may be
/// its channel means already, `[N, C]` (a pooling convolution's second result).
pub(super) fn se_gate(cx: &Cx) -> Result<TensorType, IrError> {
    se_operands(cx, true)?;
    let x = &cx.ins[0].shape;
    Ok(TensorType::f32([x[0], x[1]]))
}

/// The operands an SE block and its gate step share: a 4-D x (or, where `pooled_ok`, its
/// `[N, C]` channel means) and FC weights of matching shapes.
fn se_operands(cx: &Cx, pooled_ok: bool) -> Result<(), IrError> {
    let ins = cx.ins;
    let x = &ins[0].shape;
    if x.len() != 4 && !(pooled_ok && x.len() == 2) {
        return Err(cx.ty(format!("x must be 4-D NCHW, got {}", ins[0])));
    }
    let c = x[1];
    let w1 = &ins[1].shape;
    if w1.len() != 2 || w1[1] != c {
        return Err(cx.ty(format!(
            "w1 {} must be [R, C] with C = {}",
            ins[1],
            c.display(&[])
        )));
    }
    let r = w1[0];
    let want = [(2, vec![r]), (3, vec![c, r]), (4, vec![c])];
    for (i, s) in want {
        if ins[i].shape.as_slice() != s.as_slice() {
            return Err(cx.ty(format!(
                "operand {i} has type {}, expected shape {:?}",
                ins[i],
                s.iter().map(|d| d.display(&[])).collect::<Vec<_>>()
            )));
        }
    }
    Ok(())
}
