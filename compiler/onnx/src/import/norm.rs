//! Importers for the normalisations: BatchNormalization (inference mode), LayerNormalization
//! and Softmax, lowered to arithmetic, reductions and `softmax`.
use super::{Failure, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{Activation, BinaryOp, ConstData, Dim, Op, Shape, ValueId};

impl Importer<'_> {
    /// Inference-mode BatchNormalization becomes `x * s + t` with per-channel constants
    /// (`s = scale / sqrt(var + eps)`, `t = bias - mean * s`); the `affine-fold` pass then
    /// folds both into a preceding convolution. Parameters computed at run time (graph
    /// inputs) become that arithmetic on `[C, 1, ...]` views instead (`batch_norm_dynamic`).
    pub(super) fn batch_norm(&mut self, cx: &NodeCx) -> R<()> {
        if cx.int_or("training_mode", 0)? != 0
            || cx.node.output.iter().skip(1).any(|o| !o.is_empty())
        {
            return Err(Failure::Unsupported(cx.err(
                "training-mode BatchNormalization (extra outputs) is not supported",
            )));
        }
        let x = self.operand(cx, 0)?;
        let xs = self.shape_of(x);
        if xs.len() < 2 {
            return Err(cx
                .err(format!("input must have rank >= 2, got {}", xs.len()))
                .into());
        }
        let c = xs[1]
            .known()
            .ok_or_else(|| cx.err("channel extent must be known"))? as usize;
        let eps = cx.float_or("epsilon", 1e-5)?;
        let names = [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")];
        let mut vals = Vec::new();
        for (i, _) in names {
            vals.push(self.operand(cx, i)?);
        }
        if vals.iter().any(|v| self.g.const_of(*v).is_none()) {
            return self.batch_norm_dynamic(cx, x, &vals, eps);
        }
        let mut params = Vec::new();
        for ((i, what), v) in names.into_iter().zip(vals) {
            let d = self
                .g
                .const_of(v)
                .ok_or_else(|| cx.err(format!("input {i} ({what}) must be a constant")))?;
            if d.data.len() != c {
                return Err(cx
                    .err(format!(
                        "input {i} ({what}) has {} values for {c} channels",
                        d.data.len()
                    ))
                    .into());
            }
            params.push(d.data.clone());
        }
        let (gamma, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
        let s: Vec<f32> = (0..c)
            .map(|k| (gamma[k] as f64 / (var[k] as f64 + eps as f64).sqrt()) as f32)
            .collect();
        let t: Vec<f32> = (0..c)
            .map(|k| (beta[k] as f64 - mean[k] as f64 * s[k] as f64) as f32)
            .collect();
        let mut shape = vec![c];
        shape.extend(std::iter::repeat_n(1, xs.len() - 2));
        let sc = self.g.add_const(
            ConstData::new(shape.clone(), s),
            Some(format!("{}.scale", cx.name)),
        );
        let tc = self
            .g
            .add_const(ConstData::new(shape, t), Some(format!("{}.shift", cx.name)));
        let m = self
            .g
            .add_node(Op::Binary(BinaryOp::Mul), &[x, sc], Some(cx.name.clone()))
            .map_err(|e| cx.err(e.to_string()))?;
        let a = self
            .g
            .add_node(Op::Binary(BinaryOp::Add), &[m, tc], Some(cx.name.clone()))
            .map_err(|e| cx.err(e.to_string()))?;
        self.def(cx, a)
    }

    /// `(x - mean) * (scale / sqrt(var + eps)) + bias` with `[C]` parameters viewed as
    /// `[C, 1, ...]`; `fuse-elementwise` makes one kernel of it.
    fn batch_norm_dynamic(&mut self, cx: &NodeCx, x: ValueId, p: &[ValueId], eps: f32) -> R<()> {
        let xs = self.shape_of(x);
        let mut view: Shape = [xs[1]].into_iter().collect();
        view.extend(std::iter::repeat_n(Dim::Known(1), xs.len() - 2));
        let mut q = Vec::new();
        for (k, &v) in p.iter().enumerate() {
            if self.shape_of(v).as_slice() != [xs[1]] {
                return Err(cx
                    .err(format!(
                        "input {} has type {}, expected one value per channel ({})",
                        k + 1,
                        self.g.ty(v).display(&self.g.sym_names),
                        xs[1].display(&self.g.sym_names)
                    ))
                    .into());
            }
            q.push(self.node_at(
                cx,
                Op::Reshape {
                    shape: view.clone(),
                },
                &[v],
            )?);
        }
        let (scale, bias, mean, var) = (q[0], q[1], q[2], q[3]);
        let e = self
            .g
            .add_const(ConstData::new(vec![], vec![eps]), Some(cx.name.clone()));
        let ve = self.node_at(cx, Op::Binary(BinaryOp::Add), &[var, e])?;
        let sd = self.node_at(cx, Op::Act(Activation::Sqrt), &[ve])?;
        let s = self.node_at(cx, Op::Binary(BinaryOp::Div), &[scale, sd])?;
        let xm = self.node_at(cx, Op::Binary(BinaryOp::Sub), &[x, mean])?;
        let m = self.node_at(cx, Op::Binary(BinaryOp::Mul), &[xm, s])?;
        self.add(cx, Op::Binary(BinaryOp::Add), &[m, bias])
    }

    /// LayerNormalization (opset 17) lowered to existing ops over axes `axis..rank`:
    /// `(x - mean) / sqrt(mean((x - mean)^2) + eps) * scale + bias`.
    pub(super) fn layer_norm(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let r = self.shape_of(x).len();
        let axis = cx.axis("axis", cx.int_or("axis", -1)?, r)?;
        let eps = cx.float_or("epsilon", 1e-5)?;
        let axes: Vec<usize> = (axis..r).collect();
        let node = |s: &mut Self, op: Op, ins: &[ValueId]| {
            s.g.add_node(op, ins, Some(cx.name.clone()))
                .map_err(|e| Failure::Error(cx.err(e.to_string())))
        };
        let mean = node(
            self,
            Op::ReduceMean {
                axes: axes.clone(),
                keep_dims: true,
            },
            &[x],
        )?;
        let d = node(self, Op::Binary(BinaryOp::Sub), &[x, mean])?;
        let sq = node(self, Op::Binary(BinaryOp::Mul), &[d, d])?;
        let var = node(
            self,
            Op::ReduceMean {
                axes,
                keep_dims: true,
            },
            &[sq],
        )?;
        let epsc = self
            .g
            .add_const(ConstData::new(vec![], vec![eps]), Some(cx.name.clone()));
        let ve = node(self, Op::Binary(BinaryOp::Add), &[var, epsc])?;
        let sd = node(self, Op::Act(Activation::Sqrt), &[ve])?;
        // optional outputs: Mean and InvStdDev, reduced axes kept as 1
        if let Some(name) = cx.node.output.get(1).filter(|s| !s.is_empty()) {
            self.vals.insert(name.clone(), mean);
        }
        if let Some(name) = cx.node.output.get(2).filter(|s| !s.is_empty()) {
            let one = self
                .g
                .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
            let inv = node(self, Op::Binary(BinaryOp::Div), &[one, sd])?;
            self.vals.insert(name.clone(), inv);
        }
        let norm = node(self, Op::Binary(BinaryOp::Div), &[d, sd])?;
        let scale = self.operand(cx, 1)?;
        if cx.input(2).is_none() {
            return self.add(cx, Op::Binary(BinaryOp::Mul), &[norm, scale]);
        }
        let scaled = node(self, Op::Binary(BinaryOp::Mul), &[norm, scale])?;
        let bias = self.operand(cx, 2)?;
        self.add(cx, Op::Binary(BinaryOp::Add), &[scaled, bias])
    }

    /// Softmax over one axis; before opset 13 over the 2-D coercion of the input at that axis.
    pub(super) fn softmax(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let r = s.len();
        let axis = cx.axis(
            "axis",
            cx.int_or("axis", if self.opset < 13 { 1 } else { -1 })?,
            r,
        )?;
        if self.opset >= 13 || axis + 1 == r {
            return self.add(cx, Op::Softmax { axis }, &[x]);
        }
        // opset < 13: softmax over the 2-D coercion [prod(..axis), prod(axis..)]
        let prod = |d: &[Dim]| d.iter().try_fold(Dim::Known(1), |a, &b| a.checked_mul(b));
        let (Some(a), Some(b)) = (prod(&s[..axis]), prod(&s[axis..])) else {
            return Err(cx
                .err("coerced extent is a product of symbolic dimensions")
                .into());
        };
        let flat = self
            .g
            .add_node(
                Op::Reshape {
                    shape: [a, b].into_iter().collect(),
                },
                &[x],
                Some(cx.name.clone()),
            )
            .map_err(|e| cx.err(e.to_string()))?;
        let sm = self
            .g
            .add_node(Op::Softmax { axis: 1 }, &[flat], Some(cx.name.clone()))
            .map_err(|e| cx.err(e.to_string()))?;
        self.add(cx, Op::Reshape { shape: s.clone() }, &[sm])
    }
}
