//! Importers for data-movement ops on float32 tensors: Slice, Split, constant-index Gather,
//! Concat, Transpose, Pad, Expand, Cast/CastLike; and the operand helpers other families
//! share (`node_at`, `operand_or_int_const`, `const_floats`).
use super::shape::IV;
use super::{unsupported, Failure, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{broadcast_shapes, BinaryOp, ConstData, Dim, Op, Shape, ValueId};

/// ONNX TensorProto data type FLOAT.
const FLOAT: i64 = 1;
/// ONNX TensorProto data type BOOL.
const BOOL: i64 = 9;

/// A resolved Slice along one axis: first index, step, length.
struct Window {
    start: u64,
    step: i64,
    len: u64,
}

/// The ONNX Slice rule for one axis of extent `n`: negative starts/ends count from the end,
/// then both are clamped (to `[0, n]` going forwards, `[-1, n-1]` going backwards).
fn window(n: i64, start: i64, end: i64, step: i64) -> Window {
    let norm = |x: i64| if x < 0 { x.saturating_add(n) } else { x };
    let (s, e) = if step > 0 {
        (norm(start).clamp(0, n), norm(end).clamp(0, n))
    } else {
        (norm(start).clamp(-1, n - 1), norm(end).clamp(-1, n - 1))
    };
    let len = if step > 0 {
        ((e - s).max(0) as u64).div_ceil(step as u64) as i64
    } else {
        ((s - e).max(0) as u64).div_ceil(step.unsigned_abs()) as i64
    };
    Window {
        start: s.max(0) as u64,
        step,
        len: len as u64,
    }
}

impl Importer<'_> {
    /// Adds a node for `cx` that is not (yet) its result.
    pub(super) fn node_at(&mut self, cx: &NodeCx, op: Op, ins: &[ValueId]) -> R<ValueId> {
        self.g
            .add_node(op, ins, Some(cx.name.clone()))
            .map_err(|e| {
                Failure::Error(cx.err(match e {
                    secc_ir::IrError::AtNode { source, .. } => source.to_string(),
                    e => e.to_string(),
                }))
            })
    }

    /// A float operand that may also be given as an integer or bool constant (Where's
    /// condition, Pow's exponent): integer constants become float constants.
    pub(super) fn operand_or_int_const(&mut self, cx: &NodeCx, i: usize) -> R<ValueId> {
        if let Some(name) = cx.input(i) {
            if let Some((s, d)) = self.ints.get(name) {
                let vals: Option<Vec<f32>> = d
                    .iter()
                    .map(|v| match v {
                        IV::K(k) => Some(*k as f32),
                        IV::S(..) => None,
                    })
                    .collect();
                let vals = vals
                    .ok_or_else(|| cx.err(format!("input {i} depends on a symbolic dimension")))?;
                return Ok(self
                    .g
                    .add_const(ConstData::new(s.clone(), vals), Some(cx.name.clone())));
            }
        }
        self.operand(cx, i)
    }

    /// Float constant data of input `i` (an initializer or a Constant), `None` if absent.
    pub(super) fn const_floats(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<Vec<f32>>> {
        let Some(name) = cx.input(i) else {
            return Ok(None);
        };
        if let Some((_, d)) = self.floats.get(name) {
            return Ok(Some(d.clone()));
        }
        if let Some(v) = self.vals.get(name).or_else(|| self.float_nodes.get(name)) {
            if let Some(c) = self.g.const_of(*v) {
                return Ok(Some(c.data.to_vec()));
            }
        }
        Err(cx
            .err(format!(
                "input {i} ({what}) must be a constant; {name:?} is computed at run time"
            ))
            .into())
    }

    /// The value of `v` when it is computable from constants alone (at most 64 nodes deep
    /// and 1M elements), evaluated with the reference interpreter.
    fn const_eval(&self, v: ValueId, depth: usize) -> Option<secc_ir::interp::Tensor> {
        use secc_ir::interp::{eval_op, Tensor};
        if let Some(c) = self.g.const_of(v) {
            return Some(Tensor::new(c.shape.clone(), c.data.to_vec()));
        }
        let n = self.g.node(v.node);
        if depth > 64
            || matches!(n.op, Op::Input { .. })
            || self.g.ty(v).numel()?.known()? > 1 << 20
        {
            return None;
        }
        let ins: Vec<Tensor> = self
            .g
            .inputs(v.node)
            .into_iter()
            .map(|i| self.const_eval(i, depth + 1))
            .collect::<Option<_>>()?;
        let refs: Vec<&Tensor> = ins.iter().collect();
        eval_op(&n.op, &refs, &[]).ok()
    }

    /// Output name `k` of the node.
    fn out_k(cx: &NodeCx, k: usize) -> R<String> {
        cx.node
            .output
            .get(k)
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| cx.err(format!("output {k} is missing")).into())
    }

    fn slice_op(&self, cx: &NodeCx, x: ValueId, wins: &[(usize, Window)]) -> R<Op> {
        let s = self.shape_of(x);
        let mut starts = vec![0u64; s.len()];
        let mut steps = vec![1i64; s.len()];
        let mut shape: Shape = s.clone();
        for (axis, w) in wins {
            if w.len == 0 {
                return Err(unsupported(
                    cx,
                    format!("an empty slice along axis {axis} is not supported"),
                ));
            }
            starts[*axis] = w.start;
            steps[*axis] = w.step;
            shape[*axis] = Dim::Known(w.len);
        }
        Ok(Op::Slice {
            starts,
            steps,
            shape,
        })
    }

    /// Extent of `axis`, which must be known for a partial window.
    fn known_extent(&self, cx: &NodeCx, x: ValueId, axis: usize) -> R<i64> {
        self.shape_of(x)[axis]
            .known()
            .map(|v| v as i64)
            .ok_or_else(|| {
                unsupported(
                    cx,
                    format!("slicing the symbolic axis {axis} is not supported"),
                )
            })
    }

    pub(super) fn slice(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let (starts, ends, axes, steps) = if self.opset < 10 {
            (
                cx.ints("starts")?
                    .ok_or_else(|| cx.attr_err("starts", "is required"))?,
                cx.ints("ends")?
                    .ok_or_else(|| cx.attr_err("ends", "is required"))?,
                cx.ints("axes")?,
                None,
            )
        } else {
            (
                self.const_ints(cx, 1, "starts")?,
                self.const_ints(cx, 2, "ends")?,
                match cx.input(3) {
                    Some(_) => Some(self.const_ints(cx, 3, "axes")?),
                    None => None,
                },
                match cx.input(4) {
                    Some(_) => Some(self.const_ints(cx, 4, "steps")?),
                    None => None,
                },
            )
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(cx
                .err("starts, ends, axes and steps must have the same length")
                .into());
        }
        let mut wins = Vec::new();
        let mut symbolic = Vec::new();
        for k in 0..starts.len() {
            let axis = cx.axis("axes", axes[k], s.len())?;
            if wins.iter().any(|(a, _)| *a == axis) {
                return Err(cx.attr_err("axes", format!("axis {axis} repeated")).into());
            }
            if steps[k] == 0 {
                return Err(cx.err("step 0 is invalid").into());
            }
            // a full window over a symbolic axis (`x[:, ...]`) needs no extent
            if s[axis].known().is_none()
                && starts[k] == 0
                && steps[k] == 1
                && ends[k] >= i32::MAX as i64
            {
                continue;
            }
            if s[axis].known().is_none() {
                let len = symbolic_window(s[axis], starts[k], ends[k], steps[k]);
                let len = len.ok_or_else(|| {
                    unsupported(
                        cx,
                        format!(
                            "slicing the symbolic axis {axis} from {} to {} step {} is not supported (a start from 0 up, forwards, is)",
                            starts[k], ends[k], steps[k]
                        ),
                    )
                })?;
                symbolic.push((axis, starts[k] as u64, steps[k], len));
                continue;
            }
            let n = self.known_extent(cx, x, axis)?;
            wins.push((axis, window(n, starts[k], ends[k], steps[k])));
        }
        let mut op = self.slice_op(cx, x, &wins)?;
        if let Op::Slice {
            starts,
            steps,
            shape,
        } = &mut op
        {
            // the slice's rule records that each window is non-empty and inside the extent
            for (axis, start, step, len) in symbolic {
                (starts[axis], steps[axis], shape[axis]) = (start, step, len);
            }
        }
        self.add(cx, op, &[x])
    }

    pub(super) fn split(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let r = self.shape_of(x).len();
        let axis = cx.axis("axis", cx.int_or("axis", 0)?, r)?;
        let n = self.known_extent(cx, x, axis)?;
        let outs = cx.node.output.len();
        let sizes: Vec<i64> = if self.opset < 13 {
            cx.ints("split")?.unwrap_or_default()
        } else if cx.input(1).is_some() {
            self.const_ints(cx, 1, "split")?
        } else {
            vec![]
        };
        let sizes = if !sizes.is_empty() {
            let sum = sizes.iter().try_fold(0i64, |a, &v| a.checked_add(v));
            if sizes.len() != outs || sizes.iter().any(|&v| v < 0) || sum != Some(n) {
                return Err(cx
                    .err(format!(
                        "split sizes {sizes:?} do not cover extent {n} with {outs} outputs"
                    ))
                    .into());
            }
            sizes
        } else {
            let k = cx.int_or("num_outputs", outs as i64)?;
            if k < 1 || k as usize != outs {
                return Err(cx
                    .attr_err("num_outputs", format!("{k} does not match {outs} outputs"))
                    .into());
            }
            let chunk = (n as u64).div_ceil(k as u64) as i64; // n >= 0, k >= 1
            if self.opset < 18 && n % k != 0 {
                return Err(cx
                    .err(format!("extent {n} does not split evenly into {k} outputs"))
                    .into());
            }
            (0..k).map(|i| (n - i * chunk).clamp(0, chunk)).collect()
        };
        let mut start = 0;
        for (k, &len) in sizes.iter().enumerate() {
            let name = Self::out_k(cx, k)?;
            let w = Window {
                start: start as u64,
                step: 1,
                len: len as u64,
            };
            start += len;
            let op = self.slice_op(cx, x, &[(axis, w)])?;
            let v = self.node_at(cx, op, &[x])?;
            self.vals.insert(name, v);
        }
        Ok(())
    }

    /// Gather of float data with constant indices: one strided slice when the indices form
    /// an arithmetic progression (`x[:, 0]`, `x[..., 2:5]`), else a concat of slices.
    pub(super) fn gather(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let axis = cx.axis("axis", cx.int_or("axis", 0)?, s.len())?;
        let idx_name = cx
            .input(1)
            .ok_or_else(|| cx.err("input 1 (indices) is missing"))?;
        let ishape = match self.ints.get(idx_name) {
            Some((sh, _)) => sh.clone(),
            None => return Err(unsupported(
                cx,
                "indices must be a constant integer tensor (run-time indices are not supported)",
            )),
        };
        let raw = self.const_ints(cx, 1, "indices")?;
        let n = self.known_extent(cx, x, axis)?;
        let mut idx = Vec::with_capacity(raw.len());
        for &i in &raw {
            if i < -n || i >= n {
                return Err(cx
                    .err(format!("index {i} out of range for extent {n}"))
                    .into());
            }
            idx.push(if i < 0 { i + n } else { i });
        }
        if idx.is_empty() {
            return Err(unsupported(cx, "empty indices are not supported"));
        }
        let step = if idx.len() > 1 { idx[1] - idx[0] } else { 1 };
        let progression = step != 0 && idx.windows(2).all(|w| w[1] - w[0] == step);
        let gathered = if progression {
            let w = Window {
                start: idx[0] as u64,
                step,
                len: idx.len() as u64,
            };
            let op = self.slice_op(cx, x, &[(axis, w)])?;
            self.node_at(cx, op, &[x])?
        } else {
            let mut parts = Vec::new();
            for &i in &idx {
                let w = Window {
                    start: i as u64,
                    step: 1,
                    len: 1,
                };
                let op = self.slice_op(cx, x, &[(axis, w)])?;
                parts.push(self.node_at(cx, op, &[x])?);
            }
            self.node_at(cx, Op::Concat { axis }, &parts)?
        };
        let mut out: Shape = s[..axis].iter().copied().collect();
        out.extend(ishape.iter().map(|&d| Dim::Known(d as u64)));
        out.extend(s[axis + 1..].iter().copied());
        self.add(cx, Op::Reshape { shape: out }, &[gathered])
    }

    /// Cast / CastLike of float data: only to float32 (or bool, kept as 0/1) is supported.
    pub(super) fn cast(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        if self.g.ty(x).dtype != secc_ir::DType::F32 {
            return Err(unsupported(
                cx,
                "Cast of int64 results (MaxPool indices) is not supported; they can only be returned",
            ));
        }
        let to = if cx.op() == "CastLike" {
            let like = cx
                .input(1)
                .ok_or_else(|| cx.err("input 1 (target_type) is missing"))?;
            if self.ints.contains_key(like) {
                return Err(unsupported(
                    cx,
                    "CastLike of float32 data to an integer type is not supported",
                ));
            }
            FLOAT
        } else {
            cx.int("to")?
                .ok_or_else(|| cx.attr_err("to", "is required"))?
        };
        if to == BOOL {
            // x != 0 as 0/1 (NaN is true, as in C)
            let zero = self
                .g
                .add_const(ConstData::new(vec![], vec![0.0]), Some(cx.name.clone()));
            let eq = self.node_at(cx, Op::Binary(BinaryOp::Equal), &[x, zero])?;
            return self.add(cx, Op::Binary(BinaryOp::Equal), &[eq, zero]);
        }
        // integer types: only values known at compile time (shape arithmetic done in float,
        // such as timm's "same" padding: ceil(ih / s) ...), truncated toward zero
        if matches!(to, 2..=7 | 12 | 13) {
            if let Some(t) = self.const_eval(x, 0) {
                if t.data.iter().all(|v| v.is_finite()) {
                    let vals = t.data.iter().map(|v| IV::K(v.trunc() as i64)).collect();
                    self.ints.insert(Self::out_name(cx)?, (t.shape, vals));
                    return Ok(());
                }
            }
        }
        if to != FLOAT {
            return Err(unsupported(
                cx,
                format!(
                    "Cast of float32 data to {} is not supported (only to float32, or of values known at compile time)",
                    crate::tensor::dtype_name(to as i32)
                ),
            ));
        }
        self.add(cx, Op::Identity, &[x])
    }

    pub(super) fn expand(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let name = cx
            .input(1)
            .ok_or_else(|| cx.err("input 1 (shape) is missing"))?;
        let target: Shape = match self.ints.get(name) {
            Some((_, d)) => d
                .iter()
                .map(|v| match *v {
                    IV::K(k) if k >= 1 => Ok(Dim::Known(k as u64)),
                    IV::S(d) => Ok(d),
                    IV::K(k) => Err(cx.err(format!("target extent {k} must be >= 1"))),
                })
                .collect::<Result<_, _>>()?,
            None => {
                return Err(unsupported(
                    cx,
                    "input 1 (shape) must be computable at compile time",
                ))
            }
        };
        let out =
            broadcast_shapes(&self.shape_of(x), &target).map_err(|m| Failure::Error(cx.err(m)))?;
        if out == self.shape_of(x) {
            return self.add(cx, Op::Identity, &[x]);
        }
        self.add(cx, Op::Expand { shape: out }, &[x])
    }

    pub(super) fn concat(&mut self, cx: &NodeCx) -> R<()> {
        let n = cx.node.input.len();
        let ins = (0..n)
            .map(|i| self.operand(cx, i))
            .collect::<Result<Vec<_>, _>>()?;
        let rank = self
            .shape_of(
                *ins.first()
                    .ok_or_else(|| cx.err("needs at least one input"))?,
            )
            .len();
        let axis = cx
            .int("axis")?
            .ok_or_else(|| cx.attr_err("axis", "is required"))?;
        let axis = cx.axis("axis", axis, rank)?;
        self.add(cx, Op::Concat { axis }, &ins)
    }

    pub(super) fn transpose(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let r = self.shape_of(x).len();
        let perm = match cx.ints("perm")? {
            Some(p) => p
                .iter()
                .map(|&a| cx.axis("perm", a, r))
                .collect::<Result<Vec<_>, _>>()?,
            None => (0..r).rev().collect(),
        };
        self.add(cx, Op::Transpose { perm }, &[x])
    }

    pub(super) fn pad(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let r = self.shape_of(x).len();
        let raw = if self.opset < 11 {
            cx.ints("pads")?
                .ok_or_else(|| cx.attr_err("pads", "is required"))?
        } else {
            self.const_ints(cx, 1, "pads")?
        };
        let axes: Vec<usize> = match cx.input(3) {
            Some(_) => self
                .const_ints(cx, 3, "axes")?
                .iter()
                .map(|&a| cx.axis("axes", a, r))
                .collect::<Result<_, _>>()?,
            None => (0..r).collect(),
        };
        if raw.len() != 2 * axes.len() {
            return Err(cx
                .err(format!(
                    "pads has {} values for {} axes",
                    raw.len(),
                    axes.len()
                ))
                .into());
        }
        if raw.iter().any(|&p| p < 0) {
            return Err(cx.err("negative pads (cropping) are not supported").into());
        }
        if let Some(p) = raw.iter().find(|&&p| !crate::attrs::in_range(p, 0)) {
            return Err(cx
                .err(format!(
                    "pad {p} exceeds the size limit {}",
                    secc_ir::MAX_ELEMENTS
                ))
                .into());
        }
        let mut pads = vec![(0u64, 0u64); r];
        for (k, &a) in axes.iter().enumerate() {
            pads[a] = (raw[k] as u64, raw[k + axes.len()] as u64);
        }
        let mut ins = vec![x];
        let mode = match cx.string("mode")?.as_deref().unwrap_or("constant") {
            "constant" if self.opset < 11 => secc_ir::PadMode::Constant(cx.float_or("value", 0.0)?),
            "constant" => match self.scalar_operand(cx, 2, "constant_value")? {
                None => secc_ir::PadMode::Constant(0.0),
                Some(Ok(v)) => secc_ir::PadMode::Constant(v),
                Some(Err(v)) => {
                    ins.push(v);
                    secc_ir::PadMode::ConstantInput
                }
            },
            "reflect" => secc_ir::PadMode::Reflect,
            "edge" => secc_ir::PadMode::Edge,
            other => {
                return Err(cx
                    .attr_err("mode", format!("{other:?} is not supported"))
                    .into())
            }
        };
        self.add(cx, Op::Pad { pads, mode }, &ins)
    }
}

