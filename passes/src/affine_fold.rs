//! `affine-fold`: folds a per-output-channel multiply or add by a constant into the
//! convolution that produces its operand: `conv(x, W, b) * s -> conv(x, W * s, b * s)`,
//! `conv(x, W, b) + t -> conv(x, W, b + t)`. BatchNormalization is imported as exactly such a
//! multiply and add, so this is BN folding; it also folds Paddle's separate bias `Add`.
//! The convolution must have constant weights and no other use.
//!
//! The same holds for a Gemm with a constant B (BatchNorm1d after a Linear layer): B's
//! output columns are scaled and the bias becomes one vector of N.
//!
//! It also folds zero padding into the convolution that reads it: `conv(pad(x, 0))` with
//! padding on the spatial axes only becomes `conv(x)` with larger pads (Keras
//! `ZeroPadding2D`, timm's "same" convolutions, tf2onnx's explicit Pad nodes).
use crate::{Changed, Pass, PassError, PassLog};
use secc_ir::{BinaryOp, ConstData, Dim, Graph, NodeId, Op, PadMode, ValueId};

/// The pass.
pub struct AffineFold;

/// Per-channel values of a constant shaped to broadcast along the channel axis of a rank-4
/// output with `c` channels: `[C,1,1]` or `[1,C,1,1]`. Scalars are left alone on purpose: a
/// scalar add after a conv is usually part of a spelled-out activation (`relu6(x + 3) / 6`)
/// that SE fusion still has to recognise.
fn per_channel(d: &ConstData, c: usize) -> Option<Vec<f32>> {
    let s = &d.shape;
    if s.len() < 3 || s.len() > 4 {
        return None;
    }
    // right-align against [N, C, H, W]: only the C position may differ from 1
    let pad = 4 - s.len();
    for (i, &e) in s.iter().enumerate() {
        let axis = i + pad;
        if axis != 1 && e != 1 {
            return None;
        }
        if axis == 1 && e != c {
            return None;
        }
    }
    Some(d.data.to_vec())
}

fn try_fold(g: &mut Graph, id: NodeId) -> Option<()> {
    let op = match g.node(id).op {
        Op::Binary(b @ (BinaryOp::Mul | BinaryOp::Add)) => b,
        _ => return None,
    };
    let ins = g.inputs(id);
    // the conv operand and the constant operand, in either order
    let (conv_v, k) = [(ins[0], ins[1]), (ins[1], ins[0])]
        .into_iter()
        .find(|(a, b)| {
            // a residual would be scaled too; a gate scales the input and stays
            // and a pooling convolution's means are of its unscaled result
            matches!(&g.node(a.node).op, Op::Conv2d(c) if c.act.is_none() && !c.residual && !c.pool)
                && g.const_of(*b).is_some()
        })?;
    if g.use_count(conv_v) != 1 || g.ty(id.into()) != g.ty(conv_v) {
        return None;
    }
    let Op::Conv2d(attrs) = g.node(conv_v.node).op.clone() else {
        return None;
    };
    let cins = g.inputs(conv_v.node);
    let w = g.const_of(cins[1])?.clone();
    let out_c = match g.ty(conv_v).shape.get(1) {
        Some(Dim::Known(c)) => *c as usize,
        _ => return None,
    };
    let kv = per_channel(g.const_of(k)?, out_c)?;
    let mut bias = match cins.get(2) {
        Some(b) => g.const_of(*b)?.data.to_vec(),
        None => vec![0.0; out_c],
    };
    let mut wdata = w.data.to_vec();
    let per = wdata.len() / out_c;
    match op {
        BinaryOp::Mul => {
            for oc in 0..out_c {
                for v in &mut wdata[oc * per..(oc + 1) * per] {
                    *v *= kv[oc];
                }
                bias[oc] *= kv[oc];
            }
        }
        _ => {
            for oc in 0..out_c {
                bias[oc] += kv[oc];
            }
        }
    }
    let origin = g.node(conv_v.node).origin.clone();
    let wv = g.add_const(ConstData::new(w.shape.clone(), wdata), origin.clone());
    let bv = g.add_const(ConstData::new(vec![out_c], bias), origin.clone());
    let mut new_ins = vec![cins[0], wv, bv];
    new_ins.extend(attrs.gate_slot().map(|s| cins[s]));
    let nv: ValueId = g.add_node(Op::Conv2d(attrs), &new_ins, origin).ok()?;
    g.replace_all_uses(id.into(), nv);
    g.remove_node(id);
    g.remove_node(conv_v.node);
    Some(())
}

