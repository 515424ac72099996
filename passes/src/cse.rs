//! `cse`: common-subexpression elimination. Two nodes with the same op, the same attributes
//! and the same operands compute the same value; the later one is replaced by the earlier.
//! Constants are merged when their shape and every bit of their data are equal. Inputs are
//! never merged. Runs after `se-fuse`, so merged values cannot hide an SE pattern behind a
//! shared (multi-use) value.
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{Graph, NodeId, Op, ValueId};
use std::collections::BTreeMap;

/// The pass.
pub struct Cse;

/// What makes two nodes equal: op name, printed attributes, operands; constants by shape and
/// data bits.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Node(String, Vec<(&'static str, String)>, Vec<ValueId>),
    Const(Vec<usize>, Vec<u32>),
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }
    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let mut seen: BTreeMap<Key, NodeId> = BTreeMap::new();
        let mut merged = 0usize;
        for id in g.topo_order().unwrap_or_default() {
            let n = g.node(id);
            if n.outputs.len() != 1 {
                continue;
            }
            let key = match &n.op {
                Op::Input { .. } => continue,
                Op::Const(_) => {
                    let Some(c) = g.const_of(id.into()) else {
                        continue;
                    };
                    Key::Const(
                        c.shape.clone(),
                        c.data.iter().map(|v| v.to_bits()).collect(),
                    )
                }
                op => Key::Node(op.name().to_string(), op.attrs(&g.sym_names), g.inputs(id)),
            };
            match seen.get(&key) {
                Some(&rep) => {
                    g.replace_node_uses(id, rep);
                    g.remove_node(id);
                    merged += 1;
                }
                None => {
                    seen.insert(key, id);
                }
            }
        }
        if merged > 0 {
            log.lines
                .push(("cse", format!("merged {merged} duplicate nodes")));
        }
        Ok((merged > 0).into())
    }
}