/// The length of a forward slice of a symbolic extent `n` from a known `start >= 0` to
/// `end` (from the end when negative, clamped to `n`): `ceil((end' - start) / step)`.
/// `None` for a start counted from the end or a backward step (the IR's start is a number).
fn symbolic_window(n: Dim, start: i64, end: i64, step: i64) -> Option<Dim> {
    if start < 0 || step < 1 {
        return None;
    }
    let end = if end >= i64::from(i32::MAX) {
        n
    } else if end < 0 {
        n.checked_sub(Dim::Known(end.unsigned_abs()))?
    } else {
        n.min(Dim::Known(end as u64))?
    };
    end.checked_sub(Dim::Known(start as u64))?
        .div_ceil(step as u64)
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn slice_windows_follow_the_spec() {
        let w = window(10, 2, 8, 3);
        assert_eq!((w.start, w.len), (2, 2));
        let w = window(10, -1, i64::MIN, -1);
        assert_eq!((w.start, w.step, w.len), (9, -1, 10));
        let w = window(10, 0, i64::MAX, 1);
        assert_eq!((w.start, w.len), (0, 10));
        let w = window(5, 20, 30, 1);
        assert_eq!(w.len, 0);
        let w = window(5, -100, 3, 1);
        assert_eq!((w.start, w.len), (0, 3));
    }
}
