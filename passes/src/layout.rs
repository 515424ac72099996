//! `assign-layout`: chooses the memory layout of every value for a CPU target, and inserts
//! the reorders that make the choice legal.
//!
//! Convolutions with constant weights yield the blocked form `nChw{c}c` (c = the target's
//! vector width); the ops that have blocked kernels (SE blocks, activations, pooling,
//! element-wise ops over operands of one shape) stay blocked when their input is, so a
//! network runs blocked from its stem to its classifier. A consumer that cannot take the
//! blocked form (a reshape, a concat, a broadcast, the graph outputs) reads it through one
//! `reorder` per value; global pools read blocked and yield plain `[N, C, 1, 1]`, which is
//! the same memory when C is a multiple of c. Which ops take which layouts is one table,
//! `secc_ir::layout`, that the verifier checks after this pass.
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::layout::{is_scalar, operand_ok};
use secc_ir::{Dim, Graph, Layout, NodeId, Op, ValueId};
use std::collections::BTreeMap;

/// The pass, for channel blocks of `block` floats.
pub struct AssignLayout {
    /// channels per block (16 for AVX-512, 8 for AVX2)
    pub block: u32,
}

/// Largest kernel window the blocked convolution unrolls (taps beyond it stay plain).
const MAX_BLOCKED_KW: u64 = 16;

/// Largest pooling window (taps) the blocked pool unrolls; larger windows pool plain, in
/// the run-time loops of the plain kernel, so compile time stays bounded.
const MAX_BLOCKED_POOL_TAPS: u64 = 64;

/// An image whose channels are known (they are blocked at compile time); its batch, height
/// and width may be symbolic: the blocked kernels take them at run time.
fn known_channels(g: &Graph, v: ValueId) -> bool {
    let t = g.ty(v);
    t.rank() == 4 && matches!(t.shape[1], Dim::Known(_))
}

/// A convolution the blocked kernels implement: constant weights (they are packed at
/// compile time), dense or depthwise, known channels.
fn conv_blocks(g: &Graph, id: NodeId) -> bool {
    let Op::Conv2d(a) = &g.node(id).op else {
        return false;
    };
    let ins = g.inputs(id);
    if !known_channels(g, ins[0]) || !known_channels(g, id.into()) {
        return false;
    }
    // weights and bias (a gate operand is a run-time value)
    if ins[1..ins.len().min(3)]
        .iter()
        .any(|w| g.const_of(*w).is_none())
    {
        return false;
    }
    let (c, w) = (g.ty(ins[0]).shape[1], &g.ty(ins[1]).shape);
    let depthwise = Dim::Known(a.group) == c && w[0] == c;
    // the blocked depthwise kernel has no gated form
    (a.group == 1 || (depthwise && !a.gated)) && w[3].known().is_some_and(|kw| kw <= MAX_BLOCKED_KW)
}

impl AssignLayout {
    /// The layout `id` should yield, given the layouts already chosen for its operands.
    fn choose(&self, g: &Graph, id: NodeId) -> Layout {
        let blocked = Layout::Blocked(self.block);
        let ins = g.inputs(id);
        let any_blocked = ins.iter().any(|v| g.ty(*v).layout == blocked);
        let out = g.ty(id.into());
        let yes = match &g.node(id).op {
            Op::Conv2d(_) => conv_blocks(g, id),
            Op::Pool2d(a) if a.kernel[0].saturating_mul(a.kernel[1]) > MAX_BLOCKED_POOL_TAPS => {
                false
            }
            Op::Act(_) | Op::Pool2d(_) | Op::SqueezeExcite(_) | Op::Resize(_) => {
                g.ty(ins[0]).layout == blocked && known_channels(g, id.into())
            }
            // channel concatenation of images, all of known channels
            Op::Concat { axis: 1 } => {
                any_blocked
                    && ins
                        .iter()
                        .chain([&id.into()])
                        .all(|v| known_channels(g, *v))
            }
            Op::Binary(_) | Op::Elementwise { .. } => {
                any_blocked
                    && known_channels(g, id.into())
                    && ins
                        .iter()
                        .all(|v| g.ty(*v).shape == out.shape || is_scalar(g.ty(*v)))
            }
            _ => false,
        };
        if yes {
            blocked
        } else {
            Layout::Plain
        }
    }
}

/// `v` in layout `to`: `v` itself, or one shared reorder of it.
fn reordered(
    g: &mut Graph,
    memo: &mut BTreeMap<(ValueId, Layout), ValueId>,
    v: ValueId,
    to: Layout,
) -> Result<ValueId, PassError> {
    if g.ty(v).layout == to {
        return Ok(v);
    }
    if let Some(r) = memo.get(&(v, to)) {
        return Ok(*r);
    }
    let origin = g
        .node(v.node)
        .origin
        .as_ref()
        .map(|o| format!("{o}.{}", to.name()));
    let r = g
        .add_node(Op::Reorder { to }, &[v], origin)
        .map_err(|e| PassError::InPass {
            pass: "assign-layout",
            msg: e.to_string(),
        })?;
    memo.insert((v, to), r);
    Ok(r)
}

