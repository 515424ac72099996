//! `fuse-conv-act`: an activation applied to a convolution's output becomes the
//! convolution's epilogue (`Conv2dAttrs::act`), so the output is written once. Also
//! recognises SiLU spelled `x * sigmoid(x)` (PyTorch, EfficientNet) and hard-swish spelled
//! `x * hard_sigmoid(x)` on a convolution's output. The convolution's output must have no
//! other use and must not be a graph output.
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{Activation, BinaryOp, Graph, NodeId, Op, ValueId};

/// The pass.
pub struct FuseConvAct;

fn plain_conv(g: &Graph, v: ValueId) -> bool {
    matches!(&g.node(v.node).op, Op::Conv2d(c) if c.act.is_none()) && !g.is_output(v)
}

/// `(conv value, activation)` when `id` applies an activation to a convolution's output.
fn match_act(g: &Graph, id: NodeId) -> Option<(ValueId, Activation, Vec<NodeId>)> {
    match &g.node(id).op {
        Op::Act(a) => {
            let x = g.inputs(id)[0];
            (plain_conv(g, x) && g.use_count(x) == 1).then(|| (x, *a, vec![id]))
        }
        Op::Binary(BinaryOp::Mul) => {
            let ins = g.inputs(id);
            for (x, s) in [(ins[0], ins[1]), (ins[1], ins[0])] {
                let Op::Act(inner) = g.node(s.node).op else {
                    continue;
                };
                let act = match inner {
                    Activation::Sigmoid => Activation::Silu,
                    Activation::HardSigmoid { alpha, beta }
                        if (alpha - 1.0 / 6.0).abs() < 1e-7 && beta == 0.5 =>
                    {
                        Activation::HardSwish
                    }
                    _ => continue,
                };
                if g.inputs(s.node)[0] == x
                    && plain_conv(g, x)
                    && g.use_count(x) == 2
                    && g.use_count(s) == 1
                    && !g.is_output(s)
                {
                    return Some((x, act, vec![id, s.node]));
                }
            }
            None
        }
        _ => None,
    }
}

impl Pass for FuseConvAct {
    fn name(&self) -> &'static str {
        "fuse-conv-act"
    }
    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let mut fused = 0;
        for id in g.topo_order().unwrap_or_default() {
            if !g.contains(id) {
                continue;
            }
            let Some((conv, act, dead)) = match_act(g, id) else {
                continue;
            };
            if let Op::Conv2d(c) = &mut g.node_mut(conv.node).op {
                c.act = Some(act);
            }
            g.replace_all_uses(id.into(), conv);
            for d in dead {
                g.remove_node(d);
            }
            fused += 1;
        }
        if fused > 0 {
            log.lines.push((
                "fuse-conv-act",
                format!("{fused} activations fused into convolutions"),
            ));
        }
        Ok((fused > 0).into())
    }
}
