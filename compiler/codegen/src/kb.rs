//! `Kb`, the kernel builder: the few constructs every kernel body is written in (counted
//! loops, reductions, loads and stores, thread splits, a barrier, activation math), emitted
//! for either flavour. All unsafe inkwell calls (GEPs) of the crate live in this module.
use crate::CodegenError;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::types::{BasicTypeEnum, VectorType};
use inkwell::values::{
    BasicMetadataValueEnum, BasicValue, FloatValue, FunctionValue, IntValue, PointerValue,
    VectorValue,
};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate};
use secc_ir::{Activation, Dim};

/// Result type of kernel emission.
pub type R<T> = Result<T, CodegenError>;

/// Which machine the body is emitted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// host CPU: called by every pool thread, barrier by callback
    Cpu,
    /// NVPTX: threads of a grid, `bar.sync` within a CTA
    Ptx,
}

/// The kernel builder for one function.
pub struct Kb<'a, 'ctx> {
    /// LLVM context
    pub ctx: &'ctx Context,
    /// module being filled
    pub m: &'a Module<'ctx>,
    /// instruction builder
    pub b: Builder<'ctx>,
    /// the kernel function
    pub f: FunctionValue<'ctx>,
    /// target flavour
    pub flavor: Flavor,
    /// buffer pointers, in argument order
    pub args: Vec<PointerValue<'ctx>>,
    /// symbol values (the batch size)
    pub syms: Vec<IntValue<'ctx>>,
    /// this thread's index among all threads working on the kernel
    pub tid: IntValue<'ctx>,
    /// number of threads working on the kernel
    pub nthr: IntValue<'ctx>,
    /// index within the group that shares a barrier (CPU: = tid; PTX: tid.x)
    pub group_tid: IntValue<'ctx>,
    /// size of that group (CPU: = nthr; PTX: ntid.x)
    pub group_n: IntValue<'ctx>,
    /// PTX: the CTA index (one image per CTA for SE kernels); CPU: None
    pub block_id: Option<IntValue<'ctx>>,
    bar_fn: Option<PointerValue<'ctx>>,
    bar_ctx: Option<PointerValue<'ctx>>,
    /// whether the body calls [`Kb::barrier`]: then every share must run at once
    used_barrier: std::cell::Cell<bool>,
}

fn intrinsic<'ctx>(
    m: &Module<'ctx>,
    names: &[&str],
    tys: &[BasicTypeEnum<'ctx>],
) -> R<FunctionValue<'ctx>> {
    for n in names {
        if let Some(i) = Intrinsic::find(n) {
            if let Some(f) = i.get_declaration(m, tys) {
                return Ok(f);
            }
        }
    }
    Err(CodegenError::Llvm(format!(
        "intrinsic {names:?} not available"
    )))
}

