//! Shape computations on integer tensors, evaluated at import time.
//!
//! Exporters compute reshape targets at run time from `Shape(x)`: PyTorch writes
//! `x.view(b, c, 1, 1)` as `Shape -> Gather -> Unsqueeze -> Concat -> Reshape`. These
//! integer tensors never enter the IR; their values are [`IV`]s, either known or a multiple of
//! a symbolic dimension, so a batch that stays symbolic flows through to the `Reshape`.
use super::{Failure, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::dim_expr::DimExpr;
use secc_ir::{ConstData, Dim};

/// One integer value: known, or an expression over the symbolic dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IV {
    /// a known integer
    K(i64),
    /// a symbolic value (never a constant: those are `K`)
    S(Dim),
}

impl IV {
    pub(crate) fn from_dim(d: Dim) -> IV {
        match d {
            Dim::Known(v) => IV::K(v as i64),
            d => IV::S(d),
        }
    }

    fn from_expr(e: DimExpr) -> Option<IV> {
        match e.as_known() {
            Some(v) => Some(IV::K(v)),
            None => Dim::from_expr(e).map(IV::S),
        }
    }

    fn expr(self) -> DimExpr {
        match self {
            IV::K(v) => DimExpr::known(v),
            IV::S(d) => d.expr(),
        }
    }

    fn binary(op: &str, a: IV, b: IV) -> Option<IV> {
        use IV::*;
        if let (K(x), K(y)) = (a, b) {
            return Some(K(match op {
                "Add" => x.checked_add(y)?,
                "Sub" => x.checked_sub(y)?,
                "Mul" => x.checked_mul(y)?,
                "Div" => x.checked_div_euclid(y)?,
                "Equal" => (x == y) as i64,
                "And" => (x != 0 && y != 0) as i64,
                "Or" => (x != 0 || y != 0) as i64,
                "Max" => x.max(y),
                "Min" => x.min(y),
                "Less" => (x < y) as i64,
                "Greater" => (x > y) as i64,
                _ => return None,
            }));
        }
        let (ea, eb) = (a.expr(), b.expr());
        match (op, a, b) {
            ("Add", ..) => IV::from_expr(ea.add(&eb)?),
            ("Sub", ..) => IV::from_expr(ea.sub(&eb)?),
            ("Mul", ..) => IV::from_expr(ea.mul(&eb)?),
            // symbolic extents are >= 0, so integer division truncates like floor
            ("Div", S(_), K(y)) if y > 0 => IV::from_expr(ea.div_floor(y as u64)?),
            ("Div", S(_), S(_)) => IV::from_expr(ea.div_exact(&eb)?),
            // a symbolic extent is >= 1
            ("Max", S(d), K(x)) | ("Max", K(x), S(d)) if x <= 1 => Some(S(d)),
            ("Min", S(_), K(x)) | ("Min", K(x), S(_)) if x <= 1 => Some(K(x)),
            ("Max", ..) if nonneg(a) && nonneg(b) => IV::from_expr(ea.maximum(&eb)?),
            ("Min", ..) if nonneg(a) && nonneg(b) => IV::from_expr(ea.minimum(&eb)?),
            ("Equal", S(x), S(y)) if x == y => Some(K(1)),
            // a symbolic extent is >= 1: it never equals, nor is below, a value <= 0
            ("Equal", S(_), K(x)) | ("Equal", K(x), S(_)) if x <= 0 => Some(K(0)),
            ("Less", S(_), K(x)) | ("Greater", K(x), S(_)) if x <= 0 => Some(K(0)),
            ("Greater", S(_), K(x)) | ("Less", K(x), S(_)) if x <= 0 => Some(K(1)),
            _ => None,
        }
    }
}

/// Whether the value is a known non-negative number or an extent (symbolic values here
/// are extents and sums, products and quotients of them with non-negative coefficients).
fn nonneg(v: IV) -> bool {
    match v {
        IV::K(x) => x >= 0,
        IV::S(d) => d.expr().is_nonneg(),
    }
}

/// Largest tensor ConstantOfShape may build at import (1 GiB of float32).
const MAX_CONST_ELEMS: usize = 1 << 28;
/// Largest integer (shape-math) tensor computed at import: shapes, axes and indices are
/// small, and each value takes 16 bytes here.
const MAX_INT_ELEMS: usize = 1 << 20;

