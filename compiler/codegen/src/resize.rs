//! The resize kernels (plain NCHW and blocked `nChw{c}c`) and where they find their source
//! taps: per spatial axis, a table the plan computed at compile time when the axis's input
//! and output extents are known (so a static model pays nothing), or the coordinate
//! transform of [`secc_ir::ResizeAttrs::taps`] evaluated in the kernel, the same f32
//! operations in the same order and without fast-math flags, so both give the same taps.
use crate::kb::{Kb, R};
use crate::CodegenError;
use inkwell::values::{FloatValue, IntValue, PointerValue, VectorValue};
use inkwell::{FloatPredicate, IntPredicate};
use secc_ir::{CoordMode, Dim, NearestMode, ResizeAttrs, ResizeMode};

/// The input and output extents of `axis` (0 = H, 1 = W) of a resize of `x` when the plan
/// stores a tap table for it: when both are known. The table is then an argument, after the
/// input and before the output.
pub fn table_extents(a: &ResizeAttrs, x: &[Dim], axis: usize) -> Option<(u64, u64)> {
    Some((x[2 + axis].known()?, a.sizes[axis].known()?))
}

/// One output coordinate's source: first and second index, and the weight of the second.
type Tap<'ctx> = (IntValue<'ctx>, IntValue<'ctx>, FloatValue<'ctx>);

/// Where one axis's taps come from.
enum Taps<'ctx> {
    /// 3 floats per output coordinate: i0, i1, weight of i1
    Table(PointerValue<'ctx>),
    /// computed from the run-time extents
    Inline {
        axis: usize,
        inl: IntValue<'ctx>,
        outl: IntValue<'ctx>,
    },
}

impl<'ctx> Taps<'ctx> {
    fn at(&self, kb: &Kb<'_, 'ctx>, a: &ResizeAttrs, o: IntValue<'ctx>) -> R<Tap<'ctx>> {
        match *self {
            Taps::Table(t) => {
                let k = |j: u64| -> R<IntValue<'ctx>> {
                    let f = kb.load(t, kb.add(kb.mul(o, kb.i(3))?, kb.i(j))?)?;
                    Ok(kb.b.build_float_to_unsigned_int(f, kb.ctx.i64_type(), "")?)
                };
                let w = kb.load(t, kb.add(kb.mul(o, kb.i(3))?, kb.i(2))?)?;
                Ok((k(0)?, k(1)?, w))
            }
            Taps::Inline { axis, inl, outl } => inline_tap(kb, a, axis, o, [inl, outl]),
        }
    }
}

/// Exact f32 arithmetic (no fast-math flags), as [`ResizeAttrs::taps`] computes it.
struct F<'a, 'b, 'ctx>(&'a Kb<'b, 'ctx>);

impl<'ctx> F<'_, '_, 'ctx> {
    fn c(&self, v: f32) -> FloatValue<'ctx> {
        self.0.fc(v)
    }
    fn u(&self, v: IntValue<'ctx>) -> R<FloatValue<'ctx>> {
        let t = self.0.ctx.f32_type();
        Ok(self.0.b.build_unsigned_int_to_float(v, t, "")?)
    }
    fn add(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.0.b.build_float_add(a, b, "")?)
    }
    fn sub(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.0.b.build_float_sub(a, b, "")?)
    }
    fn mul(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.0.b.build_float_mul(a, b, "")?)
    }
    fn div(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.0.b.build_float_div(a, b, "")?)
    }
    fn call(&self, f: &str, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.0.call1(&[f], x, true)
    }
    fn sel(
        &self,
        c: IntValue<'ctx>,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        Ok(self.0.b.build_select(c, a, b, "")?.into_float_value())
    }
    /// `a.max(b)` as Rust has it for non-NaN `b`: `b` when `a` is NaN or smaller.
    fn max(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let gt = self.cmp(FloatPredicate::OGT, a, b)?;
        self.sel(gt, a, b)
    }
    fn cmp(
        &self,
        p: FloatPredicate,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> R<IntValue<'ctx>> {
        Ok(self.0.b.build_float_compare(p, a, b, "")?)
    }
}

