//! The type rule of every op, one module per op family: [`conv`] (convolution and its
//! transpose), [`pool`] (windowed and global pooling, reductions, softmax), [`elementwise`]
//! (activations and broadcasting ops), [`data`] (data movement and layout) and [`matmul`]
//! (matrix products and the fused SE block).
//!
//! [`Op::infer`] checks arity and dtypes once, then [`shape`] hands the operands to the
//! family's function; each returns the output type or an [`IrError::Type`] naming the op.
use crate::constraint::{Constraint, Rel};
use crate::error::IrError;
use crate::op::{dilated, Op};
use crate::types::{broadcast_shapes, Dim, Shape, TensorType, MAX_ELEMENTS};
use std::cell::RefCell;

mod conv;
mod data;
mod elementwise;
mod matmul;
mod pool;

/// What every rule needs: the op's name (for its errors) and its operand types, whose
/// count is already checked against [`Op::arity`].
pub(crate) struct Cx<'a> {
    /// the op's mnemonic
    pub name: &'static str,
    /// operand types
    pub ins: &'a [&'a TensorType],
    /// what the rule requires of the symbols and could not decide (origin left empty)
    pub reqs: RefCell<Vec<Constraint>>,
}

impl Cx<'_> {
    /// A type error of this op.
    pub fn ty(&self, m: String) -> IrError {
        IrError::ty(self.name, m)
    }

    /// Requires `a >= b`: checked now when both are known (an error naming `what`),
    /// recorded as a constraint otherwise.
    pub fn require_ge(&self, a: Dim, b: Dim, what: &str) -> Result<(), IrError> {
        self.require(a, Rel::Ge, b, what)
    }

    /// Requires `a == b` (as [`Cx::require_ge`]); returns the extent both have, `a`.
    pub fn require_eq(&self, a: Dim, b: Dim, what: &str) -> Result<Dim, IrError> {
        self.require(a, Rel::Eq, b, what).map(|_| a)
    }

    fn require(&self, a: Dim, rel: Rel, b: Dim, what: &str) -> Result<(), IrError> {
        // true at every binding: nothing to check (an `H + 2 >= 3` of a padded 3x3 window)
        if a == b || (rel == Rel::Ge && a.always_ge(b)) {
            return Ok(());
        }
        if let (Some(x), Some(y)) = (a.known(), b.known()) {
            let ok = match rel {
                Rel::Ge => x >= y,
                Rel::Eq => x == y,
            };
            return if ok {
                Ok(())
            } else {
                Err(self.ty(format!(
                    "{what}: {x} {} {y} does not hold",
                    if rel == Rel::Ge { ">=" } else { "==" }
                )))
            };
        }
        self.reqs.borrow_mut().push(Constraint {
            lhs: a,
            rel,
            rhs: b,
            origin: String::new(),
        });
        Ok(())
    }

    /// Numpy-style broadcast of two shapes. Two extents that differ and are not 1 must be
    /// equal: an error when both are known, a constraint otherwise (the result is the known
    /// one, if either is).
    pub fn broadcast(&self, a: &[Dim], b: &[Dim]) -> Result<Shape, IrError> {
        let r = a.len().max(b.len());
        let one = Dim::Known(1);
        let at = |s: &[Dim], i: usize| {
            if i + s.len() >= r {
                s[i + s.len() - r]
            } else {
                one
            }
        };
        let mut out = Shape::new();
        for i in 0..r {
            let (da, db) = (at(a, i), at(b, i));
            let d = if da == db || db == one {
                da
            } else if da == one {
                db
            } else if da.known_ne(db) {
                return Err(self.ty(broadcast_shapes(a, b)
                    .err()
                    .unwrap_or_else(|| "do not broadcast".into())));
            } else {
                let (k, o) = if db.known().is_some() {
                    (db, da)
                } else {
                    (da, db)
                };
                self.require_eq(k, o, &format!("broadcast axis {i}"))?
            };
            out.push(d);
        }
        Ok(out)
    }

    /// The extent `d`, which must be known (`what` names it in the error).
    pub fn known(&self, d: Dim, what: &str) -> Result<u64, IrError> {
        d.known()
            .ok_or_else(|| IrError::ty(self.name, format!("{what} must be a known extent")))
    }
}

