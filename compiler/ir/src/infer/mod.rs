//! The type rule of every op, one module per op family: [`conv`] (convolution and its
//! transpose), [`pool`] (windowed and global pooling, reductions, softmax), [`elementwise`]
//! (activations and broadcasting ops), [`data`] (data movement and layout) and [`matmul`]
//! (matrix products and the fused SE block).
//!
//! [`Op::infer`] checks arity and dtypes once, then [`shape`] hands the operands to the
//! family's function; each returns the output type or an [`IrError::Type`] naming the op.
use crate::error::IrError;
use crate::op::{dilated, Op};
use crate::types::{Dim, TensorType, MAX_ELEMENTS};

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
}

impl Cx<'_> {
    /// A type error of this op.
    pub fn ty(&self, m: String) -> IrError {
        IrError::ty(self.name, m)
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
        Op::SqueezeExcite(_) => matmul::squeeze_excite(cx),
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
