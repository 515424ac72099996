//! `se-fuse`: finds squeeze-and-excitation blocks with an egg e-graph and replaces each by one
//! `squeeze_excite` node.
//!
//! 1. **Translate** ([`Translator`]): every IR node becomes an e-node; ops SE detection needs
//!    map to [`SeLang`] terms, everything else to an opaque leaf. A non-constant value with
//!    several uses is wrapped as `(shared2 v)` (two uses) or `(shared v)` (more), and no
//!    pattern looks through a wrapper: a block whose intermediate values are used elsewhere
//!    does not fuse. (SiLU written as `t * sigmoid(t)` consumes exactly two uses of `t`, which
//!    is why `shared2` exists.)
//! 2. **Saturate** with [`rules::rules`] under explicit limits; reaching a limit is logged.
//! 3. **Splice**: for every IR `mul` whose e-class gained an `se` node, constant operands are
//!    extracted (smallest term), materialised (transposes, reshapes, zero biases) and a fused
//!    node replaces the `mul`. The orphaned chain is left to `dce`.
//!
//! [`SeFuse::run_report`] also returns an [`SeReport`]: for every candidate (each global
//! pooling, each multiply by a per-channel gate) whether it fused or why not, read off the
//! same saturated e-graph (see [`explain`]).
pub mod analysis;
pub mod explain;
pub mod lang;
pub mod rules;

pub use explain::{Candidate, CandidateKind, Outcome, Reason, SeReport};

