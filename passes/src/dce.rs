//! `dce`: removes every node no graph output depends on (inputs always stay).
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{Graph, NodeId, Op};
use std::collections::BTreeSet;

/// The pass.
pub struct DeadCode;

impl Pass for DeadCode {
    fn name(&self) -> &'static str {
        "dce"
    }
    fn run(&self, g: &mut Graph, _log: &mut PassLog) -> Result<Changed, PassError> {
        let mut live: BTreeSet<NodeId> = BTreeSet::new();
        let mut stack: Vec<NodeId> = g.outputs.iter().map(|o| o.1.node).collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(g.inputs(n).into_iter().map(|v| v.node));
            }
        }
        let dead: Vec<NodeId> = g
            .node_ids()
            .into_iter()
            .filter(|n| !live.contains(n) && !matches!(g.node(*n).op, Op::Input { .. }))
            .collect();
        for n in &dead {
            g.remove_node(*n);
        }
        Ok((!dead.is_empty()).into())
    }
}