impl Pass for AssignLayout {
    fn name(&self) -> &'static str {
        "assign-layout"
    }
    fn run(&self, g: &mut Graph, _log: &mut PassLog) -> Result<Changed, PassError> {
        let order = g.topo_order().ok_or_else(|| PassError::InPass {
            pass: "assign-layout",
            msg: "graph has a cycle".into(),
        })?;
        let mut changed = false;
        for &id in &order {
            let l = self.choose(g, id);
            if l != Layout::Plain {
                g.node_mut(id).outputs[0].layout = l;
                changed = true;
            }
        }
        // operands in a layout their consumer does not take read a reorder
        let mut memo = BTreeMap::new();
        for &id in &order {
            let out = g.ty(id.into()).clone();
            for (slot, v) in g.inputs(id).into_iter().enumerate() {
                let op = &g.node(id).op;
                if operand_ok(op, slot, g.ty(v), &out) {
                    continue;
                }
                let as_out = g.ty(v).clone().with_layout(out.layout);
                let to = if operand_ok(op, slot, &as_out, &out) {
                    out.layout
                } else {
                    Layout::Plain
                };
                let r = reordered(g, &mut memo, v, to)?;
                g.set_operand(id, slot as u8, r);
                changed = true;
            }
        }
        for i in 0..g.outputs.len() {
            let v = g.outputs[i].1;
            if g.ty(v).layout != Layout::Plain {
                g.outputs[i].1 = reordered(g, &mut memo, v, Layout::Plain)?;
                changed = true;
            }
        }
        Ok(changed.into())
    }
}

/// `fuse-conv-residual`: a residual `add` of a blocked convolution's output becomes that
/// convolution's epilogue (`residual=true`, the other addend as a fourth operand), and so
/// does `relu(add(..))` written as one fused element-wise program: the sum is computed while
/// the tile is in registers instead of by a kernel that reads both tensors again. Only a
/// convolution without an activation, whose one use is the add, qualifies. A blocked SE
/// block's scale takes the add the same way (`relu(x * gate + shortcut)` of SE-ResNet: the
/// shortcut as a sixth operand), so no kernel is left whose only job is the add.
pub struct FuseConvResidual;

/// The add's operand slots `(conv, other)` and the activation after the add, if `id` is
/// `add(a, b)` or the program `[add(0, 1); act(2)]`.
fn residual_add(g: &Graph, id: NodeId) -> Option<(Option<secc_ir::Activation>, [ValueId; 2])> {
    use secc_ir::{BinaryOp, EwInstr};
    let ins = g.inputs(id);
    let act = match &g.node(id).op {
        Op::Binary(BinaryOp::Add) => None,
        Op::Elementwise { prog } => match prog.as_slice() {
            [EwInstr::Binary(BinaryOp::Add, 0, 1) | EwInstr::Binary(BinaryOp::Add, 1, 0), EwInstr::Act(a, 2)] => {
                Some(*a)
            }
            _ => return None,
        },
        _ => return None,
    };
    (ins.len() == 2).then_some((act, [ins[0], ins[1]]))
}

/// A blocked convolution or SE block without an epilogue yet, of the add's type, whose
/// only use is the add.
fn fusable_producer(g: &Graph, v: ValueId, out: &secc_ir::TensorType) -> bool {
    let free = match &g.node(v.node).op {
        Op::Conv2d(a) => a.act.is_none() && !a.residual && !a.pool,
        Op::SqueezeExcite(a) => a.act.is_none() && !a.residual && !a.pooled,
        _ => false,
    };
    free && g.ty(v) == out && out.layout.block().is_some() && g.use_count(v) == 1
}

/// The producer's op and operands with the residual operand `other` and activation `act`
/// added (a convolution without bias gets a zero bias first: the residual is the last
/// operand, after the bias and a gate).
fn with_residual(
    g: &mut Graph,
    producer: NodeId,
    other: ValueId,
    act: Option<secc_ir::Activation>,
) -> Option<(Op, Vec<ValueId>)> {
    let mut ins = g.inputs(producer);
    let op = match g.node(producer).op.clone() {
        Op::Conv2d(mut a) => {
            if ins.len() == 2 {
                let cout = g.ty(ins[1]).shape[0].known().unwrap_or(0) as usize;
                let zero = secc_ir::ConstData::new(vec![cout], vec![0.0; cout]);
                ins.push(g.add_const(zero, None));
            }
            (a.residual, a.act) = (true, act);
            Op::Conv2d(a)
        }
        Op::SqueezeExcite(mut a) => {
            (a.residual, a.act) = (true, act);
            Op::SqueezeExcite(a)
        }
        _ => return None,
    };
    ins.push(other);
    Some((op, ins))
}

impl Pass for FuseConvResidual {
    fn name(&self) -> &'static str {
        "fuse-conv-residual"
    }
    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let err = |e: secc_ir::IrError| PassError::InPass {
            pass: "fuse-conv-residual",
            msg: e.to_string(),
        };
        let order = g.topo_order().unwrap_or_default();
        let mut fused = 0;
        for id in order {
            let Some((act, [a, b])) = residual_add(g, id) else {
                continue;
            };
            let out = g.ty(id.into()).clone();
            let (conv, other) = if fusable_producer(g, a, &out) && g.ty(b) == &out {
                (a, b)
            } else if fusable_producer(g, b, &out) && g.ty(a) == &out {
                (b, a)
            } else {
                continue;
            };
            let Some((op, ins)) = with_residual(g, conv.node, other, act) else {
                continue;
            };
            // named after the convolution or SE block, which does the work (profiles, FLOP
            // counts)
            let origin = g.node(conv.node).origin.clone();
            let new = g.add_node(op, &ins, origin).map_err(err)?;
            g.node_mut(new.node).outputs[0].layout = out.layout;
            g.replace_all_uses(id.into(), new);
            g.remove_node(id);
            g.remove_node(conv.node);
            fused += 1;
        }
        if fused > 0 {
            log.lines.push((
                "fuse-conv-residual",
                format!("fused {fused} residual add(s)"),
            ));
        }
        Ok((fused > 0).into())
    }
}
