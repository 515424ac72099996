//! The windowed pools over plain NCHW (max and average, and MaxPool's argmax indices), the
//! form the CUDA target and unblocked CPU graphs run. With known extents and a small window
//! row count the column taps are unrolled, their ranges decided at compile time; otherwise
//! (a symbolic height or width, or a wide output) every loop takes run-time extents and each
//! tap is bounds-checked in the kernel. The blocked pools live in [`crate::blocked`].
use crate::kb::{Kb, R};
use crate::kernels::UNROLL_TAPS;
use inkwell::values::IntValue;
use secc_ir::{Dim, PoolAttrs, PoolKind};

/// The run-time extents of one pool: input `[h, w]`, output `[oh, ow]`.
struct Extents<'ctx> {
    h: IntValue<'ctx>,
    w: IntValue<'ctx>,
    oh: IntValue<'ctx>,
    ow: IntValue<'ctx>,
}

impl<'ctx> Extents<'ctx> {
    fn new(kb: &Kb<'_, 'ctx>, x: &[Dim], y: &[Dim]) -> R<Self> {
        Ok(Extents {
            h: kb.dim(x[2])?,
            w: kb.dim(x[3])?,
            oh: kb.dim(y[2])?,
            ow: kb.dim(y[3])?,
        })
    }
}

/// `i` clamped into `0..n` (so a load stays in bounds; the caller masks the value out).
fn clamp<'ctx>(kb: &Kb<'_, 'ctx>, i: IntValue<'ctx>, n: IntValue<'ctx>) -> R<IntValue<'ctx>> {
    kb.imax(kb.imin(i, kb.sub(n, kb.i(1))?)?, kb.i(0))
}

/// Windowed max or average pooling; `y` is the output shape (its extents are the shape
/// rules' expressions, ceil mode and padding included).
pub fn pool(kb: &mut Kb, a: &PoolAttrs, x: &[Dim], y: &[Dim]) -> R<()> {
    if let (Some(h), Some(w), Some(ow)) = (x[2].known(), x[3].known(), y[3].known()) {
        if ow.saturating_mul(a.kernel[0].saturating_add(a.kernel[1])) <= UNROLL_TAPS {
            return pool_unrolled(kb, a, x, y, [h, w]);
        }
    }
    pool_looped(kb, a, x, y)
}

/// [`pool`] with the output columns and their column taps unrolled (known extents).
fn pool_unrolled(kb: &mut Kb, a: &PoolAttrs, x: &[Dim], y: &[Dim], [h, w]: [u64; 2]) -> R<()> {
    let e = Extents::new(kb, x, y)?;
    let ow = y[3].known().unwrap_or(1);
    let (src, dst) = (kb.args[0], kb.args[1]);
    let planes = kb.mul(kb.dim(x[0])?, kb.dim(x[1])?)?;
    let rows = kb.mul(planes, e.oh)?;
    let (lo, hi) = kb.split(rows)?;
    let max = a.kind == PoolKind::Max;
    kb.for_loop(lo, hi, |kb, row| {
        let plane = kb.div(row, e.oh)?;
        let oy = kb.rem(row, e.oh)?;
        let sbase = kb.mul(plane, kb.i(h * w))?;
        let obase = kb.mul(row, kb.i(ow))?;
        let y0 = kb.sub(kb.mul(oy, kb.i(a.strides[0]))?, kb.i(a.pads[0]))?;
        for ox in 0..ow {
            // the column range is known at compile time; rows are bounded at run time
            let x0 = (ox * a.strides[1]) as i64 - a.pads[1] as i64;
            let cols: Vec<i64> = (0..a.kernel[1] as i64)
                .map(|k| x0 + k * a.dilations[1] as i64)
                .filter(|&c| c >= 0 && c < w as i64)
                .collect();
            let init = kb.fc(if max { f32::NEG_INFINITY } else { 0.0 });
            let acc = kb.for_acc(kb.i(0), kb.i(a.kernel[0]), init, |kb, ky, acc| {
                let iy = kb.add(y0, kb.mul(ky, kb.i(a.dilations[0]))?)?;
                let inside = kb.inside(iy, h)?;
                let rbase = kb.add(sbase, kb.mul(clamp(kb, iy, e.h)?, kb.i(w))?)?;
                let mut a2 = acc;
                for &c in &cols {
                    let v = kb.load(src, kb.add(rbase, kb.i(c as u64))?)?;
                    let n = if max {
                        kb.fmax(v, a2)?
                    } else {
                        kb.fadd(a2, v)?
                    };
                    a2 = kb.b.build_select(inside, n, a2, "")?.into_float_value();
                }
                Ok(a2)
            })?;
            let v = if max {
                acc
            } else {
                // columns are counted at compile time, rows at run time
                let nx = if a.count_include_pad {
                    (0..a.kernel[1] as i64)
                        .filter(|k| x0 + k * (a.dilations[1] as i64) < (w + a.pads[3]) as i64)
                        .count() as u64
                } else {
                    cols.len() as u64
                };
                let p = a.count_include_pad.then_some(a.pads[2]);
                let ny = taps_inside(kb, y0, [a.dilations[0], a.kernel[0]], e.h, p)?;
                average(kb, acc, ny, kb.i(nx))?
            };
            kb.store(dst, kb.add(obase, kb.i(ox))?, v)?;
        }
        Ok(())
    })
}