use crate::{Changed, Pass, PassError, PassLog};
use analysis::{LeafInfo, SeAnalysis};
use egg::{AstSize, EGraph, Extractor, Id, RecExpr, Runner, StopReason, Symbol};
use lang::{ActKind, SeLang};
use secc_ir::{
    BinaryOp, ConstData, Conv2dAttrs, Dim, Graph, NodeId, Op, ReduceKind, SeAttrs, SeGateAttrs,
    ValueId,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// The SE fusion pass with its e-graph limits.
#[derive(Debug, Clone)]
pub struct SeFuse {
    /// maximum saturation iterations
    pub iter_limit: usize,
    /// maximum e-nodes
    pub node_limit: usize,
    /// wall-clock limit
    pub time_limit: Duration,
}

impl Default for SeFuse {
    fn default() -> Self {
        SeFuse {
            iter_limit: 30,
            node_limit: 200_000,
            time_limit: Duration::from_secs(10),
        }
    }
}

type EG = EGraph<SeLang, SeAnalysis>;

/// Builds the e-graph from the IR and remembers which class holds which IR value.
struct Translator {
    eg: EG,
    id_of: BTreeMap<NodeId, Id>,
    /// the class of the node itself, before any `shared` wrapper
    core_of: BTreeMap<NodeId, Id>,
    /// every class id that stands for an IR value (wrappers included)
    class_value: Vec<(Id, NodeId)>,
    leaf_const: BTreeMap<Symbol, secc_ir::ConstId>,
}

impl Translator {
    fn leaf(&mut self, g: &Graph, id: NodeId) -> Id {
        let n = g.node(id);
        let (sym, konst, scalar) = match n.op {
            Op::Const(c) => {
                let d = g.consts.get(c);
                let s = Symbol::from(format!("c{}", c.0));
                self.leaf_const.insert(s, c);
                (s, true, (d.data.len() == 1).then(|| d.data[0]))
            }
            _ => (Symbol::from(format!("v{}", id.index())), false, None),
        };
        self.eg.analysis.leaves.insert(
            sym,
            LeafInfo {
                shape: n.outputs[0].shape.to_vec(),
                konst,
                scalar,
            },
        );
        self.eg.add(SeLang::Leaf(sym))
    }

    fn translate(&mut self, g: &Graph, id: NodeId) -> Id {
        let n = g.node(id);
        let ins: Vec<Id> = g.inputs(id).iter().map(|v| self.id_of[&v.node]).collect();
        let shape = &n.outputs[0].shape;
        let in_shape = |i: usize| g.ty(g.inputs(id)[i]).shape.clone();
        let one = Dim::Known(1);
        let node = match &n.op {
            Op::GlobalAvgPool if shape.len() == 4 => Some(SeLang::Gap(ins[0])),
            Op::ReduceMean { axes, keep_dims } if axes == &[2, 3] && in_shape(0).len() == 4 => {
                Some(if *keep_dims {
                    SeLang::MeanHw(ins[0])
                } else {
                    SeLang::MeanHwFlat(ins[0])
                })
            }
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes,
                keep_dims,
            } if axes == &[2, 3] && in_shape(0).len() == 4 => Some(if *keep_dims {
                SeLang::SumHw(ins[0])
            } else {
                SeLang::SumHwFlat(ins[0])
            }),
            Op::Reshape { shape: to } => {
                let from = in_shape(0);
                if from.len() == 4
                    && to.len() == 2
                    && from[2] == one
                    && from[3] == one
                    && from[..2] == to[..]
                {
                    Some(SeLang::To2d(ins[0]))
                } else if from.len() == 2
                    && to.len() == 4
                    && to[2] == one
                    && to[3] == one
                    && from[..] == to[..2]
                {
                    Some(SeLang::To4d(ins[0]))
                } else {
                    None
                }
            }
            Op::Gemm(a) if a.alpha == 1.0 && (a.beta == 1.0 || ins.len() == 2) && !a.trans_a => {
                let w = if a.trans_b {
                    ins[1]
                } else {
                    self.eg.add(SeLang::T(ins[1]))
                };
                let nb = self.eg.add(SeLang::NoBias);
                let d = SeLang::Dense([ins[0], w, nb]);
                if ins.len() == 3 {
                    let d = self.eg.add(d);
                    Some(SeLang::Add([d, ins[2]]))
                } else {
                    Some(d)
                }
            }
            Op::MatMul => Some(SeLang::MatMul([ins[0], ins[1]])),
            Op::Conv2d(c)
                if c.strides == [1, 1]
                    && c.pads == [0; 4]
                    && c.group == 1
                    && c.act.is_none()
                    && {
                        let w = in_shape(1);
                        w.len() == 4 && w[2] == one && w[3] == one
                    } =>
            {
                let b = match ins.get(2) {
                    Some(b) => self.eg.add(SeLang::Flat(*b)),
                    None => self.eg.add(SeLang::NoBias),
                };
                Some(SeLang::Conv1x1([ins[0], ins[1], b]))
            }
            Op::Binary(BinaryOp::Add) => Some(SeLang::Add([ins[0], ins[1]])),
            Op::Binary(BinaryOp::Mul) => Some(SeLang::Mul([ins[0], ins[1]])),
            Op::Binary(BinaryOp::Div) => Some(SeLang::Div([ins[0], ins[1]])),
            Op::Act(a) => ActKind::from_ir(*a).map(|k| {
                let k = self.eg.add(SeLang::Kind(k));
                SeLang::Act([k, ins[0]])
            }),
            _ => None,
        };
        let Some(node) = node else {
            return self.leaf(g, id);
        };
        let mut cid = self.eg.add(node);
        self.class_value.push((cid, id));
        self.core_of.insert(id, cid);
        let uses = g.use_count(id.into());
        if uses == 2 {
            cid = self.eg.add(SeLang::Shared2(cid));
        } else if uses > 2 {
            cid = self.eg.add(SeLang::Shared(cid));
        }
        cid
    }
}

/// Evaluates an extracted constant expression (`c<n>`, `t`, `flat`, `w2d`).
fn materialise(
    g: &Graph,
    leafs: &BTreeMap<Symbol, secc_ir::ConstId>,
    e: &RecExpr<SeLang>,
    at: Id,
) -> Option<(Vec<usize>, Vec<f32>)> {
    match &e[at] {
        SeLang::Leaf(s) => {
            let c = g.consts.get(*leafs.get(s)?);
            Some((c.shape.clone(), c.data.to_vec()))
        }
        SeLang::T(x) => {
            let (s, d) = materialise(g, leafs, e, *x)?;
            if s.len() != 2 {
                return None;
            }
            let (r, c) = (s[0], s[1]);
            let mut t = vec![0f32; d.len()];
            for i in 0..r {
                for j in 0..c {
                    t[j * r + i] = d[i * c + j];
                }
            }
            Some((vec![c, r], t))
        }
        SeLang::Flat(x) => materialise(g, leafs, e, *x).map(|(s, d)| (vec![s.iter().product()], d)),
        SeLang::W2d(x) => {
            materialise(g, leafs, e, *x).map(|(s, d)| (s[..2.min(s.len())].to_vec(), d))
        }
        SeLang::Shared(x) | SeLang::Shared2(x) => materialise(g, leafs, e, *x),
        _ => None,
    }
}

