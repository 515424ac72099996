//! `fuse-elementwise`: chains of element-wise ops (binary arithmetic, activations, Where,
//! comparisons) become one `fused_elementwise` node, one pass over memory instead of one per
//! op. A producer is folded into its consumer when every use of it is in that consumer, it
//! is not a graph output, and it has the consumer's element count (so nothing smaller is
//! recomputed per output element).
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{EwInstr, Graph, NodeId, Op, ValueId};

/// The pass.
pub struct FuseElementwise;

/// An operand of a program under construction: a node input, or an instruction result.
#[derive(Clone, Copy, PartialEq)]
enum Ref {
    In(ValueId),
    Reg(usize),
}

#[derive(Clone, Copy)]
enum Ins {
    Binary(secc_ir::BinaryOp, Ref, Ref),
    Act(secc_ir::Activation, Ref),
    Where(Ref, Ref, Ref),
}

/// A node's computation as a symbolic program, if it is element-wise.
fn program(g: &Graph, id: NodeId) -> Option<Vec<Ins>> {
    let ins = g.inputs(id);
    let r = |k: u16| -> Ref {
        if (k as usize) < ins.len() {
            Ref::In(ins[k as usize])
        } else {
            Ref::Reg(k as usize - ins.len())
        }
    };
    Some(match &g.node(id).op {
        Op::Binary(op) => vec![Ins::Binary(*op, Ref::In(ins[0]), Ref::In(ins[1]))],
        Op::Act(a) => vec![Ins::Act(*a, Ref::In(ins[0]))],
        Op::Where => vec![Ins::Where(
            Ref::In(ins[0]),
            Ref::In(ins[1]),
            Ref::In(ins[2]),
        )],
        Op::Elementwise { prog } => prog
            .iter()
            .map(|i| match *i {
                EwInstr::Binary(op, a, b) => Ins::Binary(op, r(a), r(b)),
                EwInstr::Act(act, a) => Ins::Act(act, r(a)),
                EwInstr::Where(c, a, b) => Ins::Where(r(c), r(a), r(b)),
            })
            .collect(),
        _ => return None,
    })
}

/// The consumer's program with every read of `p` replaced by the producer's program.
fn inline(consumer: &[Ins], p: ValueId, producer: &[Ins]) -> Vec<Ins> {
    let mut out: Vec<Ins> = producer.to_vec();
    let base = producer.len();
    let fix = |x: Ref| match x {
        Ref::In(v) if v == p => Ref::Reg(base - 1),
        Ref::In(v) => Ref::In(v),
        Ref::Reg(k) => Ref::Reg(k + base),
    };
    for i in consumer {
        out.push(match *i {
            Ins::Binary(op, a, b) => Ins::Binary(op, fix(a), fix(b)),
            Ins::Act(act, a) => Ins::Act(act, fix(a)),
            Ins::Where(c, a, b) => Ins::Where(fix(c), fix(a), fix(b)),
        });
    }
    out
}

/// Numbers the inputs in order of first use and lowers to `EwInstr`.
fn lower(prog: &[Ins]) -> (Vec<ValueId>, Vec<EwInstr>) {
    let mut inputs: Vec<ValueId> = Vec::new();
    let mut see = |r: Ref| {
        if let Ref::In(v) = r {
            if !inputs.contains(&v) {
                inputs.push(v);
            }
        }
    };
    for i in prog {
        match *i {
            Ins::Binary(_, a, b) => {
                see(a);
                see(b)
            }
            Ins::Act(_, a) => see(a),
            Ins::Where(c, a, b) => {
                see(c);
                see(a);
                see(b)
            }
        }
    }
    let n = inputs.len();
    let idx = |r: Ref| -> u16 {
        match r {
            Ref::In(v) => inputs.iter().position(|x| *x == v).unwrap_or(0) as u16,
            Ref::Reg(k) => (n + k) as u16,
        }
    };
    let out = prog
        .iter()
        .map(|i| match *i {
            Ins::Binary(op, a, b) => EwInstr::Binary(op, idx(a), idx(b)),
            Ins::Act(act, a) => EwInstr::Act(act, idx(a)),
            Ins::Where(c, a, b) => EwInstr::Where(idx(c), idx(a), idx(b)),
        })
        .collect();
    (inputs, out)
}

/// A producer of `id` that can be folded into it.
fn fusable_operand(g: &Graph, id: NodeId) -> Option<ValueId> {
    let numel = g.ty(id.into()).numel();
    let ins = g.inputs(id);
    ins.iter().copied().find(|&v| {
        program(g, v.node).is_some()
            && !g.is_output(v)
            && g.users(v).iter().all(|(u, _)| *u == id)
            && g.ty(v).numel() == numel
            && numel.is_some()
    })
}

impl Pass for FuseElementwise {
    fn name(&self) -> &'static str {
        "fuse-elementwise"
    }
    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let mut fused = 0;
        // consumers in topological order; each absorbs its producers until none is left
        for id in g.topo_order().unwrap_or_default() {
            if !g.contains(id) || program(g, id).is_none() {
                continue;
            }
            let mut cur = id;
            while let Some(p) = fusable_operand(g, cur) {
                let (Some(cp), Some(pp)) = (program(g, cur), program(g, p.node)) else {
                    break;
                };
                let (inputs, prog) = lower(&inline(&cp, p, &pp));
                let origin = g.node(cur).origin.clone();
                let new = g
                    .add_node(Op::Elementwise { prog }, &inputs, origin)
                    .map_err(|e| PassError::InPass {
                        pass: "fuse-elementwise",
                        msg: e.to_string(),
                    })?;
                g.replace_all_uses(cur.into(), new);
                g.remove_node(cur);
                g.remove_node(p.node);
                cur = new.node;
                fused += 1;
            }
        }
        if fused > 0 {
            log.lines.push((
                "fuse-elementwise",
                format!("{fused} element-wise ops folded"),
            ));
        }
        Ok((fused > 0).into())
    }
}
