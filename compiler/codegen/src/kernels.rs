//! Kernel bodies, written once for both flavours against [`Kb`].
//!
//! Work is split by contiguous ranges over `(tid, nthr)`: on the CPU these are the pool's
//! threads, on NVPTX the grid's threads. The SE kernel additionally needs a group that shares
//! a barrier and scratch: all CPU threads (looping over images) or one CTA per image on NVPTX.
use crate::kb::{Kb, R};
use crate::launch::WARPS;
use crate::plan::{EwFn, KernelKind};
use crate::CodegenError;
use inkwell::values::{FloatValue, IntValue, PointerValue, VectorValue};
use inkwell::IntPredicate;
use secc_ir::{Activation, Dim, GemmAttrs, SeAttrs};

fn unsupported(msg: impl Into<String>) -> CodegenError {
    CodegenError::Unsupported {
        node: "kernel".into(),
        msg: msg.into(),
    }
}

fn dmul(a: Dim, b: Dim) -> R<Dim> {
    a.checked_mul(b)
        .ok_or_else(|| unsupported("extent is a product of two symbolic dimensions"))
}

fn dprod(ds: &[Dim]) -> R<Dim> {
    ds.iter().try_fold(Dim::Known(1), |a, &b| dmul(a, b))
}

/// Emits the body of one kernel.
pub fn emit(kb: &mut Kb, kind: &KernelKind) -> R<()> {
    match kind {
        KernelKind::Elementwise { f, out, ins } => elementwise(kb, f, out, ins),
        KernelKind::ReduceMean { input, axes, op } => reduce_mean(kb, input, axes, *op),
        KernelKind::Pool { attrs, x, y } => crate::pool::pool(kb, attrs, x, y),
        KernelKind::MaxPoolIndices {
            attrs,
            x,
            y,
            column_major,
        } => crate::pool::max_pool_indices(kb, attrs, x, y, *column_major),
        KernelKind::IntTensor { values } => int_tensor(kb, values),
        KernelKind::Concat { axis, ins } => concat(kb, *axis, ins),
        KernelKind::Transpose { perm, input } => transpose(kb, perm, input),
        KernelKind::Slice {
            starts,
            steps,
            input,
            out,
        } => slice(kb, starts, steps, input, out),
        KernelKind::Resize { attrs, x, lanes } => crate::resize::resize(kb, attrs, x, *lanes),
        KernelKind::ConvTranspose {
            attrs,
            x,
            w,
            y,
            bias,
        } => conv_transpose(kb, attrs, [x, w, y], *bias),
        KernelKind::Pad { pads, mode, input } => pad(kb, pads, *mode, input),
        KernelKind::Softmax { axis, shape } => softmax(kb, *axis, shape),
        KernelKind::Gemm { attrs, a, b, c } => gemm(kb, attrs, a, b, c.as_deref()),
        KernelKind::MatMul { a, b } => matmul(kb, a, b),
        KernelKind::Conv { attrs, x, w, bias } => conv(kb, attrs, x, w, *bias),
        KernelKind::SqueezeExcite {
            attrs,
            x,
            r,
            block,
            lanes,
            gate_only,
        } => squeeze_excite(kb, attrs, x, *r, [*block, *lanes], *gate_only),
        KernelKind::PlaneMean { planes, h, w } => plane_mean(kb, *planes, *h, *w),
        KernelKind::ConvGemm {
            attrs,
            x,
            w,
            y,
            bias,
        } => conv_gemm(kb, attrs, [x, w, y], *bias),
        KernelKind::ConvOut { attrs, x, w, bias } => conv_out(kb, attrs, x, w, *bias),
        KernelKind::RowDot { n, rows, cols, act } => row_dot(kb, *n, [*rows, *cols], *act),
        KernelKind::ConvBlocked(g) => crate::blocked::conv(kb, g),
        KernelKind::WinoInput(t) => crate::winograd::input(kb, t),
        KernelKind::WinoOutput(t) => crate::winograd::output(kb, t),
        KernelKind::GemmPacked(g) => crate::blocked::gemm(kb, g),
        KernelKind::ConcatBlocked { n, ins, y } => crate::blocked::concat(kb, *n, ins, *y),
        KernelKind::Reorder {
            n,
            view,
            to_blocked,
        } => crate::blocked::reorder(kb, *n, *view, *to_blocked),
        KernelKind::GlobalPoolBlocked { n, view, max } => {
            crate::blocked::global_pool(kb, *n, *view, *max)
        }
        KernelKind::PoolBlocked { attrs, n, x, y } => crate::blocked::pool(kb, attrs, *n, *x, *y),
    }
}

/// Collapsed iteration space of a broadcasting op: extents and, per operand, strides.
struct Space {
    ext: Vec<Dim>,
    strides: Vec<Vec<Dim>>,
}

fn broadcast_space(out: &[Dim], ins: &[Vec<Dim>]) -> R<Space> {
    let r = out.len();
    let padded: Vec<Vec<Dim>> = ins
        .iter()
        .map(|s| {
            let mut p = vec![Dim::Known(1); r - s.len()];
            p.extend_from_slice(s);
            p
        })
        .collect();
    // (extent, per-operand "broadcast along this dim")
    let mut dims: Vec<(Dim, Vec<bool>)> = Vec::new();
    for d in 0..r {
        if out[d] == Dim::Known(1) {
            continue;
        }
        let bc: Vec<bool> = padded.iter().map(|s| s[d] == Dim::Known(1)).collect();
        if let Some(last) = dims.last_mut() {
            if last.1 == bc {
                if let Some(m) = last.0.checked_mul(out[d]) {
                    last.0 = m;
                    continue;
                }
            }
        }
        dims.push((out[d], bc));
    }
    if dims.is_empty() {
        dims.push((Dim::Known(1), vec![false; ins.len()]));
    }
    let mut strides = vec![vec![Dim::Known(0); dims.len()]; ins.len()];
    for (k, st) in strides.iter_mut().enumerate() {
        let mut run = Dim::Known(1);
        for d in (0..dims.len()).rev() {
            if !dims[d].1[k] {
                st[d] = run;
                run = dmul(run, dims[d].0)?;
            }
        }
    }
    Ok(Space {
        ext: dims.into_iter().map(|d| d.0).collect(),
        strides,
    })
}

fn ew_apply<'ctx>(kb: &Kb<'_, 'ctx>, f: &EwFn, v: &[FloatValue<'ctx>]) -> R<FloatValue<'ctx>> {
    use secc_ir::BinaryOp::*;
    match *f {
        EwFn::Program(ref prog) => {
            let mut regs = v.to_vec();
            for i in prog {
                let r = |k: u16| regs[k as usize];
                let x = match *i {
                    secc_ir::EwInstr::Binary(op, a, b) => {
                        ew_apply(kb, &EwFn::Binary(op), &[r(a), r(b)])?
                    }
                    secc_ir::EwInstr::Act(act, a) => kb.act(act, r(a))?,
                    secc_ir::EwInstr::Where(c, a, b) => {
                        ew_apply(kb, &EwFn::Where, &[r(c), r(a), r(b)])?
                    }
                };
                regs.push(x);
            }
            regs.last()
                .copied()
                .ok_or_else(|| unsupported("empty element-wise program"))
        }
        EwFn::Copy => Ok(v[0]),
        EwFn::Where => {
            let c =
                kb.b.build_float_compare(inkwell::FloatPredicate::UNE, v[0], kb.fc(0.0), "")?;
            Ok(kb.b.build_select(c, v[1], v[2], "")?.into_float_value())
        }
        EwFn::Binary(Pow) => kb.pow(v[0], v[1]),
        EwFn::Binary(op @ (Equal | Less | Greater)) => {
            let pred = match op {
                Equal => inkwell::FloatPredicate::OEQ,
                Less => inkwell::FloatPredicate::OLT,
                _ => inkwell::FloatPredicate::OGT,
            };
            let c = kb.b.build_float_compare(pred, v[0], v[1], "")?;
            Ok(kb
                .b
                .build_select(c, kb.fc(1.0), kb.fc(0.0), "")?
                .into_float_value())
        }
        EwFn::Act(a) => kb.act(a, v[0]),
        EwFn::Binary(Add) => kb.fadd(v[0], v[1]),
        EwFn::Binary(Sub) => kb.fsub(v[0], v[1]),
        EwFn::Binary(Mul) => kb.fmul(v[0], v[1]),
        EwFn::Binary(Div) => kb.fdiv(v[0], v[1]),
        EwFn::Binary(op @ (Min | Max)) => {
            // ONNX Min/Max propagate NaN from either side
            let m = if matches!(op, Min) {
                kb.fmin(v[0], v[1])?
            } else {
                kb.fmax(v[0], v[1])?
            };
            let nan =
                kb.b.build_float_compare(inkwell::FloatPredicate::UNO, v[0], v[1], "")?;
            let sum = kb.b.build_float_add(v[0], v[1], "")?;
            Ok(kb.b.build_select(nan, sum, m, "")?.into_float_value())
        }
        EwFn::Binary(PRelu) => {
            let neg =
                kb.b.build_float_compare(inkwell::FloatPredicate::OLT, v[0], kb.fc(0.0), "")?;
            let y = kb.fmul(v[0], v[1])?;
            Ok(kb.b.build_select(neg, y, v[0], "")?.into_float_value())
        }
    }
}

fn elementwise(kb: &mut Kb, f: &EwFn, out: &[Dim], ins: &[Vec<Dim>]) -> R<()> {
    let sp = broadcast_space(out, ins)?;
    let n = sp.ext.len();
    let total = kb.dims(&sp.ext)?;
    let inner = kb.dim(sp.ext[n - 1])?;
    let (lo, hi) = kb.split(total)?;
    let row_lo = kb.div(lo, inner)?;
    let row_hi = kb.div(kb.add(hi, kb.sub(inner, kb.i(1))?)?, inner)?;
    let srcs: Vec<PointerValue> = kb.args[..ins.len()].to_vec();
    let dst = kb.args[ins.len()];
    kb.for_loop(row_lo, row_hi, |kb, row| {
        let base = kb.mul(row, inner)?;
        let jlo = kb.imax(kb.sub(lo, base)?, kb.i(0))?;
        let jhi = kb.imin(kb.sub(hi, base)?, inner)?;
        let mut offs = vec![kb.i(0); ins.len()];
        let mut rem = row;
        for d in (0..n - 1).rev() {
            let e = kb.dim(sp.ext[d])?;
            let idx = kb.rem(rem, e)?;
            rem = kb.div(rem, e)?;
            for (off, st) in offs.iter_mut().zip(&sp.strides) {
                if st[d] != Dim::Known(0) {
                    *off = kb.add(*off, kb.mul(idx, kb.dim(st[d])?)?)?;
                }
            }
        }
        kb.for_loop(jlo, jhi, |kb, j| {
            let mut vals = Vec::with_capacity(ins.len());
            for k in 0..ins.len() {
                let idx = if sp.strides[k][n - 1] == Dim::Known(0) {
                    offs[k]
                } else {
                    kb.add(offs[k], j)?
                };
                vals.push(kb.load(srcs[k], idx)?);
            }
            let v = ew_apply(kb, f, &vals)?;
            kb.store(dst, kb.add(base, j)?, v)
        })
    })
}

fn reduce_mean(
    kb: &mut Kb,
    input: &[Dim],
    axes: &[usize],
    op: Option<secc_ir::ReduceKind>,
) -> R<()> {
    // collapse adjacent dims with the same reduced flag; extent-1 dims do not matter
    let mut dims: Vec<(Dim, bool)> = Vec::new();
    for (d, &e) in input.iter().enumerate() {
        if e == Dim::Known(1) {
            continue;
        }
        let red = axes.contains(&d);
        if let Some(last) = dims.last_mut() {
            if last.1 == red {
                if let Some(m) = last.0.checked_mul(e) {
                    last.0 = m;
                    continue;
                }
            }
        }
        dims.push((e, red));
    }
    let mut strides = vec![Dim::Known(1); dims.len()];
    let mut run = Dim::Known(1);
    for d in (0..dims.len()).rev() {
        strides[d] = run;
        run = dmul(run, dims[d].0)?;
    }
    let kept: Vec<(Dim, Dim)> = dims
        .iter()
        .zip(&strides)
        .filter(|(d, _)| !d.1)
        .map(|(d, s)| (d.0, *s))
        .collect();
    let red: Vec<(Dim, Dim)> = dims
        .iter()
        .zip(&strides)
        .filter(|(d, _)| d.1)
        .map(|(d, s)| (d.0, *s))
        .collect();
    let count = dprod(&red.iter().map(|r| r.0).collect::<Vec<_>>())?;
    let total = kb.dims(&kept.iter().map(|k| k.0).collect::<Vec<_>>())?;
    let (src, dst) = (kb.args[0], kb.args[1]);
    let (lo, hi) = kb.split(total)?;
    let countf =
        kb.b.build_unsigned_int_to_float(kb.dim(count)?, kb.ctx.f32_type(), "")?;
    let inv = kb.fdiv(kb.fc(1.0), countf)?;
    kb.for_loop(lo, hi, |kb, o| {
        let mut rem = o;
        let mut base = kb.i(0);
        for (e, s) in kept.iter().rev() {
            let e = kb.dim(*e)?;
            let idx = kb.rem(rem, e)?;
            rem = kb.div(rem, e)?;
            base = kb.add(base, kb.mul(idx, kb.dim(*s)?)?)?;
        }
        let s = reduce_nest(kb, src, &red, base, op)?;
        let v = if op.is_some() { s } else { kb.fmul(s, inv)? };
        kb.store(dst, o, v)
    })
}

