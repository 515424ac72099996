//! Convolution and transposed convolution: channel and group checks, the optional bias and
//! residual operands, and the output extent of each spatial axis.
use super::{window_axis, window_out_symbolic, Cx};
use crate::error::IrError;
use crate::op::{dilated, Conv2dAttrs, ConvTransposeAttrs};
use crate::types::{Dim, Shape, TensorType, MAX_ELEMENTS};

/// `conv2d(x[N,C,H,W], w[O,C/group,kh,kw][, b[O]][, residual])`.
pub(super) fn conv2d(cx: &Cx, c: &Conv2dAttrs) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let (x, w) = (&ins[0].shape, &ins[1].shape);
    if x.len() != 4 || w.len() != 4 {
        return Err(cx.ty(format!(
            "x and w must be 4-D, got {} and {}",
            ins[0], ins[1]
        )));
    }
    let cin = cx.known(x[1], "input channels")?;
    let cout = cx.known(w[0], "output channels")?;
    let (kh, kw) = (
        cx.known(w[2], "kernel height")?,
        cx.known(w[3], "kernel width")?,
    );
    if c.group == 0 || cin % c.group != 0 || cout % c.group != 0 {
        return Err(cx.ty(format!(
            "group {} does not divide channels {cin}->{cout}",
            c.group
        )));
    }
    if cx.known(w[1], "weight in-channels")? != cin / c.group {
        return Err(cx.ty(format!(
            "weight {} does not match {cin} input channels / group {}",
            ins[1], c.group
        )));
    }
    if c.strides.contains(&0) || c.dilations.contains(&0) {
        return Err(cx.ty("strides and dilations must be >= 1".into()));
    }
    check_bias(cx, cout)?;
    let mut o: Shape = [x[0], Dim::Known(cout)].into_iter().collect();
    for i in 0..2 {
        let pads = (c.pads[i], c.pads[i + 2]);
        let Some(e) = x[2 + i].known() else {
            let (_, k) =
                window_axis(2 + i, 0, [kh, kw][i], c.dilations[i], pads).map_err(|m| cx.ty(m))?;
            o.push(window_out_symbolic(
                cx,
                2 + i,
                x[2 + i],
                k,
                pads,
                c.strides[i],
                false,
            )?);
            continue;
        };
        let (inp, k) =
            window_axis(2 + i, e, [kh, kw][i], c.dilations[i], pads).map_err(|m| cx.ty(m))?;
        if inp < k {
            return Err(cx.ty(format!("kernel {k} larger than padded input {inp}")));
        }
        o.push(Dim::Known((inp - k) / c.strides[i] + 1));
    }
    if let Some(g) = c.gate_slot().map(|s| &ins[s]) {
        if g.shape.as_slice() != [x[0], x[1]] {
            return Err(cx.ty(format!(
                "gate {g} must be [N, C] = [{}, {cin}]",
                x[0].display(&[])
            )));
        }
    }
    if let Some(r) = c.residual_slot().map(|s| &ins[s]) {
        if r.shape != o {
            return Err(cx.ty(format!("residual {r} must have the output's shape")));
        }
    }
    Ok(TensorType::f32(o))
}

/// `conv_transpose2d(x[N,C,H,W], w[C,O/group,kh,kw][, b[O]])`.
pub(super) fn conv_transpose2d(cx: &Cx, c: &ConvTransposeAttrs) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let (x, w) = (&ins[0].shape, &ins[1].shape);
    if x.len() != 4 || w.len() != 4 {
        return Err(cx.ty(format!(
            "x and w must be 4-D, got {} and {}",
            ins[0], ins[1]
        )));
    }
    let cout = transpose_channels(cx, c)?;
    let (kh, kw) = (
        cx.known(w[2], "kernel height")?,
        cx.known(w[3], "kernel width")?,
    );
    check_bias(cx, cout)?;
    let mut o: Shape = [x[0], Dim::Known(cout)].into_iter().collect();
    for i in 0..2 {
        o.push(match x[2 + i].known() {
            Some(e) => Dim::Known(transpose_axis(cx, c, i, e, [kh, kw][i])?),
            None => transpose_axis_symbolic(cx, c, i, x[2 + i], [kh, kw][i])?,
        });
    }
    Ok(TensorType::f32(o))
}

