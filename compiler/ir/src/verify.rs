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
            if let Some(v) = ins
                .iter()
                .find(|v| self.contains(v.node) && v.slot as usize >= self.node(v.node).outputs.len())
            {
                errs.push((
                    r(),
                    format!("reads result {} of {}, which has fewer", v.slot, self.node_ref(v.node)),
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
                                errs.push((r(), "a later result's type differs from its rule".into()));
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
