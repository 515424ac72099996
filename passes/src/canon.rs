//! `canonicalise`: rewrites the shape-only glue and layout transposes that exporters put
//! between ops into one spelling, so that later passes (affine-fold, se-fuse) match one form.
//!
//! Every rewrite is an identity on values (checked by the soundness tests on random inputs):
//!
//! - `transpose(transpose(x))` composes; an identity permutation disappears; a transpose that
//!   only moves extent-1 axes (PyTorch's `permute` of a pooled `[N, C, 1, 1]`) is a `reshape`.
//! - `reshape(reshape(x))` is one reshape (`Unsqueeze` per axis, `Squeeze` + `Reshape`); a
//!   reshape to the operand's own shape disappears.
//! - Transposes and reshapes sink below element-wise ops: `act(T(x)) = T(act(x))`,
//!   `T(a) op T(b) = T(a op b)`, `T(a) op c = T(a op T⁻¹(c))` for constants and shape-only
//!   operands, and `reduce_mean(T(x))` reduces the permuted axes first. A transposed NHWC graph
//!   (tf2onnx without its optimizers) thereby meets its inverse transposes before each Conv and
//!   they cancel.
//! - A MatMul with a constant 2-D weight on `[N, 1, .., 1, K]` runs on `[N, K]` (nn.Linear
//!   applied channels-last to a pooled map).
//! - `a op expand(b)` is `a op b` when broadcasting already gives the same shape (SENet's
//!   `y.expand_as(x)`).
//! - `max(min(x, hi), lo)` with scalar constants is `clip`; `clip(x * a + b, 0, 1)` is
//!   `hard_sigmoid(a, b)` (Keras 2's hard sigmoid, `0.2 x + 0.5`).
//!
//! Nodes are rebuilt through one smart constructor ([`Canon::mk`]) that applies the rules
//! before adding a node, so a rewritten node is itself canonical. A rewrite is kept only if the
//! rebuilt value has exactly the original type. Nodes left unused are removed at the end, so
//! that use counts (which affine-fold and se-fuse read) are exact.
use crate::{Changed, DeadCode, Pass, PassError, PassLog};
use secc_ir::{Activation, BinaryOp, ConstData, Dim, Graph, Op, Shape, ValueId};
use std::collections::BTreeMap;

/// The pass.
pub struct Canonicalise;

impl Pass for Canonicalise {
    fn name(&self) -> &'static str {
        "canonicalise"
    }

    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError> {
        let order = g.topo_order().ok_or_else(|| PassError::InPass {
            pass: "canonicalise",
            msg: "graph has a cycle".into(),
        })?;
        let mut changed = 0usize;
        let mut fired = BTreeMap::new();
        for id in order {
            if !g.contains(id) || g.node(id).outputs.len() != 1 {
                continue;
            }
            let op = g.node(id).op.clone();
            let ins = g.inputs(id);
            let origin = g.node(id).origin.clone();
            let mut cx = Canon {
                g,
                origin,
                fired: &mut fired,
            };
            let Some(v) = cx.rewrite(&op, &ins) else {
                continue;
            };
            if v != ValueId::from(id) && g.ty(v) == g.ty(id.into()) {
                g.replace_all_uses(id.into(), v);
                changed += 1;
            }
        }
        if changed > 0 {
            DeadCode.run(g, log)?;
            let rules: Vec<String> = fired.iter().map(|(k, v)| format!("{k}x{v}")).collect();
            log.lines
                .push(("canonicalise", format!("rewrote {changed} node(s)")));
            log.lines.push((
                "canonicalise",
                format!("rules applied: {}", rules.join(", ")),
            ));
        }
        Ok((changed > 0).into())
    }
}

/// Names of the rewrites, as counted in the pass log (`rules applied: ...`).
pub const RULES: &[&str] = &[
    "transpose-identity",
    "transpose-compose",
    "transpose-unit-axes",
    "reshape-identity",
    "reshape-chain",
    "act-sink-transpose",
    "act-sink-reshape",
    "hard-sigmoid-affine",
    "expand-broadcast",
    "min-max-clip",
    "binary-sink-transpose",
    "binary-sink-reshape",
    "reduce-mean-sink-transpose",
    "matmul-unit-axes",
];