fn reduce_nest<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    src: PointerValue<'ctx>,
    red: &[(Dim, Dim)],
    base: IntValue<'ctx>,
    op: Option<secc_ir::ReduceKind>,
) -> R<FloatValue<'ctx>> {
    use secc_ir::ReduceKind;
    let Some(((e, s), rest)) = red.split_first() else {
        return kb.load(src, base);
    };
    let (e, s) = (kb.dim(*e)?, kb.dim(*s)?);
    let init = kb.fc(match op {
        Some(ReduceKind::Max) => f32::NEG_INFINITY,
        Some(ReduceKind::Min) => f32::INFINITY,
        _ => 0.0,
    });
    kb.for_acc(kb.i(0), e, init, |kb, i, acc| {
        let off = kb.add(base, kb.mul(i, s)?)?;
        let v = reduce_nest(kb, src, rest, off, op)?;
        match op {
            Some(ReduceKind::Max) => kb.fmax(v, acc),
            Some(ReduceKind::Min) => kb.fmin(v, acc),
            _ => kb.fadd(acc, v),
        }
    })
}

/// Concatenation: each outer index copies one row slice of every operand.
fn concat(kb: &mut Kb, axis: usize, ins: &[Vec<Dim>]) -> R<()> {
    let outer = kb.dims(&ins[0][..axis])?;
    let rows: Vec<IntValue> = ins.iter().map(|s| kb.dims(&s[axis..])).collect::<R<_>>()?;
    let mut out_row = kb.i(0);
    for r in &rows {
        out_row = kb.add(out_row, *r)?;
    }
    let srcs: Vec<PointerValue> = kb.args[..ins.len()].to_vec();
    let dst = kb.args[ins.len()];
    let (lo, hi) = kb.split(outer)?;
    kb.for_loop(lo, hi, |kb, o| {
        let mut off = kb.mul(o, out_row)?;
        for (src, row) in srcs.iter().zip(&rows) {
            let sbase = kb.mul(o, *row)?;
            let (src, row, dbase) = (*src, *row, off);
            kb.for_loop(kb.i(0), row, |kb, j| {
                kb.store(dst, kb.add(dbase, j)?, kb.load(src, kb.add(sbase, j)?)?)
            })?;
            off = kb.add(off, row)?;
        }
        Ok(())
    })
}

/// Padding, one output element at a time: each coordinate maps back to the input by the mode
/// (constant: outside reads the fill value; edge: clamp; reflect: mirror).
fn pad(kb: &mut Kb, pads: &[(u64, u64)], mode: secc_ir::PadMode, input: &[Dim]) -> R<()> {
    let r = input.len();
    let out: Vec<Dim> = input
        .iter()
        .zip(pads)
        .map(|(&d, &(b, e))| {
            d.checked_add(Dim::Known(b + e))
                .ok_or_else(|| unsupported("padded extent is not representable"))
        })
        .collect::<R<_>>()?;
    let mut in_strides = vec![Dim::Known(1); r];
    for d in (0..r.saturating_sub(1)).rev() {
        in_strides[d] = dmul(in_strides[d + 1], input[d + 1])?;
    }
    let src = kb.args[0];
    let runtime_fill = mode == secc_ir::PadMode::ConstantInput;
    let dst = kb.args[if runtime_fill { 2 } else { 1 }];
    let fill = match mode {
        secc_ir::PadMode::Constant(c) => Some(kb.fc(c)),
        secc_ir::PadMode::ConstantInput => Some(kb.load(kb.args[1], kb.i(0))?),
        _ => None,
    };
    let total = kb.dims(&out)?;
    let (lo, hi) = kb.split(total)?;
    kb.for_loop(lo, hi, |kb, e| {
        let mut rem = e;
        let mut off = kb.i(0);
        let mut inside = kb.ctx.bool_type().const_int(1, false);
        for d in (0..r).rev() {
            let ext = kb.dim(out[d])?;
            let idx = kb.rem(rem, ext)?;
            rem = kb.div(rem, ext)?;
            let (b, _) = pads[d];
            let q = if pads[d] == (0, 0) {
                idx
            } else {
                // the shape rules keep a reflected extent above both pads
                let n = kb.dim(input[d])?;
                let last = kb.sub(n, kb.i(1))?;
                let p = kb.sub(idx, kb.i(b))?;
                match mode {
                    secc_ir::PadMode::Constant(_) | secc_ir::PadMode::ConstantInput => {
                        inside = kb.b.build_and(inside, kb.inside_n(p, n)?, "")?;
                        kb.imax(kb.imin(p, last)?, kb.i(0))?
                    }
                    secc_ir::PadMode::Edge => kb.imax(kb.imin(p, last)?, kb.i(0))?,
                    secc_ir::PadMode::Reflect => {
                        // p < 0 -> -p; p >= n -> 2(n-1) - p
                        let neg = kb.sub(kb.i(0), p)?;
                        let hi_ref = kb.sub(kb.add(last, last)?, p)?;
                        let below = kb.lt(p, kb.i(0))?;
                        let above =
                            kb.b.build_int_compare(inkwell::IntPredicate::SGE, p, n, "")?;
                        let v = kb.b.build_select(below, neg, p, "")?.into_int_value();
                        kb.b.build_select(above, hi_ref, v, "")?.into_int_value()
                    }
                }
            };
            off = kb.add(off, kb.mul(q, kb.dim(in_strides[d])?)?)?;
        }
        let v = kb.load(src, off)?;
        let v = match fill {
            Some(c) => kb.b.build_select(inside, v, c, "")?.into_float_value(),
            None => v,
        };
        kb.store(dst, e, v)
    })
}

/// Transpose: rows of the output's last axis, reading the input with that axis' stride.
fn transpose(kb: &mut Kb, perm: &[usize], input: &[Dim]) -> R<()> {
    let r = input.len();
    let mut in_strides = vec![Dim::Known(1); r];
    for d in (0..r.saturating_sub(1)).rev() {
        in_strides[d] = dmul(in_strides[d + 1], input[d + 1])?;
    }
    let out: Vec<Dim> = perm.iter().map(|&p| input[p]).collect();
    let (src, dst) = (kb.args[0], kb.args[1]);
    if r == 0 {
        return kb.if_then(kb.lt(kb.tid, kb.i(1))?, |kb| {
            kb.store(dst, kb.i(0), kb.load(src, kb.i(0))?)
        });
    }
    let inner = kb.dim(out[r - 1])?;
    let inner_stride = kb.dim(in_strides[perm[r - 1]])?;
    let rows = kb.dims(&out[..r - 1])?;
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, row| {
        let mut rem = row;
        let mut base = kb.i(0);
        for d in (0..r - 1).rev() {
            let e = kb.dim(out[d])?;
            let idx = kb.rem(rem, e)?;
            rem = kb.div(rem, e)?;
            base = kb.add(base, kb.mul(idx, kb.dim(in_strides[perm[d]])?)?)?;
        }
        let obase = kb.mul(row, inner)?;
        kb.for_loop(kb.i(0), inner, |kb, j| {
            let v = kb.load(src, kb.add(base, kb.mul(j, inner_stride)?)?)?;
            kb.store(dst, kb.add(obase, j)?, v)
        })
    })
}

/// A signed constant (two's complement in the i64 index type).
fn sint<'ctx>(kb: &Kb<'_, 'ctx>, v: i64) -> IntValue<'ctx> {
    kb.i(v as u64)
}

/// Strided window: rows of the output's last axis; each output index maps to
/// `start + i * step` per axis (steps may be negative: the arithmetic wraps in i64).
fn slice(kb: &mut Kb, starts: &[u64], steps: &[i64], input: &[Dim], out: &[Dim]) -> R<()> {
    let r = input.len();
    let mut in_strides = vec![Dim::Known(1); r];
    for d in (0..r.saturating_sub(1)).rev() {
        in_strides[d] = dmul(in_strides[d + 1], input[d + 1])?;
    }
    let (src, dst) = (kb.args[0], kb.args[1]);
    if r == 0 {
        return kb.if_then(kb.lt(kb.tid, kb.i(1))?, |kb| {
            kb.store(dst, kb.i(0), kb.load(src, kb.i(0))?)
        });
    }
    let inner = kb.dim(out[r - 1])?;
    let inner_stride = kb.mul(kb.dim(in_strides[r - 1])?, sint(kb, steps[r - 1]))?;
    let rows = kb.dims(&out[..r - 1])?;
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, row| {
        let mut rem = row;
        let mut base = kb.mul(kb.i(starts[r - 1]), kb.dim(in_strides[r - 1])?)?;
        for d in (0..r - 1).rev() {
            let e = kb.dim(out[d])?;
            let idx = kb.rem(rem, e)?;
            rem = kb.div(rem, e)?;
            let pos = kb.add(kb.i(starts[d]), kb.mul(idx, sint(kb, steps[d]))?)?;
            base = kb.add(base, kb.mul(pos, kb.dim(in_strides[d])?)?)?;
        }
        let obase = kb.mul(row, inner)?;
        kb.for_loop(kb.i(0), inner, |kb, j| {
            let v = kb.load(src, kb.add(base, kb.mul(j, inner_stride)?)?)?;
            kb.store(dst, kb.add(obase, j)?, v)
        })
    })
}

/// For output coordinate `o` of a transposed convolution and a tap at offset `off`: whether
/// an input coordinate maps there (`o + pad - off` is a non-negative multiple of `stride`
/// below `extent`) and that coordinate, clamped into range so the load stays in bounds.
fn transposed_tap<'ctx>(
    kb: &Kb<'_, 'ctx>,
    o: IntValue<'ctx>,
    pad: u64,
    off: IntValue<'ctx>,
    stride: u64,
    extent: IntValue<'ctx>,
) -> R<(IntValue<'ctx>, IntValue<'ctx>)> {
    let t = kb.sub(kb.add(o, kb.i(pad))?, off)?;
    let ok = kb.b.build_and(
        kb.b.build_int_compare(inkwell::IntPredicate::SGE, t, kb.i(0), "")?,
        kb.b.build_int_compare(
            inkwell::IntPredicate::EQ,
            kb.rem(t, kb.i(stride))?,
            kb.i(0),
            "",
        )?,
        "",
    )?;
    let i = kb.div(t, kb.i(stride))?;
    let ok = kb.b.build_and(ok, kb.lt(i, extent)?, "")?;
    let clamped = kb.imax(kb.imin(i, kb.sub(extent, kb.i(1))?)?, kb.i(0))?;
    Ok((ok, clamped))
}

/// Transposed convolution as a gather: output pixel `(oy, ox)` sums `x[iy, ix] * w[ky, kx]`
/// over the taps with `oy + pad - ky * dil = iy * stride` (and the same for x), i.e. the
/// scatter definition read backwards. Rows of (n, oc, oy) are split among threads; the
/// spatial extents are run-time values.
fn conv_transpose(
    kb: &mut Kb,
    a: &secc_ir::ConvTransposeAttrs,
    [x, w, y]: [&[Dim]; 3],
    bias: bool,
) -> R<()> {
    let c = known(x[1])?;
    let (h, wd) = (kb.dim(x[2])?, kb.dim(x[3])?);
    let (cg_out, kh, kw) = (known(w[1])?, known(w[2])?, known(w[3])?);
    let cg_in = c / a.group;
    let cout = cg_out * a.group;
    let (oh, ow) = (kb.dim(y[2])?, kb.dim(y[3])?);
    let hw = kb.mul(h, wd)?;
    let (src, wt) = (kb.args[0], kb.args[1]);
    let bptr = bias.then(|| kb.args[2]);
    let dst = kb.args[if bias { 3 } else { 2 }];
    let rows = kb.mul(kb.mul(kb.dim(x[0])?, kb.i(cout))?, oh)?;
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, row| {
        let oy = kb.rem(row, oh)?;
        let nc = kb.div(row, oh)?;
        let oc = kb.rem(nc, kb.i(cout))?;
        let n = kb.div(nc, kb.i(cout))?;
        let grp = kb.div(oc, kb.i(cg_out))?;
        let ocl = kb.rem(oc, kb.i(cg_out))?;
        let b0 = match bptr {
            Some(b) => kb.load(b, oc)?,
            None => kb.fc(0.0),
        };
        // small kernels unroll the taps; larger ones loop over them (bounded code size)
        let unroll = kh * kw <= UNROLL_TAPS / 64;
        // valid input rows per ky, known per output row
        let ys: Vec<_> = (0..if unroll { kh } else { 0 })
            .map(|ky| {
                let off = kb.i(ky * a.dilations[0]);
                transposed_tap(kb, oy, a.pads[0], off, a.strides[0], h)
            })
            .collect::<R<_>>()?;
        let obase = kb.mul(row, ow)?;
        kb.for_loop(kb.i(0), ow, move |kb, ox| {
            let xs: Vec<_> = (0..if unroll { kw } else { 0 })
                .map(|kx| {
                    let off = kb.i(kx * a.dilations[1]);
                    transposed_tap(kb, ox, a.pads[1], off, a.strides[1], wd)
                })
                .collect::<R<_>>()?;
            let acc = kb.for_acc(kb.i(0), kb.i(cg_in), b0, |kb, icl, acc| {
                let ic = kb.add(kb.mul(grp, kb.i(cg_in))?, icl)?;
                let xplane = kb.mul(kb.add(kb.mul(n, kb.i(c))?, ic)?, hw)?;
                let wbase = kb.mul(kb.add(kb.mul(ic, kb.i(cg_out))?, ocl)?, kb.i(kh * kw))?;
                if !unroll {
                    let (x, w) = ((src, xplane), (wt, wbase));
                    return transposed_taps_looped(kb, a, [oy, ox], x, w, ([h, wd], [kh, kw]), acc);
                }
                let mut acc = acc;
                for (ky, &(oky, iy)) in ys.iter().enumerate() {
                    let xrow = kb.add(xplane, kb.mul(iy, wd)?)?;
                    for (kx, &(okx, ix)) in xs.iter().enumerate() {
                        let ok = kb.b.build_and(oky, okx, "")?;
                        let xv = kb.load(src, kb.add(xrow, ix)?)?;
                        let wv = kb.load(wt, kb.add(wbase, kb.i(ky as u64 * kw + kx as u64))?)?;
                        let p = kb.fmul(xv, wv)?;
                        let p = kb.b.build_select(ok, p, kb.fc(0.0), "")?.into_float_value();
                        acc = kb.fadd(acc, p)?;
                    }
                }
                Ok(acc)
            })?;
            kb.store(dst, kb.add(obase, ox)?, acc)
        })
    })
}