/// `gemm(A, B, C) * s` / `+ t` with `s`, `t` per output column (shape `[N]` or `[1, N]`),
/// constant B, C absent or broadcasting along columns only.
fn try_fold_gemm(g: &mut Graph, id: NodeId) -> Option<()> {
    let op = match g.node(id).op {
        Op::Binary(b @ (BinaryOp::Mul | BinaryOp::Add)) => b,
        _ => return None,
    };
    let ins = g.inputs(id);
    let (gv, k) = [(ins[0], ins[1]), (ins[1], ins[0])]
        .into_iter()
        .find(|(a, b)| matches!(g.node(a.node).op, Op::Gemm(_)) && g.const_of(*b).is_some())?;
    if g.use_count(gv) != 1 || g.is_output(gv) || g.ty(id.into()) != g.ty(gv) {
        return None;
    }
    let Op::Gemm(mut attrs) = g.node(gv.node).op.clone() else {
        return None;
    };
    let n = g.ty(gv).shape.get(1)?.known()? as usize;
    let kd = g.const_of(k)?;
    if kd.data.len() != n || kd.shape.len() > 2 || kd.shape.last() != Some(&n) {
        return None;
    }
    let kv = kd.data.to_vec();
    let gins = g.inputs(gv.node);
    let b = g.const_of(gins[1])?.clone();
    // C as one value per column
    let mut c = vec![0f32; n];
    if let Some(cv) = gins.get(2) {
        let cd = g.const_of(*cv)?;
        match cd.data.len() {
            1 => c.iter_mut().for_each(|x| *x = cd.data[0] * attrs.beta),
            l if l == n && cd.shape.iter().rev().skip(1).all(|&d| d == 1) => {
                for (x, v) in c.iter_mut().zip(cd.data.iter()) {
                    *x = v * attrs.beta;
                }
            }
            _ => return None,
        }
    }
    let mut bdata = b.data.to_vec();
    if op == BinaryOp::Mul {
        let kdim = bdata.len() / n;
        for (col, &s) in kv.iter().enumerate() {
            for r in 0..kdim {
                // B is [N, K] when transposed, else [K, N]
                let i = if attrs.trans_b {
                    col * kdim + r
                } else {
                    r * n + col
                };
                bdata[i] *= s;
            }
            c[col] *= s;
        }
    } else {
        for (x, t) in c.iter_mut().zip(&kv) {
            *x += t;
        }
    }
    attrs.beta = 1.0;
    let origin = g.node(gv.node).origin.clone();
    let bv = g.add_const(ConstData::new(b.shape.clone(), bdata), origin.clone());
    let cv = g.add_const(ConstData::new(vec![n], c), origin.clone());
    let nv = g
        .add_node(Op::Gemm(attrs), &[gins[0], bv, cv], origin)
        .ok()?;
    g.replace_all_uses(id.into(), nv);
    g.remove_node(id);
    g.remove_node(gv.node);
    Some(())
}

/// `conv(pad(x))` with a constant-zero spatial pad used only here -> `conv(x)`, pads summed.
fn try_fold_pad(g: &mut Graph, id: NodeId) -> Option<()> {
    let Op::Conv2d(mut attrs) = g.node(id).op.clone() else {
        return None;
    };
    let ins = g.inputs(id);
    let p = ins[0];
    let Op::Pad { pads, mode } = &g.node(p.node).op else {
        return None;
    };
    if *mode != PadMode::Constant(0.0)
        || pads.len() != 4
        || pads[0] != (0, 0)
        || pads[1] != (0, 0)
        || g.use_count(p) != 1
        || g.is_output(p)
    {
        return None;
    }
    let (ph, pw) = (pads[2], pads[3]);
    attrs.pads[0] += ph.0;
    attrs.pads[1] += pw.0;
    attrs.pads[2] += ph.1;
    attrs.pads[3] += pw.1;
    let x = g.inputs(p.node)[0];
    let mut new_ins = vec![x];
    new_ins.extend_from_slice(&ins[1..]);
    let origin = g.node(id).origin.clone();
    let nv = g.add_node(Op::Conv2d(attrs), &new_ins, origin).ok()?;
    g.replace_node_uses(id, nv.node);
    g.remove_node(id);
    g.remove_node(p.node);
    Some(())
}

impl Pass for AffineFold {
    fn name(&self) -> &'static str {
        "affine-fold"
    }
    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let mut folded = 0;
        // chains (conv -> mul -> add) fold one step per sweep
        loop {
            let mut any = false;
            for id in g.topo_order().unwrap_or_default() {
                if g.contains(id)
                    && (try_fold(g, id).is_some()
                        || try_fold_gemm(g, id).is_some()
                        || try_fold_pad(g, id).is_some())
                {
                    any = true;
                    folded += 1;
                }
            }
            if !any {
                break;
            }
        }
        if folded > 0 {
            log.lines.push((
                "affine-fold",
                format!(
                    "folded {folded} per-channel multiply/add or zero-pad node(s) into convolutions and Gemms"
                ),
            ));
        }
        Ok((folded > 0).into())
    }
}