/// Flat offset in a tensor of `shape` broadcast to the output index `idx`.
fn offset(shape: &[usize], idx: &[usize]) -> usize {
    let skip = idx.len() - shape.len();
    let mut off = 0;
    for (d, &e) in shape.iter().enumerate() {
        off = off * e + if e == 1 { 0 } else { idx[skip + d] };
    }
    off
}

/// Indices an ONNX Slice selects on an axis of extent `n`: negative starts/ends count from
/// the end, then both are clamped (to `[0, n]` going forwards, `[-1, n-1]` backwards).
fn slice_axis(n: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let n = n as i64;
    let norm =
        |x: i64, lo: i64, hi: i64| (if x < 0 { x.saturating_add(n) } else { x }).clamp(lo, hi);
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (norm(start, 0, n), norm(end, 0, n));
        while i < e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    } else {
        let (mut i, e) = (norm(start, -1, n - 1), norm(end, -1, n - 1));
        while i > e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    }
    out
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1];
    }
    st
}

/// The sub-tensor of `vals` (row-major, `shape`) picking `pick[d]` on each axis `d`.
fn gather_axes(shape: &[usize], vals: &[IV], pick: &[Vec<usize>]) -> (Vec<usize>, Vec<IV>) {
    let out_shape: Vec<usize> = pick.iter().map(Vec::len).collect();
    let st = strides(shape);
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let off: usize = (0..shape.len()).map(|d| pick[d][idx[d]] * st[d]).sum();
        out.push(vals[off]);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    (out_shape, out)
}