/// The taps of one input channel of [`conv_transpose`] as run-time loops over `ky`, `kx`
/// (same order and arithmetic as the unrolled form): `acc + sum x[iy, ix] * w[ky, kx]`.
fn transposed_taps_looped<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    a: &secc_ir::ConvTransposeAttrs,
    [oy, ox]: [IntValue<'ctx>; 2],
    (src, xplane): (PointerValue<'ctx>, IntValue<'ctx>),
    (wt, wbase): (PointerValue<'ctx>, IntValue<'ctx>),
    ([h, wd], [kh, kw]): ([IntValue<'ctx>; 2], [u64; 2]),
    acc: FloatValue<'ctx>,
) -> R<FloatValue<'ctx>> {
    kb.for_acc(kb.i(0), kb.i(kh), acc, |kb, ky, acc| {
        let offy = kb.mul(ky, kb.i(a.dilations[0]))?;
        let (oky, iy) = transposed_tap(kb, oy, a.pads[0], offy, a.strides[0], h)?;
        let xrow = kb.add(xplane, kb.mul(iy, wd)?)?;
        let wrow = kb.add(wbase, kb.mul(ky, kb.i(kw))?)?;
        kb.for_acc(kb.i(0), kb.i(kw), acc, |kb, kx, acc| {
            let offx = kb.mul(kx, kb.i(a.dilations[1]))?;
            let (okx, ix) = transposed_tap(kb, ox, a.pads[1], offx, a.strides[1], wd)?;
            let ok = kb.b.build_and(oky, okx, "")?;
            let xv = kb.load(src, kb.add(xrow, ix)?)?;
            let wv = kb.load(wt, kb.add(wrow, kx)?)?;
            let p = kb.fmul(xv, wv)?;
            let p = kb.b.build_select(ok, p, kb.fc(0.0), "")?.into_float_value();
            kb.fadd(acc, p)
        })
    })
}

/// Softmax over `axis`, one (outer, inner) lane at a time: max, sum of exp, normalise.
fn softmax(kb: &mut Kb, axis: usize, shape: &[Dim]) -> R<()> {
    let outer = kb.dims(&shape[..axis])?;
    let len = kb.dim(shape[axis])?;
    let inner = kb.dims(&shape[axis + 1..])?;
    let (src, dst) = (kb.args[0], kb.args[1]);
    let (lo, hi) = kb.split(kb.mul(outer, inner)?)?;
    kb.for_loop(lo, hi, |kb, u| {
        let o = kb.div(u, inner)?;
        let i = kb.rem(u, inner)?;
        let base = kb.add(kb.mul(kb.mul(o, len)?, inner)?, i)?;
        let init = kb.fc(f32::NEG_INFINITY);
        let m = kb.for_acc(kb.i(0), len, init, |kb, k, acc| {
            let v = kb.load(src, kb.add(base, kb.mul(k, inner)?)?)?;
            kb.fmax(v, acc)
        })?;
        let zero = kb.fc(0.0);
        let s = kb.for_acc(kb.i(0), len, zero, |kb, k, acc| {
            let v = kb.load(src, kb.add(base, kb.mul(k, inner)?)?)?;
            let e = kb.exp(kb.fsub(v, m)?)?;
            kb.fadd(acc, e)
        })?;
        let inv = kb.fdiv(kb.fc(1.0), s)?;
        kb.for_loop(kb.i(0), len, |kb, k| {
            let at = kb.add(base, kb.mul(k, inner)?)?;
            let e = kb.exp(kb.fsub(kb.load(src, at)?, m)?)?;
            kb.store(dst, at, kb.fmul(e, inv)?)
        })
    })
}

/// Window taps a kernel body may unroll at compile time (output columns times taps of a
/// pool; taps of a convolution); larger windows are emitted as run-time loops, so compile
/// time and memory stay bounded whatever the attributes.
pub(crate) const UNROLL_TAPS: u64 = 4096;

/// An int64 tensor known up to the symbolic batch: thread 0 writes every element.
fn int_tensor(kb: &mut Kb, values: &[secc_ir::IntElem]) -> R<()> {
    let dst = kb.args[0];
    let vals: Vec<IntValue> = values
        .iter()
        .map(|v| match *v {
            secc_ir::IntElem::Known(k) => Ok(sint(kb, k)),
            secc_ir::IntElem::Dim(d) => kb.dim(d),
        })
        .collect::<R<_>>()?;
    kb.if_then(kb.lt(kb.tid, kb.i(1))?, |kb| {
        for (i, v) in vals.iter().enumerate() {
            kb.store_i64(dst, kb.i(i as u64), *v)?;
        }
        Ok(())
    })
}

fn dot<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    k: IntValue<'ctx>,
    (a, a_off, a_step): (PointerValue<'ctx>, IntValue<'ctx>, IntValue<'ctx>),
    (b, b_off, b_step): (PointerValue<'ctx>, IntValue<'ctx>, IntValue<'ctx>),
    init: FloatValue<'ctx>,
) -> R<FloatValue<'ctx>> {
    kb.for_acc(kb.i(0), k, init, |kb, kk, acc| {
        let x = kb.load(a, kb.add(a_off, kb.mul(kk, a_step)?)?)?;
        let y = kb.load(b, kb.add(b_off, kb.mul(kk, b_step)?)?)?;
        kb.fadd(acc, kb.fmul(x, y)?)
    })
}

/// Weight rows an SE gate's FCs read at once, and how far ahead (floats) they prefetch
/// each. Its weights come from L3 or DRAM each run at batch 1; on Zen 5 one sequential
/// stream read 19 GB/s cold, four streams 13 GB/s, four prefetched 2 KiB ahead 34-37
/// (`benches/read_bw.c`).
const FC_STREAMS: u64 = 4;
const FC_PREFETCH: u64 = 512;

/// `init[k] + w[js[k] * c ..][..c] . x[x0 ..][..c]` for each row `js[k]`: the rows are
/// read side by side, 16 floats at a time, each prefetched [`FC_PREFETCH`] floats ahead
/// (CPU); the last `c % 16` one at a time.
fn dot_rows<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    c: u64,
    w: PointerValue<'ctx>,
    js: &[IntValue<'ctx>],
    (x, x0): (PointerValue<'ctx>, IntValue<'ctx>),
    init: &[FloatValue<'ctx>],
) -> R<Vec<FloatValue<'ctx>>> {
    const L: u64 = 16;
    let rows = js
        .iter()
        .map(|j| kb.mul(*j, kb.i(c)))
        .collect::<R<Vec<_>>>()?;
    let zero = kb.vec_splat_n(kb.fc(0.0), L as u32)?;
    let acc = kb.for_carry(
        kb.i(0),
        kb.i(c / L),
        vec![zero.into(); js.len()],
        |kb, v, acc| {
            let off = kb.mul(v, kb.i(L))?;
            let xv = kb.vec_load_n(x, kb.add(x0, off)?, L as u32)?;
            rows.iter()
                .zip(acc)
                .map(|(row, a)| {
                    let at = kb.add(*row, off)?;
                    kb.prefetch(w, kb.add(at, kb.i(FC_PREFETCH))?)?;
                    let wv = kb.vec_load_n(w, at, L as u32)?;
                    Ok(kb.vec_fma(wv, xv, a.into_vector_value())?.into())
                })
                .collect()
        },
    )?;
    let sums = acc
        .iter()
        .zip(init)
        .map(|(a, i)| kb.fadd(kb.hsum(a.into_vector_value())?, *i).map(Into::into))
        .collect::<R<Vec<_>>>()?;
    let sums = kb.for_carry(kb.i(c / L * L), kb.i(c), sums, |kb, i, s| {
        let xi = kb.load(x, kb.add(x0, i)?)?;
        rows.iter()
            .zip(s)
            .map(|(row, s)| {
                let p = kb.fmul(kb.load(w, kb.add(*row, i)?)?, xi)?;
                Ok(kb.fadd(s.into_float_value(), p)?.into())
            })
            .collect()
    })?;
    Ok(sums.into_iter().map(|s| s.into_float_value()).collect())
}

/// `g[g0 + ch] += sum_k w[js[k] * c + ch] * hs[k]` for `ch` in `[lo, hi)`: the rows are read
/// side by side, 16 floats at a time, each prefetched [`FC_PREFETCH`] floats ahead (CPU);
/// the last `(hi - lo) % 16` one at a time.
fn axpy_rows<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    c: u64,
    w: PointerValue<'ctx>,
    js: &[IntValue<'ctx>],
    hs: &[FloatValue<'ctx>],
    (g, g0): (PointerValue<'ctx>, IntValue<'ctx>),
    [lo, hi]: [IntValue<'ctx>; 2],
) -> R<()> {
    const L: u64 = 16;
    let rows = js
        .iter()
        .map(|j| kb.mul(*j, kb.i(c)))
        .collect::<R<Vec<_>>>()?;
    let hv = hs
        .iter()
        .map(|h| kb.vec_splat_n(*h, L as u32))
        .collect::<R<Vec<_>>>()?;
    let n = kb.div(kb.sub(hi, lo)?, kb.i(L))?;
    kb.for_loop(kb.i(0), n, |kb, v| {
        let ch = kb.add(lo, kb.mul(v, kb.i(L))?)?;
        let gi = kb.add(g0, ch)?;
        let mut acc = kb.vec_load_n(g, gi, L as u32)?;
        for (row, h) in rows.iter().zip(&hv) {
            let at = kb.add(*row, ch)?;
            kb.prefetch(w, kb.add(at, kb.i(FC_PREFETCH))?)?;
            acc = kb.vec_fma(kb.vec_load_n(w, at, L as u32)?, *h, acc)?;
        }
        kb.vec_store(g, gi, acc)
    })?;
    let tail = kb.add(lo, kb.mul(n, kb.i(L))?)?;
    kb.for_loop(tail, hi, |kb, ch| {
        let gi = kb.add(g0, ch)?;
        let mut acc = kb.load(g, gi)?;
        for (row, h) in rows.iter().zip(hs) {
            let p = kb.fmul(kb.load(w, kb.add(*row, ch)?)?, *h)?;
            acc = kb.fadd(acc, p)?;
        }
        kb.store(g, gi, acc)
    })
}

fn gemm(kb: &mut Kb, g: &GemmAttrs, a: &[Dim], b: &[Dim], c: Option<&[Dim]>) -> R<()> {
    let (m, k) = if g.trans_a {
        (a[1], a[0])
    } else {
        (a[0], a[1])
    };
    let n = if g.trans_b { b[0] } else { b[1] };
    let (mv, kv, nv) = (kb.dim(m)?, kb.dim(k)?, kb.dim(n)?);
    let (pa, pb) = (kb.args[0], kb.args[1]);
    let pc = c.map(|_| kb.args[2]);
    let dst = kb.args[if c.is_some() { 3 } else { 2 }];
    let total = kb.mul(mv, nv)?;
    let (lo, hi) = kb.split(total)?;
    // C broadcast to [M, N]
    let cs: Option<(bool, bool, Dim)> = c.map(|c| {
        let p: Vec<Dim> = std::iter::repeat_n(Dim::Known(1), 2 - c.len())
            .chain(c.iter().copied())
            .collect();
        (p[0] != Dim::Known(1), p[1] != Dim::Known(1), p[1])
    });
    kb.for_loop(lo, hi, |kb, e| {
        let i = kb.div(e, nv)?;
        let j = kb.rem(e, nv)?;
        let (a_off, a_step) = if g.trans_a {
            (i, mv)
        } else {
            (kb.mul(i, kv)?, kb.i(1))
        };
        let (b_off, b_step) = if g.trans_b {
            (kb.mul(j, kv)?, kb.i(1))
        } else {
            (j, nv)
        };
        let zero = kb.fc(0.0);
        let s = dot(kb, kv, (pa, a_off, a_step), (pb, b_off, b_step), zero)?;
        let mut v = if g.alpha == 1.0 {
            s
        } else {
            kb.fmul(s, kb.fc(g.alpha))?
        };
        if let (Some(pc), Some((row, col, c1))) = (pc, cs) {
            let mut off = kb.i(0);
            if row {
                off = kb.mul(i, if col { kb.dim(c1)? } else { kb.i(1) })?;
            }
            if col {
                off = kb.add(off, j)?;
            }
            let cv = kb.load(pc, off)?;
            let cv = if g.beta == 1.0 {
                cv
            } else {
                kb.fmul(cv, kb.fc(g.beta))?
            };
            v = kb.fadd(v, cv)?;
        }
        kb.store(dst, e, v)
    })
}

fn matmul(kb: &mut Kb, a: &[Dim], b: &[Dim]) -> R<()> {
    let one = Dim::Known(1);
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![one, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0], one]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let n = b2[b2.len() - 1];
    let nb = (a2.len() - 2).max(b2.len() - 2);
    let pad = |s: &[Dim]| -> Vec<Dim> {
        std::iter::repeat_n(one, nb - (s.len() - 2))
            .chain(s[..s.len() - 2].iter().copied())
            .collect()
    };
    let (ab, bb) = (pad(&a2), pad(&b2));
    let batch: Vec<Dim> = ab
        .iter()
        .zip(&bb)
        .map(|(x, y)| if *x == one { *y } else { *x })
        .collect();
    // batch strides of A and B (0 where broadcast)
    let strides = |s: &[Dim], mat: Dim| -> R<Vec<Dim>> {
        let mut st = vec![Dim::Known(0); nb];
        let mut run = mat;
        for d in (0..nb).rev() {
            if s[d] != one {
                st[d] = run;
                run = dmul(run, s[d])?;
            }
        }
        Ok(st)
    };
    let (ast, bst) = (strides(&ab, dmul(m, k)?)?, strides(&bb, dmul(k, n)?)?);
    let (mv, kv, nv) = (kb.dim(m)?, kb.dim(k)?, kb.dim(n)?);
    let (pa, pb, dst) = (kb.args[0], kb.args[1], kb.args[2]);
    let total = kb.mul(kb.dims(&batch)?, kb.mul(mv, nv)?)?;
    let (lo, hi) = kb.split(total)?;
    kb.for_loop(lo, hi, |kb, e| {
        let j = kb.rem(e, nv)?;
        let t = kb.div(e, nv)?;
        let i = kb.rem(t, mv)?;
        let mut rem = kb.div(t, mv)?;
        let mut a_off = kb.mul(i, kv)?;
        let mut b_off = j;
        for d in (0..nb).rev() {
            let ext = kb.dim(batch[d])?;
            let idx = kb.rem(rem, ext)?;
            rem = kb.div(rem, ext)?;
            if ast[d] != Dim::Known(0) {
                a_off = kb.add(a_off, kb.mul(idx, kb.dim(ast[d])?)?)?;
            }
            if bst[d] != Dim::Known(0) {
                b_off = kb.add(b_off, kb.mul(idx, kb.dim(bst[d])?)?)?;
            }
        }
        let zero = kb.fc(0.0);
        let one_v = kb.i(1);
        let s = dot(kb, kv, (pa, a_off, one_v), (pb, b_off, nv), zero)?;
        kb.store(dst, e, s)
    })
}

/// Tap columns the generic convolution unrolls; wider kernels loop over them.
const UNROLL_KW: u64 = 16;

/// One image plane of the generic convolution: where it reads and writes, and its geometry.
struct ConvPlane<'ctx> {
    px: PointerValue<'ctx>,
    dst: PointerValue<'ctx>,
    xbase: IntValue<'ctx>,
    obase: IntValue<'ctx>,
    h: IntValue<'ctx>,
    wd: IntValue<'ctx>,
    /// output extents `[oh, ow]`
    ow: [IntValue<'ctx>; 2],
    strides: [u64; 2],
    dh: u64,
    /// `[top, left]`
    pads: [u64; 2],
}

/// `out[oy, ox] += wv * x[oy * sh + ky * dh - pt, ox * sw + off - pl]` for every output row
/// whose input row is inside the image, over the output columns `ox_lo..ox_hi`.
fn conv_tap<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    g: &ConvPlane<'ctx>,
    ky: IntValue<'ctx>,
    off: IntValue<'ctx>,
    [ox_lo, ox_hi]: [IntValue<'ctx>; 2],
    wv: FloatValue<'ctx>,
) -> R<()> {
    let ([oh, ow], [sh, sw], [pt, pl]) = (g.ow, g.strides, g.pads);
    kb.for_loop(kb.i(0), oh, |kb, oy| {
        let iy = kb.sub(
            kb.add(kb.mul(oy, kb.i(sh))?, kb.mul(ky, kb.i(g.dh))?)?,
            kb.i(pt),
        )?;
        let row_ok = kb.inside_n(iy, g.h)?;
        kb.if_then(row_ok, |kb| {
            let xrow = kb.add(g.xbase, kb.mul(iy, g.wd)?)?;
            let orow = kb.add(g.obase, kb.mul(oy, ow)?)?;
            kb.for_loop(ox_lo, ox_hi, |kb, ox| {
                let ix = kb.sub(kb.add(kb.mul(ox, kb.i(sw))?, off)?, kb.i(pl))?;
                let xv = kb.load(g.px, kb.add(xrow, ix)?)?;
                let oi = kb.add(orow, ox)?;
                let acc = kb.load(g.dst, oi)?;
                let v = kb.fadd(acc, kb.fmul(wv, xv)?)?;
                kb.store(g.dst, oi, v)
            })
        })
    })
}

fn known(d: Dim) -> R<u64> {
    d.known().ok_or_else(|| unsupported("extent must be known"))
}

fn conv<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    a: &secc_ir::Conv2dAttrs,
    x: &[Dim],
    w: &[Dim],
    bias: bool,
) -> R<()> {
    if a.residual {
        return Err(unsupported("a residual convolution runs blocked only"));
    }
    let c = known(x[1])?;
    let (o, cg, kh, kw) = (known(w[0])?, known(w[1])?, known(w[2])?, known(w[3])?);
    let og = o / a.group;
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let [pt, pl, pb, pr] = a.pads;
    // a gated input (bias explicit): each weight is scaled by its input channel's gate
    let ConvArgs {
        px,
        pw,
        pbias,
        pgate,
        dst,
        ..
    } = conv_args(kb, a, bias);
    let pointwise = kh == 1 && kw == 1 && a.strides == [1, 1] && a.pads == [0; 4];
    let (ekh, ekw) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
    // known extents: specialised register-tiled forms on 8-lane targets
    // (input width, output width) when the spatial extents are known
    let mut known_w = None;
    if let (Some(h), Some(wd), false) = (x[2].known(), x[3].known(), a.gated) {
        let oh = (h + pt + pb - ekh) / sh + 1;
        let ow = (wd + pl + pr - ekw) / sw + 1;
        if let Some(r) = conv_tiled(kb, a, x, [c, h, wd], [o, kh, kw], [oh, ow], bias) {
            return r;
        }
        known_w = Some((wd, ow));
    }
    let (h, wd) = (kb.dim(x[2])?, kb.dim(x[3])?);
    let [oh, ow] = conv_out_hw(kb, a, [h, wd], [kh, kw])?;
    let (hw, ohw) = (kb.mul(h, wd)?, kb.mul(oh, ow)?);
    let pairs = kb.mul(kb.dim(x[0])?, kb.i(o))?;
    let (lo, hi) = kb.split(pairs)?;
    kb.for_loop(lo, hi, |kb, pr_| {
        let n = kb.div(pr_, kb.i(o))?;
        let oc = kb.rem(pr_, kb.i(o))?;
        let grp = kb.div(oc, kb.i(og))?;
        let obase = kb.mul(pr_, ohw)?;
        let init = match pbias {
            Some(pb) => kb.load(pb, oc)?,
            None => kb.fc(0.0),
        };
        kb.for_loop(kb.i(0), ohw, |kb, p| kb.store(dst, kb.add(obase, p)?, init))?;
        kb.for_loop(kb.i(0), kb.i(cg), |kb, ic| {
            let cin = kb.add(kb.mul(grp, kb.i(cg))?, ic)?;
            let xbase = kb.mul(kb.add(kb.mul(n, kb.i(c))?, cin)?, hw)?;
            let wbase = kb.mul(kb.add(kb.mul(oc, kb.i(cg))?, ic)?, kb.i(kh * kw))?;
            let gate = match pgate {
                Some(pg) => Some(kb.load(pg, kb.add(kb.mul(n, kb.i(c))?, cin)?)?),
                None => None,
            };
            let weight = |kb: &Kb<'_, 'ctx>, at: IntValue<'ctx>| -> R<FloatValue<'ctx>> {
                let w = kb.load(pw, at)?;
                gate.map_or(Ok(w), |s| kb.fmul(w, s))
            };
            if pointwise {
                let wv = weight(kb, wbase)?;
                return kb.for_loop(kb.i(0), hw, |kb, p| {
                    let acc = kb.load(dst, kb.add(obase, p)?)?;
                    let xv = kb.load(px, kb.add(xbase, p)?)?;
                    let v = kb.fadd(acc, kb.fmul(wv, xv)?)?;
                    kb.store(dst, kb.add(obase, p)?, v)
                });
            }
            let geo = ConvPlane {
                px,
                dst,
                xbase,
                obase,
                h,
                wd,
                ow: [oh, ow],
                strides: [sh, sw],
                dh,
                pads: [pt, pl],
            };
            kb.for_loop(kb.i(0), kb.i(kh), |kb, ky| {
                let wrow = kb.add(wbase, kb.mul(ky, kb.i(kw))?)?;
                let Some((wdk, owk)) = known_w.filter(|_| kw <= UNROLL_KW) else {
                    // wide kernels and symbolic widths: the tap column is a loop, its
                    // column range computed at run time (numerators clamped at 0 for the
                    // unsigned division)
                    return kb.for_loop(kb.i(0), kb.i(kw), |kb, kx| {
                        let off = kb.mul(kx, kb.i(dw))?;
                        let t = kb.imax(kb.sub(kb.i(pl + sw - 1), off)?, kb.i(0))?;
                        let lo = kb.div(t, kb.i(sw))?;
                        let u = kb.imax(kb.sub(kb.add(wd, kb.i(pl + sw - 1))?, off)?, kb.i(0))?;
                        let hi = kb.imin(kb.div(u, kb.i(sw))?, ow)?;
                        let wv = weight(kb, kb.add(wrow, kx)?)?;
                        conv_tap(kb, &geo, ky, off, [lo, hi], wv)
                    });
                };
                for kx in 0..kw {
                    // output columns whose input column lies inside the image: compile-time
                    let off = kx * dw;
                    let ox_lo = if pl > off { (pl - off).div_ceil(sw) } else { 0 };
                    let ox_hi = if wdk - 1 + pl >= off {
                        ((wdk - 1 + pl - off) / sw + 1).min(owk)
                    } else {
                        0
                    };
                    if ox_lo >= ox_hi {
                        continue;
                    }
                    let wv = weight(kb, kb.add(wrow, kb.i(kx))?)?;
                    conv_tap(kb, &geo, ky, kb.i(off), [kb.i(ox_lo), kb.i(ox_hi)], wv)?;
                }
                Ok(())
            })
        })?;
        // fused activation, over the finished plane
        match a.act {
            Some(act) => kb.for_loop(kb.i(0), ohw, |kb, p| {
                let oi = kb.add(obase, p)?;
                let v = kb.act(act, kb.load(dst, oi)?)?;
                kb.store(dst, oi, v)
            }),
            None => Ok(()),
        }
    })
}

/// A plain convolution's operands: x, w, the bias, the gates, y (at slot `out`).
struct ConvArgs<'ctx> {
    px: PointerValue<'ctx>,
    pw: PointerValue<'ctx>,
    pbias: Option<PointerValue<'ctx>>,
    pgate: Option<PointerValue<'ctx>>,
    dst: PointerValue<'ctx>,
    out: usize,
}