/// The input coordinate output coordinate `xf` maps to (the spec's transforms).
fn source_coordinate<'ctx>(
    f: &F<'_, '_, 'ctx>,
    a: &ResizeAttrs,
    axis: usize,
    xf: FloatValue<'ctx>,
    [inl, outl]: [FloatValue<'ctx>; 2],
) -> R<FloatValue<'ctx>> {
    let s = f.c(a.scales[axis]);
    let len = match a.lengths[axis] {
        Some(l) => f.c(l),
        None => f.mul(inl, s)?,
    };
    let (half, one) = (f.c(0.5), f.c(1.0));
    let centred = f.div(f.add(xf, half)?, s)?;
    Ok(match a.coord {
        CoordMode::HalfPixel => f.sub(centred, half)?,
        CoordMode::HalfPixelSymmetric => {
            let adj = f.div(outl, f.mul(s, inl)?)?;
            let offset = f.mul(f.div(inl, f.c(2.0))?, f.sub(one, adj)?)?;
            f.sub(f.add(offset, centred)?, half)?
        }
        CoordMode::PytorchHalfPixel => {
            let long = f.cmp(FloatPredicate::OGT, len, one)?;
            f.sel(long, f.sub(centred, half)?, f.c(0.0))?
        }
        CoordMode::AlignCorners => {
            let single = f.cmp(FloatPredicate::OEQ, outl, one)?;
            let v = f.div(f.mul(xf, f.sub(inl, one)?)?, f.sub(len, one)?)?;
            f.sel(single, f.c(0.0), v)?
        }
        CoordMode::Asymmetric => f.div(xf, s)?,
        CoordMode::TfHalfPixelForNn => centred,
    })
}

/// The tap of output coordinate `o` along `axis`, from the run-time extents.
fn inline_tap<'ctx>(
    kb: &Kb<'_, 'ctx>,
    a: &ResizeAttrs,
    axis: usize,
    o: IntValue<'ctx>,
    [inl, outl]: [IntValue<'ctx>; 2],
) -> R<Tap<'ctx>> {
    let f = F(kb);
    let ext = [f.u(inl)?, f.u(outl)?];
    let orig = source_coordinate(&f, a, axis, f.u(o)?, ext)?;
    let last = kb.sub(inl, kb.i(1))?;
    let zero = f.c(0.0);
    match a.mode {
        ResizeMode::Nearest(m) => {
            let fl = f.call("llvm.floor", orig)?;
            let halfway = f.cmp(FloatPredicate::OEQ, orig, f.add(fl, f.c(0.5))?)?;
            let r = match m {
                NearestMode::RoundPreferFloor => f.sel(halfway, fl, f.call("llvm.round", orig)?)?,
                NearestMode::RoundPreferCeil => {
                    let up = f.call("llvm.ceil", orig)?;
                    f.sel(halfway, up, f.call("llvm.round", orig)?)?
                }
                NearestMode::Floor => fl,
                NearestMode::Ceil => f.call("llvm.ceil", orig)?,
            };
            let clamped = f.max(r, zero)?;
            let i = kb.imin(kb.f32_to_u64_sat(clamped)?, last)?;
            Ok((i, i, zero))
        }
        ResizeMode::Linear => {
            let c = f.max(orig, zero)?;
            let hi = f.u(last)?;
            let lt = f.cmp(FloatPredicate::OLT, c, hi)?;
            let c = f.sel(lt, c, hi)?;
            let i0 = kb.imin(kb.f32_to_u64_sat(c)?, last)?;
            let i1 = kb.imin(kb.add(i0, kb.i(1))?, last)?;
            let same = kb.b.build_int_compare(IntPredicate::EQ, i0, i1, "")?;
            let w = f.sel(same, zero, f.sub(c, f.u(i0)?)?)?;
            Ok((i0, i1, w))
        }
    }
}

/// The two axes' tap sources and the output pointer, from the kernel's arguments.
fn sources<'ctx>(
    kb: &Kb<'_, 'ctx>,
    a: &ResizeAttrs,
    x: &[Dim],
) -> R<([Taps<'ctx>; 2], PointerValue<'ctx>)> {
    let mut next = 1;
    let mut axis = |i: usize| -> R<Taps<'ctx>> {
        if table_extents(a, x, i).is_some() {
            next += 1;
            return Ok(Taps::Table(kb.args[next - 1]));
        }
        Ok(Taps::Inline {
            axis: i,
            inl: kb.dim(x[2 + i])?,
            outl: kb.dim(a.sizes[i])?,
        })
    };
    let t = [axis(0)?, axis(1)?];
    let dst = *kb
        .args
        .get(next)
        .ok_or_else(|| CodegenError::Llvm("resize arguments".into()))?;
    Ok((t, dst))
}