/// [`pool`] with run-time loops over output columns and both window axes.
fn pool_looped(kb: &mut Kb, a: &PoolAttrs, x: &[Dim], y: &[Dim]) -> R<()> {
    let e = Extents::new(kb, x, y)?;
    let (src, dst) = (kb.args[0], kb.args[1]);
    let planes = kb.mul(kb.dim(x[0])?, kb.dim(x[1])?)?;
    let (lo, hi) = kb.split(kb.mul(planes, e.oh)?)?;
    let hw = kb.mul(e.h, e.w)?;
    let max = a.kind == PoolKind::Max;
    let [kh, kw] = a.kernel;
    let [dh, dw] = a.dilations;
    kb.for_loop(lo, hi, |kb, row| {
        let plane = kb.div(row, e.oh)?;
        let oy = kb.rem(row, e.oh)?;
        let sbase = kb.mul(plane, hw)?;
        let obase = kb.mul(row, e.ow)?;
        let y0 = kb.sub(kb.mul(oy, kb.i(a.strides[0]))?, kb.i(a.pads[0]))?;
        kb.for_loop(kb.i(0), e.ow, |kb, ox| {
            let x0 = kb.sub(kb.mul(ox, kb.i(a.strides[1]))?, kb.i(a.pads[1]))?;
            let init = kb.fc(if max { f32::NEG_INFINITY } else { 0.0 });
            let acc = kb.for_acc(kb.i(0), kb.i(kh), init, |kb, ky, acc| {
                let iy = kb.add(y0, kb.mul(ky, kb.i(dh))?)?;
                let row_ok = kb.inside_n(iy, e.h)?;
                let rbase = kb.add(sbase, kb.mul(clamp(kb, iy, e.h)?, e.w)?)?;
                kb.for_acc(kb.i(0), kb.i(kw), acc, |kb, kx, acc| {
                    let ix = kb.add(x0, kb.mul(kx, kb.i(dw))?)?;
                    let ok = kb.b.build_and(row_ok, kb.inside_n(ix, e.w)?, "")?;
                    let v = kb.load(src, kb.add(rbase, clamp(kb, ix, e.w)?)?)?;
                    let n = if max {
                        kb.fmax(v, acc)?
                    } else {
                        kb.fadd(acc, v)?
                    };
                    Ok(kb.b.build_select(ok, n, acc, "")?.into_float_value())
                })
            })?;
            let v = if max {
                acc
            } else {
                let p = a.count_include_pad;
                let ny = taps_inside(kb, y0, [dh, kh], e.h, p.then_some(a.pads[2]))?;
                let nx = taps_inside(kb, x0, [dw, kw], e.w, p.then_some(a.pads[3]))?;
                average(kb, acc, ny, nx)?
            };
            kb.store(dst, kb.add(obase, ox)?, v)
        })
    })
}

/// `sum / (ny * nx)`, the divisor at least 1 (a window with no taps inside stays 0).
fn average<'ctx>(
    kb: &Kb<'_, 'ctx>,
    sum: inkwell::values::FloatValue<'ctx>,
    ny: IntValue<'ctx>,
    nx: IntValue<'ctx>,
) -> R<inkwell::values::FloatValue<'ctx>> {
    let cnt = kb.imax(kb.mul(ny, nx)?, kb.i(1))?;
    let cf = kb.b.build_signed_int_to_float(cnt, kb.ctx.f32_type(), "")?;
    kb.fdiv(sum, cf)
}