fn conv_args<'ctx>(kb: &Kb<'_, 'ctx>, a: &secc_ir::Conv2dAttrs, bias: bool) -> ConvArgs<'ctx> {
    let out = usize::from(bias) + 2 + usize::from(a.gated);
    ConvArgs {
        px: kb.args[0],
        pw: kb.args[1],
        pbias: bias.then(|| kb.args[2]),
        pgate: a.gate_slot().map(|s| kb.args[s]),
        dst: kb.args[out],
        out,
    }
}

/// The output height and width at run time for input `[h, wd]` and kernel `[kh, kw]` (the
/// shape rules guarantee H + pads >= the dilated kernel at every binding).
fn conv_out_hw<'ctx>(
    kb: &Kb<'_, 'ctx>,
    a: &secc_ir::Conv2dAttrs,
    [h, wd]: [IntValue<'ctx>; 2],
    [kh, kw]: [u64; 2],
) -> R<[IntValue<'ctx>; 2]> {
    let [pt, pl, pb, pr] = a.pads;
    let one = |len: IntValue<'ctx>, pads: u64, k: u64, d: u64, stride: u64| {
        let span = kb.sub(kb.add(len, kb.i(pads))?, kb.i(d * (k - 1) + 1))?;
        kb.add(kb.div(span, kb.i(stride))?, kb.i(1))
    };
    Ok([
        one(h, pt + pb, kh, a.dilations[0], a.strides[0])?,
        one(wd, pl + pr, kw, a.dilations[1], a.strides[1])?,
    ])
}

/// The GPU's direct convolution (`conv2d_out`): one output element per work item, the
/// items dealt out round-robin (item `t + k * threads` to thread `t`, so adjacent threads
/// write adjacent outputs and read adjacent inputs), each a dot product over its input
/// channels and taps that skips the padding, then the bias and activation, one store.
fn conv_out<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    a: &secc_ir::Conv2dAttrs,
    x: &[Dim],
    w: &[Dim],
    bias: bool,
) -> R<()> {
    if a.residual || a.pool {
        return Err(unsupported(
            "a residual or pooling convolution runs blocked only",
        ));
    }
    let c = known(x[1])?;
    let (o, cg, kh, kw) = (known(w[0])?, known(w[1])?, known(w[2])?, known(w[3])?);
    let og = o / a.group;
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let [pt, pl, _, _] = a.pads;
    let ConvArgs {
        px,
        pw,
        pbias,
        pgate,
        dst,
        ..
    } = conv_args(kb, a, bias);
    let (h, wd) = (kb.dim(x[2])?, kb.dim(x[3])?);
    let [oh, ow] = conv_out_hw(kb, a, [h, wd], [kh, kw])?;
    let ohw = kb.mul(oh, ow)?;
    let total = kb.mul(kb.mul(kb.dim(x[0])?, kb.i(o))?, ohw)?;
    let (tid, nthr) = (kb.tid, kb.nthr);
    let items = kb.strided_trips(total, tid, nthr)?;
    kb.for_loop(kb.i(0), items, |kb, j| {
        let e = kb.add(tid, kb.mul(j, nthr)?)?;
        let (pair, p) = (kb.div(e, ohw)?, kb.rem(e, ohw)?);
        let (n, oc) = (kb.div(pair, kb.i(o))?, kb.rem(pair, kb.i(o))?);
        let (oy, ox) = (kb.div(p, ow)?, kb.rem(p, ow)?);
        let grp = kb.div(oc, kb.i(og))?;
        let iy0 = kb.sub(kb.mul(oy, kb.i(sh))?, kb.i(pt))?;
        let ix0 = kb.sub(kb.mul(ox, kb.i(sw))?, kb.i(pl))?;
        let init = match pbias {
            Some(pb) => kb.load(pb, oc)?,
            None => kb.fc(0.0),
        };
        let acc = kb.for_acc(kb.i(0), kb.i(cg), init, |kb, ic, acc| {
            let cin = kb.add(kb.mul(grp, kb.i(cg))?, ic)?;
            let plane = kb.add(kb.mul(n, kb.i(c))?, cin)?;
            let xbase = kb.mul(plane, kb.mul(h, wd)?)?;
            let wbase = kb.mul(kb.add(kb.mul(oc, kb.i(cg))?, ic)?, kb.i(kh * kw))?;
            let s = kb.for_acc(kb.i(0), kb.i(kh), kb.fc(0.0), |kb, ky, s| {
                let iy = kb.add(iy0, kb.mul(ky, kb.i(dh))?)?;
                let row_in = kb.in_range(iy, h)?;
                let iyc = kb.imax(kb.imin(iy, kb.sub(h, kb.i(1))?)?, kb.i(0))?;
                let xrow = kb.add(xbase, kb.mul(iyc, wd)?)?;
                let wrow = kb.add(wbase, kb.mul(ky, kb.i(kw))?)?;
                kb.for_acc(kb.i(0), kb.i(kw), s, |kb, kx, s| {
                    let ix = kb.add(ix0, kb.mul(kx, kb.i(dw))?)?;
                    let ok = kb.b.build_and(row_in, kb.in_range(ix, wd)?, "")?;
                    // clamped address, value selected away: no branch per tap
                    let ixc = kb.imax(kb.imin(ix, kb.sub(wd, kb.i(1))?)?, kb.i(0))?;
                    let xv = kb.load(px, kb.add(xrow, ixc)?)?;
                    let xv =
                        kb.b.build_select(ok, xv, kb.fc(0.0), "")?
                            .into_float_value();
                    let wv = kb.load(pw, kb.add(wrow, kx)?)?;
                    kb.fadd(s, kb.fmul(wv, xv)?)
                })
            })?;
            let s = match pgate {
                // a gated input: the input channel's gate scales its taps' sum
                Some(pg) => kb.fmul(s, kb.load(pg, plane)?)?,
                None => s,
            };
            kb.fadd(acc, s)
        })?;
        let v = match a.act {
            Some(act) => kb.act(act, acc)?,
            None => acc,
        };
        kb.store(dst, e, v)
    })
}

