//! Element-wise ops: numpy broadcasting of every operand to one output shape (binary ops,
//! fused element-wise programs, `where`) and the explicit broadcast `expand`. Activations
//! and `identity` keep their operand's type and need no rule of their own.
use super::Cx;
use crate::error::IrError;
use crate::op::EwInstr;
use crate::types::{Shape, TensorType};

/// `a op b`: the two operands broadcast together.
pub(super) fn binary(cx: &Cx) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    cx.broadcast(&ins[0].shape, &ins[1].shape)
        .map(TensorType::f32)
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
        s = cx.broadcast(&s, &t.shape)?;
    }
    Ok(TensorType::f32(s))
}

/// `where(cond, a, b)`: all three broadcast together.
pub(super) fn select(cx: &Cx) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let s = cx.broadcast(&ins[0].shape, &ins[1].shape)?;
    cx.broadcast(&s, &ins[2].shape).map(TensorType::f32)
}

/// `expand`: the operand must broadcast to exactly the stated shape (not beyond it).
pub(super) fn expand(cx: &Cx, shape: &Shape) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let b = cx.broadcast(&ins[0].shape, shape)?;
    if b != *shape {
        return Err(cx.ty(format!(
            "{} does not broadcast to the stated output shape",
            ins[0]
        )));
    }
    Ok(TensorType::f32(shape.iter().copied()))
}
