//! Data movement and layout: reshape, transpose, concat, slice, pad, resize, reorder, and
//! the compile-time int64 tensors. These ops copy or re-address elements; the rules check
//! that every index they will read exists.
use super::Cx;
use crate::error::IrError;
use crate::op::{IntElem, PadMode};
use crate::resize::ResizeAttrs;
use crate::types::{DType, Dim, Layout, Shape, TensorType, MAX_ELEMENTS};

/// A strided window: on every axis that is not the identity, the first and last index read
/// must lie inside the input.
pub(super) fn slice(
    cx: &Cx,
    starts: &[u64],
    steps: &[i64],
    shape: &Shape,
) -> Result<TensorType, IrError> {
    let s = &cx.ins[0].shape;
    if starts.len() != s.len() || steps.len() != s.len() || shape.len() != s.len() {
        return Err(cx.ty(format!("slice attributes do not match rank {}", s.len())));
    }
    for d in 0..s.len() {
        if steps[d] == 0 {
            return Err(cx.ty(format!("step 0 on axis {d}")));
        }
        if s[d] == shape[d] && starts[d] == 0 && steps[d] == 1 {
            continue;
        }
        let (Some(n), Some(len)) = (s[d].known(), shape[d].known()) else {
            if steps[d] < 0 {
                return Err(cx.ty(format!("axis {d}: a reversed slice of a symbolic extent")));
            }
            // start + (len - 1) * step < n, with len >= 1
            let last = shape[d]
                .checked_mul(Dim::Known(steps[d] as u64))
                .and_then(|v| v.checked_add(Dim::Known(starts[d] + 1)))
                .and_then(|v| v.checked_sub(Dim::Known(steps[d] as u64)));
            let last =
                last.ok_or_else(|| cx.ty(format!("axis {d}: slice end not representable")))?;
            cx.require_ge(
                shape[d],
                Dim::Known(1),
                &format!("slice length on axis {d}"),
            )?;
            cx.require_ge(s[d], last, &format!("slice inside the extent on axis {d}"))?;
            continue;
        };
        if len == 0 {
            continue;
        }
        let last = starts[d] as i128 + (len as i128 - 1) * steps[d] as i128;
        if starts[d] >= n || last < 0 || last >= n as i128 {
            return Err(cx.ty(format!(
                "axis {d}: start {} step {} length {len} leaves extent {n}",
                starts[d], steps[d]
            )));
        }
    }
    Ok(TensorType::f32(shape.iter().copied()))
}

/// Resize of the spatial axes to the resolved `sizes` (expressions of the input's extents
/// when those are symbolic); scales are checked because the coordinate transform divides
/// by them.
pub(super) fn resize(cx: &Cx, r: &ResizeAttrs) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let x = &ins[0].shape;
    if x.len() != 4 {
        return Err(cx.ty(format!("needs a 4-D NCHW input, got {}", ins[0])));
    }
    let bad_len = r.lengths.iter().flatten().any(|l| l.is_nan() || *l < 0.0);
    if r.sizes.contains(&Dim::Known(0))
        || bad_len
        || r.scales
            .iter()
            .any(|s| s.is_nan() || *s <= 0.0 || s.is_infinite())
    {
        return Err(cx.ty(format!(
            "output sizes {:?} and scales {:?} must be positive",
            r.sizes, r.scales
        )));
    }
    for (d, what) in r.sizes.iter().zip(["output height", "output width"]) {
        cx.require_ge(*d, Dim::Known(1), what)?;
    }
    Ok(TensorType::f32([x[0], x[1], r.sizes[0], r.sizes[1]]))
}

/// A compile-time int64 tensor: one value per element, no empty extent.
pub(super) fn int_tensor(
    cx: &Cx,
    shape: &[u64],
    values: &[IntElem],
) -> Result<TensorType, IrError> {
    if shape.iter().product::<u64>() != values.len() as u64 || shape.contains(&0) {
        return Err(cx.ty(format!("{} values for shape {shape:?}", values.len())));
    }
    Ok(TensorType::i64(shape.iter().map(|&d| Dim::Known(d))))
}

/// Reshape keeps the element count and the dtype (it may carry int64 results) and yields
/// the plain layout.
pub(super) fn reshape(cx: &Cx, shape: &Shape) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let a = ins[0].numel();
    let b = TensorType::f32(shape.iter().copied()).numel();
    let differ = match (a, b) {
        (Some(a), Some(b)) => a.known_ne(b),
        _ => true,
    };
    if differ {
        return Err(cx.ty(format!(
            "element count differs: input {} vs target {}",
            ins[0],
            TensorType::f32(shape.iter().copied())
        )));
    }
    if let (Some(a), Some(b)) = (a, b) {
        cx.require_eq(a, b, "element count")?;
    }
    Ok(TensorType {
        dtype: ins[0].dtype,
        shape: shape.clone(),
        layout: Layout::Plain,
    })
}