/// How many of the `n` taps `start + k * d` lie inside `0..extent`, or (when counting the
/// padding) before `extent + pad_end`: the divisor of an average pool along one axis.
fn taps_inside<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    start: IntValue<'ctx>,
    [d, n]: [u64; 2],
    extent: IntValue<'ctx>,
    pad_end: Option<u64>,
) -> R<IntValue<'ctx>> {
    let out = kb.for_carry(kb.i(0), kb.i(n), vec![kb.i(0).into()], |kb, k, c| {
        let i = kb.add(start, kb.mul(k, kb.i(d))?)?;
        let ok = match pad_end {
            Some(p) => kb.lt(i, kb.add(extent, kb.i(p))?)?,
            None => kb.inside_n(i, extent)?,
        };
        let one = kb.b.build_int_z_extend(ok, kb.ctx.i64_type(), "")?;
        Ok(vec![kb.add(c[0].into_int_value(), one)?.into()])
    })?;
    Ok(out[0].into_int_value())
}

/// MaxPool's `Indices`: one output element at a time, the window's taps in a run-time loop
/// carrying the best value and its flat input index (the first strict maximum wins, as in the
/// ONNX reference; a window without input taps keeps -1).
pub fn max_pool_indices(
    kb: &mut Kb,
    a: &PoolAttrs,
    x: &[Dim],
    y: &[Dim],
    column_major: bool,
) -> R<()> {
    let e = Extents::new(kb, x, y)?;
    let (src, dst) = (kb.args[0], kb.args[1]);
    let ohw = kb.mul(e.oh, e.ow)?;
    let hw = kb.mul(e.h, e.w)?;
    let total = kb.mul(kb.mul(kb.dim(x[0])?, kb.dim(x[1])?)?, ohw)?;
    let (lo, hi) = kb.split(total)?;
    let (kh, kw) = (a.kernel[0], a.kernel[1]);
    kb.for_loop(lo, hi, |kb, el| {
        let plane = kb.div(el, ohw)?;
        let r = kb.rem(el, ohw)?;
        let y0 = kb.sub(
            kb.mul(kb.div(r, e.ow)?, kb.i(a.strides[0]))?,
            kb.i(a.pads[0]),
        )?;
        let x0 = kb.sub(
            kb.mul(kb.rem(r, e.ow)?, kb.i(a.strides[1]))?,
            kb.i(a.pads[1]),
        )?;
        let sbase = kb.mul(plane, hw)?;
        let init = vec![kb.fc(f32::NEG_INFINITY).into(), kb.i(u64::MAX).into()];
        let out = kb.for_carry(kb.i(0), kb.i(kh * kw), init, |kb, t, c| {
            let (best, idx) = (c[0].into_float_value(), c[1].into_int_value());
            let iy = kb.add(y0, kb.mul(kb.div(t, kb.i(kw))?, kb.i(a.dilations[0]))?)?;
            let ix = kb.add(x0, kb.mul(kb.rem(t, kb.i(kw))?, kb.i(a.dilations[1]))?)?;
            let inside =
                kb.b.build_and(kb.inside_n(iy, e.h)?, kb.inside_n(ix, e.w)?, "")?;
            let (iyc, ixc) = (clamp(kb, iy, e.h)?, clamp(kb, ix, e.w)?);
            let v = kb.load(src, kb.add(sbase, kb.add(kb.mul(iyc, e.w)?, ixc)?)?)?;
            let gt =
                kb.b.build_float_compare(inkwell::FloatPredicate::OGT, v, best, "")?;
            let first = kb.lt(idx, kb.i(0))?;
            let take = kb.b.build_and(inside, kb.b.build_or(gt, first, "")?, "")?;
            let within = if column_major {
                kb.add(kb.mul(ixc, e.h)?, iyc)?
            } else {
                kb.add(kb.mul(iyc, e.w)?, ixc)?
            };
            let pos = kb.add(sbase, within)?;
            Ok(vec![
                kb.b.build_select(take, v, best, "")?,
                kb.b.build_select(take, pos, idx, "")?,
            ])
        })?;
        kb.store_i64(dst, el, out[1].into_int_value())
    })
}
