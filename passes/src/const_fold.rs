//! `const-fold`: evaluates every compute node whose operands are all constants with the
//! reference interpreter and replaces it by a constant (e.g. Paddle's `Reshape(const)` bias
//! feeding an `Add`). Folded constants are limited in size so weights are not duplicated
//! needlessly. int64 results (`int_tensor`, `max_pool2d_indices`) stay as they are: the
//! constant pool holds f32 data. A `pad` whose run-time fill value turned out constant takes
//! it as an attribute again (the constant-fill kernel).
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::interp::{eval_op, Tensor};
use secc_ir::{ConstData, DType, Graph, NodeId, Op, PadMode};

/// Largest folded result, in elements.
const MAX_FOLD_ELEMS: usize = 1 << 24;

/// The pass.
pub struct ConstFold;

impl Pass for ConstFold {
    fn name(&self) -> &'static str {
        "const-fold"
    }
    fn run(&self, g: &mut Graph, _log: &mut PassLog) -> Result<Changed, PassError> {
        let mut changed = false;
        for id in g.topo_order().unwrap_or_default() {
            let op = g.node(id).op.clone();
            // (a node with several results is not folded: the evaluator computes the first)
            if matches!(op, Op::Input { .. } | Op::Const(_))
                || g.node(id).outputs.len() != 1
                || g.node(id).outputs[0].dtype != DType::F32
            {
                continue;
            }
            if fold_pad_value(g, id)? {
                changed = true;
                continue;
            }
            let ins = g.inputs(id);
            let Some(consts) = ins
                .iter()
                .map(|v| g.const_of(*v))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let Some(shape) = g.node(id).outputs[0].eval(&[]) else {
                continue;
            };
            let n = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
            if n.is_none_or(|n| n > MAX_FOLD_ELEMS) {
                continue;
            }
            let tensors: Vec<Tensor> = consts
                .iter()
                .map(|c| Tensor::new(c.shape.clone(), c.data.to_vec()))
                .collect();
            let refs: Vec<&Tensor> = tensors.iter().collect();
            let t = eval_op(&op, &refs, &[]).map_err(|e| PassError::InPass {
                pass: "const-fold",
                msg: format!("{}: {e}", g.node_ref(id)),
            })?;
            let origin = g.node(id).origin.clone();
            let c = g.add_const(ConstData::new(t.shape, t.data), origin);
            g.replace_all_uses(id.into(), c);
            g.remove_node(id);
            changed = true;
        }
        Ok(changed.into())
    }
}

/// `pad(x, fill) {mode=constant(%1)}` with a constant `fill` becomes `pad(x) {mode=constant(v)}`.
fn fold_pad_value(g: &mut Graph, id: NodeId) -> Result<bool, PassError> {
    let Op::Pad {
        pads,
        mode: PadMode::ConstantInput,
    } = &g.node(id).op
    else {
        return Ok(false);
    };
    let ins = g.inputs(id);
    let Some(v) = g.const_of(ins[1]).map(|c| c.data[0]) else {
        return Ok(false);
    };
    let op = Op::Pad {
        pads: pads.clone(),
        mode: PadMode::Constant(v),
    };
    let origin = g.node(id).origin.clone();
    let new = g
        .add_node(op, &[ins[0]], origin)
        .map_err(|e| PassError::InPass {
            pass: "const-fold",
            msg: e.to_string(),
        })?;
    g.replace_all_uses(id.into(), new);
    g.remove_node(id);
    Ok(true)
}