/// The channel checks of a transposed convolution; returns the output channels
/// (`w[1] * group`, held to the size limit).
fn transpose_channels(cx: &Cx, c: &ConvTransposeAttrs) -> Result<u64, IrError> {
    let ins = cx.ins;
    let (x, w) = (&ins[0].shape, &ins[1].shape);
    let cin = cx.known(x[1], "input channels")?;
    if cx.known(w[0], "weight in-channels")? != cin {
        return Err(cx.ty(format!(
            "weight {} does not match {cin} input channels",
            ins[1]
        )));
    }
    if c.group == 0 || cin % c.group != 0 {
        return Err(cx.ty(format!("group {} does not divide {cin} channels", c.group)));
    }
    if c.strides.contains(&0) || c.dilations.contains(&0) {
        return Err(cx.ty("strides and dilations must be >= 1".into()));
    }
    cx.known(w[1], "weight out-channels")?
        .checked_mul(c.group)
        .filter(|&v| v <= MAX_ELEMENTS)
        .ok_or_else(|| {
            cx.ty(format!(
                "{} output channels x group {} exceed the size limit",
                w[1].display(&[]),
                c.group
            ))
        })
}

/// Output extent of spatial axis `i` (input extent `e`, kernel extent `k`) of a transposed
/// convolution. The uncropped extent is checked first, so a too-large output is reported
/// as such rather than as cropped away.
fn transpose_axis(
    cx: &Cx,
    c: &ConvTransposeAttrs,
    i: usize,
    e: u64,
    k: u64,
) -> Result<u64, IrError> {
    window_axis(2 + i, e, k, c.dilations[i], (c.pads[i], c.pads[i + 2])).map_err(|m| cx.ty(m))?;
    let grown = e
        .checked_sub(1)
        .and_then(|v| v.checked_mul(c.strides[i]))
        .and_then(|v| v.checked_add(c.output_padding[i]))
        .and_then(|v| v.checked_add(dilated(k, c.dilations[i])?))
        .filter(|&v| v <= MAX_ELEMENTS);
    if grown.is_none() {
        return Err(cx.ty(format!(
            "output extent along axis {} (stride {}, output_padding {}) exceeds the size limit 2^32",
            2 + i, c.strides[i], c.output_padding[i]
        )));
    }
    c.out_extent(i, e, k)
        .ok_or_else(|| cx.ty(format!("pads crop the whole output along axis {}", 2 + i)))
}

/// [`transpose_axis`] of a symbolic extent: `stride * (e - 1) + output_padding + eff -
/// pads`, required to be at least 1.
fn transpose_axis_symbolic(
    cx: &Cx,
    c: &ConvTransposeAttrs,
    i: usize,
    e: Dim,
    k: u64,
) -> Result<Dim, IrError> {
    let (_, eff) = window_axis(2 + i, 0, k, c.dilations[i], (c.pads[i], c.pads[i + 2]))
        .map_err(|m| cx.ty(m))?;
    let grow = c.output_padding[i] + eff;
    let crop = c.strides[i] + c.pads[i] + c.pads[i + 2];
    let out = e
        .checked_mul(Dim::Known(c.strides[i]))
        .and_then(|v| v.checked_add(Dim::Known(grow)))
        .and_then(|v| v.checked_sub(Dim::Known(crop)))
        .ok_or_else(|| cx.ty(format!("extent along axis {} is not representable", 2 + i)))?;
    cx.require_ge(
        out,
        Dim::Known(1),
        &format!("output extent along axis {}", 2 + i),
    )?;
    Ok(out)
}

/// The optional third operand, a bias, must be `f32[cout]`.
fn check_bias(cx: &Cx, cout: u64) -> Result<(), IrError> {
    if let Some(b) = cx.ins.get(2) {
        if b.shape.as_slice() != [Dim::Known(cout)] {
            return Err(cx.ty(format!("bias {} must be f32[{cout}]", b)));
        }
    }
    Ok(())
}