impl<'a, 'ctx> Kb<'a, 'ctx> {
    /// Declares kernel `name` with `nargs` buffers and `nsyms` symbols and emits its prologue.
    pub fn new(
        ctx: &'ctx Context,
        m: &'a Module<'ctx>,
        flavor: Flavor,
        name: &str,
        nargs: usize,
        nsyms: usize,
    ) -> R<Self> {
        let i64t = ctx.i64_type();
        let ptr = ctx.ptr_type(AddressSpace::default());
        let b = ctx.create_builder();
        match flavor {
            Flavor::Cpu => {
                // void k(ptr args, ptr syms, i64 tid, i64 nthr, ptr barrier_fn, ptr barrier_ctx)
                let fty = ctx.void_type().fn_type(
                    &[
                        ptr.into(),
                        ptr.into(),
                        i64t.into(),
                        i64t.into(),
                        ptr.into(),
                        ptr.into(),
                    ],
                    false,
                );
                let f = m.add_function(name, fty, Some(Linkage::External));
                let entry = ctx.append_basic_block(f, "entry");
                b.position_at_end(entry);
                let p = |i: u32| {
                    f.get_nth_param(i)
                        .expect("invariant: declared param")
                        .into_pointer_value()
                };
                let iv = |i: u32| {
                    f.get_nth_param(i)
                        .expect("invariant: declared param")
                        .into_int_value()
                };
                let mut kb = Kb {
                    ctx,
                    m,
                    b,
                    f,
                    flavor,
                    args: vec![],
                    syms: vec![],
                    tid: iv(2),
                    nthr: iv(3),
                    group_tid: iv(2),
                    group_n: iv(3),
                    block_id: None,
                    bar_fn: Some(p(4)),
                    bar_ctx: Some(p(5)),
                    used_barrier: Default::default(),
                };
                for i in 0..nargs {
                    let slot = kb.gep_t(ptr.into(), p(0), kb.i(i as u64))?;
                    let v = kb.b.build_load(ptr, slot, "arg")?.into_pointer_value();
                    kb.args.push(v);
                }
                for i in 0..nsyms {
                    let slot = kb.gep_t(i64t.into(), p(1), kb.i(i as u64))?;
                    let v = kb.b.build_load(i64t, slot, "sym")?.into_int_value();
                    kb.syms.push(v);
                }
                Ok(kb)
            }
            Flavor::Ptx => {
                let mut params: Vec<inkwell::types::BasicMetadataTypeEnum> =
                    vec![ptr.into(); nargs];
                params.extend(std::iter::repeat_n(
                    inkwell::types::BasicMetadataTypeEnum::from(i64t),
                    nsyms,
                ));
                let fty = ctx.void_type().fn_type(&params, false);
                let f = m.add_function(name, fty, Some(Linkage::External));
                f.set_call_conventions(71); // ptx_kernel
                let entry = ctx.append_basic_block(f, "entry");
                b.position_at_end(entry);
                let sreg = |n: &str| -> R<IntValue<'ctx>> {
                    let d = intrinsic(m, &[&format!("llvm.nvvm.read.ptx.sreg.{n}")], &[])?;
                    let v = b
                        .build_call(d, &[], n)?
                        .try_as_basic_value()
                        .basic()
                        .ok_or_else(|| CodegenError::Llvm("sreg".into()))?;
                    Ok(b.build_int_z_extend(v.into_int_value(), i64t, n)?)
                };
                let (tx, ntx, cx, ncx) = (
                    sreg("tid.x")?,
                    sreg("ntid.x")?,
                    sreg("ctaid.x")?,
                    sreg("nctaid.x")?,
                );
                let tid = b.build_int_add(b.build_int_mul(cx, ntx, "")?, tx, "gtid")?;
                let nthr = b.build_int_mul(ncx, ntx, "gn")?;
                let args = (0..nargs)
                    .map(|i| {
                        f.get_nth_param(i as u32)
                            .expect("invariant")
                            .into_pointer_value()
                    })
                    .collect();
                let syms = (0..nsyms)
                    .map(|i| {
                        f.get_nth_param((nargs + i) as u32)
                            .expect("invariant")
                            .into_int_value()
                    })
                    .collect();
                Ok(Kb {
                    ctx,
                    m,
                    b,
                    f,
                    flavor,
                    args,
                    syms,
                    tid,
                    nthr,
                    group_tid: tx,
                    group_n: ntx,
                    block_id: Some(cx),
                    bar_fn: None,
                    bar_ctx: None,
                    used_barrier: Default::default(),
                })
            }
        }
    }

    /// Ends the function; returns whether its body waits at a barrier (the runtime must
    /// then run all its shares at once; other kernels' shares may run in any order, on any
    /// thread).
    pub fn finish(self) -> R<bool> {
        self.b.build_return(None)?;
        Ok(self.used_barrier.get())
    }

    /// i64 constant.
    pub fn i(&self, v: u64) -> IntValue<'ctx> {
        self.ctx.i64_type().const_int(v, false)
    }

    /// f32 constant.
    pub fn fc(&self, v: f32) -> FloatValue<'ctx> {
        self.ctx.f32_type().const_float(v as f64)
    }

    /// The run-time value of a dim.
    pub fn dim(&self, d: Dim) -> R<IntValue<'ctx>> {
        match d {
            Dim::Known(v) => Ok(self.i(v)),
            Dim::Sym(s, k) => {
                let sv = *self
                    .syms
                    .get(s.0 as usize)
                    .ok_or_else(|| CodegenError::Llvm(format!("symbol {} not bound", s.0)))?;
                if k == 1 {
                    Ok(sv)
                } else {
                    self.mul(sv, self.i(k))
                }
            }
            Dim::Expr(_) => self.dim_expr(d),
        }
    }

    /// An expression dim, computed from its postfix form (values are non-negative
    /// wherever the runtime's binding check let the run start).
    fn dim_expr(&self, d: Dim) -> R<IntValue<'ctx>> {
        use secc_ir::dim_expr::PostfixOp as P;
        let mut ops = vec![];
        d.expr().postfix(&mut ops);
        let mut st: Vec<IntValue<'ctx>> = vec![];
        let bad = || CodegenError::Llvm(format!("malformed extent {}", d.display(&[])));
        for op in ops {
            let v = match op {
                P::Const(c) => self.i(c),
                P::Sym(s) => self.dim(Dim::sym(s))?,
                P::Div(k) => self.div(st.pop().ok_or_else(bad)?, self.i(k))?,
                P::CeilDiv(k) => {
                    let a = st.pop().ok_or_else(bad)?;
                    self.div(self.add(a, self.i(k - 1))?, self.i(k))?
                }
                _ => {
                    let b = st.pop().ok_or_else(bad)?;
                    let a = st.pop().ok_or_else(bad)?;
                    match op {
                        P::Add => self.add(a, b)?,
                        P::Sub => self.sub(a, b)?,
                        P::Mul => self.mul(a, b)?,
                        P::Min => self.imin(a, b)?,
                        _ => self.imax(a, b)?,
                    }
                }
            };
            st.push(v);
        }
        match (st.pop(), st.is_empty()) {
            (Some(v), true) => Ok(v),
            _ => Err(bad()),
        }
    }

    /// `x as u64` with Rust's semantics (saturating, NaN to 0): `llvm.fptoui.sat`.
    pub fn f32_to_u64_sat(&self, x: FloatValue<'ctx>) -> R<IntValue<'ctx>> {
        let tys = [self.ctx.i64_type().into(), self.ctx.f32_type().into()];
        let f = intrinsic(self.m, &["llvm.fptoui.sat"], &tys)?;
        let r = self
            .b
            .build_call(f, &[x.into()], "")?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm("fptoui.sat".into()))?;
        Ok(r.into_int_value())
    }

    /// `1 / n` in f32 (folded to a constant for a constant `n`): the mean of `n` values.
    pub fn recip(&self, n: IntValue<'ctx>) -> R<FloatValue<'ctx>> {
        if let Some(k) = n.get_zero_extended_constant() {
            return Ok(self.fc(1.0 / k as f32));
        }
        let f = self
            .b
            .build_unsigned_int_to_float(n, self.ctx.f32_type(), "")?;
        self.fdiv(self.fc(1.0), f)
    }

    /// Product of dims.
    pub fn dims(&self, ds: &[Dim]) -> R<IntValue<'ctx>> {
        let mut acc = self.i(1);
        for d in ds {
            acc = self.mul(acc, self.dim(*d)?)?;
        }
        Ok(acc)
    }

    /// a + b
    pub fn add(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_int_add(a, b, "")?)
    }
    /// a - b
    pub fn sub(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_int_sub(a, b, "")?)
    }
    /// a * b
    pub fn mul(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_int_mul(a, b, "")?)
    }
    /// a / b (unsigned)
    pub fn div(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_int_unsigned_div(a, b, "")?)
    }
    /// a % b (unsigned)
    pub fn rem(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_int_unsigned_rem(a, b, "")?)
    }
    /// min(a, b), signed
    pub fn imin(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let c = self.b.build_int_compare(IntPredicate::SLT, a, b, "")?;
        Ok(self.b.build_select(c, a, b, "")?.into_int_value())
    }
    /// max(a, b), signed
    pub fn imax(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let c = self.b.build_int_compare(IntPredicate::SGT, a, b, "")?;
        Ok(self.b.build_select(c, a, b, "")?.into_int_value())
    }

    fn gep_t(
        &self,
        ty: BasicTypeEnum<'ctx>,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> R<PointerValue<'ctx>> {
        // SAFETY: every index the kernels compute lies inside the buffer the plan sized for
        // this argument (the shapes come from the verified IR); an in-bounds GEP only
        // computes an address, and the loads/stores through it are what touch memory.
        Ok(unsafe { self.b.build_in_bounds_gep(ty, base, &[idx], "p")? })
    }

    /// Address of element `idx` of an f32 buffer.
    pub fn at(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        self.gep_t(self.ctx.f32_type().into(), base, idx)
    }

    /// Loads `base[idx]`.
    pub fn load(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<FloatValue<'ctx>> {
        let p = self.at(base, idx)?;
        Ok(self
            .b
            .build_load(self.ctx.f32_type(), p, "v")?
            .into_float_value())
    }

    /// Stores `base[idx] = v`.
    pub fn store(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: FloatValue<'ctx>,
    ) -> R<()> {
        let p = self.at(base, idx)?;
        self.b.build_store(p, v)?;
        Ok(())
    }

    /// Stores `base[idx] = v` into an i64 buffer (4-byte aligned store).
    pub fn store_i64(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: IntValue<'ctx>,
    ) -> R<()> {
        let p = self.gep_t(self.ctx.i64_type().into(), base, idx)?;
        // i64 temporaries live in the f32 arena, which only guarantees 4-byte alignment
        self.b
            .build_store(p, v)?
            .set_alignment(4)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        Ok(())
    }

    fn fmf(&self, v: FloatValue<'ctx>) -> FloatValue<'ctx> {
        if let Some(ins) = v.as_instruction() {
            // reassoc lets LLVM vectorise reductions; contract allows FMA. No nnan/ninf, so
            // NaN and infinity propagate as in the reference.
            let _ = ins.set_fast_math_flags(
                inkwell::values::FastMathFlags::AllowReassoc
                    | inkwell::values::FastMathFlags::AllowContract,
            );
        }
        v
    }
    /// a + b
    pub fn fadd(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.fmf(self.b.build_float_add(a, b, "")?))
    }
    /// a - b
    pub fn fsub(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.fmf(self.b.build_float_sub(a, b, "")?))
    }
    /// a * b
    pub fn fmul(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.fmf(self.b.build_float_mul(a, b, "")?))
    }
    /// a / b, without fast-math flags: with `reassoc`, LLVM rewrites `x * (1 / d)` into
    /// `x / d` and sinks a division into the SE kernel's scale loop (2x slower).
    pub fn fdiv(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self.b.build_float_div(a, b, "")?)
    }
    /// max(a, b); a NaN in `b` propagates, a NaN in `a` yields `b` (so `max(x, 0)` maps NaN
    /// to 0, as the reference's `f64::max` does)
    pub fn fmax(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let c = self.b.build_float_compare(FloatPredicate::ULT, a, b, "")?;
        Ok(self.b.build_select(c, b, a, "")?.into_float_value())
    }
    /// min(a, b); NaN handling as in [`Kb::fmax`]
    pub fn fmin(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let c = self.b.build_float_compare(FloatPredicate::UGT, a, b, "")?;
        Ok(self.b.build_select(c, b, a, "")?.into_float_value())
    }

    /// exp(x): `llvm.exp` on the CPU; `ex2.approx(x * log2 e)` on NVPTX, where LLVM 19 has no
    /// libcall for `llvm.exp`.
    pub fn exp(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        match self.flavor {
            Flavor::Cpu => self.exp_poly(x, 1.0),
            Flavor::Ptx => {
                let f = intrinsic(
                    self.m,
                    &["llvm.nvvm.ex2.approx.ftz.f", "llvm.nvvm.ex2.approx.ftz.f32"],
                    &[],
                )?;
                let arg = self.fmul(x, self.fc(std::f32::consts::LOG2_E))?;
                let args: [BasicMetadataValueEnum; 1] = [arg.into()];
                let r = self
                    .b
                    .build_call(f, &args, "exp")?
                    .try_as_basic_value()
                    .basic()
                    .ok_or_else(|| CodegenError::Llvm("exp".into()))?;
                Ok(r.into_float_value())
            }
        }
    }

    /// exp(x) without a libm call, so loops that use it vectorise: `2^n * 2^f` with
    /// `n = round(x log2 e)`, `f` in [-0.5, 0.5] and a degree-6 Taylor polynomial of `2^f`
    /// in FMAs (relative error about 2e-7 over the clamped range [-87.3, 88.0]). NaN
    /// propagates through the clamps (the constant is their first operand) and every step
    /// after, so no select is needed. It is most of a SiLU epilogue's cost (each vector
    /// instruction takes one of the two 512-bit ports), so it is kept to 16 of them.
    ///
    /// `exp(k x)` for `k` = 1 or -1 (the sigmoid's `exp(-x)` without a negation).
    fn exp_poly(&self, x: FloatValue<'ctx>, k: f32) -> R<FloatValue<'ctx>> {
        let f32t = self.ctx.f32_type();
        let i32t = self.ctx.i32_type();
        let [lo, hi] = if k < 0.0 {
            [-88.0, 87.3]
        } else {
            [-87.3, 88.0]
        };
        let xc = self.fmin(self.fc(hi), self.fmax(self.fc(lo), x)?)?;
        let t = self
            .b
            .build_float_mul(xc, self.fc(k * std::f32::consts::LOG2_E), "")?;
        // n = round(t) by the 1.5 * 2^23 trick: the sum rounds t to an integer in its low
        // mantissa bits, read back as bits (no float-to-int conversion, whose NaN result
        // LLVM leaves undefined); no fast-math flags, so the add and subtract stay
        const MAGIC: f32 = 12_582_912.0;
        let biased = self.b.build_float_add(t, self.fc(MAGIC), "")?;
        let n = self.b.build_float_sub(biased, self.fc(MAGIC), "")?;
        let f = self.b.build_float_sub(t, n, "")?;
        let ln2 = std::f64::consts::LN_2;
        let mut c = [1.0f64; 7];
        for i in 1..7 {
            c[i] = c[i - 1] * ln2 / i as f64;
        }
        let fma = intrinsic(self.m, &["llvm.fmuladd"], &[f32t.into()])?;
        let mut p = self.fc(c[6] as f32);
        for i in (0..6).rev() {
            p = self
                .b
                .build_call(fma, &[p.into(), f.into(), self.fc(c[i] as f32).into()], "")?
                .try_as_basic_value()
                .basic()
                .ok_or_else(|| CodegenError::Llvm("fmuladd".into()))?
                .into_float_value();
        }
        // the bits of `biased` are MAGIC's plus n; 2^n's exponent field is n + 127 (a NaN
        // gives some scale, and p, NaN, makes the product NaN)
        let magic_bits = u64::from(MAGIC.to_bits());
        let nb = self.b.build_bit_cast(biased, i32t, "")?.into_int_value();
        let ni = self
            .b
            .build_int_sub(nb, i32t.const_int(magic_bits, false), "")?;
        let bits = self.b.build_left_shift(
            self.b.build_int_add(ni, i32t.const_int(127, false), "")?,
            i32t.const_int(23, false),
            "",
        )?;
        let scale = self.b.build_bit_cast(bits, f32t, "")?.into_float_value();
        Ok(self.b.build_float_mul(p, scale, "")?)
    }

    /// An activation applied to a scalar.
    pub fn act(&self, a: Activation, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let zero = self.fc(0.0);
        let one = self.fc(1.0);
        // 1 + exp(-x)
        let denom = |x| -> R<FloatValue<'ctx>> {
            let e = match self.flavor {
                Flavor::Cpu => self.exp_poly(x, -1.0)?,
                Flavor::Ptx => self.exp(self.b.build_float_neg(x, "")?)?,
            };
            self.fadd(one, e)
        };
        let sigmoid = |x| -> R<FloatValue<'ctx>> { self.fdiv(one, denom(x)?) };
        match a {
            Activation::Relu => self.fmax(x, zero),
            Activation::Sigmoid => sigmoid(x),
            Activation::Silu => self.fdiv(x, denom(x)?),
            Activation::HardSigmoid { alpha, beta } => {
                let t = self.fadd(self.fmul(x, self.fc(alpha))?, self.fc(beta))?;
                self.fmin(self.fmax(t, zero)?, one)
            }
            Activation::HardSwish => {
                let t = self.fadd(self.fmul(x, self.fc(1.0 / 6.0))?, self.fc(0.5))?;
                self.fmul(x, self.fmin(self.fmax(t, zero)?, one)?)
            }
            Activation::Clip { min, max } => {
                let mut v = x;
                if min > f32::NEG_INFINITY {
                    v = self.fmax(v, self.fc(min))?;
                }
                if max < f32::INFINITY {
                    v = self.fmin(v, self.fc(max))?;
                }
                Ok(v)
            }
            Activation::LeakyRelu { alpha } => {
                let neg = self
                    .b
                    .build_float_compare(FloatPredicate::OLT, x, zero, "")?;
                let y = self.fmul(x, self.fc(alpha))?;
                Ok(self.b.build_select(neg, y, x, "")?.into_float_value())
            }
            Activation::Elu { alpha } => {
                let neg = self
                    .b
                    .build_float_compare(FloatPredicate::OLT, x, zero, "")?;
                let e = self.exp(self.fmin(x, zero)?)?;
                let y = self.fmul(self.fsub(e, one)?, self.fc(alpha))?;
                Ok(self.b.build_select(neg, y, x, "")?.into_float_value())
            }
            Activation::Tanh => {
                // tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|): no overflow, no
                // cancellation for large |x|; small |x| loses only absolute precision (~1e-7)
                let ax = self.fabs(x)?;
                let e = self.exp(self.fmul(ax, self.fc(-2.0))?)?;
                let t = self.fdiv(self.fsub(one, e)?, self.fadd(one, e)?)?;
                let neg = self
                    .b
                    .build_float_compare(FloatPredicate::OLT, x, zero, "")?;
                let nt = self.b.build_float_neg(t, "")?;
                Ok(self.b.build_select(neg, nt, t, "")?.into_float_value())
            }
            Activation::Exp => self.exp(x),
            Activation::Log => match self.flavor {
                Flavor::Cpu => self.call1(&["llvm.log"], x, true),
                Flavor::Ptx => {
                    let l2 = self.call1(
                        &["llvm.nvvm.lg2.approx.f", "llvm.nvvm.lg2.approx.f32"],
                        x,
                        false,
                    )?;
                    self.fmul(l2, self.fc(std::f32::consts::LN_2))
                }
            },
            Activation::Sqrt => self.call1(&["llvm.sqrt"], x, true),
            Activation::Neg => Ok(self.b.build_float_neg(x, "")?),
            Activation::Abs => self.fabs(x),
            Activation::Erf => {
                // Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7
                let ax = self.fabs(x)?;
                let t = self.fdiv(one, self.fadd(one, self.fmul(ax, self.fc(0.327_591_1))?)?)?;
                let mut p = self.fc(1.061_405_4);
                for c in [-1.453_152_1_f32, 1.421_413_7, -0.284_496_72, 0.254_829_6] {
                    p = self.fadd(self.fmul(p, t)?, self.fc(c))?;
                }
                p = self.fmul(p, t)?;
                let e = self.exp(self.b.build_float_neg(self.fmul(ax, ax)?, "")?)?;
                let r = self.fsub(one, self.fmul(p, e)?)?;
                let neg = self
                    .b
                    .build_float_compare(FloatPredicate::OLT, x, zero, "")?;
                let nr = self.b.build_float_neg(r, "")?;
                Ok(self.b.build_select(neg, nr, r, "")?.into_float_value())
            }
            Activation::Softplus => self.softplus(x),
            Activation::Softsign => self.fdiv(x, self.fadd(one, self.fabs(x)?)?),
            Activation::Selu { alpha, gamma } => {
                let e = self.act(Activation::Elu { alpha }, x)?;
                self.fmul(e, self.fc(gamma))
            }
            Activation::Celu { alpha } => {
                let e = self.exp(self.fdiv(self.fmin(x, zero)?, self.fc(alpha))?)?;
                let neg = self.fmul(self.fc(alpha), self.fsub(e, one)?)?;
                self.fadd(self.fmax(x, zero)?, self.fmin(neg, zero)?)
            }
            Activation::ThresholdedRelu { alpha } => {
                let gt = self
                    .b
                    .build_float_compare(FloatPredicate::OGT, x, self.fc(alpha), "")?;
                Ok(self.b.build_select(gt, x, zero, "")?.into_float_value())
            }
            Activation::Mish => {
                let t = self.act(Activation::Tanh, self.softplus(x)?)?;
                self.fmul(x, t)
            }
            Activation::Gelu { tanh: false } => {
                let e = self.act(
                    Activation::Erf,
                    self.fmul(x, self.fc(std::f32::consts::FRAC_1_SQRT_2))?,
                )?;
                self.fmul(self.fmul(x, self.fc(0.5))?, self.fadd(one, e)?)
            }
            Activation::Gelu { tanh: true } => {
                let c = (2.0 / std::f32::consts::PI).sqrt();
                let x3 = self.fmul(self.fmul(x, x)?, x)?;
                let inner =
                    self.fmul(self.fc(c), self.fadd(x, self.fmul(x3, self.fc(0.044715))?)?)?;
                let t = self.act(Activation::Tanh, inner)?;
                self.fmul(self.fmul(x, self.fc(0.5))?, self.fadd(one, t)?)
            }
            Activation::Ceil => self.call1(&["llvm.ceil"], x, true),
            Activation::Floor => self.call1(&["llvm.floor"], x, true),
            Activation::Round => self.call1(&["llvm.roundeven", "llvm.rint"], x, true),
            Activation::Sign => {
                let pos = self
                    .b
                    .build_float_compare(FloatPredicate::OGT, x, zero, "")?;
                let neg = self
                    .b
                    .build_float_compare(FloatPredicate::OLT, x, zero, "")?;
                let s = self
                    .b
                    .build_select(neg, self.fc(-1.0), x, "")?
                    .into_float_value();
                Ok(self.b.build_select(pos, one, s, "")?.into_float_value())
            }
        }
    }

    /// ln(1 + exp(x)) as max(x, 0) + ln(1 + exp(-|x|)): no overflow for large |x|.
    fn softplus(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let e = self.exp(self.b.build_float_neg(self.fabs(x)?, "")?)?;
        let l = self.act(Activation::Log, self.fadd(self.fc(1.0), e)?)?;
        self.fadd(self.fmax(x, self.fc(0.0))?, l)
    }

    /// `f(x)` for the first of the f32 intrinsics `names` LLVM knows (`overloaded`: named
    /// with the `.f32` suffix implied).
    pub fn call1(
        &self,
        names: &[&str],
        x: FloatValue<'ctx>,
        overloaded: bool,
    ) -> R<FloatValue<'ctx>> {
        let tys: Vec<BasicTypeEnum> = if overloaded {
            vec![self.ctx.f32_type().into()]
        } else {
            vec![]
        };
        let f = intrinsic(self.m, names, &tys)?;
        let r = self
            .b
            .build_call(f, &[x.into()], "")?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm(format!("{names:?}")))?;
        Ok(r.into_float_value())
    }

    /// `a ^ b` with C `powf` semantics: `llvm.pow` (libm) on the CPU; on NVPTX
    /// `ex2(b * lg2|a|)` with the sign of an odd integer power of a negative base, NaN for a
    /// negative base with a fractional exponent, and `x ^ 0 = 1`.
    pub fn pow(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        if self.flavor == Flavor::Cpu {
            let f = intrinsic(self.m, &["llvm.pow"], &[self.ctx.f32_type().into()])?;
            let r = self
                .b
                .build_call(f, &[a.into(), b.into()], "")?
                .try_as_basic_value()
                .basic()
                .ok_or_else(|| CodegenError::Llvm("pow".into()))?;
            return Ok(r.into_float_value());
        }
        let l2 = self.call1(
            &["llvm.nvvm.lg2.approx.f", "llvm.nvvm.lg2.approx.f32"],
            self.fabs(a)?,
            false,
        )?;
        let r = self.exp(self.fmul(self.fmul(b, l2)?, self.fc(std::f32::consts::LN_2))?)?;
        let fl = self.call1(&["llvm.floor"], b, true)?;
        let is_int = self.b.build_float_compare(FloatPredicate::OEQ, b, fl, "")?;
        let half = self.fmul(b, self.fc(0.5))?;
        let half_fl = self.call1(&["llvm.floor"], half, true)?;
        let odd = self.b.build_and(
            is_int,
            self.b
                .build_float_compare(FloatPredicate::ONE, half, half_fl, "")?,
            "",
        )?;
        let neg = self
            .b
            .build_float_compare(FloatPredicate::OLT, a, self.fc(0.0), "")?;
        let nr = self.b.build_float_neg(r, "")?;
        let r = self
            .b
            .build_select(self.b.build_and(neg, odd, "")?, nr, r, "")?
            .into_float_value();
        let frac = self.b.build_and(neg, self.b.build_not(is_int, "")?, "")?;
        let r = self
            .b
            .build_select(frac, self.fc(f32::NAN), r, "")?
            .into_float_value();
        let zero_exp = self
            .b
            .build_float_compare(FloatPredicate::OEQ, b, self.fc(0.0), "")?;
        Ok(self
            .b
            .build_select(zero_exp, self.fc(1.0), r, "")?
            .into_float_value())
    }

    /// An activation applied to every lane of a vector (lane by lane; LLVM's SLP vectoriser
    /// turns the simple ones back into vector instructions).
    pub fn vact(&self, a: Activation, v: VectorValue<'ctx>) -> R<VectorValue<'ctx>> {
        let mut out = v;
        for i in 0..v.get_type().get_size() {
            let idx = self.ctx.i32_type().const_int(u64::from(i), false);
            let x = self.b.build_extract_element(v, idx, "")?.into_float_value();
            let y = self.act(a, x)?;
            out = self.b.build_insert_element(out, y, idx, "")?;
        }
        Ok(out)
    }

    /// |x|
    pub fn fabs(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.call1(&["llvm.fabs"], x, true)
    }

    /// `for i in lo..hi { body(i) }` as a guarded, rotated loop.
    pub fn for_loop(
        &mut self,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        body: impl FnOnce(&mut Self, IntValue<'ctx>) -> R<()>,
    ) -> R<()> {
        self.for_carry(lo, hi, vec![], |kb, i, _| body(kb, i).map(|()| vec![]))?;
        Ok(())
    }

    /// `acc = init; for i in lo..hi { acc = body(i, acc) }; acc`: the form LLVM vectorises.
    pub fn for_acc(
        &mut self,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        init: FloatValue<'ctx>,
        body: impl FnOnce(&mut Self, IntValue<'ctx>, FloatValue<'ctx>) -> R<FloatValue<'ctx>>,
    ) -> R<FloatValue<'ctx>> {
        let out = self.for_carry(lo, hi, vec![init.into()], |kb, i, v| {
            Ok(vec![body(kb, i, v[0].into_float_value())?.into()])
        })?;
        Ok(out[0].into_float_value())
    }

    /// Explicit vector width for contiguous loops: 8 lanes on the CPU (AVX2 width; LLVM
    /// splits it on narrower targets), 1 (scalar) on NVPTX. Loops with short compile-time trip
    /// counts (a 7x7 map) are fully unrolled as scalars by LLVM before its vectoriser runs,
    /// so the hot SE loops are written with explicit vectors instead.
    pub fn width(&self) -> u32 {
        match self.flavor {
            Flavor::Cpu => 8,
            Flavor::Ptx => 1,
        }
    }

    fn vload(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<VectorValue<'ctx>> {
        let p = self.at(base, idx)?;
        let v = self
            .b
            .build_load(self.ctx.f32_type().vec_type(self.width()), p, "vl")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(4)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        Ok(v.into_vector_value())
    }

    fn vstore(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>, v: VectorValue<'ctx>) -> R<()> {
        let p = self.at(base, idx)?;
        let st = self.b.build_store(p, v)?;
        st.set_alignment(4)
            .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        Ok(())
    }

    fn splat(&self, x: FloatValue<'ctx>) -> R<VectorValue<'ctx>> {
        let vt = self.ctx.f32_type().vec_type(self.width());
        let v = self.b.build_insert_element(
            vt.get_poison(),
            x,
            self.ctx.i32_type().const_zero(),
            "",
        )?;
        let mask = self.ctx.i32_type().vec_type(self.width()).const_zero();
        Ok(self
            .b
            .build_shuffle_vector(v, vt.get_poison(), mask, "splat")?)
    }

    /// Sum of `n` contiguous floats at `base[off..]`.
    pub fn sum_contig(
        &mut self,
        base: PointerValue<'ctx>,
        off: IntValue<'ctx>,
        n: IntValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        let w = self.width() as u64;
        let zero = self.fc(0.0);
        let Some(n) = n.get_zero_extended_constant() else {
            return self.sum_contig_dyn(base, off, n);
        };
        if w == 1 || n < w {
            return self.sum_scalar(base, off, [self.i(0), self.i(n)], zero);
        }
        let full = n / w * w;
        let vt = self.ctx.f32_type().vec_type(self.width());
        let pre = self
            .b
            .get_insert_block()
            .ok_or_else(|| CodegenError::Llvm("no block".into()))?;
        let bb = self.ctx.append_basic_block(self.f, "vsum");
        let exit = self.ctx.append_basic_block(self.f, "vsum.exit");
        self.b.build_unconditional_branch(bb)?;
        self.b.position_at_end(bb);
        let phi = self.b.build_phi(self.ctx.i64_type(), "k")?;
        let acc = self.b.build_phi(vt, "vacc")?;
        let k = phi.as_basic_value().into_int_value();
        let a = acc.as_basic_value().into_vector_value();
        let v = self.vload(base, self.add(off, k)?)?;
        let r = self.b.build_float_add(a, v, "")?;
        let next = self.add(k, self.i(w))?;
        let latch = self
            .b
            .get_insert_block()
            .ok_or_else(|| CodegenError::Llvm("no block".into()))?;
        phi.add_incoming(&[(&self.i(0), pre), (&next, latch)]);
        acc.add_incoming(&[(&vt.const_zero(), pre), (&r, latch)]);
        let c = self.lt(next, self.i(full))?;
        self.b.build_conditional_branch(c, bb, exit)?;
        self.b.position_at_end(exit);
        let s = self.hsum(r)?;
        if full == n {
            return Ok(s);
        }
        self.sum_scalar(base, off, [self.i(full), self.i(n)], s)
    }

    /// [`Kb::sum_contig`] over a run-time count: whole vectors (possibly none), then the
    /// remaining floats one by one.
    fn sum_contig_dyn(
        &mut self,
        base: PointerValue<'ctx>,
        off: IntValue<'ctx>,
        n: IntValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        let w = self.width() as u64;
        let zero = self.fc(0.0);
        let mut s = zero;
        let mut full = self.i(0);
        if w > 1 {
            let chunks = self.div(n, self.i(w))?;
            full = self.mul(chunks, self.i(w))?;
            let vz = self.ctx.f32_type().vec_type(self.width()).const_zero();
            let acc = self.for_carry(self.i(0), chunks, vec![vz.into()], |kb, k, acc| {
                let v = kb.vload(base, kb.add(off, kb.mul(k, kb.i(w))?)?)?;
                Ok(vec![kb
                    .b
                    .build_float_add(acc[0].into_vector_value(), v, "")?
                    .into()])
            })?;
            s = self.hsum(acc[0].into_vector_value())?;
        }
        self.sum_scalar(base, off, [full, n], s)
    }

    /// `acc + base[off + lo] + ... + base[off + hi - 1]`, one float at a time.
    fn sum_scalar(
        &mut self,
        base: PointerValue<'ctx>,
        off: IntValue<'ctx>,
        [lo, hi]: [IntValue<'ctx>; 2],
        acc: FloatValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        self.for_acc(lo, hi, acc, |kb, p, acc| {
            kb.fadd(acc, kb.load(base, kb.add(off, p)?)?)
        })
    }

    /// Sum of the lanes of `v`, in any order.
    pub fn hsum(&self, v: VectorValue<'ctx>) -> R<FloatValue<'ctx>> {
        let red = intrinsic(self.m, &["llvm.vector.reduce.fadd"], &[v.get_type().into()])?;
        let s = self
            .b
            .build_call(red, &[self.fc(0.0).into(), v.into()], "hsum")?;
        if let Some(i) = s
            .try_as_basic_value()
            .basic()
            .and_then(|v| v.as_instruction_value())
        {
            let _ = i.set_fast_math_flags(inkwell::values::FastMathFlags::AllowReassoc);
        }
        Ok(s.try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm("reduce".into()))?
            .into_float_value())
    }

    /// `dst[off + p] = src[off + p] * g` for `p` in `0..n`.
    pub fn scale_contig(
        &mut self,
        src: PointerValue<'ctx>,
        dst: PointerValue<'ctx>,
        off: IntValue<'ctx>,
        n: IntValue<'ctx>,
        g: FloatValue<'ctx>,
    ) -> R<()> {
        let w = self.width() as u64;
        // constant for a known `n` (the builder folds), so a static kernel stays specialised
        let full = if w == 1 {
            self.i(0)
        } else {
            self.mul(self.div(n, self.i(w))?, self.i(w))?
        };
        if full.get_zero_extended_constant() != Some(0) {
            let gv = self.splat(g)?;
            let chunks = self.div(full, self.i(w))?;
            self.for_loop(self.i(0), chunks, |kb, k| {
                let i = kb.add(off, kb.mul(k, kb.i(w))?)?;
                let v = kb.b.build_float_mul(kb.vload(src, i)?, gv, "")?;
                kb.vstore(dst, i, v)
            })?;
        }
        self.for_loop(full, n, |kb, p| {
            let i = kb.add(off, p)?;
            let v = kb.fmul(kb.load(src, i)?, g)?;
            kb.store(dst, i, v)
        })
    }

    /// A running vector sum: `s = init; for i in lo..hi { s += load(i) }; s`.
    pub fn vec_sum(
        &mut self,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        init: VectorValue<'ctx>,
        load: impl FnOnce(&mut Self, IntValue<'ctx>) -> R<VectorValue<'ctx>>,
    ) -> R<VectorValue<'ctx>> {
        let s = self.for_carry(lo, hi, vec![init.into()], |kb, i, s| {
            let v = load(kb, i)?;
            Ok(vec![kb
                .b
                .build_float_add(s[0].into_vector_value(), v, "")?
                .into()])
        })?;
        Ok(s[0].into_vector_value())
    }

    /// A counted loop carrying any values (scalars or vectors) in phis: `vals = init; for i in
    /// lo..hi { vals = body(i, vals) }; vals`.
    pub fn for_carry(
        &mut self,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        init: Vec<inkwell::values::BasicValueEnum<'ctx>>,
        body: impl FnOnce(
            &mut Self,
            IntValue<'ctx>,
            Vec<inkwell::values::BasicValueEnum<'ctx>>,
        ) -> R<Vec<inkwell::values::BasicValueEnum<'ctx>>>,
    ) -> R<Vec<inkwell::values::BasicValueEnum<'ctx>>> {
        let pre = self
            .b
            .get_insert_block()
            .ok_or_else(|| CodegenError::Llvm("no block".into()))?;
        let bb = self.ctx.append_basic_block(self.f, "carry");
        let exit = self.ctx.append_basic_block(self.f, "carry.exit");
        let c0 = self.b.build_int_compare(IntPredicate::SLT, lo, hi, "")?;
        self.b.build_conditional_branch(c0, bb, exit)?;
        self.b.position_at_end(bb);
        let phi = self.b.build_phi(self.ctx.i64_type(), "i")?;
        let phis = init
            .iter()
            .map(|v| self.b.build_phi(v.get_type(), "c"))
            .collect::<Result<Vec<_>, _>>()?;
        let i = phi.as_basic_value().into_int_value();
        let vals = body(self, i, phis.iter().map(|p| p.as_basic_value()).collect())?;
        let next = self.b.build_int_add(i, self.i(1), "")?;
        let latch = self
            .b
            .get_insert_block()
            .ok_or_else(|| CodegenError::Llvm("no block".into()))?;
        phi.add_incoming(&[(&lo, pre), (&next, latch)]);
        for ((p, v0), v) in phis.iter().zip(&init).zip(&vals) {
            p.add_incoming(&[(v0, pre), (v, latch)]);
        }
        let c = self.b.build_int_compare(IntPredicate::SLT, next, hi, "")?;
        self.b.build_conditional_branch(c, bb, exit)?;
        self.b.position_at_end(exit);
        let mut out = Vec::with_capacity(vals.len());
        for (v0, v) in init.iter().zip(&vals) {
            let p = self.b.build_phi(v0.get_type(), "out")?;
            p.add_incoming(&[(v0, pre), (v, latch)]);
            out.push(p.as_basic_value());
        }
        Ok(out)
    }

    /// Vector of `width()` lanes loaded from `base[idx..]` (unaligned).
    pub fn vec_load(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<VectorValue<'ctx>> {
        self.vload(base, idx)
    }

    /// Stores a vector at `base[idx..]` (unaligned).
    pub fn vec_store(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: VectorValue<'ctx>,
    ) -> R<()> {
        self.vstore(base, idx, v)
    }

    /// All lanes set to `x`.
    pub fn vec_splat(&self, x: FloatValue<'ctx>) -> R<VectorValue<'ctx>> {
        self.splat(x)
    }

    /// `lanes` floats loaded from `base[idx..]` (the blocked kernels' vectors are one
    /// channel block wide, whatever [`Self::width`] is).
    pub fn vec_load_n(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        lanes: u32,
    ) -> R<VectorValue<'ctx>> {
        let p = self.at(base, idx)?;
        let v = self
            .b
            .build_load(self.ctx.f32_type().vec_type(lanes), p, "vln")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(4)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        Ok(v.into_vector_value())
    }

    /// A vector of `lanes` copies of `x`.
    pub fn vec_splat_n(&self, x: FloatValue<'ctx>, lanes: u32) -> R<VectorValue<'ctx>> {
        let vt = self.ctx.f32_type().vec_type(lanes);
        let v = self.b.build_insert_element(
            vt.get_poison(),
            x,
            self.ctx.i32_type().const_zero(),
            "",
        )?;
        let mask = self.ctx.i32_type().vec_type(lanes).const_zero();
        Ok(self
            .b
            .build_shuffle_vector(v, vt.get_poison(), mask, "splatn")?)
    }

    /// Lane-wise `a op b` for the blocked kernels' combining steps.
    pub fn vec_binary(
        &self,
        op: secc_ir::BinaryOp,
        a: VectorValue<'ctx>,
        b: VectorValue<'ctx>,
    ) -> R<VectorValue<'ctx>> {
        use secc_ir::BinaryOp as B;
        let r = match op {
            B::Add => self.b.build_float_add(a, b, "")?,
            B::Mul => self.b.build_float_mul(a, b, "")?,
            B::Max => {
                // the scalar `fmax`'s NaN rule, lane by lane
                let c = self.b.build_float_compare(FloatPredicate::ULT, a, b, "")?;
                return Ok(self.b.build_select(c, b, a, "")?.into_vector_value());
            }
            other => return Err(CodegenError::Llvm(format!("vec_binary {other:?}"))),
        };
        Ok(r)
    }

    /// Lane mask: lane `j` is set when `lo <= start + j < hi`.
    pub fn lane_mask(
        &self,
        start: IntValue<'ctx>,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
    ) -> R<VectorValue<'ctx>> {
        self.lane_mask_lanes(start, lo, hi, self.width())
    }

    /// `width()` floats at `base[idx + j * stride]`: one contiguous load of
    /// `width() * stride` floats and a shuffle that keeps every `stride`-th lane. With a
    /// mask (see [`Self::wide_mask`]) only the wide lanes it allows are read (the others
    /// yield 0).
    pub fn vec_load_strided(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        stride: u64,
        mask: Option<VectorValue<'ctx>>,
    ) -> R<VectorValue<'ctx>> {
        let w = self.width();
        if stride == 1 {
            return match mask {
                Some(m) => self.vec_load_masked(base, idx, m),
                None => self.vload(base, idx),
            };
        }
        let n = w * stride as u32;
        let vt = self.ctx.f32_type().vec_type(n);
        let wide = match mask {
            Some(m) => {
                let ptr = self.ctx.ptr_type(AddressSpace::default());
                let f = intrinsic(self.m, &["llvm.masked.load"], &[vt.into(), ptr.into()])?;
                let p = self.at_wrapping(base, idx)?;
                self.b
                    .build_call(
                        f,
                        &[
                            p.into(),
                            self.ctx.i32_type().const_int(4, false).into(),
                            m.into(),
                            vt.const_zero().into(),
                        ],
                        "mload",
                    )?
                    .try_as_basic_value()
                    .basic()
                    .ok_or_else(|| CodegenError::Llvm("masked.load".into()))?
                    .into_vector_value()
            }
            None => {
                let p = self.at(base, idx)?;
                let v = self.b.build_load(vt, p, "vlw")?;
                if let Some(i) = v.as_instruction_value() {
                    i.set_alignment(4)
                        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
                }
                v.into_vector_value()
            }
        };
        let pick = VectorType::const_vector(
            &(0..w)
                .map(|j| self.ctx.i32_type().const_int(u64::from(j) * stride, false))
                .collect::<Vec<_>>(),
        );
        Ok(self
            .b
            .build_shuffle_vector(wide, vt.get_poison(), pick, "strided")?)
    }

    /// Mask for a strided load of `width() * stride` lanes starting at column `start`:
    /// lane `j` is set when `lo <= start + j < hi`.
    pub fn wide_mask(
        &self,
        start: IntValue<'ctx>,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        stride: u64,
    ) -> R<VectorValue<'ctx>> {
        self.lane_mask_lanes(start, lo, hi, self.width() * stride as u32)
    }

    /// Lane mask of `w` lanes: lane `j` is set when `lo <= start + j < hi`.
    pub fn lane_mask_lanes(
        &self,
        start: IntValue<'ctx>,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        w: u32,
    ) -> R<VectorValue<'ctx>> {
        let i64t = self.ctx.i64_type();
        let vt = i64t.vec_type(w);
        let splat = |x: IntValue<'ctx>| -> R<VectorValue<'ctx>> {
            let v = self.b.build_insert_element(
                vt.get_poison(),
                x,
                self.ctx.i32_type().const_zero(),
                "",
            )?;
            Ok(self.b.build_shuffle_vector(
                v,
                vt.get_poison(),
                self.ctx.i32_type().vec_type(w).const_zero(),
                "",
            )?)
        };
        let iota = VectorType::const_vector(
            &(0..w)
                .map(|j| i64t.const_int(j as u64, false))
                .collect::<Vec<_>>(),
        );
        let pos = self.b.build_int_add(splat(start)?, iota, "")?;
        let a = self
            .b
            .build_int_compare(IntPredicate::SGE, pos, splat(lo)?, "")?;
        let b = self
            .b
            .build_int_compare(IntPredicate::SLT, pos, splat(hi)?, "")?;
        Ok(self.b.build_and(a, b, "mask")?)
    }

    /// Address of `base[idx]` without the in-bounds promise: masked accesses at a tile's
    /// border may start before the first element of the row (or buffer); only lanes inside it
    /// are accessed.
    fn at_wrapping(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        // SAFETY: a plain (non-inbounds) GEP only computes an address with wrapping
        // arithmetic; the masked load/store through it touches only lanes the mask allows,
        // which the callers limit to elements inside the buffer.
        Ok(unsafe { self.b.build_gep(self.ctx.f32_type(), base, &[idx], "pw")? })
    }

    /// Masked vector load: lanes off in `mask` read nothing and yield 0.
    pub fn vec_load_masked(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        mask: VectorValue<'ctx>,
    ) -> R<VectorValue<'ctx>> {
        let vt = self.ctx.f32_type().vec_type(self.width());
        let ptr = self.ctx.ptr_type(AddressSpace::default());
        let f = intrinsic(self.m, &["llvm.masked.load"], &[vt.into(), ptr.into()])?;
        let p = self.at_wrapping(base, idx)?;
        let r = self
            .b
            .build_call(
                f,
                &[
                    p.into(),
                    self.ctx.i32_type().const_int(4, false).into(),
                    mask.into(),
                    vt.const_zero().into(),
                ],
                "mload",
            )?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm("masked.load".into()))?;
        Ok(r.into_vector_value())
    }

    /// Masked vector store: lanes off in `mask` write nothing.
    pub fn vec_store_masked(
        &self,
        base: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: VectorValue<'ctx>,
        mask: VectorValue<'ctx>,
    ) -> R<()> {
        let ptr = self.ctx.ptr_type(AddressSpace::default());
        let f = intrinsic(
            self.m,
            &["llvm.masked.store"],
            &[v.get_type().into(), ptr.into()],
        )?;
        let p = self.at_wrapping(base, idx)?;
        self.b.build_call(
            f,
            &[
                v.into(),
                p.into(),
                self.ctx.i32_type().const_int(4, false).into(),
                mask.into(),
            ],
            "",
        )?;
        Ok(())
    }

    /// Asks the CPU to bring the cache line of `base[idx]` into L1 ahead of its use (no-op
    /// on PTX). The address may lie past the buffer: a prefetch never faults, and the
    /// address is computed without `inbounds`, so it is defined wherever it points.
    pub fn prefetch(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<()> {
        if self.flavor != Flavor::Cpu {
            return Ok(());
        }
        // SAFETY: a plain (not inbounds) GEP only computes an address; nothing is loaded.
        let p = unsafe { self.b.build_gep(self.ctx.f32_type(), base, &[idx], "pf")? };
        let f = intrinsic(self.m, &["llvm.prefetch"], &[p.get_type().into()])?;
        let i32t = self.ctx.i32_type();
        // read, high temporal locality, data cache
        let args = [
            p.into(),
            i32t.const_zero().into(),
            i32t.const_int(3, false).into(),
            i32t.const_int(1, false).into(),
        ];
        self.b.build_call(f, &args, "")?;
        Ok(())
    }

    /// `a * b + c` on vectors (fused where the target has FMA).
    pub fn vec_fma(
        &self,
        a: VectorValue<'ctx>,
        b: VectorValue<'ctx>,
        c: VectorValue<'ctx>,
    ) -> R<VectorValue<'ctx>> {
        let f = intrinsic(self.m, &["llvm.fmuladd"], &[a.get_type().into()])?;
        let r = self
            .b
            .build_call(f, &[a.into(), b.into(), c.into()], "fma")?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm("fmuladd".into()))?;
        Ok(r.into_vector_value())
    }

    /// `if cond { body }`.
    pub fn if_then(
        &mut self,
        cond: IntValue<'ctx>,
        body: impl FnOnce(&mut Self) -> R<()>,
    ) -> R<()> {
        let then = self.ctx.append_basic_block(self.f, "then");
        let exit = self.ctx.append_basic_block(self.f, "endif");
        self.b.build_conditional_branch(cond, then, exit)?;
        self.b.position_at_end(then);
        body(self)?;
        self.b.build_unconditional_branch(exit)?;
        self.b.position_at_end(exit);
        Ok(())
    }

    /// `if cond { a } else { b }`, for code paths chosen at run time.
    pub fn if_else(
        &mut self,
        cond: IntValue<'ctx>,
        a: impl FnOnce(&mut Self) -> R<()>,
        b: impl FnOnce(&mut Self) -> R<()>,
    ) -> R<()> {
        self.if_then(cond, a)?;
        let not = self.b.build_not(cond, "")?;
        self.if_then(not, b)
    }

    /// `0 <= i < n` (signed).
    pub fn inside(&self, i: IntValue<'ctx>, n: u64) -> R<IntValue<'ctx>> {
        self.inside_n(i, self.i(n))
    }

    /// `0 <= i < n` (signed), `n` a run-time extent.
    pub fn inside_n(&self, i: IntValue<'ctx>, n: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_and(
            self.lt(i, n)?,
            self.b
                .build_int_compare(IntPredicate::SGE, i, self.i(0), "")?,
            "",
        )?)
    }

    /// Signed `a < b`.
    pub fn lt(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.b.build_int_compare(IntPredicate::SLT, a, b, "")?)
    }

    /// This thread's contiguous share `[lo, hi)` of `0..total` among `n` threads.
    pub fn split_by(
        &self,
        total: IntValue<'ctx>,
        t: IntValue<'ctx>,
        n: IntValue<'ctx>,
    ) -> R<(IntValue<'ctx>, IntValue<'ctx>)> {
        let lo = self.div(self.mul(total, t)?, n)?;
        let hi = self.div(self.mul(total, self.add(t, self.i(1))?)?, n)?;
        Ok((lo, hi))
    }

    /// This thread's share of `0..total` among all threads of the kernel.
    pub fn split(&self, total: IntValue<'ctx>) -> R<(IntValue<'ctx>, IntValue<'ctx>)> {
        self.split_by(total, self.tid, self.nthr)
    }

    /// Waits until every thread of the group reaches this point.
    pub fn barrier(&self) -> R<()> {
        self.used_barrier.set(true);
        match self.flavor {
            Flavor::Cpu => {
                let ptr = self.ctx.ptr_type(AddressSpace::default());
                let fty = self.ctx.void_type().fn_type(&[ptr.into()], false);
                let (Some(f), Some(c)) = (self.bar_fn, self.bar_ctx) else {
                    return Err(CodegenError::Llvm("no barrier".into()));
                };
                self.b.build_indirect_call(fty, f, &[c.into()], "")?;
            }
            Flavor::Ptx => {
                let f = intrinsic(self.m, &["llvm.nvvm.barrier0"], &[])?;
                self.b.build_call(f, &[], "")?;
            }
        }
        Ok(())
    }

    /// How many of `t, t + step, ...` are below `n`: `ceil((n - t) / step)`, 0 when
    /// `t >= n` (clamped while signed, before the unsigned division).
    pub fn strided_trips(
        &self,
        n: IntValue<'ctx>,
        t: IntValue<'ctx>,
        step: IntValue<'ctx>,
    ) -> R<IntValue<'ctx>> {
        let ahead = self.sub(self.add(n, step)?, self.add(t, self.i(1))?)?;
        self.div(self.imax(ahead, self.i(0))?, step)
    }

    /// Signed `0 <= v < hi`.
    pub fn in_range(&self, v: IntValue<'ctx>, hi: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let ge = self
            .b
            .build_int_compare(IntPredicate::SGE, v, self.i(0), "")?;
        Ok(self.b.build_and(ge, self.lt(v, hi)?, "")?)
    }

    /// `sum f(i)` over `i = t, t + step, ... < n`: thread `t`'s part of a sum its group
    /// shares (`step` threads; adjacent threads take adjacent `i`, so loads coalesce).
    pub fn group_strided_sum(
        &mut self,
        n: IntValue<'ctx>,
        t: IntValue<'ctx>,
        step: IntValue<'ctx>,
        f: impl FnOnce(&mut Self, IntValue<'ctx>) -> R<FloatValue<'ctx>>,
    ) -> R<FloatValue<'ctx>> {
        let trips = self.strided_trips(n, t, step)?;
        let zero = self.fc(0.0);
        self.for_acc(self.i(0), trips, zero, |kb, j, acc| {
            let i = kb.add(t, kb.mul(j, step)?)?;
            let v = f(kb, i)?;
            kb.fadd(acc, v)
        })
    }

    /// `for e in (group_tid..n).step_by(group_n) { body(e) }`: the group's threads share
    /// `0..n` round-robin (adjacent threads take adjacent items, so accesses coalesce).
    pub fn for_strided(
        &mut self,
        n: u64,
        body: impl FnOnce(&mut Self, IntValue<'ctx>) -> R<()>,
    ) -> R<()> {
        let (t, step) = (self.group_tid, self.group_n);
        let trips = self.strided_trips(self.i(n), t, step)?;
        self.for_loop(self.i(0), trips, |kb, j| {
            let e = kb.add(t, kb.mul(j, step)?)?;
            body(kb, e)
        })
    }

    /// PTX: the sum of `v` over the 32 lanes of the warp, in every lane (butterfly
    /// shuffles; all 32 lanes must reach it). CPU: `v` (a warp of one).
    pub fn warp_sum(&self, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        if self.flavor != Flavor::Ptx {
            return Ok(v);
        }
        let f = intrinsic(self.m, &["llvm.nvvm.shfl.sync.bfly.f32"], &[])?;
        let i32t = self.ctx.i32_type();
        let mut v = v;
        for lanes in [16, 8, 4, 2, 1] {
            let args = [
                i32t.const_all_ones().into(),
                v.into(),
                i32t.const_int(lanes, false).into(),
                i32t.const_int(0x1f, false).into(),
            ];
            let other = self
                .b
                .build_call(f, &args, "shfl")?
                .try_as_basic_value()
                .basic()
                .ok_or_else(|| CodegenError::Llvm("shfl".into()))?;
            v = self.fadd(v, other.into_float_value())?;
        }
        Ok(v)
    }

    /// PTX: the sum of `v` over the CTA, in every thread: [`Kb::warp_sum`], each warp's sum
    /// through shared memory (one float per warp: the launch contract's shared memory),
    /// a barrier, every thread adding the warps' sums in the same order. Every thread of
    /// the CTA must reach it, and at most once per kernel (nothing waits before the shared
    /// floats are reused). CPU: `v`.
    pub fn group_sum(&mut self, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let Some(smem) = self.shared_scratch()? else {
            return Ok(v);
        };
        let s = self.warp_sum(v)?;
        let warp = self.div(self.group_tid, self.i(32))?;
        let lane = self.rem(self.group_tid, self.i(32))?;
        let first = self
            .b
            .build_int_compare(IntPredicate::EQ, lane, self.i(0), "")?;
        self.if_then(first, |kb| kb.store(smem, warp, s))?;
        self.barrier()?;
        let warps = self.div(self.group_n, self.i(32))?;
        let zero = self.fc(0.0);
        self.for_acc(self.i(0), warps, zero, |kb, w, acc| {
            let part = kb.load(smem, w)?;
            kb.fadd(acc, part)
        })
    }

    /// A thread-private array of `n` floats on the stack, 64-byte aligned, allocated in the
    /// entry block (one frame slot, however often the code using it runs).
    pub fn stack_f32(&self, n: u32) -> R<PointerValue<'ctx>> {
        let llvm = |m: &str| CodegenError::Llvm(m.into());
        let here = self
            .b
            .get_insert_block()
            .ok_or_else(|| llvm("no insert block"))?;
        let entry = self
            .f
            .get_first_basic_block()
            .ok_or_else(|| llvm("no entry block"))?;
        match entry.get_first_instruction() {
            Some(i) => self.b.position_before(&i),
            None => self.b.position_at_end(entry),
        }
        let a = self
            .b
            .build_alloca(self.ctx.f32_type().array_type(n), "stack");
        self.b.position_at_end(here);
        let a = a?;
        if let Some(i) = a.as_instruction() {
            i.set_alignment(64).map_err(|e| llvm(&e.to_string()))?;
        }
        Ok(a)
    }

    /// PTX: a pointer to `floats` of CTA shared memory (the module's dynamic `extern
    /// __shared__` array, as a generic pointer). CPU: None (use a scratch buffer).
    pub fn shared_scratch(&self) -> R<Option<PointerValue<'ctx>>> {
        if self.flavor != Flavor::Ptx {
            return Ok(None);
        }
        let f32t = self.ctx.f32_type();
        let g = match self.m.get_global("secc_smem") {
            Some(g) => g,
            None => {
                let g = self.m.add_global(
                    f32t.array_type(0),
                    Some(AddressSpace::from(3u16)),
                    "secc_smem",
                );
                g.set_linkage(Linkage::External);
                g.set_alignment(16);
                g
            }
        };
        let p = self.b.build_address_space_cast(
            g.as_pointer_value(),
            self.ctx.ptr_type(AddressSpace::default()),
            "smem",
        )?;
        Ok(Some(p))
    }
}