/// The first e-node of class `c` that `f` picks out.
fn find_node<T>(eg: &EG, c: Id, f: impl Fn(&SeLang) -> Option<T>) -> Option<T> {
    eg[eg.find(c)].nodes.iter().find_map(f)
}

/// What splicing reads from the saturated e-graph.
struct Splicer<'a> {
    eg: &'a EG,
    extractor: &'a Extractor<'a, AstSize, SeLang, SeAnalysis>,
    leaf_const: &'a BTreeMap<Symbol, secc_ir::ConstId>,
    value_of: &'a BTreeMap<Id, NodeId>,
}

/// Shape and data of a constant operand.
type Weight = (Vec<usize>, Vec<f32>);

impl Splicer<'_> {
    /// The constant an e-class stands for (smallest term), materialised; `None` for
    /// `nobias`, or a class that is not a constant expression.
    fn constant(&self, g: &Graph, c: Id) -> Option<Weight> {
        if rules::is_nobias(self.eg, c) {
            return None;
        }
        let (_, expr) = self.extractor.find_best(c);
        let root = Id::from(expr.as_ref().len() - 1);
        materialise(g, self.leaf_const, &expr, root)
    }

    /// The block's `w1, b1, w2, b2` (absent biases as zeros), if its weights are constants.
    fn weights(&self, g: &Graph, ch: &[Id; 7], c: usize) -> Option<[Weight; 4]> {
        let w1 = self.constant(g, ch[1])?;
        let w2 = self.constant(g, ch[3])?;
        let r = w1.0[0];
        let b1 = self.constant(g, ch[2]).map_or(vec![0.0; r], |b| b.1);
        let b2 = self.constant(g, ch[4]).map_or(vec![0.0; c], |b| b.1);
        Some([w1, (vec![r], b1), w2, (vec![c], b2)])
    }

    /// The only consumer of the SE block `mul` if it takes the scale: a node whose class
    /// holds a gated convolution of the same block.
    fn scale_consumer(
        &self,
        g: &Graph,
        core_of: &BTreeMap<NodeId, Id>,
        mul: NodeId,
        se: &[Id; 7],
    ) -> Option<NodeId> {
        let users = g.users(mul.into());
        let [(u, _)] = users.as_slice() else {
            return None;
        };
        let gc = self.gated_conv(*core_of.get(u)?)?;
        let same = find_node(self.eg, gc[1], |n| match n {
            SeLang::SeGate(c) => Some(
                c.iter()
                    .zip(se)
                    .all(|(a, b)| self.eg.find(*a) == self.eg.find(*b)),
            ),
            _ => None,
        })?;
        (same && !g.is_output(mul.into())).then_some(*u)
    }

    fn gated_conv(&self, c: Id) -> Option<[Id; 4]> {
        find_node(self.eg, c, |n| match n {
            SeLang::GatedConv(ch) => Some(*ch),
            _ => None,
        })
    }

    /// Replaces consumer `u` (a 1x1 convolution of the block's `x * gate`, possibly with
    /// its bias add) by `conv2d {gated}` of the block's x, reading `gate`.
    fn scale_in_conv(
        &self,
        g: &mut Graph,
        core_of: &BTreeMap<NodeId, Id>,
        u: NodeId,
        gate: ValueId,
        replaced: &BTreeMap<NodeId, ValueId>,
    ) -> Result<ValueId, String> {
        let gc = core_of
            .get(&u)
            .and_then(|c| self.gated_conv(*c))
            .ok_or("no gated convolution")?;
        let xn = *self.value_of.get(&self.eg.find(gc[0])).ok_or("no x")?;
        let x = replaced.get(&xn).copied().unwrap_or(xn.into());
        let w = self
            .constant(g, gc[2])
            .ok_or("the weights are not constant")?;
        let o = w.0[0];
        let b = self.constant(g, gc[3]).map_or(vec![0.0; o], |b| b.1);
        let origin = g.node(u).origin.clone();
        let wv = g.add_const(ConstData::new(w.0, w.1), origin.clone());
        let bv = g.add_const(ConstData::new(vec![o], b), origin.clone());
        let attrs = Conv2dAttrs {
            gated: true,
            ..Conv2dAttrs::pointwise()
        };
        let v = g
            .add_node(Op::Conv2d(attrs), &[x, wv, bv, gate], origin)
            .map_err(|e| e.to_string())?;
        g.replace_all_uses(u.into(), v);
        Ok(v)
    }
}