/// The output type of `op` on `cx.ins`; arity and dtypes are already checked.
pub(crate) fn shape(op: &Op, cx: &Cx) -> Result<TensorType, IrError> {
    match op {
        Op::Input { .. } | Op::Const(_) => {
            Err(cx.ty("inputs and constants are not inferred".into()))
        }
        Op::Identity | Op::Act(_) => Ok(cx.ins[0].clone()),
        Op::Binary(_) => elementwise::binary(cx),
        Op::Elementwise { prog } => elementwise::fused(cx, prog),
        Op::Where => elementwise::select(cx),
        Op::Expand { shape } => elementwise::expand(cx, shape),
        Op::Slice {
            starts,
            steps,
            shape,
        } => data::slice(cx, starts, steps, shape),
        Op::Resize(r) => data::resize(cx, r),
        Op::ConvTranspose2d(c) => conv::conv_transpose2d(cx, c),
        Op::IntTensor { shape, values } => data::int_tensor(cx, shape, values),
        Op::MaxPoolIndices { pool, .. } => pool::max_pool_indices(cx, pool),
        Op::Pool2d(p) => pool::pool2d(cx, p),
        Op::GlobalAvgPool | Op::GlobalMaxPool => pool::global_pool(cx),
        Op::ReduceMean { axes, keep_dims }
        | Op::Reduce {
            axes, keep_dims, ..
        } => pool::reduce(cx, axes, *keep_dims),
        Op::Reshape { shape } => data::reshape(cx, shape),
        Op::MatMul => matmul::matmul(cx),
        Op::Gemm(g) => matmul::gemm(cx, g),
        Op::Conv2d(c) => conv::conv2d(cx, c),
        Op::Concat { axis } => data::concat(cx, *axis),
        Op::Pad { pads, mode } => data::pad(cx, pads, mode),
        Op::Transpose { perm } => data::transpose(cx, perm),
        Op::Softmax { axis } => pool::softmax(cx, *axis),
        Op::SqueezeExcite(a) => matmul::squeeze_excite(cx, a),
        Op::SeGate(_) => matmul::se_gate(cx),
        Op::Reorder { to } => data::reorder(cx, *to),
    }
}

/// Checks one spatial axis of a windowed op (conv, pool) against [`MAX_ELEMENTS`]: the
/// padded input and the dilated window. Returns both.
fn window_axis(
    axis: usize,
    input: u64,
    k: u64,
    d: u64,
    pads: (u64, u64),
) -> Result<(u64, u64), String> {
    let padded = input
        .checked_add(pads.0)
        .and_then(|v| v.checked_add(pads.1))
        .filter(|&v| v <= MAX_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "padded extent {input} + {} + {} along axis {axis} exceeds the size limit 2^32",
                pads.0, pads.1
            )
        })?;
    if k == 0 {
        return Err(format!("kernel extent 0 along axis {axis}"));
    }
    let eff = dilated(k, d)
        .filter(|&v| v <= MAX_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "window of {k} taps at dilation {d} along axis {axis} exceeds the size limit 2^32"
            )
        })?;
    Ok((padded, eff))
}

/// Output extent of a window along a symbolic axis of extent `e`: `floor((e + pads - eff) /
/// stride) + 1`, or with `ceil` the ceiling, less a last window that would start in the end
/// padding: `min(ceil(..) + 1, ceil((e + pad_begin) / stride))` (exact while the end pad is
/// below the window, as every exporter writes it). Requires the padded extent to hold the
/// window.
fn window_out_symbolic(
    cx: &Cx,
    axis: usize,
    e: Dim,
    eff: u64,
    pads: (u64, u64),
    stride: u64,
    ceil: bool,
) -> Result<Dim, IrError> {
    let overflow = || cx.ty(format!("extent along axis {axis} is not representable"));
    let padded = e
        .checked_add(Dim::Known(pads.0 + pads.1))
        .ok_or_else(overflow)?;
    cx.require_ge(
        padded,
        Dim::Known(eff),
        &format!("window of {eff} inside the padded extent along axis {axis}"),
    )?;
    let num = padded.checked_sub(Dim::Known(eff)).ok_or_else(overflow)?;
    let q = if ceil {
        num.div_ceil(stride)
    } else {
        num.div_floor(stride)
    };
    let out = q
        .and_then(|q| q.checked_add(Dim::Known(1)))
        .ok_or_else(overflow)?;
    if !ceil {
        return Ok(out);
    }
    if pads.1 >= eff {
        return Err(cx.ty(format!(
            "ceil_mode with an end pad {} not below the window {eff} along symbolic axis {axis}",
            pads.1
        )));
    }
    let starts = e
        .checked_add(Dim::Known(pads.0))
        .and_then(|v| v.div_ceil(stride))
        .ok_or_else(overflow)?;
    out.min(starts).ok_or_else(overflow)
}