/// `vals` (row-major, `shape`) with its axes permuted: output axis `i` is input axis `perm[i]`.
fn transpose_ints(shape: &[usize], vals: &[IV], perm: &[usize]) -> (Vec<usize>, Vec<IV>) {
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let st = strides(shape);
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let off: usize = (0..perm.len()).map(|i| idx[i] * st[perm[i]]).sum();
        out.push(vals[off]);
        for d in (0..out_shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    (out_shape, out)
}

/// Ops evaluated here when their first operand is an integer tensor (`Shape` always).
const INT_OPS: &[&str] = &[
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Transpose",
    "Cast",
    "Mul",
    "Div",
    "Add",
    "Sub",
    "Identity",
    "ConstantOfShape",
    "Reshape",
    "Equal",
    "Less",
    "Greater",
    "Where",
    "Neg",
    "Not",
    "And",
    "Or",
    "Size",
    "Max",
    "Min",
];

impl Importer<'_> {
    /// The integer tensor named by input `i` (shape and values).
    fn int_input(&self, cx: &NodeCx, i: usize) -> R<(Vec<usize>, Vec<IV>)> {
        let name = cx
            .input(i)
            .ok_or_else(|| cx.err(format!("input {i} is missing")))?;
        self.ints.get(name).cloned().ok_or_else(|| {
            Failure::Error(cx.err(format!(
                "input {i} ({name:?}) must be an integer tensor computed from constants and shapes"
            )))
        })
    }

    /// Integer values of input `i` that may contain symbolic dimensions (Reshape targets).
    pub(super) fn shape_ints(&self, cx: &NodeCx, i: usize, what: &str) -> R<Vec<IV>> {
        let name = cx
            .input(i)
            .ok_or_else(|| cx.err(format!("input {i} ({what}) is missing")))?;
        match self.ints.get(name) {
            Some((_, d)) => Ok(d.clone()),
            None => Err(cx.err(format!("input {i} ({what}) must be an integer tensor computed from constants and shapes; {name:?} is data computed at run time, which is not supported")).into()),
        }
    }

    /// True if the node computes on integer (shape) tensors.
    pub(super) fn is_int_node(&self, cx: &NodeCx) -> bool {
        if !INT_OPS.contains(&cx.op()) {
            return false;
        }
        match cx.op() {
            "Shape" | "ConstantOfShape" | "Size" => true,
            "Where" => cx.input(1).is_some_and(|n| self.ints.contains_key(n)),
            _ => cx.input(0).is_some_and(|n| self.ints.contains_key(n)),
        }
    }

    fn def_int(&mut self, cx: &NodeCx, shape: Vec<usize>, vals: Vec<IV>) -> R<()> {
        let out = Self::out_name(cx)?;
        debug_assert_eq!(shape.iter().product::<usize>(), vals.len());
        self.ints.insert(out, (shape, vals));
        Ok(())
    }

    fn known_list(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<Vec<i64>>> {
        if cx.input(i).is_none() {
            return Ok(None);
        }
        Ok(Some(self.const_ints(cx, i, what)?))
    }

    /// Slice of an integer tensor of any rank (timm's "same" padding reverses a `[-1, 2]`
    /// reshape of the pads along axis 0).
    fn int_slice(&mut self, cx: &NodeCx) -> R<()> {
        let (s, v) = self.int_input(cx, 0)?;
        let (starts, ends, axes, steps) = if self.opset < 10 {
            let starts = cx.ints("starts")?.unwrap_or_default();
            (
                starts,
                cx.ints("ends")?.unwrap_or_default(),
                cx.ints("axes")?,
                None,
            )
        } else {
            (
                self.const_ints(cx, 1, "starts")?,
                self.const_ints(cx, 2, "ends")?,
                self.known_list(cx, 3, "axes")?,
                self.known_list(cx, 4, "steps")?,
            )
        };
        let k = starts.len();
        let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; k]);
        if ends.len() != k || axes.len() != k || steps.len() != k {
            return Err(cx
                .err(format!(
                    "Slice has {k} starts, {} ends, {} axes and {} steps; they must match",
                    ends.len(),
                    axes.len(),
                    steps.len()
                ))
                .into());
        }
        let axes = self.norm_axes(cx, &axes, s.len())?;
        let mut pick: Vec<Vec<usize>> = s.iter().map(|&n| (0..n).collect()).collect();
        for (i, &a) in axes.iter().enumerate() {
            if steps[i] == 0 {
                return Err(cx.err("Slice step 0 is invalid").into());
            }
            pick[a] = slice_axis(s[a], starts[i], ends[i], steps[i]);
        }
        let (shape, out) = gather_axes(&s, &v, &pick);
        self.def_int(cx, shape, out)
    }

    /// Evaluates one integer-tensor node.
    pub(super) fn int_node(&mut self, cx: &NodeCx) -> R<()> {
        match cx.op() {
            "Shape" => self.int_shape(cx),
            "Identity" | "Cast" => self.int_identity_or_cast(cx),
            "Gather" => self.int_gather(cx),
            "Unsqueeze" => self.int_unsqueeze(cx),
            "Squeeze" => self.int_squeeze(cx),
            "Concat" => self.int_concat(cx),
            "Slice" => self.int_slice(cx),
            "Transpose" => self.int_transpose(cx),
            "Neg" => self.int_neg(cx),
            "Where" => self.int_where(cx),
            "Add" | "Sub" | "Mul" | "Div" | "Equal" | "Less" | "Greater" | "And" | "Or" | "Max"
            | "Min" => self.int_binary(cx),
            "Not" => self.int_not(cx),
            "Size" => self.int_size(cx),
            "ConstantOfShape" => self.int_constant_of_shape(cx),
            "Reshape" => self.int_reshape(cx),
            other => Err(Failure::Unsupported(
                cx.err(format!("{other} on integer tensors is not supported")),
            )),
        }
    }

    /// `Shape` (with `start`/`end`): the dims of a tensor or of an integer tensor.
    fn int_shape(&mut self, cx: &NodeCx) -> R<()> {
        let dims: Vec<IV> = match cx.input(0) {
            Some(n) if self.ints.contains_key(n) => {
                self.ints[n].0.iter().map(|&d| IV::K(d as i64)).collect()
            }
            _ => {
                let x = self.operand(cx, 0)?;
                self.shape_of(x).iter().map(|d| IV::from_dim(*d)).collect()
            }
        };
        let r = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(cx.int_or("start", 0)?);
        let end = clamp(cx.int_or("end", r)?);
        let v: Vec<IV> = if start < end {
            dims[start..end].to_vec()
        } else {
            vec![]
        };
        self.def_int(cx, vec![v.len()], v)
    }

    /// `Identity`, and `Cast` to another integer type or (all values known) to float32.
    fn int_identity_or_cast(&mut self, cx: &NodeCx) -> R<()> {
        if cx.op() == "Cast" {
            let to = cx
                .int("to")?
                .ok_or_else(|| cx.attr_err("to", "is required"))?;
            if to == 1 {
                // integer -> float32: a float constant, when every value is known
                let (s, v) = self.int_input(cx, 0)?;
                let f: Option<Vec<f32>> = v
                    .iter()
                    .map(|x| {
                        if let IV::K(k) = x {
                            Some(*k as f32)
                        } else {
                            None
                        }
                    })
                    .collect();
                let f = f.ok_or_else(|| {
                    cx.err("casting a symbolic dimension to float32 is not supported")
                })?;
                let c = self
                    .g
                    .add_const(ConstData::new(s, f), Some(cx.name.clone()));
                return self.def(cx, c);
            }
            if ![6, 7, 2, 3, 4, 5, 12, 13, 9].contains(&to) {
                return Err(cx
                    .attr_err(
                        "to",
                        format!("cast of an integer tensor to type {to} is not supported"),
                    )
                    .into());
            }
        }
        let (s, v) = self.int_input(cx, 0)?;
        self.def_int(cx, s, v)
    }

    /// `Gather` from 1-D integer data at known indices.
    fn int_gather(&mut self, cx: &NodeCx) -> R<()> {
        let (ds, dv) = self.int_input(cx, 0)?;
        let (is, iv) = self.int_input(cx, 1)?;
        if ds.len() != 1 {
            return Err(cx
                .err("Gather of integer tensors supports 1-D data only")
                .into());
        }
        let axis = cx.axis("axis", cx.int_or("axis", 0)?, 1)?;
        debug_assert_eq!(axis, 0);
        let n = ds[0] as i64;
        let mut out = Vec::with_capacity(iv.len());
        for i in iv {
            let IV::K(i) = i else {
                return Err(cx
                    .err("Gather index depends on a symbolic dimension")
                    .into());
            };
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                return Err(cx
                    .err(format!("Gather index {i} out of range for {n} elements"))
                    .into());
            }
            out.push(dv[j as usize]);
        }
        self.def_int(cx, is, out)
    }

    /// `Unsqueeze` (axes an attribute before opset 13, an input from 13).
    fn int_unsqueeze(&mut self, cx: &NodeCx) -> R<()> {
        let (s, v) = self.int_input(cx, 0)?;
        let axes = if self.opset < 13 {
            cx.ints("axes")?.unwrap_or_default()
        } else {
            self.const_ints(cx, 1, "axes")?
        };
        let rank = s.len() + axes.len();
        let axes = self.norm_axes(cx, &axes, rank)?;
        let mut it = s.iter();
        let shape: Vec<usize> = (0..rank)
            .map(|i| {
                if axes.contains(&i) {
                    1
                } else {
                    *it.next().unwrap_or(&1)
                }
            })
            .collect();
        self.def_int(cx, shape, v)
    }

    /// `Squeeze` (axes an attribute before opset 13, an input from 13; none: every 1).
    fn int_squeeze(&mut self, cx: &NodeCx) -> R<()> {
        let (s, v) = self.int_input(cx, 0)?;
        let axes = if self.opset < 13 {
            cx.ints("axes")?
        } else {
            self.known_list(cx, 1, "axes")?
        };
        let axes = match axes {
            Some(a) => self.norm_axes(cx, &a, s.len())?,
            None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
        };
        let shape: Vec<usize> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        self.def_int(cx, shape, v)
    }

    /// `Concat` of 1-D integer tensors.
    fn int_concat(&mut self, cx: &NodeCx) -> R<()> {
        let mut vals = Vec::new();
        for i in 0..cx.node.input.len() {
            let (s, v) = self.int_input(cx, i)?;
            if s.len() != 1 {
                return Err(cx
                    .err("Concat of integer tensors supports 1-D inputs only")
                    .into());
            }
            vals.extend(v);
        }
        self.def_int(cx, vec![vals.len()], vals)
    }

    /// `Transpose` of an integer tensor.
    fn int_transpose(&mut self, cx: &NodeCx) -> R<()> {
        let (s, v) = self.int_input(cx, 0)?;
        let perm = match cx.ints("perm")? {
            Some(p) => p,
            None => (0..s.len() as i64).rev().collect(),
        };
        let mut seen = vec![false; s.len()];
        let mut p = Vec::with_capacity(perm.len());
        for &a in &perm {
            let a = cx.axis("perm", a, s.len())?;
            if std::mem::replace(&mut seen[a], true) {
                return Err(cx.attr_err("perm", format!("axis {a} repeated")).into());
            }
            p.push(a);
        }
        if p.len() != s.len() {
            return Err(cx
                .attr_err("perm", format!("has {} axes for rank {}", p.len(), s.len()))
                .into());
        }
        let (shape, out) = transpose_ints(&s, &v, &p);
        self.def_int(cx, shape, out)
    }

    /// `Neg`, of known values and of symbolic dims (as expressions).
    fn int_neg(&mut self, cx: &NodeCx) -> R<()> {
        let (sh, v) = self.int_input(cx, 0)?;
        let out = v
            .iter()
            .map(|x| match x {
                IV::K(k) => k
                    .checked_neg()
                    .map(IV::K)
                    .ok_or_else(|| cx.err(format!("-({k}) overflows int64"))),
                IV::S(d) => d
                    .expr()
                    .scale(-1)
                    .and_then(IV::from_expr)
                    .ok_or_else(|| cx.err("cannot negate a symbolic dimension")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.def_int(cx, sh, out)
    }

    /// `Where` with equal-length or scalar operands (a symbolic condition counts as true).
    fn int_where(&mut self, cx: &NodeCx) -> R<()> {
        let (sc, vc) = self.int_input(cx, 0)?;
        let (sa, va) = self.int_input(cx, 1)?;
        let (sb, vb) = self.int_input(cx, 2)?;
        let n = vc.len().max(va.len()).max(vb.len());
        if [vc.len(), va.len(), vb.len()]
            .iter()
            .any(|&l| l != n && l != 1)
        {
            return Err(cx
                .err("integer Where supports equal lengths or scalar operands")
                .into());
        }
        let at = |v: &[IV], i: usize| v[i.min(v.len() - 1)];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let c = match at(&vc, i) {
                IV::K(c) => c != 0,
                IV::S(..) => true,
            };
            out.push(if c { at(&va, i) } else { at(&vb, i) });
        }
        let shape = [sc, sa, sb]
            .into_iter()
            .find(|s| s.iter().product::<usize>() == n)
            .unwrap_or(vec![n]);
        self.def_int(cx, shape, out)
    }

    /// Broadcast arithmetic, comparisons and logic of two integer tensors ([`IV::binary`]).
    fn int_binary(&mut self, cx: &NodeCx) -> R<()> {
        let (sa, va) = self.int_input(cx, 0)?;
        let (sb, vb) = self.int_input(cx, 1)?;
        let shape = secc_ir::interp::bshape(&sa, &sb).map_err(|e| cx.err(e.to_string()))?;
        let n = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        if n.is_none_or(|n| n > MAX_INT_ELEMS) {
            return Err(cx
                .err(format!(
                    "integer {} of shapes {sa:?} and {sb:?} is too large to compute at compile time (limit {MAX_INT_ELEMS} elements)",
                    cx.op()
                ))
                .into());
        }
        let mut out = Vec::with_capacity(shape.iter().product());
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..shape.iter().product::<usize>() {
            let (a, b) = (va[offset(&sa, &idx)], vb[offset(&sb, &idx)]);
            out.push(IV::binary(cx.op(), a, b).ok_or_else(|| {
                cx.err(format!(
                    "cannot compute {a:?} {} {b:?} at compile time",
                    cx.op()
                ))
            })?);
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        self.def_int(cx, shape, out)
    }

    /// `Not` of known values.
    fn int_not(&mut self, cx: &NodeCx) -> R<()> {
        let (sh, v) = self.int_input(cx, 0)?;
        let out = v
            .iter()
            .map(|x| match x {
                IV::K(k) => Ok(IV::K((*k == 0) as i64)),
                IV::S(..) => Err(cx.err("Not of a symbolic value")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.def_int(cx, sh, out)
    }

    /// `Size`: the element count of a tensor or of an integer tensor.
    fn int_size(&mut self, cx: &NodeCx) -> R<()> {
        let n = match cx.input(0) {
            Some(n) if self.ints.contains_key(n) => {
                IV::K(self.ints[n].0.iter().product::<usize>() as i64)
            }
            _ => {
                let x = self.operand(cx, 0)?;
                let n =
                    self.g.ty(x).numel().ok_or_else(|| {
                        cx.err("element count is a product of symbolic dimensions")
                    })?;
                IV::from_dim(n)
            }
        };
        self.def_int(cx, vec![], vec![n])
    }

    /// `ConstantOfShape` of a known shape: an integer tensor or a float32 constant.
    fn int_constant_of_shape(&mut self, cx: &NodeCx) -> R<()> {
        let (_, v) = self.int_input(cx, 0)?;
        let shape: Option<Vec<usize>> = v
            .iter()
            .map(|x| {
                if let IV::K(k) = x {
                    usize::try_from(*k).ok()
                } else {
                    None
                }
            })
            .collect();
        let shape = shape
            .ok_or_else(|| cx.err("ConstantOfShape with a symbolic shape is not supported"))?;
        let n = shape
            .iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .filter(|&n| n <= MAX_CONST_ELEMS)
            .ok_or_else(|| {
                cx.err(format!(
                    "output shape {shape:?} is too large to build at compile time (limit {MAX_CONST_ELEMS} elements)"
                ))
            })?;
        match cx
            .tensor("value")?
            .map(|t| crate::tensor::decode(t, self.base))
            .transpose()
            .map_err(|m| cx.attr_err("value", m))?
        {
            Some(crate::tensor::ConstVal::I64(_, d)) => {
                if n > MAX_INT_ELEMS {
                    return Err(cx
                        .err(format!(
                            "an integer tensor of shape {shape:?} is too large to build at compile time (limit {MAX_INT_ELEMS} elements)"
                        ))
                        .into());
                }
                let x = d.first().copied().unwrap_or(0);
                self.def_int(cx, shape, vec![IV::K(x); n])
            }
            other => {
                let x = match other {
                    Some(crate::tensor::ConstVal::F32(_, d)) => d.first().copied().unwrap_or(0.0),
                    _ => 0.0,
                };
                let c = self
                    .g
                    .add_const(ConstData::new(shape, vec![x; n]), Some(cx.name.clone()));
                self.def(cx, c)
            }
        }
    }

    /// `Reshape` of an integer tensor to a known target (0 and -1 as ONNX says).
    fn int_reshape(&mut self, cx: &NodeCx) -> R<()> {
        let (s, v) = self.int_input(cx, 0)?;
        let t = self.const_ints(cx, 1, "shape")?;
        let total: usize = s.iter().product();
        let bad = || {
            cx.err(format!(
                "integer reshape of {s:?} to {t:?} changes the element count"
            ))
        };
        if t.iter().any(|&d| d < -1) || t.iter().filter(|&&d| d == -1).count() > 1 {
            return Err(bad().into());
        }
        // every extent is checked against the (small, real) element count first
        let mut known = 1usize;
        let mut shape: Vec<usize> = Vec::with_capacity(t.len());
        for (i, &d) in t.iter().enumerate() {
            let e = match d {
                -1 => 1,
                0 => s.get(i).copied().unwrap_or(1),
                d => usize::try_from(d).map_err(|_| bad())?,
            };
            known = known.checked_mul(e).ok_or_else(bad)?;
            shape.push(e);
        }
        if let Some(p) = t.iter().position(|&d| d == -1) {
            shape[p] = total / known.max(1);
        }
        if shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b)) != Some(total) {
            return Err(bad().into());
        }
        self.def_int(cx, shape, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: &[i64]) -> Vec<IV> {
        v.iter().map(|&x| IV::K(x)).collect()
    }

    #[test]
    fn slice_axis_follows_the_spec() {
        assert_eq!(slice_axis(10, 2, 8, 3), vec![2, 5]);
        assert_eq!(slice_axis(4, -1, i64::MIN, -1), vec![3, 2, 1, 0]);
        assert_eq!(slice_axis(5, 0, i64::MAX, 2), vec![0, 2, 4]);
        assert!(slice_axis(5, 20, 30, 1).is_empty());
        assert_eq!(slice_axis(5, -100, 2, 1), vec![0, 1]);
    }

    #[test]
    fn timm_same_pad_reversal_of_a_2d_tensor() {
        // pads [l, r, t, b] reshaped to [-1, 2], rows reversed, transposed, flattened
        let (s, v) = gather_axes(&[2, 2], &k(&[1, 2, 3, 4]), &[vec![1, 0], vec![0, 1]]);
        assert_eq!((s.clone(), v.clone()), (vec![2, 2], k(&[3, 4, 1, 2])));
        assert_eq!(
            transpose_ints(&s, &v, &[1, 0]),
            (vec![2, 2], k(&[3, 1, 4, 2]))
        );
    }

    #[test]
    fn transpose_of_a_3d_tensor() {
        let v = k(&(0..24).collect::<Vec<_>>());
        let (s, t) = transpose_ints(&[2, 3, 4], &v, &[2, 0, 1]);
        assert_eq!(s, vec![4, 2, 3]);
        // t[i][j][l] = v[j][l][i]
        for (i, j, l) in [(1, 1, 2), (3, 0, 1), (0, 1, 0)] {
            assert_eq!(t[i * 6 + j * 3 + l], IV::K((j * 12 + l * 4 + i) as i64));
        }
    }
}