/// Tile of a `conv2d_gemm` CTA: output channels, pixels, input channels per chunk.
const GT_M: u64 = 64;
const GT_N: u64 = 64;
const GT_K: u64 = 16;
/// Threads of a `conv2d_gemm` CTA, each 8 output channels x 4 pixels of the tile.
const GT_THREADS: u64 = 128;

/// The GPU's one-group convolution (`conv2d_gemm`): `Y[n] = act(W im2col(X[n] * gate) +
/// b)` as an implicit GEMM tiled through shared memory (K = C * KH * KW, k = (channel,
/// tap)). A CTA computes 64 output channels x 64 output pixels of one image; per chunk of
/// 16 k its threads load the W tile (from W stored `[K, O]`) and the X tile (each element
/// the input under its pixel's tap, 0 in the padding, gated as loaded) cooperatively,
/// coalesced for 1x1 convolutions, into shared memory, wait, and
/// each thread `t` (`ty = t / 16`, `tx = t % 16`) adds the chunk into its 32 accumulators:
/// channels `ty + 8i`, pixels `tx + 16j` (so a warp's reads of the X tile hit distinct
/// banks and its stores of Y are 16 adjacent floats). CPU (the interpreter's check of this
/// form): the team is the CTA, looping over the tiles, and each thread plays the CTA
/// threads `t = tid, tid + nthr, ...` in turn, their accumulators kept in the scratch.
fn conv_gemm<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    a: &secc_ir::Conv2dAttrs,
    [x, w, y]: [&Vec<Dim>; 3],
    bias: bool,
) -> R<()> {
    let c = known(x[1])?;
    let (o, kh, kw) = (known(w[0])?, known(w[2])?, known(w[3])?);
    let (taps, kdim) = (kh * kw, c * kh * kw);
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let [pad_t, pad_l, _, _] = a.pads;
    let ConvArgs {
        px,
        pw: pwt,
        pbias,
        pgate,
        dst: py,
        out,
    } = conv_args(kb, a, bias);
    let (smem, accs) = match kb.shared_scratch()? {
        Some(s) => (s, None),
        None => (kb.args[out + 1], Some(kb.args[out + 1])),
    };
    let (ih, iw) = (kb.dim(x[2])?, kb.dim(x[3])?);
    let ow = kb.dim(y[3])?;
    let hw = kb.mul(kb.dim(y[2])?, ow)?;
    let nimg = kb.dim(x[0])?;
    let (mtiles, ptiles) = (
        kb.i(o.div_ceil(GT_M)),
        kb.div(kb.add(hw, kb.i(GT_N - 1))?, kb.i(GT_N))?,
    );
    let units = kb.mul(kb.mul(nimg, mtiles)?, ptiles)?;
    let tile = |kb: &mut Kb<'a, 'ctx>, unit: IntValue<'ctx>| -> R<()> {
        let pt = kb.rem(unit, ptiles)?;
        let rest = kb.div(unit, ptiles)?;
        let (mt, n) = (kb.rem(rest, mtiles)?, kb.div(rest, mtiles)?);
        let (co0, p0) = (kb.mul(mt, kb.i(GT_M))?, kb.mul(pt, kb.i(GT_N))?);
        let zero = kb.fc(0.0);
        let acc0: Vec<_> = (0..32).map(|_| zero.into()).collect();
        if let Some(acc) = accs {
            // this thread's CTA threads start at 0
            kb.for_strided(GT_THREADS, |kb, t| {
                for i in 0..32 {
                    let at = kb.add(kb.i(GEMM_ACC + i), kb.mul(t, kb.i(32))?)?;
                    kb.store(acc, at, zero)?;
                }
                Ok(())
            })?;
        }
        let chunks = kb.i(kdim.div_ceil(GT_K));
        let done = kb.for_carry(kb.i(0), chunks, acc0, |kb, kc, regs| {
            let k0 = kb.mul(kc, kb.i(GT_K))?;
            // the W tile: row kk (k = k0 + kk) holds output channels co0..+64
            kb.for_strided(GT_K * GT_M, |kb, e| {
                let (kk, cc) = (kb.div(e, kb.i(GT_M))?, kb.rem(e, kb.i(GT_M))?);
                let (k, co) = (kb.add(k0, kk)?, kb.add(co0, cc)?);
                let ok =
                    kb.b.build_and(kb.lt(k, kb.i(kdim))?, kb.lt(co, kb.i(o))?, "")?;
                let at = kb.add(
                    kb.mul(kb.imin(k, kb.i(kdim - 1))?, kb.i(o))?,
                    kb.imin(co, kb.i(o - 1))?,
                )?;
                let v = kb.load(pwt, at)?;
                let v = kb.b.build_select(ok, v, zero, "")?.into_float_value();
                kb.store(smem, e, v)
            })?;
            // the X tile: row kk holds, for output pixels p0..+64, the input under tap
            // (ky, kx) of channel ci (k0 + kk = ci * KH * KW + ky * KW + kx), gated
            kb.for_strided(GT_K * GT_N, |kb, e| {
                let (kk, pp) = (kb.div(e, kb.i(GT_N))?, kb.rem(e, kb.i(GT_N))?);
                let (k, p) = (kb.add(k0, kk)?, kb.add(p0, pp)?);
                let k = kb.imin(k, kb.i(kdim - 1))?;
                let (ci, tap) = (kb.div(k, kb.i(taps))?, kb.rem(k, kb.i(taps))?);
                let (ky, kx) = (kb.div(tap, kb.i(kw))?, kb.rem(tap, kb.i(kw))?);
                let pc = kb.imin(p, kb.sub(hw, kb.i(1))?)?;
                let (oy, ox) = (kb.div(pc, ow)?, kb.rem(pc, ow)?);
                let iy = kb.add(
                    kb.sub(kb.mul(oy, kb.i(sh))?, kb.i(pad_t))?,
                    kb.mul(ky, kb.i(dh))?,
                )?;
                let ix = kb.add(
                    kb.sub(kb.mul(ox, kb.i(sw))?, kb.i(pad_l))?,
                    kb.mul(kx, kb.i(dw))?,
                )?;
                let ok =
                    kb.b.build_and(kb.lt(kb.add(k0, kk)?, kb.i(kdim))?, kb.lt(p, hw)?, "")?;
                let ok = kb.b.build_and(ok, kb.in_range(iy, ih)?, "")?;
                let ok = kb.b.build_and(ok, kb.in_range(ix, iw)?, "")?;
                let iyc = kb.imax(kb.imin(iy, kb.sub(ih, kb.i(1))?)?, kb.i(0))?;
                let ixc = kb.imax(kb.imin(ix, kb.sub(iw, kb.i(1))?)?, kb.i(0))?;
                let plane = kb.add(kb.mul(n, kb.i(c))?, ci)?;
                let at = kb.add(kb.mul(kb.add(kb.mul(plane, ih)?, iyc)?, iw)?, ixc)?;
                let mut v = kb.load(px, at)?;
                if let Some(pg) = pgate {
                    v = kb.fmul(v, kb.load(pg, plane)?)?;
                }
                let v = kb.b.build_select(ok, v, zero, "")?.into_float_value();
                kb.store(smem, kb.add(kb.i(GT_K * GT_M), e)?, v)
            })?;
            kb.barrier()?;
            let regs: Vec<FloatValue<'ctx>> = regs.iter().map(|v| v.into_float_value()).collect();
            let regs = match accs {
                None => gemm_chunk(kb, smem, kb.group_tid, regs)?,
                Some(acc) => {
                    kb.for_strided(GT_THREADS, |kb, t| {
                        let (base, r) = cta_accs(kb, acc, t)?;
                        let r = gemm_chunk(kb, smem, t, r)?;
                        for (i, v) in r.into_iter().enumerate() {
                            kb.store(acc, kb.add(base, kb.i(i as u64))?, v)?;
                        }
                        Ok(())
                    })?;
                    regs
                }
            };
            // nobody overwrites the tiles before every thread has read them
            kb.barrier()?;
            Ok(regs.into_iter().map(|v| v.into()).collect())
        })?;
        let store = |kb: &mut Kb<'a, 'ctx>, t: IntValue<'ctx>, r: &[FloatValue<'ctx>]| -> R<()> {
            let (ty, tx) = (kb.div(t, kb.i(16))?, kb.rem(t, kb.i(16))?);
            for i in 0..8u64 {
                let co = kb.add(co0, kb.add(ty, kb.i(8 * i))?)?;
                kb.if_then(kb.lt(co, kb.i(o))?, |kb| {
                    let b = match pbias {
                        Some(pb) => kb.load(pb, co)?,
                        None => kb.fc(0.0),
                    };
                    let row = kb.mul(kb.add(kb.mul(n, kb.i(o))?, co)?, hw)?;
                    for j in 0..4u64 {
                        let p = kb.add(p0, kb.add(tx, kb.i(16 * j))?)?;
                        let v = kb.fadd(r[(4 * i + j) as usize], b)?;
                        let v = match a.act {
                            Some(act) => kb.act(act, v)?,
                            None => v,
                        };
                        kb.if_then(kb.lt(p, hw)?, |kb| kb.store(py, kb.add(row, p)?, v))?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        };
        match accs {
            None => {
                let r: Vec<FloatValue<'ctx>> = done.iter().map(|v| v.into_float_value()).collect();
                store(kb, kb.group_tid, &r)
            }
            Some(acc) => kb.for_strided(GT_THREADS, |kb, t| {
                let (_, r) = cta_accs(kb, acc, t)?;
                store(kb, t, &r)
            }),
        }
    };
    match kb.block_id {
        None => kb.for_loop(kb.i(0), units, |kb, u| tile(kb, u)),
        Some(u) => kb.if_then(kb.lt(u, units)?, |kb| tile(kb, u)),
    }
}

/// Where a CPU `conv2d_gemm` keeps its CTA threads' accumulators in the scratch.
const GEMM_ACC: u64 = crate::plan::GEMM_SHARED;

/// CPU `conv2d_gemm`: where CTA thread `t`'s 32 accumulators start in the scratch, and
/// their values.
fn cta_accs<'ctx>(
    kb: &Kb<'_, 'ctx>,
    acc: PointerValue<'ctx>,
    t: IntValue<'ctx>,
) -> R<(IntValue<'ctx>, Vec<FloatValue<'ctx>>)> {
    let base = kb.add(kb.i(GEMM_ACC), kb.mul(t, kb.i(32))?)?;
    let r = (0..32)
        .map(|i| kb.load(acc, kb.add(base, kb.i(i))?))
        .collect::<R<Vec<_>>>()?;
    Ok((base, r))
}

/// One chunk of 16 input channels into CTA thread `t`'s 32 accumulators, from the W tile
/// (`smem[kk * 64 + channel]`) and the X tile after it (`[kk * 64 + pixel]`).
fn gemm_chunk<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    smem: PointerValue<'ctx>,
    t: IntValue<'ctx>,
    mut r: Vec<FloatValue<'ctx>>,
) -> R<Vec<FloatValue<'ctx>>> {
    let (ty, tx) = (kb.div(t, kb.i(16))?, kb.rem(t, kb.i(16))?);
    for kk in 0..GT_K {
        let mut wv = Vec::with_capacity(8);
        for i in 0..8 {
            wv.push(kb.load(smem, kb.add(ty, kb.i(kk * GT_M + 8 * i))?)?);
        }
        let mut xv = Vec::with_capacity(4);
        for j in 0..4 {
            let at = kb.add(tx, kb.i(GT_K * GT_M + kk * GT_N + 16 * j))?;
            xv.push(kb.load(smem, at)?);
        }
        for (i, &w) in wv.iter().enumerate() {
            for (j, &x) in xv.iter().enumerate() {
                let k = 4 * i + j;
                r[k] = kb.fadd(r[k], kb.fmul(w, x)?)?;
            }
        }
    }
    Ok(r)
}

