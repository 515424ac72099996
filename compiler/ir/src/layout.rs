//! Which memory layouts each op takes and yields: the rule the verifier checks and the
//! layout pass follows. Plain is always allowed; the blocked form (`nChw{c}c`) only where
//! the code generator has kernels for it, so a graph that verifies always compiles.
use crate::op::Op;
use crate::types::{Layout, TensorType};

/// Ops whose result may be blocked, given blocked operands as [`operand_ok`] says.
pub fn can_block(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv2d(_)
            | Op::SqueezeExcite(_)
            | Op::Act(_)
            | Op::Pool2d(_)
            | Op::Binary(_)
            | Op::Elementwise { .. }
            | Op::Reorder { .. }
    )
}

/// Whether operand `slot` of `op` may have layout `operand` when the result has layout `out`.
pub fn operand_ok(op: &Op, slot: usize, operand: Layout, out: Layout) -> bool {
    match op {
        Op::Reorder { .. } | Op::GlobalAvgPool | Op::GlobalMaxPool => true,
        // a dense blocked convolution also reads a plain input (the 3-channel stem)
        Op::Conv2d(a) if slot == 0 => operand == out || (a.group == 1 && operand == Layout::Plain),
        Op::SqueezeExcite(_) | Op::Act(_) | Op::Pool2d(_) if slot == 0 => operand == out,
        Op::Binary(_) | Op::Elementwise { .. } => operand == out,
        _ => operand == Layout::Plain,
    }
}

/// Checks the layouts of one node: its result's layout is one the op can yield, and every
/// operand's layout one it takes. Blocked element-wise ops need operands of the result's
/// full shape (broadcasting is only implemented on plain tensors).
pub fn check(op: &Op, ins: &[&TensorType], out: &TensorType) -> Result<(), String> {
    if let Some(c) = out.layout.block() {
        if !can_block(op) {
            return Err(format!("{} cannot yield a blocked result", op.name()));
        }
        if c == 0 || out.rank() != 4 {
            return Err(format!("blocked layout {} on {out}", out.layout.name()));
        }
    }
    if matches!(op, Op::GlobalAvgPool | Op::GlobalMaxPool) && out.layout != Layout::Plain {
        return Err("a global pool yields a plain [N, C, 1, 1] tensor".into());
    }
    for (slot, t) in ins.iter().enumerate() {
        if !operand_ok(op, slot, t.layout, out.layout) {
            return Err(format!(
                "operand {slot} is {} but the result is {}: insert a reorder",
                t.layout.name(),
                out.layout.name()
            ));
        }
        let elementwise = matches!(op, Op::Binary(_) | Op::Elementwise { .. });
        if elementwise && out.layout != Layout::Plain && t.shape != out.shape {
            return Err(format!(
                "blocked element-wise operand {slot} {t} must have the result's shape"
            ));
        }
    }
    Ok(())
}
