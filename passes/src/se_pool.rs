//! `fuse-se-pool` (CPU lowering, after `fuse-conv-residual`): the pool in the producer's
//! epilogue. An SE gate step whose input is a blocked convolution's result reads that
//! convolution's channel means instead, and a whole SE block (`squeeze_excite`, which
//! still reads x for its scale) takes them as a last operand (`pooled=true`): the
//! convolution becomes `conv2d {pool=true}`, a
//! node with two results (y and its `[N, C]` means), and sums each work unit's outputs
//! right after writing them, while they are in cache, so no kernel reads the block's input
//! again to pool it. A lowering pass, like `fuse-conv-residual`, because the blocked
//! convolution is the kernel that can do it; only for known output extents (the partial
//! sums are sized at compile time).
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{Graph, Op, ValueId};

/// See the module docs.
pub struct FuseSePool;

impl Pass for FuseSePool {
    fn name(&self) -> &'static str {
        "fuse-se-pool"
    }

    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let order = g.topo_order().ok_or_else(|| PassError::InPass {
            pass: "fuse-se-pool",
            msg: "graph has a cycle".into(),
        })?;
        let mut fused = 0;
        for id in order {
            let se = match g.node(id).op {
                Op::SeGate(_) => None,
                Op::SqueezeExcite(a) if !a.pooled => Some(a),
                _ => continue,
            };
            let x = g.inputs(id)[0];
            let t = g.ty(x);
            let known = t.rank() == 4 && t.shape[2..].iter().all(|d| d.known().is_some());
            let blocked = t.layout.block().is_some();
            let Op::Conv2d(mut a) = g.node(x.node).op.clone() else {
                continue;
            };
            if x.slot != 0 || !known || !blocked {
                continue;
            }
            let err = |e: secc_ir::IrError| PassError::InPass {
                pass: "fuse-se-pool",
                msg: e.to_string(),
            };
            if !a.pool {
                a.pool = true;
                g.node_mut(x.node).op = Op::Conv2d(a);
                g.reinfer(x.node).map_err(err)?;
            }
            let means = ValueId {
                node: x.node,
                slot: 1,
            };
            match se {
                // the gate step reads the means in place of x
                None => g.set_operand(id, 0, means),
                // the block reads x for its scale and the means as a last operand
                Some(mut a) => {
                    a.pooled = true;
                    let last = g.inputs(id).len() as u8;
                    g.node_mut(id).op = Op::SqueezeExcite(a);
                    g.set_operand(id, last, means);
                }
            }
            g.reinfer(id).map_err(err)?;
            fused += 1;
            let name = |n| g.node(n).origin.clone().unwrap_or_default();
            log.lines.push((
                "fuse-se-pool",
                format!("{}: pool in {}", name(id), name(x.node)),
            ));
        }
        log.lines.push((
            "fuse-se-pool",
            format!("{fused} SE block(s) read their producer's channel means"),
        ));
        Ok((fused > 0).into())
    }
}
