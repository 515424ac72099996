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
            | Op::Concat { axis: 1 }
            | Op::Resize(_)
            | Op::Reorder { .. }
    )
}

/// A tensor of one element (a scalar constant such as hard-swish's 3 and 6): it broadcasts
/// alike in every layout, so blocked element-wise ops take it plain.
pub fn is_scalar(t: &TensorType) -> bool {
    t.layout == Layout::Plain && t.shape.iter().all(|d| *d == crate::Dim::Known(1))
}

/// Whether operand `slot` of `op`, of type `operand`, may be read when the result has type
/// `out`.
pub fn operand_ok(op: &Op, slot: usize, operand: &TensorType, out: &TensorType) -> bool {
    let elementwise = matches!(op, Op::Binary(_) | Op::Elementwise { .. });
    if elementwise && out.layout != Layout::Plain {
        // blocked element-wise: operands of the result's full shape and layout, or scalars
        return is_scalar(operand) || (operand.layout == out.layout && operand.shape == out.shape);
    }
    let (operand, out) = (operand.layout, out.layout);
    match op {
        Op::Reorder { .. } | Op::GlobalAvgPool | Op::GlobalMaxPool => true,
        // a dense blocked convolution also reads a plain input (the 3-channel stem)
        Op::Conv2d(a) if slot == 0 => operand == out || (a.group == 1 && operand == Layout::Plain),
        // the residual is read where the output is written; the gate is a plain [N, C]
        Op::Conv2d(a) if a.residual_slot() == Some(slot) => operand == out,
        // an SE gate step pools x in whichever layout x has
        Op::SeGate(_) if slot == 0 => true,
        Op::SqueezeExcite(a) if a.residual_slot() == Some(slot) => operand == out,
        Op::SqueezeExcite(_) | Op::Act(_) | Op::Pool2d(_) | Op::Resize(_) if slot == 0 => {
            operand == out
        }
        Op::Binary(_) | Op::Elementwise { .. } | Op::Concat { .. } => operand == out,
        _ => operand == Layout::Plain,
    }
}

/// Checks the layouts of one node: its result's layout is one the op can yield, and every
/// operand's layout one it takes. Blocked element-wise ops need operands of the result's
/// full shape, or scalars (other broadcasts run on plain tensors).
pub fn check(op: &Op, ins: &[&TensorType], out: &TensorType) -> Result<(), String> {
    if let Some(c) = out.layout.block() {
        if !can_block(op) {
            return Err(format!("{} cannot yield a blocked result", op.name()));
        }
        if c == 0 || out.rank() != 4 {
            return Err(format!("blocked layout {} on {out}", out.layout.name()));
        }
    }
    if matches!(op, Op::Conv2d(a) if a.residual) && out.layout == Layout::Plain {
        return Err("a convolution with a residual operand must be blocked".into());
    }
    let se_epilogue = matches!(op, Op::SqueezeExcite(a) if a.residual || a.act.is_some());
    if se_epilogue && out.layout == Layout::Plain {
        return Err("an SE block with a residual or activation epilogue must be blocked".into());
    }
    if matches!(op, Op::GlobalAvgPool | Op::GlobalMaxPool) && out.layout != Layout::Plain {
        return Err("a global pool yields a plain [N, C, 1, 1] tensor".into());
    }
    for (slot, t) in ins.iter().enumerate() {
        if !operand_ok(op, slot, t, out) {
            return Err(format!(
                "operand {slot} {t} cannot be read by a {} result {out} (blocked element-wise \
                 ops take operands of the result's shape and layout, or scalars): insert a reorder",
                out.layout.name()
            ));
        }
    }
    Ok(())
}