impl Pass for SeFuse {
    fn name(&self) -> &'static str {
        "se-fuse"
    }

    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        self.run_report(g, log).map(|(c, _)| c)
    }
}

impl SeFuse {
    /// Runs the pass and reports every SE candidate: fused as which block, or why not.
    pub fn run_report(
        &self,
        g: &mut Graph,
        log: &mut PassLog,
    ) -> Result<(Changed, SeReport), PassError> {
        let order = g.topo_order().ok_or_else(|| PassError::InPass {
            pass: "se-fuse",
            msg: "graph has a cycle".into(),
        })?;
        let mut tr = Translator {
            eg: EG::default(),
            id_of: BTreeMap::new(),
            core_of: BTreeMap::new(),
            class_value: vec![],
            leaf_const: BTreeMap::new(),
        };
        for &id in &order {
            let cid = match g.node(id).op {
                Op::Input { .. } | Op::Const(_) => tr.leaf(g, id),
                _ => tr.translate(g, id),
            };
            tr.id_of.insert(id, cid);
            tr.class_value.push((cid, id));
        }
        let runner = Runner::default()
            .with_egraph(tr.eg)
            .with_iter_limit(self.iter_limit)
            .with_node_limit(self.node_limit)
            .with_time_limit(self.time_limit)
            .run(&rules::rules());
        let stop = match &runner.stop_reason {
            Some(StopReason::Saturated) => "saturated".to_string(),
            Some(other) => format!("limit reached: {other:?}"),
            None => "unknown".into(),
        };
        let mut applied: BTreeMap<String, usize> = BTreeMap::new();
        for it in &runner.iterations {
            for (r, n) in &it.applied {
                *applied.entry(r.to_string()).or_default() += n;
            }
        }
        let eg = &runner.egraph;
        // class -> earliest IR value (topological position) standing for it
        let pos: BTreeMap<NodeId, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut value_of: BTreeMap<Id, NodeId> = BTreeMap::new();
        for (cid, nid) in &tr.class_value {
            let c = eg.find(*cid);
            let e = value_of.entry(c).or_insert(*nid);
            if pos[nid] < pos[e] {
                *e = *nid;
            }
        }
        let walks: Vec<explain::PoolWalk> = {
            let ctx = explain::Ctx {
                eg,
                g,
                id_of: &tr.id_of,
                core_of: &tr.core_of,
                value_of: &value_of,
            };
            order
                .iter()
                .filter(|n| explain::is_pool(g, **n))
                .map(|n| ctx.pool(*n))
                .collect()
        };
        let gate_muls: Vec<(NodeId, NodeId)> = order
            .iter()
            .filter_map(|n| explain::gate_operand(g, *n).map(|gate| (*n, gate)))
            .collect();
        let mut fused_at: BTreeMap<NodeId, (usize, String, String)> = BTreeMap::new();
        let mut skipped_at: BTreeMap<NodeId, String> = BTreeMap::new();
        let extractor = Extractor::new(eg, AstSize);
        let sp = Splicer {
            eg,
            extractor: &extractor,
            leaf_const: &tr.leaf_const,
            value_of: &value_of,
        };
        let mut replaced: BTreeMap<NodeId, ValueId> = BTreeMap::new();
        // consumers that take an SE block's scale, and the gate step each reads
        let mut gate_for: BTreeMap<NodeId, ValueId> = BTreeMap::new();
        let mut fused = 0usize;
        let mut skipped = Vec::new();
        for &id in &order {
            if let Some(&gate) = gate_for.get(&id) {
                // a later block may read the consumer: it reads the gated conv
                match sp.scale_in_conv(g, &tr.core_of, id, gate, &replaced) {
                    Ok(v) => {
                        replaced.insert(id, v);
                    }
                    Err(e) => skipped.push(format!("{}: {e}", g.node_ref(id))),
                }
                continue;
            }
            if g.node(id).op != Op::Binary(BinaryOp::Mul) {
                continue;
            }
            let Some(cid) = tr.core_of.get(&id) else {
                continue;
            };
            let Some(ch) = find_node(eg, *cid, |n| match n {
                SeLang::Se(ch) => Some(*ch),
                _ => None,
            }) else {
                continue;
            };
            let Some(&xn) = value_of.get(&eg.find(ch[0])) else {
                continue;
            };
            let x = replaced.get(&xn).copied().unwrap_or(xn.into());
            let (Some(inner), Some(gate)) = (rules::kind_of(eg, ch[5]), rules::kind_of(eg, ch[6]))
            else {
                continue;
            };
            let c = g.ty(x).shape[1].known().unwrap_or(0) as usize;
            let Some(ws) = sp.weights(g, &ch, c) else {
                skipped_at.insert(id, "its weights are not constant expressions".into());
                skipped.push(format!(
                    "{}: weights are not constant expressions",
                    g.node_ref(id)
                ));
                continue;
            };
            let r = ws[0].0[0];
            let origin = g.node(id).origin.clone();
            let mut ops = vec![x];
            for (s, d) in ws {
                ops.push(g.add_const(ConstData::new(s, d), origin.clone()));
            }
            // the consumer takes the scale: the block is its gate step, the consumer
            // becomes a gated convolution when the walk reaches it
            let consumer = sp.scale_consumer(g, &tr.core_of, id, &ch);
            let op = match consumer {
                Some(_) => Op::SeGate(SeGateAttrs {
                    inner: inner.to_ir(),
                    gate: gate.to_ir(),
                }),
                None => Op::SqueezeExcite(SeAttrs {
                    inner: inner.to_ir(),
                    gate: gate.to_ir(),
                    residual: false,
                    act: None,
                    pooled: false,
                }),
            };
            match g.add_node(op, &ops, origin.map(|o| format!("{o}.se"))) {
                Ok(se) => {
                    let mut spelling = format!(
                        "{} / {}, C={c}, R={r}",
                        inner.to_ir().name(),
                        gate.to_ir().name()
                    );
                    match consumer {
                        Some(u) => {
                            gate_for.insert(u, se);
                            spelling += &format!(", scale in {}", explain::plain_name(g, u));
                        }
                        None => {
                            g.replace_all_uses(id.into(), se);
                            replaced.insert(id, se);
                        }
                    }
                    fused += 1;
                    fused_at.insert(id, (fused, explain::plain_name(g, se.node), spelling));
                }
                Err(e) => {
                    skipped_at.insert(id, format!("the fused node is invalid: {e}"));
                    skipped.push(format!("{}: {e}", g.node_ref(id)))
                }
            }
        }
        let rules_s: Vec<String> = applied.iter().map(|(k, v)| format!("{k}x{v}")).collect();
        log.lines.push(("se-fuse", format!("fused {fused} SE block(s); e-graph {stop} after {} iteration(s), {} e-nodes, {} e-classes", runner.iterations.len(), eg.total_number_of_nodes(), eg.number_of_classes())));
        log.lines.push((
            "se-fuse",
            format!(
                "rules applied: {}",
                if rules_s.is_empty() {
                    "none".into()
                } else {
                    rules_s.join(", ")
                }
            ),
        ));
        for s in skipped {
            log.lines.push(("se-fuse", format!("not fused: {s}")));
        }
        let report = explain::finish(
            &walks,
            &gate_muls,
            &explain::Decided {
                fused: &fused_at,
                skipped: &skipped_at,
                stop: &stop,
            },
            g,
        );
        Ok(((fused > 0).into(), report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn se_body_is_the_steps_nested() {
        assert_eq!(
            rules::se_body(),
            "(to4d (act ?g (dense (act ?i (dense (to2d (gap ?x)) ?w1 ?b1)) ?w2 ?b2)))"
        );
    }

    #[test]
    fn rules_build() {
        assert!(rules::rules().len() >= 10);
    }

    #[test]
    fn act_kind_roundtrip() {
        for k in [
            ActKind::Relu,
            ActKind::HardSigmoid(0.2f32.to_bits(), 0.5f32.to_bits()),
            ActKind::Silu,
        ] {
            assert_eq!(k.to_string().parse::<ActKind>().unwrap(), k);
        }
    }
}
