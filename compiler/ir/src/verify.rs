//! The verifier: structural and type invariants every pass must preserve.
use crate::error::NodeRef;
use crate::graph::Graph;
use crate::op::Op;
use crate::types::TensorType;
use std::fmt;

/// All verifier findings, each naming its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyErrors(pub Vec<(Option<NodeRef>, String)>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "IR verification failed ({} problem(s)):", self.0.len())?;
        for (n, m) in &self.0 {
            match n {
                Some(n) => writeln!(f, "  {n}: {m}")?,
                None => writeln!(f, "  graph: {m}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}

impl Graph {
    /// Checks: acyclic; operand slots contiguous and arity respected; every stored type equals
    /// what the type rule infers; inputs and outputs refer to live nodes; constants match the
    /// pool.
    pub fn verify(&self) -> Result<(), VerifyErrors> {
        let mut errs = Vec::new();
        if self.topo_order().is_none() {
            errs.push((None, "graph has a cycle".to_string()));
        }
        for id in self.node_ids() {
            let n = self.node(id);
            let r = || Some(self.node_ref(id));
            let want = 1 + n.outputs.first().map_or(0, |t| n.op.extra_outputs(t).len());
            if n.outputs.len() != want {
                errs.push((
                    r(),
                    format!("has {} output types, expected {want}", n.outputs.len()),
                ));
                continue;
            }
            let ins = self.inputs(id);
            if let Some(v) = ins.iter().find(|v| {
                self.contains(v.node) && v.slot as usize >= self.node(v.node).outputs.len()
            }) {
                errs.push((
                    r(),
                    format!(
                        "reads result {} of {}, which has fewer",
                        v.slot,
                        self.node_ref(v.node)
                    ),
                ));
                continue;
            }
            let mut slots: Vec<u8> = self
                .raw()
                .edges_directed(id, petgraph::Direction::Incoming)
                .map(|e| e.weight().dst_slot)
                .collect();
            slots.sort();
            if slots.iter().enumerate().any(|(i, &s)| s as usize != i) {
                errs.push((
                    r(),
                    format!("operand slots are not 0..{}: {slots:?}", slots.len()),
                ));
                continue;
            }
            match &n.op {
                Op::Input { index } => {
                    if self.inputs.get(*index as usize).map(|x| x.1) != Some(id) {
                        errs.push((r(), format!("input index {index} not in graph signature")));
                    }
                }
                Op::Const(c) => {
                    if (c.0 as usize) >= self.consts.len() {
                        errs.push((r(), format!("constant @{} not in pool", c.0)));
                    } else if self.consts.get(*c).ty() != n.outputs[0] {
                        errs.push((r(), "constant type differs from pool".into()));
                    }
                }
                op => {
                    let tys: Vec<&TensorType> = ins.iter().map(|v| self.ty(*v)).collect();
                    match op.infer(&tys) {
                        Ok(t) if t.same_logical(&n.outputs[0]) => {
                            if let Err(m) = crate::layout::check(op, &tys, &n.outputs[0]) {
                                errs.push((r(), m));
                            }
                            if n.outputs[1..] != op.extra_outputs(&n.outputs[0])[..] {
                                errs.push((
                                    r(),
                                    "a later result's type differs from its rule".into(),
                                ));
                            }
                            if matches!(op, Op::Reorder { .. }) && t.layout != n.outputs[0].layout {
                                errs.push((r(), "reorder result layout differs from `to`".into()));
                            }
                        }
                        Ok(t) => errs.push((
                            r(),
                            format!("stored type {} but type rule gives {}", n.outputs[0], t),
                        )),
                        Err(e) => errs.push((r(), e.to_string())),
                    }
                }
            }
        }
        for (name, v) in &self.outputs {
            if !self.contains(v.node) {
                errs.push((None, format!("output '{name}' refers to a deleted node")));
            }
        }
        for (i, (name, n)) in self.inputs.iter().enumerate() {
            if !self.contains(*n) || self.node(*n).op != (Op::Input { index: i as u32 }) {
                errs.push((
                    None,
                    format!("input '{name}' (#{i}) is not a live input node"),
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(VerifyErrors(errs))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Nodes with several results: printed, interpreted and verified slot by slot.
    #![allow(clippy::unwrap_used)]
    use crate::graph::{ConstData, Graph, ValueId};
    use crate::interp;
    use crate::op::{Activation, Conv2dAttrs, Op, SeGateAttrs};
    use crate::types::{Dim, TensorType};

    /// x -> conv2d {pool} -> se_gate(means), both results returned.
    fn pooled() -> (Graph, ValueId, ValueId) {
        let mut g = Graph::new("t");
        let n = g.sym("N");
        let x = g.add_input(
            "x",
            TensorType::f32([Dim::Sym(n, 1), 3.into(), 5.into(), 4.into()]),
        );
        let w = g.add_const(
            ConstData::new(
                vec![4, 3, 1, 1],
                (0..12).map(|i| i as f32 / 7.0 - 0.8).collect(),
            ),
            None,
        );
        let a = Conv2dAttrs {
            pool: true,
            ..Conv2dAttrs::pointwise()
        };
        let y = g
            .add_node(Op::Conv2d(a), &[x, w], Some("c".into()))
            .unwrap();
        let means = ValueId {
            node: y.node,
            slot: 1,
        };
        let mut ws = vec![means];
        for s in [vec![2, 4], vec![2], vec![4, 2], vec![4]] {
            let k: usize = s.iter().product();
            ws.push(g.add_const(
                ConstData::new(s, (0..k).map(|i| 0.1 * i as f32).collect()),
                None,
            ));
        }
        let ga = SeGateAttrs {
            inner: Activation::Relu,
            gate: Activation::Sigmoid,
        };
        let gate = g.add_node(Op::SeGate(ga), &ws, Some("se".into())).unwrap();
        g.add_output("y", y);
        g.add_output("m", means);
        g.add_output("gate", gate);
        (g, y, gate)
    }

    #[test]
    fn later_results_print_verify_and_evaluate() {
        let (g, y, _) = pooled();
        g.verify().unwrap();
        let text = crate::print::print(&g);
        assert!(
            text.contains("%0: f32[N,4,5,4], %0#1: f32[N,4] = conv2d(%x, @c0)"),
            "{text}"
        );
        assert!(text.contains("se_gate(%0#1,"), "{text}");
        assert!(text.contains("return %0 as y, %0#1 as m"), "{text}");
        let x = interp::Tensor::new(
            vec![2, 3, 5, 4],
            (0..120).map(|i| (i % 13) as f32 - 6.0).collect(),
        );
        let out = interp::run(&g, &[x]).unwrap();
        assert_eq!(out[1].shape, vec![2, 4]);
        // the second result is the mean of each plane of the first
        for (k, m) in out[1].data.iter().enumerate() {
            let plane = &out[0].data[k * 20..(k + 1) * 20];
            let want = plane.iter().map(|&v| v as f64).sum::<f64>() / 20.0;
            assert!((*m as f64 - want).abs() < 1e-6, "{m} vs {want}");
        }
        assert_eq!(g.node(y.node).outputs.len(), 2);
    }

    #[test]
    fn a_missing_result_or_a_read_past_the_results_is_refused() {
        let (mut g, y, gate) = pooled();
        g.set_operand(
            gate.node,
            0,
            ValueId {
                node: y.node,
                slot: 2,
            },
        );
        let e = g.verify().unwrap_err().to_string();
        assert!(e.contains("reads result 2"), "{e}");
        let (mut g, y, _) = pooled();
        g.node_mut(y.node).outputs.truncate(1);
        g.outputs.retain(|o| o.1.slot == 0);
        let e = g.verify().unwrap_err().to_string();
        assert!(e.contains("has 1 output types, expected 2"), "{e}");
    }
}
