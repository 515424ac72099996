//! Importers for data-movement and resampling ops on float32 tensors: Slice, Split,
//! constant-index Gather, Concat, Transpose, Pad, Expand, Cast/CastLike and
//! Resize/Upsample; and the operand helpers other families share (`node_at`,
//! `operand_or_int_const`).
use super::shape::IV;
use super::{unsupported, Failure, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{
    broadcast_shapes, BinaryOp, ConstData, CoordMode, Dim, NearestMode, Op, ResizeAttrs,
    ResizeMode, Shape, ValueId,
};

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
    fn const_floats(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<Vec<f32>>> {
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
            let n = self.known_extent(cx, x, axis)?;
            wins.push((axis, window(n, starts[k], ends[k], steps[k])));
        }
        let op = self.slice_op(cx, x, &wins)?;
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

    /// Resize (opset 10+) and Upsample (opset 7-9) of the two spatial axes of an NCHW input.
    pub(super) fn resize(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let xs = self.shape_of(x);
        if xs.len() != 4 {
            return Err(unsupported(
                cx,
                format!("only 4-D NCHW inputs are supported (rank {})", xs.len()),
            ));
        }
        let legacy = cx.op() == "Upsample" || self.opset < 11;
        let mode_s = cx.string("mode")?.unwrap_or_else(|| "nearest".into());
        let linear = match mode_s.as_str() {
            "nearest" => false,
            "linear" | "bilinear" => true,
            other => {
                return Err(unsupported(
                    cx,
                    format!("mode {other:?} is not supported (nearest and linear are)"),
                ))
            }
        };
        // per-axis scale (f32) and output extent over all 4 axes
        let rank_in = [xs[0], xs[1], xs[2], xs[3]];
        let (scales4, sizes4): (Vec<Option<f32>>, Vec<Option<Dim>>) = if legacy {
            let sc = if cx.op() == "Upsample" && self.opset < 9 {
                cx.floats("scales")?
                    .ok_or_else(|| cx.attr_err("scales", "is required"))?
            } else {
                self.const_floats(cx, 1, "scales")?
                    .ok_or_else(|| cx.err("input 1 (scales) is missing"))?
            };
            if sc.len() != 4 {
                return Err(cx.err(format!("{} scales for rank 4", sc.len())).into());
            }
            (sc.into_iter().map(Some).collect(), vec![None; 4])
        } else {
            let axes: Vec<usize> = match cx.ints("axes")? {
                Some(a) => a
                    .iter()
                    .map(|&a| cx.axis("axes", a, 4))
                    .collect::<Result<_, _>>()?,
                None => (0..4).collect(),
            };
            let scales = self
                .const_floats(cx, 2, "scales")?
                .filter(|s| !s.is_empty());
            let sizes: Option<Vec<IV>> = match cx.input(3) {
                Some(n) => match self.ints.get(n) {
                    Some((_, d)) if !d.is_empty() => Some(d.clone()),
                    Some(_) => None,
                    None => {
                        return Err(unsupported(
                            cx,
                            "input 3 (sizes) must be computable at compile time",
                        ))
                    }
                },
                None => None,
            };
            let mut sc4 = vec![Some(1.0f32); 4];
            let mut sz4: Vec<Option<Dim>> = vec![None; 4];
            match (scales, sizes) {
                (Some(sc), None) => {
                    if sc.len() != axes.len() {
                        return Err(cx
                            .err(format!("{} scales for {} axes", sc.len(), axes.len()))
                            .into());
                    }
                    for (k, &a) in axes.iter().enumerate() {
                        sc4[a] = Some(sc[k]);
                    }
                }
                (None, Some(sz)) => {
                    if sz.len() != axes.len() {
                        return Err(cx
                            .err(format!("{} sizes for {} axes", sz.len(), axes.len()))
                            .into());
                    }
                    let policy = cx
                        .string("keep_aspect_ratio_policy")?
                        .unwrap_or_else(|| "stretch".into());
                    let mut ratio: Option<f32> = None;
                    for (k, &a) in axes.iter().enumerate() {
                        let d = match sz[k] {
                            IV::K(v) if v >= 1 => Dim::Known(v as u64),
                            IV::S(d) => d,
                            IV::K(v) => {
                                return Err(cx.err(format!("output size {v} must be >= 1")).into())
                            }
                        };
                        sz4[a] = Some(d);
                        sc4[a] = None;
                        if let (Some(o), Some(i)) = (d.known(), rank_in[a].known()) {
                            let r = o as f32 / i as f32;
                            ratio = Some(match (policy.as_str(), ratio) {
                                (_, None) => r,
                                ("not_larger", Some(p)) => p.min(r),
                                (_, Some(p)) => p.max(r),
                            });
                        }
                    }
                    match policy.as_str() {
                        "stretch" => {}
                        "not_larger" | "not_smaller" => {
                            let r = ratio.unwrap_or(1.0);
                            for &a in &axes {
                                let i = rank_in[a].known().ok_or_else(|| {
                                    unsupported(cx, "keep_aspect_ratio_policy needs known extents")
                                })?;
                                sc4[a] = Some(r);
                                sz4[a] = Some(Dim::Known((r * i as f32).round() as u64));
                            }
                        }
                        other => {
                            return Err(cx
                                .attr_err(
                                    "keep_aspect_ratio_policy",
                                    format!("{other:?} is not valid"),
                                )
                                .into())
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    return Err(cx.err("only one of scales and sizes may be given").into())
                }
                (None, None) => return Err(cx.err("needs scales or sizes").into()),
            }
            (sc4, sz4)
        };
        // batch and channels stay as they are
        for a in 0..2 {
            let same = match (scales4[a], sizes4[a]) {
                (Some(s), _) => s == 1.0,
                (None, Some(d)) => d == xs[a],
                (None, None) => true,
            };
            if !same {
                return Err(unsupported(
                    cx,
                    format!("resizing axis {a} (batch or channels) is not supported"),
                ));
            }
        }
        let mut scales = [1f32; 2];
        let mut sizes = [Dim::Known(1); 2];
        let mut lengths = [None; 2];
        for i in 0..2 {
            let inl = xs[2 + i];
            match (scales4[2 + i], sizes4[2 + i]) {
                (_, Some(d)) => {
                    sizes[i] = d;
                    if let (Some(o), Some(n)) = (d.known(), inl.known()) {
                        lengths[i] = Some(o as f32);
                        scales[i] = scales4[2 + i].unwrap_or(o as f32 / n as f32);
                        continue;
                    }
                    // a symbolic extent: the coordinate scale out / in must be a constant
                    scales[i] = scales4[2 + i]
                        .or_else(|| constant_ratio(d, inl))
                        .ok_or_else(|| {
                            unsupported(
                                cx,
                                format!(
                                    "output size {} is not a constant multiple or fraction of the input's {}",
                                    d.display(&self.g.sym_names),
                                    inl.display(&self.g.sym_names)
                                ),
                            )
                        })?;
                    lengths[i] = d.known().map(|o| o as f32);
                }
                (Some(s), None) => {
                    if s.is_nan() || s <= 0.0 || s.is_infinite() {
                        return Err(cx.err(format!("scale {s} must be positive")).into());
                    }
                    scales[i] = s;
                    let Some(n) = inl.known() else {
                        sizes[i] = scaled_extent(inl, s).ok_or_else(|| {
                            unsupported(
                                cx,
                                format!("scale {s} of a symbolic extent needs a binary fraction of at most 32 bits after the point"),
                            )
                        })?;
                        continue;
                    };
                    let len = n as f32 * s;
                    if len > secc_ir::MAX_ELEMENTS as f32 {
                        return Err(cx
                            .err(format!(
                                "scale {s} makes axis {} {len} long, beyond the size limit {}",
                                2 + i,
                                secc_ir::MAX_ELEMENTS
                            ))
                            .into());
                    }
                    lengths[i] = Some(len);
                    sizes[i] = Dim::Known(len.floor() as u64);
                }
                (None, None) => unreachable!("every axis has a scale or a size"),
            }
        }
        let coord = if legacy {
            CoordMode::Asymmetric
        } else {
            match cx
                .string("coordinate_transformation_mode")?
                .as_deref()
                .unwrap_or("half_pixel")
            {
                "half_pixel" => CoordMode::HalfPixel,
                "half_pixel_symmetric" => CoordMode::HalfPixelSymmetric,
                "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
                "align_corners" => CoordMode::AlignCorners,
                "asymmetric" => CoordMode::Asymmetric,
                "tf_half_pixel_for_nn" => CoordMode::TfHalfPixelForNn,
                other => {
                    return Err(unsupported(
                        cx,
                        format!("coordinate_transformation_mode {other:?} is not supported"),
                    ))
                }
            }
        };
        if cx.int_or("antialias", 0)? != 0 && linear && scales.iter().any(|&s| s < 1.0) {
            return Err(unsupported(cx, "antialiased downscaling is not supported"));
        }
        let mode = if linear {
            ResizeMode::Linear
        } else if legacy {
            // ONNX Runtime's rule before opset 11: floor when upsampling, ceil when shrinking
            if scales.iter().all(|&s| s >= 1.0) {
                ResizeMode::Nearest(NearestMode::Floor)
            } else if scales.iter().all(|&s| s < 1.0) {
                ResizeMode::Nearest(NearestMode::Ceil)
            } else {
                return Err(unsupported(
                    cx,
                    "nearest resize that grows one axis and shrinks the other is not supported before opset 11",
                ));
            }
        } else {
            ResizeMode::Nearest(
                match cx
                    .string("nearest_mode")?
                    .as_deref()
                    .unwrap_or("round_prefer_floor")
                {
                    "round_prefer_floor" => NearestMode::RoundPreferFloor,
                    "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                    "floor" => NearestMode::Floor,
                    "ceil" => NearestMode::Ceil,
                    other => {
                        return Err(cx
                            .attr_err("nearest_mode", format!("{other:?} is not valid"))
                            .into())
                    }
                },
            )
        };
        if sizes.contains(&Dim::Known(0)) {
            return Err(unsupported(cx, "an empty output is not supported"));
        }
        self.add(
            cx,
            Op::Resize(ResizeAttrs {
                mode,
                coord,
                scales,
                sizes,
                lengths,
            }),
            &[x],
        )
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

/// `out / in` as an f32 when it is one constant for every binding (`out = k * in` or
/// `in = k * out`); the f32 ONNX Runtime computes from the two extents is then the same.
fn constant_ratio(out: Dim, inl: Dim) -> Option<f32> {
    if let Some(k) = out.checked_div(inl).and_then(Dim::known) {
        return Some(k as f32);
    }
    let k = inl.checked_div(out).and_then(Dim::known)?;
    Some(1.0 / k as f32)
}

/// `floor(in * s)` of a symbolic extent, exactly: the f32 `s` is `num / 2^k`. (ONNX
/// Runtime rounds the product to f32 before the floor; the two differ only when the exact
/// product lies within half an f32 step below an integer.)
fn scaled_extent(inl: Dim, s: f32) -> Option<Dim> {
    let mut v = f64::from(s);
    let mut k = 0u32;
    while v.fract() != 0.0 {
        v *= 2.0;
        k += 1;
        if k > 32 {
            return None;
        }
    }
    if v > (1u64 << 40) as f64 {
        return None;
    }
    inl.checked_mul(Dim::Known(v as u64))?.div_floor(1u64 << k)
}

#[cfg(test)]
mod tests {
    use super::{constant_ratio, scaled_extent, window};
    use secc_ir::{Dim, SymId};

    #[test]
    fn symbolic_resize_extents_are_exact() {
        let h = Dim::sym(SymId(0));
        let at = |d: Dim, v: u64| d.eval(&[v]).unwrap();
        let twice = scaled_extent(h, 2.0).unwrap();
        let half = scaled_extent(h, 0.5).unwrap();
        let odd = scaled_extent(h, 1.25).unwrap();
        for v in [1u64, 2, 7, 64, 333] {
            assert_eq!(at(twice, v), 2 * v);
            assert_eq!(at(half, v), v / 2);
            assert_eq!(at(odd, v), (v * 5) / 4);
        }
        // f32 0.1 is 13421773 / 2^27, a hair above 0.1: floor(10 * s) = 1, as in f32
        assert_eq!(at(scaled_extent(h, 0.1).unwrap(), 10), 1);
        // a scale needing more than 32 bits after the point is refused
        assert!(scaled_extent(h, 1e-12).is_none());
        assert_eq!(constant_ratio(twice, h), Some(2.0));
        assert_eq!(constant_ratio(h, twice), Some(0.5));
        assert_eq!(constant_ratio(odd, h), None);
    }

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