/// The register-tiled forms of a plain convolution with known extents on 8-lane targets,
/// if one applies.
fn conv_tiled(
    kb: &mut Kb,
    a: &secc_ir::Conv2dAttrs,
    x: &[Dim],
    [c, h, wd]: [u64; 3],
    [o, kh, kw]: [u64; 3],
    [oh, ow]: [u64; 2],
    bias: bool,
) -> Option<R<()>> {
    let sw = a.strides[1];
    let pointwise = kh == 1 && kw == 1 && a.strides == [1, 1] && a.pads == [0; 4];
    let pbias = bias.then(|| kb.args[2]);
    if pointwise && a.group == 1 && kb.width() == 8 {
        return Some(conv_pointwise_tiled(
            kb,
            x[0],
            c,
            o,
            h * wd,
            pbias.is_some(),
            a.act,
        ));
    }
    if !pointwise && a.group == 1 && sw <= 4 && kb.width() == 8 && kh * kw <= 49 {
        return Some(conv_direct_tiled(
            kb,
            a,
            x[0],
            [c, h, wd],
            [o, kh, kw],
            [oh, ow],
            pbias.is_some(),
        ));
    }
    if a.group == c && o == c && sw <= 4 && kb.width() == 8 && kh * kw <= 64 {
        return Some(conv_depthwise_tiled(
            kb,
            a,
            x[0],
            [c, h, wd],
            [kh, kw],
            [oh, ow],
            pbias.is_some(),
        ));
    }
    None
}

/// The activation, if any, on every lane.
fn vact_opt<'ctx>(
    kb: &Kb<'_, 'ctx>,
    act: Option<Activation>,
    v: VectorValue<'ctx>,
) -> R<VectorValue<'ctx>> {
    match act {
        Some(a) => kb.vact(a, v),
        None => Ok(v),
    }
}

/// Two vector accumulators (16 pixels) per output channel `oc0..oc0 + m`, starting at the
/// channel's bias (or 0).
fn bias_accumulators<'ctx>(
    kb: &Kb<'_, 'ctx>,
    pbias: Option<PointerValue<'ctx>>,
    oc0: IntValue<'ctx>,
    m: u64,
) -> R<Vec<inkwell::values::BasicValueEnum<'ctx>>> {
    let mut init = Vec::with_capacity(2 * m as usize);
    for k in 0..m {
        let b = match pbias {
            Some(pb) => kb.load(pb, kb.add(oc0, kb.i(k))?)?,
            None => kb.fc(0.0),
        };
        let v = kb.vec_splat(b)?;
        init.push(v.into());
        init.push(v.into());
    }
    Ok(init)
}

/// Emits `emit(m)` for a block of `m` output channels: `mb` for full blocks, and `o % mb`
/// for the last block when `mb` does not divide `o` (the block size is compile-time, so the
/// two sizes are two code paths selected by the block index).
fn channel_blocks<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    blk: IntValue<'ctx>,
    o: u64,
    mb: u64,
    emit: impl Fn(&mut Kb<'a, 'ctx>, u64) -> R<()>,
) -> R<()> {
    let rem = o % mb;
    if rem == 0 {
        return emit(kb, mb);
    }
    let last =
        kb.b.build_int_compare(inkwell::IntPredicate::EQ, blk, kb.i(o.div_ceil(mb) - 1), "")?;
    let then_bb = kb.ctx.append_basic_block(kb.f, "last_blk");
    let else_bb = kb.ctx.append_basic_block(kb.f, "full_blk");
    let join = kb.ctx.append_basic_block(kb.f, "blk_join");
    kb.b.build_conditional_branch(last, then_bb, else_bb)?;
    kb.b.position_at_end(then_bb);
    emit(kb, rem)?;
    kb.b.build_unconditional_branch(join)?;
    kb.b.position_at_end(else_bb);
    emit(kb, mb)?;
    kb.b.build_unconditional_branch(join)?;
    kb.b.position_at_end(join);
    Ok(())
}

/// A 1x1 convolution is `Y[n] = W X[n] + b` with X `[C, HW]`: register-tiled as blocks of
/// 4 output channels x 16 pixels (8 vector accumulators), streaming one input channel at a
/// time, so each loaded pixel vector feeds 4 FMAs and the output is written once. Pixel tails
/// (HW % 16) use a scalar dot product per output.
fn conv_pointwise_tiled<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    n: Dim,
    c: u64,
    o: u64,
    hw: u64,
    bias: bool,
    act: Option<Activation>,
) -> R<()> {
    const MB: u64 = 6; // output channels per block
    const PT: u64 = 16; // pixels per tile (two 8-lane vectors)
    let (px, pw) = (kb.args[0], kb.args[1]);
    let pbias = bias.then(|| kb.args[2]);
    let dst = kb.args[if bias { 3 } else { 2 }];
    let nblk = o.div_ceil(MB);
    let ntile = hw / PT;
    let tail = hw % PT;
    let tiles = ntile + u64::from(tail > 0);
    let units = kb.mul(kb.dim(n)?, kb.i(nblk * tiles))?;
    let (lo, hi) = kb.split(units)?;
    kb.for_loop(lo, hi, |kb, u| {
        let t = kb.rem(u, kb.i(tiles))?;
        let rest = kb.div(u, kb.i(tiles))?;
        let blk = kb.rem(rest, kb.i(nblk))?;
        let img = kb.div(rest, kb.i(nblk))?;
        let oc0 = kb.mul(blk, kb.i(MB))?;
        let xb = kb.mul(img, kb.i(c * hw))?;
        let ob = kb.mul(kb.add(kb.mul(img, kb.i(o))?, oc0)?, kb.i(hw))?;
        // number of channels in this block: MB, or o % MB for the last block
        let emit_block = |kb: &mut Kb<'a, 'ctx>, m: u64| -> R<()> {
            // full tiles load plainly; the last, partial tile (hw % 16 pixels) with lane masks
            let tile = |kb: &mut Kb<'a, 'ctx>, masked: bool| -> R<()> {
                let p0 = kb.mul(t, kb.i(PT))?;
                let (m0, m1) = if masked {
                    (
                        Some(kb.lane_mask(p0, kb.i(0), kb.i(hw))?),
                        Some(kb.lane_mask(kb.add(p0, kb.i(8))?, kb.i(0), kb.i(hw))?),
                    )
                } else {
                    (None, None)
                };
                let init = bias_accumulators(kb, pbias, oc0, m)?;
                let acc = kb.for_carry(kb.i(0), kb.i(c), init, |kb, ic, acc| {
                    let xi = kb.add(kb.add(xb, kb.mul(ic, kb.i(hw))?)?, p0)?;
                    let x0 = kb.vec_load_strided(px, xi, 1, m0)?;
                    let x1 = kb.vec_load_strided(px, kb.add(xi, kb.i(8))?, 1, m1)?;
                    let mut out = Vec::with_capacity(acc.len());
                    for k in 0..m {
                        let wi = kb.add(kb.mul(kb.add(oc0, kb.i(k))?, kb.i(c))?, ic)?;
                        let wv = kb.vec_splat(kb.load(pw, wi)?)?;
                        out.push(
                            kb.vec_fma(wv, x0, acc[2 * k as usize].into_vector_value())?
                                .into(),
                        );
                        out.push(
                            kb.vec_fma(wv, x1, acc[2 * k as usize + 1].into_vector_value())?
                                .into(),
                        );
                    }
                    Ok(out)
                })?;
                for k in 0..m {
                    let oi = kb.add(kb.add(ob, kb.i(k * hw))?, p0)?;
                    let a0 = vact_opt(kb, act, acc[2 * k as usize].into_vector_value())?;
                    let a1 = vact_opt(kb, act, acc[2 * k as usize + 1].into_vector_value())?;
                    match (m0, m1) {
                        (Some(m0), Some(m1)) => {
                            kb.vec_store_masked(dst, oi, a0, m0)?;
                            kb.vec_store_masked(dst, kb.add(oi, kb.i(8))?, a1, m1)?;
                        }
                        _ => {
                            kb.vec_store(dst, oi, a0)?;
                            kb.vec_store(dst, kb.add(oi, kb.i(8))?, a1)?;
                        }
                    }
                }
                Ok(())
            };
            let full_tile = kb.lt(t, kb.i(ntile))?;
            kb.if_then(full_tile, |kb| tile(kb, false))?;
            if tail > 0 {
                let is_tail =
                    kb.b.build_int_compare(inkwell::IntPredicate::EQ, t, kb.i(ntile), "")?;
                kb.if_then(is_tail, |kb| tile(kb, true))?;
            }
            Ok(())
        };
        channel_blocks(kb, blk, o, MB, emit_block)
    })
}

/// A 16-column tile of a tiled convolution is interior when every tap column it reads lies
/// inside the input row (`ix0` is its first input column before the tap and padding
/// offsets) and all 16 outputs exist; other tiles take masked loads and stores.
fn tile_interior<'ctx>(
    kb: &Kb<'_, 'ctx>,
    ox0: IntValue<'ctx>,
    ix0: IntValue<'ctx>,
    [pl, w, ow]: [u64; 3],
    [kw, dw, sw]: [u64; 3],
) -> R<IntValue<'ctx>> {
    let lo_ok =
        kb.b.build_int_compare(inkwell::IntPredicate::SGE, ix0, kb.i(pl), "")?;
    let last_col = kb.add(ix0, kb.i(16 * sw - 1 + (kw - 1) * dw))?;
    let hi_ok = kb.lt(last_col, kb.i(w + pl))?;
    let full = kb.b.build_int_compare(
        inkwell::IntPredicate::SLE,
        kb.add(ox0, kb.i(16))?,
        kb.i(ow),
        "",
    )?;
    Ok(kb
        .b
        .build_and(kb.b.build_and(lo_ok, hi_ok, "")?, full, "")?)
}

/// For a border tile: per tap column, the masks of its two strided loads (the columns read
/// must lie inside the row). Empty for interior tiles.
fn column_masks<'ctx>(
    kb: &Kb<'_, 'ctx>,
    masked: bool,
    ix0: IntValue<'ctx>,
    [pl, w]: [u64; 2],
    [kw, dw, sw]: [u64; 3],
) -> R<Vec<(VectorValue<'ctx>, VectorValue<'ctx>)>> {
    if !masked {
        return Ok(vec![]);
    }
    (0..kw)
        .map(|kx| {
            let start = kb.sub(kb.add(ix0, kb.i(kx * dw))?, kb.i(pl))?;
            Ok((
                kb.wide_mask(start, kb.i(0), kb.i(w), sw)?,
                kb.wide_mask(kb.add(start, kb.i(8 * sw))?, kb.i(0), kb.i(w), sw)?,
            ))
        })
        .collect()
}

/// The 16 input columns of one tap of a tile (two 8-lane strided loads, masked at borders),
/// zero when the input row lies in the padding (`valid` false).
fn load_tile_row<'ctx>(
    kb: &Kb<'_, 'ctx>,
    px: PointerValue<'ctx>,
    xi: IntValue<'ctx>,
    sw: u64,
    masks: Option<&(VectorValue<'ctx>, VectorValue<'ctx>)>,
    valid: IntValue<'ctx>,
) -> R<(VectorValue<'ctx>, VectorValue<'ctx>)> {
    let x0 = kb.vec_load_strided(px, xi, sw, masks.map(|m| m.0))?;
    let x1 = kb.vec_load_strided(px, kb.add(xi, kb.i(8 * sw))?, sw, masks.map(|m| m.1))?;
    let zero = kb.vec_splat(kb.fc(0.0))?;
    Ok((
        kb.b.build_select(valid, x0, zero, "")?.into_vector_value(),
        kb.b.build_select(valid, x1, zero, "")?.into_vector_value(),
    ))
}