/// Rewriting context: the graph, the origin given to new nodes, and rule counts.
struct Canon<'a> {
    g: &'a mut Graph,
    origin: Option<String>,
    fired: &'a mut BTreeMap<&'static str, usize>,
}

fn one(d: &Dim) -> bool {
    *d == Dim::Known(1)
}

/// True if permuting `shape` by `perm` keeps the non-1 axes in order (a pure reshape).
fn order_preserving(shape: &[Dim], perm: &[usize]) -> bool {
    let kept: Vec<usize> = perm.iter().copied().filter(|&a| !one(&shape[a])).collect();
    kept.windows(2).all(|w| w[0] < w[1])
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

fn permute<T: Copy>(v: &[T], perm: &[usize]) -> Vec<T> {
    perm.iter().map(|&p| v[p]).collect()
}

/// A constant left-padded with 1s to `rank`, then permuted: output axis `i` is axis `perm[i]`.
fn transpose_const(c: &ConstData, perm: &[usize]) -> Option<ConstData> {
    let rank = perm.len();
    if c.shape.len() > rank {
        return None;
    }
    let mut shape = vec![1usize; rank - c.shape.len()];
    shape.extend_from_slice(&c.shape);
    let out_shape = permute(&shape, perm);
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let n = c.data.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let off: usize = (0..rank).map(|i| idx[i] * strides[perm[i]]).sum();
        out.push(c.data[off]);
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(ConstData::new(out_shape, out))
}

impl Canon<'_> {
    fn hit(&mut self, rule: &'static str) {
        debug_assert!(RULES.contains(&rule), "unlisted rule {rule}");
        *self.fired.entry(rule).or_default() += 1;
    }
    fn op(&self, v: ValueId) -> &Op {
        &self.g.node(v.node).op
    }
    fn shape(&self, v: ValueId) -> Shape {
        self.g.ty(v).shape.clone()
    }
    fn arg(&self, v: ValueId) -> ValueId {
        self.g.inputs(v.node)[0]
    }
    fn perm_of(&self, v: ValueId) -> Option<Vec<usize>> {
        match self.op(v) {
            Op::Transpose { perm } => Some(perm.clone()),
            _ => None,
        }
    }
    fn is_reshape(&self, v: ValueId) -> bool {
        matches!(self.op(v), Op::Reshape { .. })
    }
    fn scalar(&self, v: ValueId) -> Option<f32> {
        self.g
            .const_of(v)
            .filter(|c| c.data.len() == 1)
            .map(|c| c.data[0])
    }

    /// The canonical node for `op(ins)`: an existing value, or new nodes.
    fn mk(&mut self, op: Op, ins: &[ValueId]) -> Option<ValueId> {
        if let Some(v) = self.rewrite(&op, ins) {
            return Some(v);
        }
        self.g.add_node(op, ins, self.origin.clone()).ok()
    }

    /// A canonical replacement for `op(ins)`, or None when `op(ins)` is already canonical.
    fn rewrite(&mut self, op: &Op, ins: &[ValueId]) -> Option<ValueId> {
        match op {
            Op::Transpose { perm } => self.transpose(perm, ins[0]),
            Op::Reshape { shape } => self.reshape(shape, ins[0]),
            Op::Act(a) => self.act(*a, ins[0]),
            Op::Binary(b) => self.binary(*b, ins[0], ins[1]),
            Op::ReduceMean { axes, keep_dims } => self.reduce_mean(axes, *keep_dims, ins[0]),
            Op::MatMul => self.matmul(ins[0], ins[1]),
            _ => None,
        }
    }

    fn transpose(&mut self, perm: &[usize], x: ValueId) -> Option<ValueId> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            self.hit("transpose-identity");
            return Some(x);
        }
        if let Some(q) = self.perm_of(x) {
            self.hit("transpose-compose");
            let y = self.arg(x);
            return self.mk(
                Op::Transpose {
                    perm: permute(&q, perm),
                },
                &[y],
            );
        }
        let s = self.shape(x);
        if order_preserving(&s, perm) {
            self.hit("transpose-unit-axes");
            let shape: Shape = permute(&s, perm).into_iter().collect();
            return self.mk(Op::Reshape { shape }, &[x]);
        }
        None
    }

    fn reshape(&mut self, to: &Shape, x: ValueId) -> Option<ValueId> {
        if self.shape(x) == *to {
            self.hit("reshape-identity");
            return Some(x);
        }
        if self.is_reshape(x) {
            self.hit("reshape-chain");
            let y = self.arg(x);
            return self.mk(Op::Reshape { shape: to.clone() }, &[y]);
        }
        None
    }

    fn act(&mut self, a: Activation, x: ValueId) -> Option<ValueId> {
        if let Some(p) = self.perm_of(x) {
            self.hit("act-sink-transpose");
            let inner = self.mk(Op::Act(a), &[self.arg(x)])?;
            return self.mk(Op::Transpose { perm: p }, &[inner]);
        }
        if let Op::Reshape { shape } = self.op(x).clone() {
            self.hit("act-sink-reshape");
            let inner = self.mk(Op::Act(a), &[self.arg(x)])?;
            return self.mk(Op::Reshape { shape }, &[inner]);
        }
        if a == (Activation::Clip { min: 0.0, max: 1.0 }) {
            return self.hard_sigmoid(x);
        }
        None
    }

    /// `clip(t * alpha + beta, 0, 1)` with scalar constants.
    fn hard_sigmoid(&mut self, x: ValueId) -> Option<ValueId> {
        let Op::Binary(BinaryOp::Add) = self.op(x) else {
            return None;
        };
        let [m, b] = self.const_second(x)?;
        let beta = self.scalar(b)?;
        let Op::Binary(BinaryOp::Mul) = self.op(m) else {
            return None;
        };
        let [t, a] = self.const_second(m)?;
        let alpha = self.scalar(a)?;
        if self.shape(t) != self.shape(x) {
            return None;
        }
        self.hit("hard-sigmoid-affine");
        self.mk(Op::Act(Activation::HardSigmoid { alpha, beta }), &[t])
    }

    /// The operands of a binary node with the constant one second.
    fn const_second(&self, v: ValueId) -> Option<[ValueId; 2]> {
        let i = self.g.inputs(v.node);
        match (self.g.const_of(i[0]), self.g.const_of(i[1])) {
            (None, Some(_)) => Some([i[0], i[1]]),
            (Some(_), None) => Some([i[1], i[0]]),
            _ => None,
        }
    }

    fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Option<ValueId> {
        let out = secc_ir::broadcast_shapes(&self.shape(a), &self.shape(b)).ok()?;
        // a op expand(b) == a op b when broadcasting alone reaches the same shape
        for (x, e, first) in [(a, b, false), (b, a, true)] {
            if matches!(self.op(e), Op::Expand { .. }) {
                let src = self.arg(e);
                let (l, r) = if first { (src, x) } else { (x, src) };
                let s = secc_ir::broadcast_shapes(&self.shape(l), &self.shape(r)).ok()?;
                if s == out {
                    self.hit("expand-broadcast");
                    return self.mk(Op::Binary(op), &[l, r]);
                }
            }
        }
        if let Some(v) = self.clip_of_min_max(op, a, b) {
            return Some(v);
        }
        for (x, o, first) in [(a, b, true), (b, a, false)] {
            if self.shape(x).len() != out.len() {
                continue;
            }
            if let Some(p) = self.perm_of(x) {
                if let Some(v) = self.sink_transpose(op, &p, x, o, first) {
                    return Some(v);
                }
            }
            if let Op::Reshape { shape } = self.op(x).clone() {
                if let Some(v) = self.sink_reshape(op, &shape, x, o, first) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// `T_p(x0) op o` -> `T_p(x0 op o')` with `T_p(o') == o`.
    fn sink_transpose(
        &mut self,
        op: BinaryOp,
        p: &[usize],
        x: ValueId,
        o: ValueId,
        first: bool,
    ) -> Option<ValueId> {
        let inv = inverse(p);
        let o2 = if self.perm_of(o).as_deref() == Some(p) {
            self.arg(o)
        } else if let Some(c) = self.g.const_of(o) {
            let c = transpose_const(c, &inv)?;
            self.g.add_const(c, self.origin.clone())
        } else {
            // a shape-only operand (e.g. a reshaped gate [N,1,1,C] against NHWC)
            let s = self.shape(o);
            if s.len() != p.len() || !order_preserving(&s, &inv) {
                return None;
            }
            let shape: Shape = permute(&s, &inv).into_iter().collect();
            self.mk(Op::Reshape { shape }, &[o])?
        };
        self.hit("binary-sink-transpose");
        let x0 = self.arg(x);
        let (l, r) = if first { (x0, o2) } else { (o2, x0) };
        let inner = self.mk(Op::Binary(op), &[l, r])?;
        self.mk(Op::Transpose { perm: p.to_vec() }, &[inner])
    }

    /// `R_s(x0) op o` -> `R_s(x0 op o')` for `o` a reshape of the same shape, or a constant
    /// that is a scalar or varies along the last axis only, which the reshape keeps.
    fn sink_reshape(
        &mut self,
        op: BinaryOp,
        s: &Shape,
        x: ValueId,
        o: ValueId,
        first: bool,
    ) -> Option<ValueId> {
        let x0 = self.arg(x);
        let s0 = self.shape(x0);
        let o2 = if self.is_reshape(o) && self.shape(self.arg(o)) == s0 && self.shape(o) == *s {
            self.arg(o)
        } else if let Some(c) = self.g.const_of(o) {
            let n = c.data.len();
            let last = c.shape.last().copied().unwrap_or(1);
            if n == 1 && c.shape.len() <= s0.len() {
                o
            } else if n == last
                && s.last() == Some(&Dim::Known(n as u64))
                && s0.last() == Some(&Dim::Known(n as u64))
            {
                let c = ConstData::new(vec![n], c.data.to_vec());
                self.g.add_const(c, self.origin.clone())
            } else {
                return None;
            }
        } else {
            return None;
        };
        self.hit("binary-sink-reshape");
        let (l, r) = if first { (x0, o2) } else { (o2, x0) };
        let inner = self.mk(Op::Binary(op), &[l, r])?;
        self.mk(Op::Reshape { shape: s.clone() }, &[inner])
    }

    /// `max(min(x, hi), lo)` or `min(max(x, lo), hi)` with scalar constant bounds.
    fn clip_of_min_max(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Option<ValueId> {
        if !matches!(op, BinaryOp::Max | BinaryOp::Min) {
            return None;
        }
        let (inner, k) = match (self.scalar(a), self.scalar(b)) {
            (None, Some(k)) => (a, k),
            (Some(k), None) => (b, k),
            _ => return None,
        };
        let want = if op == BinaryOp::Max {
            BinaryOp::Min
        } else {
            BinaryOp::Max
        };
        if self.op(inner) != &Op::Binary(want) {
            return None;
        }
        let [x, c] = self.const_second(inner)?;
        let k2 = self.scalar(c)?;
        let (min, max) = if op == BinaryOp::Max {
            (k, k2)
        } else {
            (k2, k)
        };
        if min.is_nan() || max.is_nan() || min > max || self.shape(x) != self.shape(inner) {
            return None;
        }
        self.hit("min-max-clip");
        self.mk(Op::Act(Activation::Clip { min, max }), &[x])
    }

    fn reduce_mean(&mut self, axes: &[usize], keep: bool, x: ValueId) -> Option<ValueId> {
        let p = self.perm_of(x)?;
        self.hit("reduce-mean-sink-transpose");
        let y = self.arg(x);
        let mut ax: Vec<usize> = axes.iter().map(|&a| p[a]).collect();
        ax.sort_unstable();
        let inner = self.mk(
            Op::ReduceMean {
                axes: ax.clone(),
                keep_dims: keep,
            },
            &[y],
        )?;
        let perm: Vec<usize> = if keep {
            p
        } else {
            // the kept axes of T_p(y), as positions among the kept axes of y
            let kept: Vec<usize> = (0..p.len()).filter(|j| !ax.contains(j)).collect();
            (0..p.len())
                .filter(|i| !axes.contains(i))
                .map(|i| kept.iter().position(|&j| j == p[i]).unwrap_or(0))
                .collect()
        };
        self.mk(Op::Transpose { perm }, &[inner])
    }

    /// `matmul(x[N,1,..,1,K], W[K,M])` -> `reshape(matmul(reshape(x, [N,K]), W))`.
    fn matmul(&mut self, x: ValueId, w: ValueId) -> Option<ValueId> {
        let s = self.shape(x);
        let ws = self.g.const_of(w)?.shape.clone();
        if s.len() <= 2 || ws.len() != 2 || !s[1..s.len() - 1].iter().all(one) {
            return None;
        }
        self.hit("matmul-unit-axes");
        let flat: Shape = [s[0], s[s.len() - 1]].into_iter().collect();
        let x2 = self.mk(Op::Reshape { shape: flat }, &[x])?;
        let m = self.mk(Op::MatMul, &[x2, w])?;
        let mut out = s.clone();
        *out.last_mut()? = Dim::Known(ws[1] as u64);
        self.mk(Op::Reshape { shape: out }, &[m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secc_ir::interp::{run, Tensor};
    use secc_ir::TensorType;

    fn k(v: &[u64]) -> Shape {
        v.iter().map(|&d| Dim::Known(d)).collect()
    }

    /// Deterministic values in [-2, 2), never 0.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0;
                if v == 0.0 {
                    0.5
                } else {
                    v
                }
            })
            .collect()
    }

    struct B(Graph);

    impl B {
        fn new(x: &[u64]) -> (B, ValueId) {
            let mut g = Graph::new("t");
            let v = g.add_input("x", TensorType::f32_known(x));
            (B(g), v)
        }
        fn c(&mut self, shape: &[usize], seed: u64) -> ValueId {
            let n = shape.iter().product();
            self.0
                .add_const(ConstData::new(shape.to_vec(), values(n, seed)), None)
        }
        fn s(&mut self, v: f32) -> ValueId {
            self.0.add_const(ConstData::new(vec![], vec![v]), None)
        }
        fn op(&mut self, op: Op, ins: &[ValueId]) -> ValueId {
            self.0.add_node(op, ins, None).unwrap()
        }
        fn t(&mut self, x: ValueId, perm: &[usize]) -> ValueId {
            self.op(
                Op::Transpose {
                    perm: perm.to_vec(),
                },
                &[x],
            )
        }
        fn r(&mut self, x: ValueId, shape: &[u64]) -> ValueId {
            self.op(Op::Reshape { shape: k(shape) }, &[x])
        }
        fn bin(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> ValueId {
            self.op(Op::Binary(b), &[x, y])
        }
        fn act(&mut self, a: Activation, x: ValueId) -> ValueId {
            self.op(Op::Act(a), &[x])
        }
        fn mean(&mut self, x: ValueId, axes: &[usize], keep: bool) -> ValueId {
            self.op(
                Op::ReduceMean {
                    axes: axes.to_vec(),
                    keep_dims: keep,
                },
                &[x],
            )
        }
    }

    /// Runs the pass on `g` with outputs `outs`; the interpreter must give the same values
    /// before and after. Returns the rules applied and the ops left.
    fn check(b: B, outs: &[ValueId]) -> (String, Vec<&'static str>) {
        let mut g = b.0;
        for (i, o) in outs.iter().enumerate() {
            g.add_output(format!("y{i}"), *o);
        }
        let x = &g.node(g.inputs[0].1).outputs[0];
        let shape: Vec<usize> = x
            .shape
            .iter()
            .map(|d| d.known().unwrap() as usize)
            .collect();
        let n = shape.iter().product();
        let ins = [Tensor::new(shape, values(n, 7))];
        let before = run(&g, &ins).unwrap();
        let mut log = PassLog::default();
        Canonicalise.run(&mut g, &mut log).unwrap();
        g.verify().unwrap();
        let after = run(&g, &ins).unwrap();
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(a.shape, b.shape);
            for (p, q) in a.data.iter().zip(&b.data) {
                assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
        let rules = log
            .lines
            .iter()
            .filter_map(|(_, l)| l.strip_prefix("rules applied: "))
            .collect::<Vec<_>>()
            .join(", ");
        let ops = g.node_ids().iter().map(|n| g.node(*n).op.name()).collect();
        (rules, ops)
    }

    #[test]
    fn nhwc_elementwise_chain_loses_its_transposes() {
        let (mut b, x) = B::new(&[2, 3, 5, 4]);
        let t = b.t(x, &[0, 2, 3, 1]);
        let c = b.c(&[3], 1);
        let a = b.bin(BinaryOp::Add, t, c);
        let r = b.act(Activation::Relu, a);
        let m = b.bin(BinaryOp::Mul, t, r);
        let p = b.mean(m, &[1, 2], false);
        let back = b.t(m, &[0, 3, 1, 2]);
        let (rules, ops) = check(b, &[back, p]);
        for r in [
            "binary-sink-transpose",
            "act-sink-transpose",
            "transpose-compose",
            "transpose-identity",
            "reduce-mean-sink-transpose",
        ] {
            assert!(rules.contains(r), "{r} not in {rules}");
        }
        assert!(!ops.contains(&"transpose"), "{ops:?}");
    }

    #[test]
    fn reduce_without_keepdims_permutes_the_kept_axes() {
        let (mut b, x) = B::new(&[2, 5, 4, 3]);
        let t = b.t(x, &[0, 3, 1, 2]);
        let p = b.mean(t, &[2], false);
        let q = b.mean(t, &[1, 3], true);
        let (rules, _) = check(b, &[p, q]);
        assert!(rules.contains("reduce-mean-sink-transpose"), "{rules}");
    }

    #[test]
    fn shape_only_gate_meets_an_nhwc_feature_map() {
        let (mut b, x) = B::new(&[2, 3, 5, 4]);
        let t = b.t(x, &[0, 2, 3, 1]);
        let p = b.mean(x, &[2, 3], false);
        let s = b.act(Activation::Sigmoid, p);
        let gate = b.r(s, &[2, 1, 1, 3]);
        let m = b.bin(BinaryOp::Mul, gate, t);
        let back = b.t(m, &[0, 3, 1, 2]);
        let (rules, ops) = check(b, &[back]);
        assert!(rules.contains("binary-sink-transpose"), "{rules}");
        assert!(!ops.contains(&"transpose"), "{ops:?}");
    }

    #[test]
    fn channels_last_linear_layers_run_on_2d() {
        let (mut b, x) = B::new(&[2, 3, 5, 4]);
        let p = b.mean(x, &[2, 3], true);
        let t = b.t(p, &[0, 2, 3, 1]);
        let w1 = b.c(&[3, 4], 2);
        let b1 = b.c(&[4], 3);
        let h = b.op(Op::MatMul, &[t, w1]);
        let h = b.bin(BinaryOp::Add, b1, h);
        let h = b.act(Activation::Relu, h);
        let half = b.s(0.5);
        let h = b.bin(BinaryOp::Mul, h, half);
        let w2 = b.c(&[4, 3], 4);
        let b2 = b.c(&[1, 1, 1, 3], 5);
        let h = b.op(Op::MatMul, &[h, w2]);
        let h = b.bin(BinaryOp::Add, h, b2);
        let g = b.act(Activation::Sigmoid, h);
        let g = b.t(g, &[0, 3, 1, 2]);
        let y = b.bin(BinaryOp::Mul, x, g);
        let (rules, ops) = check(b, &[y]);
        for r in [
            "transpose-unit-axes",
            "matmul-unit-axes",
            "binary-sink-reshape",
            "act-sink-reshape",
            "reshape-chain",
        ] {
            assert!(rules.contains(r), "{r} not in {rules}");
        }
        // pool -> reshape [N,C] -> 2-D FCs -> one reshape back [N,C,1,1]
        assert_eq!(
            ops.iter().filter(|o| **o == "reshape").count(),
            2,
            "{ops:?}"
        );
    }

    #[test]
    fn reshaped_operands_of_one_shape_share_the_reshape() {
        let (mut b, x) = B::new(&[2, 6]);
        let e = b.act(Activation::Exp, x);
        let u = b.r(x, &[2, 3, 2]);
        let v = b.r(e, &[2, 3, 2]);
        let y = b.bin(BinaryOp::Sub, v, u);
        let (rules, _) = check(b, &[y]);
        assert!(rules.contains("binary-sink-reshape"), "{rules}");
    }

    #[test]
    fn keras_hard_sigmoid_and_expanded_gate() {
        let (mut b, x) = B::new(&[2, 3, 5, 4]);
        let p = b.mean(x, &[2, 3], false);
        let (a, c, one, zero) = (b.s(0.2), b.s(0.5), b.s(1.0), b.s(0.0));
        let h = b.bin(BinaryOp::Mul, p, a);
        let h = b.bin(BinaryOp::Add, c, h);
        let h = b.bin(BinaryOp::Min, h, one);
        let h = b.bin(BinaryOp::Max, zero, h);
        let g = b.r(h, &[2, 3, 1, 1]);
        let g = b.op(
            Op::Expand {
                shape: k(&[2, 3, 5, 4]),
            },
            &[g],
        );
        let y = b.bin(BinaryOp::Mul, g, x);
        let (rules, ops) = check(b, &[y]);
        for r in ["min-max-clip", "hard-sigmoid-affine", "expand-broadcast"] {
            assert!(rules.contains(r), "{r} not in {rules}");
        }
        assert!(
            ops.contains(&"hard_sigmoid") && !ops.contains(&"expand"),
            "{ops:?}"
        );
    }

    #[test]
    fn real_layout_changes_stay() {
        // a transpose of a full map against an untransposed map, and a reshape that moves data
        let (mut b, x) = B::new(&[2, 4, 4, 3]);
        let t = b.t(x, &[0, 2, 1, 3]);
        let y = b.bin(BinaryOp::Add, t, x);
        let r = b.r(x, &[2, 3, 4, 4]);
        let z = b.act(Activation::Relu, r);
        let (rules, ops) = check(b, &[y, z]);
        assert!(!rules.contains("binary-sink"), "{rules}");
        assert!(ops.contains(&"transpose"), "{ops:?}");
    }

    #[test]
    fn order_preserving_transposes_only_move_unit_axes() {
        let k = |v: &[u64]| v.iter().map(|&d| Dim::Known(d)).collect::<Vec<_>>();
        assert!(order_preserving(&k(&[2, 8, 1, 1]), &[0, 2, 3, 1]));
        assert!(!order_preserving(&k(&[2, 8, 3, 1]), &[0, 2, 3, 1]));
        assert!(order_preserving(&k(&[2, 1, 1, 8]), &[0, 3, 1, 2]));
    }

    #[test]
    fn constants_transpose_after_left_padding() {
        let c = ConstData::new(vec![2, 3], (0..6).map(|x| x as f32).collect());
        let t = transpose_const(&c, &[0, 2, 1]).unwrap();
        assert_eq!(t.shape, vec![1, 3, 2]);
        assert_eq!(t.data.as_slice(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