/// `a + (b - a) * t`
fn lerp<'ctx>(
    kb: &Kb<'_, 'ctx>,
    a: FloatValue<'ctx>,
    b: FloatValue<'ctx>,
    t: FloatValue<'ctx>,
) -> R<FloatValue<'ctx>> {
    kb.fadd(a, kb.fmul(kb.fsub(b, a)?, t)?)
}

/// `a + (b - a) * t` on vectors.
fn vlerp<'ctx>(
    kb: &Kb<'_, 'ctx>,
    a: VectorValue<'ctx>,
    b: VectorValue<'ctx>,
    t: VectorValue<'ctx>,
) -> R<VectorValue<'ctx>> {
    let d = kb.b.build_float_sub(b, a, "")?;
    Ok(kb
        .b
        .build_float_add(a, kb.b.build_float_mul(d, t, "")?, "")?)
}

/// Resize of `x` (`lanes` channels per block; 1 = plain NCHW): one output row at a time,
/// every lane of a block at once.
pub fn resize(kb: &mut Kb, a: &ResizeAttrs, x: &[Dim], lanes: u64) -> R<()> {
    let c = x[1]
        .known()
        .ok_or_else(|| CodegenError::Llvm("resize needs known channels".into()))?;
    let nl = u32::try_from(lanes).map_err(|_| CodegenError::Llvm("block too wide".into()))?;
    let ([ty, tx], dst) = sources(kb, a, x)?;
    let src = kb.args[0];
    let (h, w) = (kb.dim(x[2])?, kb.dim(x[3])?);
    let (oh, ow) = (kb.dim(a.sizes[0])?, kb.dim(a.sizes[1])?);
    let wl = kb.mul(w, kb.i(lanes))?;
    let planes = kb.mul(kb.dim(x[0])?, kb.i(c.div_ceil(lanes)))?;
    let (lo, hi) = kb.split(kb.mul(planes, oh)?)?;
    let linear = a.mode == ResizeMode::Linear;
    kb.for_loop(lo, hi, |kb, row| {
        let plane = kb.div(row, oh)?;
        let oy = kb.rem(row, oh)?;
        let sbase = kb.mul(plane, kb.mul(h, wl)?)?;
        let (i0, i1, wy) = ty.at(kb, a, oy)?;
        let y0 = kb.add(sbase, kb.mul(i0, wl)?)?;
        let y1 = kb.add(sbase, kb.mul(i1, wl)?)?;
        let obase = kb.mul(row, kb.mul(ow, kb.i(lanes))?)?;
        kb.for_loop(kb.i(0), ow, |kb, ox| {
            let (j0, j1, wx) = tx.at(kb, a, ox)?;
            let (x0, x1) = (kb.mul(j0, kb.i(lanes))?, kb.mul(j1, kb.i(lanes))?);
            let oi = kb.add(obase, kb.mul(ox, kb.i(lanes))?)?;
            if lanes == 1 {
                let ld = |r, col| kb.load(src, kb.add(r, col)?);
                let v = if linear {
                    let top = lerp(kb, ld(y0, x0)?, ld(y0, x1)?, wx)?;
                    let bot = lerp(kb, ld(y1, x0)?, ld(y1, x1)?, wx)?;
                    lerp(kb, top, bot, wy)?
                } else {
                    ld(y0, x0)?
                };
                return kb.store(dst, oi, v);
            }
            let ld = |r, col| kb.vec_load_n(src, kb.add(r, col)?, nl);
            let v = if linear {
                let (wxv, wyv) = (kb.vec_splat_n(wx, nl)?, kb.vec_splat_n(wy, nl)?);
                let top = vlerp(kb, ld(y0, x0)?, ld(y0, x1)?, wxv)?;
                let bot = vlerp(kb, ld(y1, x0)?, ld(y1, x1)?, wxv)?;
                vlerp(kb, top, bot, wyv)?
            } else {
                ld(y0, x0)?
            };
            kb.vec_store(dst, oi, v)
        })
    })
}
