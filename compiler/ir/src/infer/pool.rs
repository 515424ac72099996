//! Pooling and reductions: windowed 2-D pooling (and its argmax indices), global pooling
//! over the spatial axes, reductions over a set of axes, and softmax along one axis.
use super::{window_axis, window_out_symbolic, Cx};
use crate::error::IrError;
use crate::op::{Op, PoolAttrs, PoolKind};
use crate::types::{Dim, Shape, TensorType};

/// Windowed max or average pooling over an NCHW input.
pub(super) fn pool2d(cx: &Cx, p: &PoolAttrs) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let x = &ins[0].shape;
    if x.len() != 4 {
        return Err(cx.ty(format!("needs a 4-D NCHW input, got {}", ins[0])));
    }
    let mut o: Shape = x[..2].iter().copied().collect();
    for i in 0..2 {
        let (k, d) = (p.kernel[i], p.dilations[i]);
        let pads = (p.pads[i], p.pads[i + 2]);
        if p.strides[i] == 0 {
            return Err(cx.ty("strides must be >= 1".into()));
        }
        let Some(e) = x[2 + i].known() else {
            let (_, eff) = window_axis(2 + i, 0, k, d, pads).map_err(|m| cx.ty(m))?;
            let s = p.strides[i];
            o.push(window_out_symbolic(
                cx,
                2 + i,
                x[2 + i],
                eff,
                pads,
                s,
                p.ceil_mode,
            )?);
            continue;
        };
        window_axis(2 + i, e, k, d, pads).map_err(|m| cx.ty(m))?;
        let v = p.out_extent(i, e).ok_or_else(|| {
            cx.ty(format!(
                "window larger than padded input along axis {}",
                2 + i
            ))
        })?;
        o.push(Dim::Known(v));
    }
    Ok(TensorType::f32(o))
}

/// The int64 argmax of a max pooling: the pooling's own rule (errors then name
/// `max_pool2d`), with an i64 result.
pub(super) fn max_pool_indices(cx: &Cx, pool: &PoolAttrs) -> Result<TensorType, IrError> {
    if pool.kind != PoolKind::Max {
        return Err(cx.ty("indices are defined for max pooling only".into()));
    }
    let t = Op::Pool2d(pool.clone()).infer(cx.ins)?;
    Ok(TensorType::i64(t.shape))
}

/// Global pooling: every axis after `[N, C]` becomes 1.
pub(super) fn global_pool(cx: &Cx) -> Result<TensorType, IrError> {
    let s = &cx.ins[0].shape;
    if s.len() < 3 {
        return Err(cx.ty(format!("needs rank >= 3, got rank {}", s.len())));
    }
    let mut o: Shape = s[..2].iter().copied().collect();
    o.extend(std::iter::repeat_n(Dim::Known(1), s.len() - 2));
    Ok(TensorType::f32(o))
}

/// A reduction over `axes`: each is dropped, or kept as 1 under `keep_dims`.
pub(super) fn reduce(cx: &Cx, axes: &[usize], keep_dims: bool) -> Result<TensorType, IrError> {
    let s = &cx.ins[0].shape;
    if let Some(&a) = axes.iter().find(|&&a| a >= s.len()) {
        return Err(cx.ty(format!("axis {a} out of range for rank {}", s.len())));
    }
    let mut o = Shape::new();
    for (i, &d) in s.iter().enumerate() {
        if axes.contains(&i) {
            if keep_dims {
                o.push(Dim::Known(1));
            }
        } else {
            o.push(d);
        }
    }
    Ok(TensorType::f32(o))
}

/// Softmax keeps its operand's type; only the axis is checked.
pub(super) fn softmax(cx: &Cx, axis: usize) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    if axis >= ins[0].rank() {
        return Err(cx.ty(format!(
            "axis {axis} out of range for rank {}",
            ins[0].rank()
        )));
    }
    Ok(ins[0].clone())
}
