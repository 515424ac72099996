//! Element-wise ops: numpy broadcasting of every operand to one output shape (binary ops,
//! fused element-wise programs, `where`) and the explicit broadcast `expand`. Activations
//! and `identity` keep their operand's type and need no rule of their own.
use super::Cx;
use crate::error::IrError;
use crate::op::EwInstr;
use crate::types::{broadcast_shapes, Shape, TensorType};

/// `a op b`: the two operands broadcast together.
pub(super) fn binary(cx: &Cx) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    broadcast_shapes(&ins[0].shape, &ins[1].shape)
        .map(TensorType::f32)
        .map_err(|m| cx.ty(m))
}

/// A fused program: every register it reads must already be defined (operands first, then
/// earlier instructions), and all operands broadcast to the output.
pub(super) fn fused(cx: &Cx, prog: &[EwInstr]) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let n = ins.len();
    for (k, i) in prog.iter().enumerate() {
        if i.operands().iter().any(|&o| o as usize >= n + k) {
            return Err(cx.ty(format!("instruction {k} reads a register not yet defined")));
        }
    }
    if prog.is_empty() {
        return Err(cx.ty("empty program".into()));
    }
    let mut s = ins[0].shape.clone();
    for t in &ins[1..] {
        s = broadcast_shapes(&s, &t.shape).map_err(|m| cx.ty(m))?;
    }
    Ok(TensorType::f32(s))
}

/// `where(cond, a, b)`: all three broadcast together.
pub(super) fn select(cx: &Cx) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    broadcast_shapes(&ins[0].shape, &ins[1].shape)
        .and_then(|s| broadcast_shapes(&s, &ins[2].shape))
        .map(TensorType::f32)
        .map_err(|m| cx.ty(m))
}

/// `expand`: the operand must broadcast to exactly the stated shape (not beyond it).
pub(super) fn expand(cx: &Cx, shape: &Shape) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let b = broadcast_shapes(&ins[0].shape, shape).map_err(|m| cx.ty(m))?;
    if b != *shape {
        return Err(cx.ty(format!(
            "{} does not broadcast to the stated output shape",
            ins[0]
        )));
    }
    Ok(TensorType::f32(shape.iter().copied()))
}
