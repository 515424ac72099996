//! `remove-identity`: forwards the operand of every Identity (ONNX Identity and inference
//! Dropout) to its users. A graph output that is an input stays an Identity, so outputs keep
//! their own buffer.
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{Graph, Op};

/// The pass.
pub struct RemoveIdentity;

impl Pass for RemoveIdentity {
    fn name(&self) -> &'static str {
        "remove-identity"
    }
    fn run(&self, g: &mut Graph, _log: &mut PassLog) -> Result<Changed, PassError> {
        let mut changed = false;
        for id in g.topo_order().unwrap_or_default() {
            if g.node(id).op != Op::Identity {
                continue;
            }
            let src = g.inputs(id)[0];
            let src_is_input = matches!(g.node(src.node).op, Op::Input { .. });
            if g.is_output(id.into()) && (src_is_input || g.is_output(src)) {
                continue;
            }
            g.replace_all_uses(id.into(), src);
            g.remove_node(id);
            changed = true;
        }
        Ok(changed.into())
    }
}