/// A KxK convolution (any padding and dilation, column stride up to 4), register-tiled like
/// [`conv_pointwise_tiled`]: a work unit is 4 output channels x 16 output columns of one
/// output row; the accumulators stay in vector registers over all input channels and taps.
/// Strided columns are read as one contiguous load and a shuffle. Rows outside the image are
/// masked; tiles whose columns reach into the padding use masked loads.
fn conv_direct_tiled<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    a: &secc_ir::Conv2dAttrs,
    n: Dim,
    [c, h, w]: [u64; 3],
    [o, kh, kw]: [u64; 3],
    [oh, ow]: [u64; 2],
    bias: bool,
) -> R<()> {
    const MB: u64 = 6;
    const PT: u64 = 16;
    let (px, pw) = (kb.args[0], kb.args[1]);
    let pbias = bias.then(|| kb.args[2]);
    let dst = kb.args[if bias { 3 } else { 2 }];
    let [dh, dw] = a.dilations;
    let [sh, sw] = a.strides;
    let (pt, pl) = (a.pads[0], a.pads[1]);
    let nblk = o.div_ceil(MB);
    let ntx = ow.div_ceil(PT);
    let units = kb.mul(kb.dim(n)?, kb.i(nblk * oh * ntx))?;
    let (lo, hi) = kb.split(units)?;
    kb.for_loop(lo, hi, |kb, u| {
        let tx = kb.rem(u, kb.i(ntx))?;
        let r = kb.div(u, kb.i(ntx))?;
        let oy = kb.rem(r, kb.i(oh))?;
        let r2 = kb.div(r, kb.i(oh))?;
        let blk = kb.rem(r2, kb.i(nblk))?;
        let img = kb.div(r2, kb.i(nblk))?;
        let oc0 = kb.mul(blk, kb.i(MB))?;
        let ox0 = kb.mul(tx, kb.i(PT))?;
        // first input column of the tile (before the tap offset)
        let ix0 = kb.mul(ox0, kb.i(sw))?;
        let xb = kb.mul(img, kb.i(c * h * w))?;
        // output element (k, oy, ox) of this block
        let orow = kb.add(
            kb.mul(kb.add(kb.mul(img, kb.i(o))?, oc0)?, kb.i(oh * ow))?,
            kb.mul(oy, kb.i(ow))?,
        )?;
        let emit_block = |kb: &mut Kb<'a, 'ctx>, m: u64| -> R<()> {
            // interior: every tap of all 16 columns reads inside the row, and the tile is full
            let interior = tile_interior(kb, ox0, ix0, [pl, w, ow], [kw, dw, sw])?;
            // one body for both cases: interior tiles load plainly, border tiles with lane
            // masks (columns inside the row, and inside the output for the stores)
            let tile = |kb: &mut Kb<'a, 'ctx>, masked: bool| -> R<()> {
                let init = bias_accumulators(kb, pbias, oc0, m)?;
                let masks = column_masks(kb, masked, ix0, [pl, w], [kw, dw, sw])?;
                let acc = kb.for_carry(kb.i(0), kb.i(c), init, |kb, ic, acc| {
                    let mut acc: Vec<VectorValue> =
                        acc.into_iter().map(|v| v.into_vector_value()).collect();
                    let xc = kb.add(xb, kb.mul(ic, kb.i(h * w))?)?;
                    for ky in 0..kh {
                        let iy = kb.sub(kb.add(kb.mul(oy, kb.i(sh))?, kb.i(ky * dh))?, kb.i(pt))?;
                        let valid = kb.b.build_and(
                            kb.b.build_int_compare(inkwell::IntPredicate::SGE, iy, kb.i(0), "")?,
                            kb.lt(iy, kb.i(h))?,
                            "",
                        )?;
                        let iyc = kb.imax(kb.imin(iy, kb.i(h - 1))?, kb.i(0))?;
                        let xrow = kb.add(xc, kb.mul(iyc, kb.i(w))?)?;
                        for kx in 0..kw {
                            let xi =
                                kb.sub(kb.add(xrow, kb.add(ix0, kb.i(kx * dw))?)?, kb.i(pl))?;
                            let (x0, x1) =
                                load_tile_row(kb, px, xi, sw, masks.get(kx as usize), valid)?;
                            for k in 0..m {
                                let wi = kb.add(
                                    kb.mul(
                                        kb.add(kb.mul(kb.add(oc0, kb.i(k))?, kb.i(c))?, ic)?,
                                        kb.i(kh * kw),
                                    )?,
                                    kb.i(ky * kw + kx),
                                )?;
                                let wv = kb.vec_splat(kb.load(pw, wi)?)?;
                                acc[2 * k as usize] = kb.vec_fma(wv, x0, acc[2 * k as usize])?;
                                acc[2 * k as usize + 1] =
                                    kb.vec_fma(wv, x1, acc[2 * k as usize + 1])?;
                            }
                        }
                    }
                    Ok(acc.into_iter().map(|v| v.into()).collect())
                })?;
                let (s0, s1) = (
                    kb.lane_mask(ox0, kb.i(0), kb.i(ow))?,
                    kb.lane_mask(kb.add(ox0, kb.i(8))?, kb.i(0), kb.i(ow))?,
                );
                for k in 0..m {
                    let oi = kb.add(kb.add(orow, kb.i(k * oh * ow))?, ox0)?;
                    let (a0, a1) = (
                        vact_opt(kb, a.act, acc[2 * k as usize].into_vector_value())?,
                        vact_opt(kb, a.act, acc[2 * k as usize + 1].into_vector_value())?,
                    );
                    if masked {
                        kb.vec_store_masked(dst, oi, a0, s0)?;
                        kb.vec_store_masked(dst, kb.add(oi, kb.i(8))?, a1, s1)?;
                    } else {
                        kb.vec_store(dst, oi, a0)?;
                        kb.vec_store(dst, kb.add(oi, kb.i(8))?, a1)?;
                    }
                }
                Ok(())
            };
            kb.if_else(interior, |kb| tile(kb, false), |kb| tile(kb, true))
        };
        channel_blocks(kb, blk, o, MB, emit_block)
    })
}

/// Depthwise convolution (one filter per channel), vectorised over 16 output columns and
/// register-blocked over 4 output rows of one channel: each input row of the block's window
/// is loaded once per tap column and feeds every output row that uses it (up to 4 FMAs per
/// load instead of 1). Strided columns are one contiguous load and a shuffle; tiles reaching
/// into the padding use masked loads; rows outside the image read as zero.
fn conv_depthwise_tiled<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    a: &secc_ir::Conv2dAttrs,
    n: Dim,
    [c, h, w]: [u64; 3],
    [kh, kw]: [u64; 2],
    [oh, ow]: [u64; 2],
    bias: bool,
) -> R<()> {
    const PT: u64 = 16;
    const RB: u64 = 4; // output rows per unit
    let (px, pw) = (kb.args[0], kb.args[1]);
    let pbias = bias.then(|| kb.args[2]);
    let dst = kb.args[if bias { 3 } else { 2 }];
    let [dh, dw] = a.dilations;
    let [sh, sw] = a.strides;
    let (pt, pl) = (a.pads[0], a.pads[1]);
    let ntx = ow.div_ceil(PT);
    let nry = oh.div_ceil(RB);
    let units = kb.mul(kb.dim(n)?, kb.i(c * nry * ntx))?;
    let (lo, hi) = kb.split(units)?;
    // input rows of one block's window: output row r, tap row ky read window row r*sh + ky*dh;
    // only the rows some tap reads, however far apart a dilation puts them
    let mut window_rows: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = Default::default();
    for r in 0..RB {
        for ky in 0..kh {
            window_rows
                .entry(r * sh + ky * dh)
                .or_default()
                .push((r, ky));
        }
    }
    kb.for_loop(lo, hi, |kb, u| {
        let tx = kb.rem(u, kb.i(ntx))?;
        let r = kb.div(u, kb.i(ntx))?;
        let by = kb.rem(r, kb.i(nry))?;
        let plane = kb.div(r, kb.i(nry))?; // img * c + ch
        let ch = kb.rem(plane, kb.i(c))?;
        let oy0 = kb.mul(by, kb.i(RB))?;
        let ox0 = kb.mul(tx, kb.i(PT))?;
        let ix0 = kb.mul(ox0, kb.i(sw))?;
        let iy0 = kb.sub(kb.mul(oy0, kb.i(sh))?, kb.i(pt))?;
        let xplane = kb.mul(plane, kb.i(h * w))?;
        let wbase = kb.mul(ch, kb.i(kh * kw))?;
        let oplane = kb.mul(plane, kb.i(oh * ow))?;
        let interior = tile_interior(kb, ox0, ix0, [pl, w, ow], [kw, dw, sw])?;
        let tile = |kb: &mut Kb<'a, 'ctx>, masked: bool| -> R<()> {
            let b0 = match pbias {
                Some(pb) => kb.load(pb, ch)?,
                None => kb.fc(0.0),
            };
            let init = kb.vec_splat(b0)?;
            let mut acc = vec![(init, init); RB as usize];
            let masks = column_masks(kb, masked, ix0, [pl, w], [kw, dw, sw])?;
            // (output row, tap row) pairs that read window row t
            for (&t, users) in &window_rows {
                let iy = kb.add(iy0, kb.i(t))?;
                let valid = kb.b.build_and(
                    kb.b.build_int_compare(inkwell::IntPredicate::SGE, iy, kb.i(0), "")?,
                    kb.lt(iy, kb.i(h))?,
                    "",
                )?;
                let iyc = kb.imax(kb.imin(iy, kb.i(h - 1))?, kb.i(0))?;
                let xrow = kb.add(xplane, kb.mul(iyc, kb.i(w))?)?;
                for kx in 0..kw {
                    let start = kb.sub(kb.add(ix0, kb.i(kx * dw))?, kb.i(pl))?;
                    let xi = kb.add(xrow, start)?;
                    let (x0, x1) = load_tile_row(kb, px, xi, sw, masks.get(kx as usize), valid)?;
                    for &(r, ky) in users {
                        let wv = kb.vec_splat(kb.load(pw, kb.add(wbase, kb.i(ky * kw + kx))?)?)?;
                        let (a0, a1) = acc[r as usize];
                        acc[r as usize] = (kb.vec_fma(wv, x0, a0)?, kb.vec_fma(wv, x1, a1)?);
                    }
                }
            }
            for (r, &(a0, a1)) in acc.iter().enumerate() {
                let oy = kb.add(oy0, kb.i(r as u64))?;
                let a0 = vact_opt(kb, a.act, a0)?;
                let a1 = vact_opt(kb, a.act, a1)?;
                kb.if_then(kb.lt(oy, kb.i(oh))?, |kb| {
                    let oi = kb.add(kb.add(oplane, kb.mul(oy, kb.i(ow))?)?, ox0)?;
                    if masked {
                        let s0 = kb.lane_mask(ox0, kb.i(0), kb.i(ow))?;
                        let s1 = kb.lane_mask(kb.add(ox0, kb.i(8))?, kb.i(0), kb.i(ow))?;
                        kb.vec_store_masked(dst, oi, a0, s0)?;
                        kb.vec_store_masked(dst, kb.add(oi, kb.i(8))?, a1, s1)
                    } else {
                        kb.vec_store(dst, oi, a0)?;
                        kb.vec_store(dst, kb.add(oi, kb.i(8))?, a1)
                    }
                })?;
            }
            Ok(())
        };
        kb.if_else(interior, |kb| tile(kb, false), |kb| tile(kb, true))
    })
}

/// The fused SE block, for a block of B images at a time (B = 1 on NVPTX, one CTA per
/// image): (1) each thread of the group pools its channel range of every image of the block;
/// barrier; (2) FC1 + inner activation, split over the R hidden units (each w1 row is used for
/// all B images while it is in L1); barrier; (3) each thread computes FC2 for its channel
/// range as axpys over the transposed w2 (vectorised over channels), the gate, and writes
/// `y = x * gate` for the same channel range it pooled, so that slice of X is still in its
/// cache (blocked, with a residual epilogue: `act(x * gate + r)`). Gates overwrite the pooled
/// values of the same channels. The gate step (`gate_only`) ends after the gates, which it
/// writes to y `[N, C]`: its consumer does the scale.
fn squeeze_excite<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    a: &SeAttrs,
    x: &[Dim],
    r: u64,
    [block, lanes]: [u64; 2],
    gate_only: bool,
) -> R<()> {
    let c = known(x[1])?;
    // pixels per channel: a constant unless H or W is symbolic
    let hw = kb.mul(kb.dim(x[2])?, kb.dim(x[3])?)?;
    let (px, pw1, pb1, pw2t, pb2) = (kb.args[0], kb.args[1], kb.args[2], kb.args[3], kb.args[4]);
    // a residual, then x's channel means (pooled by the producer), come before y and the
    // scratch
    let pres = a.residual_slot().map(|s| kb.args[s]);
    let pmeans = a.means_slot().map(|s| kb.args[s]);
    let out = a.operand_count();
    let py = kb.args[out];
    let scratch = match kb.shared_scratch()? {
        Some(s) => s,
        None => kb.args[out + 1],
    };
    // the verifier's layout rule: an SE epilogue only on blocked tensors
    if lanes == 1 && (a.residual || a.act.is_some()) {
        return Err(unsupported(
            "an SE block's residual epilogue needs a blocked layout",
        ));
    }
    let (inner, gate): (Activation, Activation) = (a.inner, a.gate);
    let nimg = kb.dim(x[0])?;
    // blocked x (`lanes` > 1): threads own whole channel blocks; the pooled values and gates
    // of an image are `cp` floats apart, padding lanes included
    let nblk = c.div_ceil(lanes);
    let cp = nblk * lanes;
    let nl = u32::try_from(lanes).map_err(|_| unsupported("channel block too wide"))?;
    let hid0 = block * cp; // hidden values start after the pooled/gate area
                           // one block: images [i0, i0 + nb)
    let body = |kb: &mut Kb<'a, 'ctx>, i0: IntValue<'ctx>, nb: IntValue<'ctx>| -> R<()> {
        let (blo, bhi) = kb.split_by(kb.i(nblk), kb.group_tid, kb.group_n)?;
        let clo = kb.mul(blo, kb.i(lanes))?;
        let chi = if lanes > 1 {
            kb.imin(kb.mul(bhi, kb.i(lanes))?, kb.i(c))?
        } else {
            bhi
        };
        let inv_hw = kb.recip(hw)?;
        kb.for_loop(kb.i(0), nb, |kb, b| {
            let xb = kb.mul(kb.add(i0, b)?, kb.mul(kb.i(cp), hw)?)?;
            let sb = kb.mul(b, kb.i(cp))?;
            if let Some(pm) = pmeans {
                // the producer pooled x: its means, padding lanes of the last block 0
                let hi = kb.mul(bhi, kb.i(lanes))?;
                let mb = kb.mul(kb.add(i0, b)?, kb.i(c))?;
                return kb.for_loop(clo, hi, |kb, ch| {
                    let real = kb.lt(ch, kb.i(c))?;
                    let m = kb.load(pm, kb.add(mb, kb.imin(ch, kb.i(c - 1))?)?)?;
                    let m = kb.b.build_select(real, m, kb.fc(0.0), "")?;
                    kb.store(scratch, kb.add(sb, ch)?, m.into_float_value())
                });
            }
            if lanes > 1 {
                return kb.for_loop(blo, bhi, |kb, cb| {
                    let base = kb.add(xb, kb.mul(cb, kb.mul(hw, kb.i(lanes))?)?)?;
                    let zero = kb.vec_splat_n(kb.fc(0.0), nl)?;
                    let s = kb.vec_sum(kb.i(0), hw, zero, |kb, p| {
                        kb.vec_load_n(px, kb.add(base, kb.mul(p, kb.i(lanes))?)?, nl)
                    })?;
                    let m = kb.b.build_float_mul(s, kb.vec_splat_n(inv_hw, nl)?, "")?;
                    kb.vec_store(scratch, kb.add(sb, kb.mul(cb, kb.i(lanes))?)?, m)
                });
            }
            kb.for_loop(clo, chi, |kb, ch| {
                let base = kb.add(xb, kb.mul(ch, hw)?)?;
                let s = kb.sum_contig(px, base, hw)?;
                kb.store(scratch, kb.add(sb, ch)?, kb.fmul(s, inv_hw)?)
            })
        })?;
        kb.barrier()?;
        let (rlo, rhi) = kb.split_by(kb.i(r), kb.group_tid, kb.group_n)?;
        // FC1 of rows `js`, each image of the block: hidden = inner(b1 + w1[j, :] . pooled)
        let fc1 = |kb: &mut Kb<'a, 'ctx>, js: &[IntValue<'ctx>]| -> R<()> {
            kb.for_loop(kb.i(0), nb, |kb, b| {
                let init = js.iter().map(|j| kb.load(pb1, *j)).collect::<R<Vec<_>>>()?;
                let x = (scratch, kb.mul(b, kb.i(cp))?);
                let sums = dot_rows(kb, c, pw1, js, x, &init)?;
                for (j, s) in js.iter().zip(sums) {
                    let v = kb.act(inner, s)?;
                    let hi = kb.add(kb.i(hid0), kb.add(kb.mul(b, kb.i(r))?, *j)?)?;
                    kb.store(scratch, hi, v)?;
                }
                Ok(())
            })
        };
        // FC_STREAMS rows at once, a quarter of this thread's rows apart, then the rest
        let quarter = kb.div(kb.sub(rhi, rlo)?, kb.i(FC_STREAMS))?;
        kb.for_loop(kb.i(0), quarter, |kb, t| {
            let js = (0..FC_STREAMS)
                .map(|k| kb.add(kb.add(rlo, t)?, kb.mul(quarter, kb.i(k))?))
                .collect::<R<Vec<_>>>()?;
            fc1(kb, &js)
        })?;
        let rest = kb.add(rlo, kb.mul(quarter, kb.i(FC_STREAMS))?)?;
        kb.for_loop(rest, rhi, |kb, j| fc1(kb, &[j]))?;
        kb.barrier()?;
        // FC2: gates = b2 + sum_j w2t[j, :] * hidden[b, j], j outermost so each w2t row
        // slice is reused from L1 for every image of the block
        kb.for_loop(kb.i(0), nb, |kb, b| {
            let sb = kb.mul(b, kb.i(cp))?;
            kb.for_loop(clo, chi, |kb, ch| {
                kb.store(scratch, kb.add(sb, ch)?, kb.load(pb2, ch)?)
            })
        })?;
        let fc2 = |kb: &mut Kb<'a, 'ctx>, js: &[IntValue<'ctx>]| -> R<()> {
            kb.for_loop(kb.i(0), nb, |kb, b| {
                let hs = js
                    .iter()
                    .map(|j| {
                        let hi = kb.add(kb.i(hid0), kb.add(kb.mul(b, kb.i(r))?, *j)?)?;
                        kb.load(scratch, hi)
                    })
                    .collect::<R<Vec<_>>>()?;
                let g0 = kb.mul(b, kb.i(cp))?;
                axpy_rows(kb, c, pw2t, js, &hs, (scratch, g0), [clo, chi])
            })
        };
        // FC_STREAMS rows at once, a quarter of the rows apart, then the rest
        let quarter = r / FC_STREAMS;
        kb.for_loop(kb.i(0), kb.i(quarter), |kb, t| {
            let js = (0..FC_STREAMS)
                .map(|k| kb.add(t, kb.i(k * quarter)))
                .collect::<R<Vec<_>>>()?;
            fc2(kb, &js)
        })?;
        kb.for_loop(kb.i(quarter * FC_STREAMS), kb.i(r), |kb, j| fc2(kb, &[j]))?;
        kb.for_loop(kb.i(0), nb, |kb, b| {
            let sb = kb.mul(b, kb.i(cp))?;
            let yb = kb.mul(kb.add(i0, b)?, kb.i(c))?;
            kb.for_loop(clo, chi, |kb, ch| {
                let gi = kb.add(sb, ch)?;
                let v = kb.act(gate, kb.load(scratch, gi)?)?;
                if gate_only {
                    return kb.store(py, kb.add(yb, ch)?, v);
                }
                kb.store(scratch, gi, v)
            })?;
            if gate_only {
                return Ok(());
            }
            let xb = kb.mul(kb.add(i0, b)?, kb.mul(kb.i(cp), hw)?)?;
            if lanes > 1 {
                return kb.for_loop(blo, bhi, |kb, cb| {
                    let g = kb.vec_load_n(scratch, kb.add(sb, kb.mul(cb, kb.i(lanes))?)?, nl)?;
                    let base = kb.add(xb, kb.mul(cb, kb.mul(hw, kb.i(lanes))?)?)?;
                    kb.for_loop(kb.i(0), hw, |kb, p| {
                        let i = kb.add(base, kb.mul(p, kb.i(lanes))?)?;
                        let mut v = kb.b.build_float_mul(kb.vec_load_n(px, i, nl)?, g, "")?;
                        if let Some(pr) = pres {
                            v = kb.b.build_float_add(v, kb.vec_load_n(pr, i, nl)?, "")?;
                        }
                        if let Some(act) = a.act {
                            v = kb.vact(act, v)?;
                        }
                        kb.vec_store(py, i, v)
                    })
                });
            }
            kb.for_loop(clo, chi, |kb, ch| {
                let g = kb.load(scratch, kb.add(sb, ch)?)?;
                let base = kb.add(xb, kb.mul(ch, hw)?)?;
                kb.scale_contig(px, py, base, hw, g)
            })
        })
    };
    match kb.block_id {
        None => {
            let nblocks = kb.div(kb.add(nimg, kb.i(block - 1))?, kb.i(block))?;
            kb.for_loop(kb.i(0), nblocks, |kb, bi| {
                let i0 = kb.mul(bi, kb.i(block))?;
                let nb = kb.imin(kb.i(block), kb.sub(nimg, i0)?)?;
                body(kb, i0, nb)
            })
        }
        Some(img) => {
            let ok = kb.lt(img, nimg)?;
            kb.if_then(ok, |kb| body(kb, img, kb.i(1)))
        }
    }
}