/// Concatenation: operands agree outside `axis` (a constraint where they are symbolic);
/// extents along it add up.
pub(super) fn concat(cx: &Cx, axis: usize) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let r = ins[0].rank();
    if axis >= r {
        return Err(cx.ty(format!("axis {axis} out of range for rank {r}")));
    }
    let mut o = ins[0].shape.clone();
    for t in &ins[1..] {
        if t.rank() != r || (0..r).any(|i| i != axis && t.shape[i].known_ne(o[i])) {
            return Err(cx.ty(format!(
                "operand {} does not match {} outside axis {axis}",
                t, ins[0]
            )));
        }
        for i in (0..r).filter(|&i| i != axis) {
            cx.require_eq(
                o[i],
                t.shape[i],
                &format!("concatenated operands' axis {i}"),
            )?;
        }
        o[axis] = o[axis].checked_add(t.shape[axis]).ok_or_else(|| {
            cx.ty(format!(
                "concatenated extent {} + {} is not representable",
                o[axis].display(&[]),
                t.shape[axis].display(&[])
            ))
        })?;
    }
    Ok(TensorType::f32(o))
}

/// Padding: one `(before, after)` pair per axis; a padded axis must be known, and reflect
/// padding needs an extent above both pads (it never repeats the border).
pub(super) fn pad(cx: &Cx, pads: &[(u64, u64)], mode: &PadMode) -> Result<TensorType, IrError> {
    let ins = cx.ins;
    let s = &ins[0].shape;
    if let Some(v) = ins.get(1) {
        if v.numel() != Some(Dim::Known(1)) {
            return Err(cx.ty(format!("the fill value {v} must have one element")));
        }
    }
    if pads.len() != s.len() {
        return Err(cx.ty(format!("{} pad pairs for rank {}", pads.len(), s.len())));
    }
    let mut o = Shape::new();
    for (d, &(b, e)) in s.iter().zip(pads) {
        if b == 0 && e == 0 {
            o.push(*d);
            continue;
        }
        let Some(v) = d.known() else {
            if *mode == PadMode::Reflect {
                let m = Dim::Known(b.max(e) + 1);
                cx.require_ge(*d, m, "reflect padding needs an extent above both pads")?;
            }
            let p = d.checked_add(Dim::Known(b + e));
            o.push(p.ok_or_else(|| cx.ty("padded extent is not representable".into()))?);
            continue;
        };
        if *mode == PadMode::Reflect && (b >= v || e >= v) {
            return Err(cx.ty(format!(
                "reflect padding ({b},{e}) needs an extent above both, got {v}"
            )));
        }
        let padded = v
            .checked_add(b)
            .and_then(|v| v.checked_add(e))
            .filter(|&v| v <= MAX_ELEMENTS)
            .ok_or_else(|| {
                cx.ty(format!(
                    "padded extent {v} + {b} + {e} exceeds the size limit 2^32"
                ))
            })?;
        o.push(Dim::Known(padded));
    }
    Ok(TensorType::f32(o))
}

/// Transpose: `perm` must be a permutation of the operand's axes.
pub(super) fn transpose(cx: &Cx, perm: &[usize]) -> Result<TensorType, IrError> {
    let s = &cx.ins[0].shape;
    let mut seen = vec![false; s.len()];
    if perm.len() != s.len()
        || perm
            .iter()
            .any(|&p| p >= s.len() || std::mem::replace(&mut seen[p], true))
    {
        return Err(cx.ty(format!(
            "perm {perm:?} is not a permutation of rank {}",
            s.len()
        )));
    }
    Ok(TensorType::f32(perm.iter().map(|&p| s[p])))
}

/// Reorder to another layout: only 4-D f32 tensors have a blocked form.
pub(super) fn reorder(cx: &Cx, to: Layout) -> Result<TensorType, IrError> {
    let t = cx.ins[0];
    if to.block().is_some() && (t.rank() != 4 || t.dtype != DType::F32) {
        return Err(cx.ty(format!(
            "only a 4-D f32 tensor can be {}, got {t}",
            to.name()
        )));
    }
    Ok(t.clone().with_layout(to))
}