/// The GPU's SE pool (`se_pool`): the mean of each of `planes` contiguous `h * w` planes.
/// PTX: one CTA per plane; its threads stride over the plane (adjacent threads read
/// adjacent floats) and [`Kb::group_sum`] adds their sums. CPU (the interpreter's check of
/// this form): each thread takes a share of the planes.
fn plane_mean(kb: &mut Kb, planes: Dim, h: Dim, w: Dim) -> R<()> {
    let hw = kb.mul(kb.dim(h)?, kb.dim(w)?)?;
    let (px, py) = (kb.args[0], kb.args[1]);
    let np = kb.dim(planes)?;
    let inv = kb.recip(hw)?;
    let Some(plane) = kb.block_id else {
        let (lo, hi) = kb.split(np)?;
        return kb.for_loop(lo, hi, |kb, q| {
            let s = kb.sum_contig(px, kb.mul(q, hw)?, hw)?;
            kb.store(py, q, kb.fmul(s, inv)?)
        });
    };
    // uniform over the CTA, so every thread reaches group_sum's barrier
    kb.if_then(kb.lt(plane, np)?, |kb| {
        let base = kb.mul(plane, hw)?;
        let part = kb.group_strided_sum(hw, kb.group_tid, kb.group_n, |kb, i| {
            kb.load(px, kb.add(base, i)?)
        })?;
        let s = kb.group_sum(part)?;
        let first =
            kb.b.build_int_compare(IntPredicate::EQ, kb.group_tid, kb.i(0), "")?;
        kb.if_then(first, |kb| kb.store(py, plane, kb.fmul(s, inv)?))
    })
}

/// The GPU's SE FC layers (`se_fc`): `y[i, o] = act(b[o] + sum_k W[o, k] v[i, k])`. PTX:
/// one warp per output row, [`WARPS`] rows per CTA, one CTA per (image, row group); the
/// lanes stride the row (coalesced reads of W as stored) and [`Kb::warp_sum`] adds them.
/// CPU: each thread takes a share of the (image, row) pairs.
fn row_dot<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    n: Dim,
    [rows, cols]: [u64; 2],
    act: Activation,
) -> R<()> {
    let (pv, pw, pb, py) = (kb.args[0], kb.args[1], kb.args[2], kb.args[3]);
    let nv = kb.dim(n)?;
    let out = |kb: &mut Kb<'a, 'ctx>,
               img: IntValue<'ctx>,
               o: IntValue<'ctx>,
               s: FloatValue<'ctx>|
     -> R<()> {
        let v = kb.act(act, kb.fadd(s, kb.load(pb, o)?)?)?;
        kb.store(py, kb.add(kb.mul(img, kb.i(rows))?, o)?, v)
    };
    let Some(unit) = kb.block_id else {
        let (lo, hi) = kb.split(kb.mul(nv, kb.i(rows))?)?;
        return kb.for_loop(lo, hi, |kb, e| {
            let (img, o) = (kb.div(e, kb.i(rows))?, kb.rem(e, kb.i(rows))?);
            let one = kb.i(1);
            let v0 = kb.mul(img, kb.i(cols))?;
            let s = dot(
                kb,
                kb.i(cols),
                (pw, kb.mul(o, kb.i(cols))?, one),
                (pv, v0, one),
                kb.fc(0.0),
            )?;
            out(kb, img, o, s)
        });
    };
    let groups = kb.i(rows.div_ceil(u64::from(WARPS)));
    let (img, grp) = (kb.div(unit, groups)?, kb.rem(unit, groups)?);
    let warp = kb.div(kb.group_tid, kb.i(32))?;
    let lane = kb.rem(kb.group_tid, kb.i(32))?;
    let o = kb.add(kb.mul(grp, kb.i(u64::from(WARPS)))?, warp)?;
    // uniform over each warp, so all its lanes reach the shuffles
    let live = kb.b.build_and(kb.lt(img, nv)?, kb.lt(o, kb.i(rows))?, "")?;
    kb.if_then(live, |kb| {
        let (w0, v0) = (kb.mul(o, kb.i(cols))?, kb.mul(img, kb.i(cols))?);
        let part = kb.group_strided_sum(kb.i(cols), lane, kb.i(32), |kb, k| {
            let w = kb.load(pw, kb.add(w0, k)?)?;
            kb.fmul(w, kb.load(pv, kb.add(v0, k)?)?)
        })?;
        let s = kb.warp_sum(part)?;
        let first =
            kb.b.build_int_compare(IntPredicate::EQ, lane, kb.i(0), "")?;
        kb.if_then(first, |kb| out(kb, img, o, s))
    })
}

#[cfg(test)]
mod tests {
    //! Kernel bodies stay loops: the emitted IR of a window op is bounded whatever its
    //! attributes (issue 7: a 200-tap dilated pool over 220000 columns never finished).
    #![allow(clippy::unwrap_used)]
    use crate::kb::{Flavor, Kb};
    use inkwell::context::Context;
    use secc_ir::{
        ConstData, Conv2dAttrs, ConvTransposeAttrs, Graph, Op, PoolAttrs, PoolKind, TensorType,
    };

    /// Instructions emitted (before optimisation) for every kernel of `g`, per flavour.
    fn emitted(g: &Graph) -> [usize; 2] {
        let p = crate::plan::build(g, true).unwrap();
        [Flavor::Cpu, Flavor::Ptx].map(|flavor| {
            let ctx = Context::create();
            let m = ctx.create_module("t");
            for s in &p.steps {
                let mut kb =
                    Kb::new(&ctx, &m, flavor, &s.name, s.args.len(), g.sym_names.len()).unwrap();
                super::emit(&mut kb, &s.kind).unwrap();
                kb.finish().unwrap();
            }
            m.verify().unwrap();
            m.get_functions()
                .flat_map(|f| f.get_basic_block_iter().collect::<Vec<_>>())
                .map(|b| b.get_instructions().count())
                .sum()
        })
    }

    fn pool(kind: PoolKind, w: u64, k: u64, d: u64, include_pad: bool) -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32_known(&[1, 2, 3, w]));
        let a = PoolAttrs {
            kind,
            kernel: [2, k],
            strides: [1, 1],
            pads: [1, 3, 0, 2],
            dilations: [1, d],
            ceil_mode: false,
            count_include_pad: include_pad,
        };
        let y = g
            .add_node(Op::Pool2d(a), &[x], Some("pool".into()))
            .unwrap();
        g.add_output("y", y);
        g
    }

    /// `[1, 2, h, w]` through a `[2, 2/group, kh, kw]` conv at dilation `d`.
    fn conv([h, w]: [u64; 2], [kh, kw]: [u64; 2], d: [u64; 2], group: u64) -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32_known(&[1, 2, h, w]));
        let n = (4 / group * kh * kw) as usize;
        let wt = g.add_const(
            ConstData::new(
                vec![2, 2 / group as usize, kh as usize, kw as usize],
                vec![0.5; n],
            ),
            Some("w".into()),
        );
        let a = Conv2dAttrs {
            strides: [1, 1],
            pads: [1, 4, 0, 3],
            dilations: d,
            group,
            act: None,
            residual: false,
            gated: false,
            pool: false,
        };
        let y = g
            .add_node(Op::Conv2d(a), &[x, wt], Some("conv".into()))
            .unwrap();
        g.add_output("y", y);
        g
    }

    const BUDGET: usize = 5_000;

    #[test]
    fn large_pool_windows_emit_loops_not_unrolled_taps() {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for include_pad in [false, true] {
                let n = emitted(&pool(kind, 4000, 200, 10, include_pad));
                assert!(
                    n.iter().all(|&n| n < BUDGET),
                    "{kind:?}: {n:?} instructions"
                );
            }
        }
    }

    #[test]
    fn large_conv_windows_emit_loops_not_unrolled_taps() {
        for group in [1, 2] {
            let n = emitted(&conv([3, 4000], [2, 200], [1, 10], group));
            assert!(
                n.iter().all(|&n| n < BUDGET),
                "group {group}: {n:?} instructions"
            );
        }
        // a huge dilation with few taps must not cost compile-time work per dilated row
        let n = emitted(&conv([(1 << 24) + 2, 3], [2, 3], [1 << 24, 1], 2));
        assert!(n.iter().all(|&n| n < BUDGET), "{n:?} instructions");
    }

    #[test]
    fn large_conv_transpose_windows_emit_loops_not_unrolled_taps() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::f32_known(&[1, 1, 3, 50]));
        let wt = g.add_const(ConstData::new(vec![1, 1, 40, 50], vec![0.5; 2000]), None);
        let a = ConvTransposeAttrs {
            strides: [2, 2],
            pads: [0; 4],
            dilations: [1, 1],
            output_padding: [0, 0],
            group: 1,
        };
        let y = g.add_node(Op::ConvTranspose2d(a), &[x, wt], None).unwrap();
        g.add_output("y", y);
        let n = emitted(&g);
        assert!(n.iter().all(|&n| n < BUDGET), "{n:?} instructions");
    }
}
