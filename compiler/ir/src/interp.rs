//! The reference interpreter: naive loops, written to be obviously correct rather than fast.
//! Every pass and every generated kernel is checked against it. Accumulation is in f64.
use crate::error::IrError;
use crate::graph::{Graph, ValueId};
use crate::op::{
    Activation, Conv2dAttrs, ConvTransposeAttrs, GemmAttrs, Op, PoolAttrs, PoolKind, SeAttrs,
    SeGateAttrs,
};
use crate::resize::{ResizeAttrs, ResizeMode};
use crate::types::{DType, Dim};
use std::collections::BTreeMap;

/// A dense row-major tensor: f32 elements in `data`, or (for the int64 results of
/// [`Op::MaxPoolIndices`] and [`Op::IntTensor`]) i64 elements in `ints`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// extents
    pub shape: Vec<usize>,
    /// f32 data, `shape.iter().product()` elements (empty for an i64 tensor)
    pub data: Vec<f32>,
    /// i64 data (empty for an f32 tensor)
    pub ints: Vec<i64>,
    /// which of the two holds the elements
    pub dtype: DType,
}

impl Tensor {
    /// New f32 tensor; panics if the element count is wrong (a caller bug).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor data/shape mismatch"
        );
        Tensor {
            shape,
            data,
            ints: vec![],
            dtype: DType::F32,
        }
    }
    /// New i64 tensor; panics if the element count is wrong (a caller bug).
    pub fn new_i64(shape: Vec<usize>, ints: Vec<i64>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            ints.len(),
            "tensor data/shape mismatch"
        );
        Tensor {
            shape,
            data: vec![],
            ints,
            dtype: DType::I64,
        }
    }
}

fn err(m: impl Into<String>) -> IrError {
    IrError::Interp(m.into())
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Value at output multi-index `idx` of an operand broadcast to the output rank.
fn bcast_at(t: &Tensor, idx: &[usize]) -> f32 {
    let off = idx.len() - t.shape.len();
    let st = strides(&t.shape);
    let mut p = 0;
    for (i, &d) in t.shape.iter().enumerate() {
        let j = if d == 1 { 0 } else { idx[off + i] };
        p += j * st[i];
    }
    t.data[p]
}

fn concrete(shape: &[Dim], syms: &[u64]) -> Result<Vec<usize>, IrError> {
    shape
        .iter()
        .map(|d| d.eval(syms).map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| err("unbound symbol"))
}

fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let n: usize = shape.iter().product();
    let mut idx = vec![0; shape.len()];
    for _ in 0..n {
        f(&idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Numpy broadcast of two concrete shapes.
pub fn bshape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, IrError> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            if da == db || db == 1 {
                Ok(da)
            } else if da == 1 {
                Ok(db)
            } else {
                Err(err(format!("shapes {a:?} and {b:?} do not broadcast")))
            }
        })
        .collect()
}

fn binary(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32) -> Result<Tensor, IrError> {
    let shape = bshape(&a.shape, &b.shape)?;
    let mut data = Vec::with_capacity(shape.iter().product());
    for_each_index(&shape, |i| data.push(f(bcast_at(a, i), bcast_at(b, i))));
    Ok(Tensor::new(shape, data))
}

/// Folds `x` over `axes` in f64 with `f`, starting from `init`; returns the output shape
/// (reduced axes kept as 1 or dropped) and the unrounded results.
fn reduce_f64(
    x: &Tensor,
    axes: &[usize],
    keep: bool,
    init: f64,
    f: impl Fn(f64, f64) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let mut oshape_keep = x.shape.clone();
    for &a in axes {
        oshape_keep[a] = 1;
    }
    let mut acc = vec![init; oshape_keep.iter().product()];
    let ost = strides(&oshape_keep);
    let xst = strides(&x.shape);
    for_each_index(&x.shape, |i| {
        let p: usize = (0..i.len())
            .filter(|d| !axes.contains(d))
            .map(|d| i[d] * ost[d])
            .sum();
        let xp: usize = (0..i.len()).map(|d| i[d] * xst[d]).sum();
        acc[p] = f(acc[p], x.data[xp] as f64);
    });
    let shape = if keep {
        oshape_keep
    } else {
        x.shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    (shape, acc)
}

fn reduce_mean(x: &Tensor, axes: &[usize], keep: bool) -> Tensor {
    let (shape, sums) = reduce_f64(x, axes, keep, 0.0, |a, v| a + v);
    let cnt: usize = axes.iter().map(|&a| x.shape[a]).product();
    Tensor::new(
        shape,
        sums.iter().map(|&s| (s / cnt as f64) as f32).collect(),
    )
}

fn reduce_other(kind: crate::op::ReduceKind, x: &Tensor, axes: &[usize], keep: bool) -> Tensor {
    use crate::op::ReduceKind;
    let (shape, acc) = match kind {
        ReduceKind::Sum => reduce_f64(x, axes, keep, 0.0, |a, v| a + v),
        ReduceKind::Max => reduce_f64(x, axes, keep, f64::NEG_INFINITY, f64::max),
        ReduceKind::Min => reduce_f64(x, axes, keep, f64::INFINITY, f64::min),
    };
    Tensor::new(shape, acc.into_iter().map(|v| v as f32).collect())
}

fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, IrError> {
    let a2 = if a.shape.len() == 1 {
        vec![1, a.shape[0]]
    } else {
        a.shape.clone()
    };
    let b2 = if b.shape.len() == 1 {
        vec![b.shape[0], 1]
    } else {
        b.shape.clone()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(err("matmul inner dims differ"));
    }
    let batch = bshape(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let at = Tensor::new(a2.clone(), a.data.clone());
    let bt = Tensor::new(b2.clone(), b.data.clone());
    let mut full = batch.clone();
    full.extend([m, n]);
    let mut data = Vec::with_capacity(full.iter().product());
    for_each_index(&full, |i| {
        let nb = i.len() - 2;
        let (r, c) = (i[nb], i[nb + 1]);
        let mut s = 0f64;
        let mut ia: Vec<usize> = i[..nb].to_vec();
        ia.extend([r, 0]);
        let mut ib: Vec<usize> = i[..nb].to_vec();
        ib.extend([0, c]);
        for kk in 0..k {
            ia[nb + 1] = kk;
            ib[nb] = kk;
            s += bcast_at(&at, &ia) as f64 * bcast_at(&bt, &ib) as f64;
        }
        data.push(s as f32);
    });
    let mut shape = batch;
    if a.shape.len() > 1 {
        shape.push(m);
    }
    if b.shape.len() > 1 {
        shape.push(n);
    }
    Ok(Tensor::new(shape, data))
}

fn gemm(g: &GemmAttrs, a: &Tensor, b: &Tensor, c: Option<&Tensor>) -> Result<Tensor, IrError> {
    let at = |i: usize, j: usize| {
        if g.trans_a {
            a.data[j * a.shape[1] + i]
        } else {
            a.data[i * a.shape[1] + j]
        }
    };
    let bt = |i: usize, j: usize| {
        if g.trans_b {
            b.data[j * b.shape[1] + i]
        } else {
            b.data[i * b.shape[1] + j]
        }
    };
    let (m, k) = if g.trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let n = if g.trans_b { b.shape[0] } else { b.shape[1] };
    let mut data = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for kk in 0..k {
                s += at(i, kk) as f64 * bt(kk, j) as f64;
            }
            let mut v = g.alpha as f64 * s;
            if let Some(c) = c {
                v += g.beta as f64 * bcast_at(c, &[i, j]) as f64;
            }
            data[i * n + j] = v as f32;
        }
    }
    Ok(Tensor::new(vec![m, n], data))
}

/// Transposed convolution as the scatter it is defined as: every input pixel adds
/// `x * w` into the output window it maps to.
fn conv_transpose2d(
    a: &ConvTransposeAttrs,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor, IrError> {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (cg_out, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]);
    let g = a.group as usize;
    let cg_in = c / g;
    let o = cg_out * g;
    let oh = a
        .out_extent(0, h as u64, kh as u64)
        .ok_or_else(|| err("conv_transpose2d: empty output"))? as usize;
    let ow = a
        .out_extent(1, wd as u64, kw as u64)
        .ok_or_else(|| err("conv_transpose2d: empty output"))? as usize;
    let mut acc = vec![0f64; n * o * oh * ow];
    for ni in 0..n {
        for ci in 0..c {
            let grp = ci / cg_in;
            for iy in 0..h {
                for ix in 0..wd {
                    let xv = x.data[((ni * c + ci) * h + iy) * wd + ix] as f64;
                    for ocl in 0..cg_out {
                        let oc = grp * cg_out + ocl;
                        for ky in 0..kh {
                            let oy = (iy * a.strides[0] as usize + ky * a.dilations[0] as usize)
                                as i64
                                - a.pads[0] as i64;
                            if oy < 0 || oy >= oh as i64 {
                                continue;
                            }
                            for kx in 0..kw {
                                let ox = (ix * a.strides[1] as usize + kx * a.dilations[1] as usize)
                                    as i64
                                    - a.pads[1] as i64;
                                if ox < 0 || ox >= ow as i64 {
                                    continue;
                                }
                                let wv = w.data[((ci * cg_out + ocl) * kh + ky) * kw + kx] as f64;
                                acc[((ni * o + oc) * oh + oy as usize) * ow + ox as usize] +=
                                    xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(acc.len());
    for (i, v) in acc.iter().enumerate() {
        let oc = (i / (oh * ow)) % o;
        out.push((v + b.map(|b| b.data[oc] as f64).unwrap_or(0.0)) as f32);
    }
    Ok(Tensor::new(vec![n, o, oh, ow], out))
}

fn resize(a: &ResizeAttrs, x: &Tensor, syms: &[u64]) -> Result<Tensor, IrError> {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let out = |i: usize| {
        a.sizes[i]
            .eval(syms)
            .ok_or_else(|| err("resize output extent is not bound"))
    };
    let ty = a.taps(0, h as u64, out(0)?);
    let tx = a.taps(1, w as u64, out(1)?);
    let (oh, ow) = (ty.len(), tx.len());
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        let at = |y: u64, xx: u64| x.data[(plane * h + y as usize) * w + xx as usize] as f64;
        for t in &ty {
            for u in &tx {
                let v = match a.mode {
                    ResizeMode::Nearest(_) => at(t.i0, u.i0),
                    ResizeMode::Linear => {
                        let (wy, wx) = (t.w as f64, u.w as f64);
                        let top = (1.0 - wx) * at(t.i0, u.i0) + wx * at(t.i0, u.i1);
                        let bot = (1.0 - wx) * at(t.i1, u.i0) + wx * at(t.i1, u.i1);
                        (1.0 - wy) * top + wy * bot
                    }
                };
                out.push(v as f32);
            }
        }
    }
    Ok(Tensor::new(vec![n, c, oh, ow], out))
}

fn conv2d(
    a: &Conv2dAttrs,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    gate: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    // a gated input is scaled first, in f32, as the SE block's multiply computed it
    let scaled;
    let x = match gate {
        Some(gt) => {
            scaled = scale_planes(x, gt);
            &scaled
        }
        None => x,
    };
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let g = a.group as usize;
    let og = o / g;
    let oh = (h + (a.pads[0] + a.pads[2]) as usize - (a.dilations[0] as usize * (kh - 1) + 1))
        / a.strides[0] as usize
        + 1;
    let ow = (wd + (a.pads[1] + a.pads[3]) as usize - (a.dilations[1] as usize * (kw - 1) + 1))
        / a.strides[1] as usize
        + 1;
    let mut out = vec![0f32; n * o * oh * ow];
    for ni in 0..n {
        for oc in 0..o {
            let grp = oc / og;
            for y in 0..oh {
                for xx in 0..ow {
                    let mut s = b.map(|b| b.data[oc] as f64).unwrap_or(0.0);
                    for ic in 0..cg {
                        let cin = grp * cg + ic;
                        for ky in 0..kh {
                            let iy = (y * a.strides[0] as usize + ky * a.dilations[0] as usize)
                                as i64
                                - a.pads[0] as i64;
                            if iy < 0 || iy >= h as i64 {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (xx * a.strides[1] as usize + kx * a.dilations[1] as usize)
                                    as i64
                                    - a.pads[1] as i64;
                                if ix < 0 || ix >= wd as i64 {
                                    continue;
                                }
                                let xv =
                                    x.data[((ni * c + cin) * h + iy as usize) * wd + ix as usize];
                                let wv = w.data[((oc * cg + ic) * kh + ky) * kw + kx];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    let at = ((ni * o + oc) * oh + y) * ow + xx;
                    let s = residual.map_or(s as f32, |r| (s + r.data[at] as f64) as f32);
                    out[at] = a.act.map_or(s, |f| f.apply(s));
                }
            }
        }
    }
    Tensor::new(vec![n, o, oh, ow], out)
}

/// Pooling as ONNX Runtime computes it: average windows are clipped to the padded input
/// (`count_include_pad`) or to the input (otherwise); max windows skip padding.
fn pool2d(a: &PoolAttrs, x: &Tensor) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let oh = a.out_extent(0, h as u64).unwrap_or(0) as usize;
    let ow = a.out_extent(1, w as u64).unwrap_or(0) as usize;
    let (kh, kw) = (a.kernel[0] as i64, a.kernel[1] as i64);
    let (sh, sw) = (a.strides[0] as i64, a.strides[1] as i64);
    let (dh, dw) = (a.dilations[0] as i64, a.dilations[1] as i64);
    let (pt, pl, pb, pr) = (
        a.pads[0] as i64,
        a.pads[1] as i64,
        a.pads[2] as i64,
        a.pads[3] as i64,
    );
    let mut out = vec![0f32; n * c * oh * ow];
    for plane in 0..n * c {
        let src = &x.data[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh as i64 {
            for ox in 0..ow as i64 {
                let v = match a.kind {
                    PoolKind::Max => {
                        let mut m = f32::NEG_INFINITY;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let (iy, ix) = (oy * sh - pt + ky * dh, ox * sw - pl + kx * dw);
                                if iy >= 0 && iy < h as i64 && ix >= 0 && ix < w as i64 {
                                    m = m.max(src[iy as usize * w + ix as usize]);
                                }
                            }
                        }
                        m
                    }
                    PoolKind::Avg => {
                        // taps of the (dilated) window; the window ends at the padded edge
                        let (y0, x0) = (oy * sh - pt, ox * sw - pl);
                        let mut s = 0f64;
                        let (mut inside, mut padded) = (0i64, 0i64);
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let (iy, ix) = (y0 + ky * dh, x0 + kx * dw);
                                if iy >= h as i64 + pb || ix >= w as i64 + pr {
                                    continue;
                                }
                                padded += 1;
                                if iy >= 0 && iy < h as i64 && ix >= 0 && ix < w as i64 {
                                    inside += 1;
                                    s += src[iy as usize * w + ix as usize] as f64;
                                }
                            }
                        }
                        let cnt = if a.count_include_pad { padded } else { inside };
                        (s / cnt.max(1) as f64) as f32
                    }
                };
                out[plane * oh * ow + (oy as usize) * ow + ox as usize] = v;
            }
        }
    }
    Tensor::new(vec![n, c, oh, ow], out)
}

/// MaxPool's `Indices`, as the ONNX reference computes them: the first strict maximum in
/// window order (rows, then columns), padding skipped, -1 for a window with no input tap.
fn max_pool2d_indices(a: &PoolAttrs, column_major: bool, x: &Tensor) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let oh = a.out_extent(0, h as u64).unwrap_or(0) as usize;
    let ow = a.out_extent(1, w as u64).unwrap_or(0) as usize;
    let mut out = vec![-1i64; n * c * oh * ow];
    for plane in 0..n * c {
        let src = &x.data[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh as i64 {
            for ox in 0..ow as i64 {
                let mut best: Option<(f32, i64, i64)> = None;
                for ky in 0..a.kernel[0] as i64 {
                    for kx in 0..a.kernel[1] as i64 {
                        let iy = oy * a.strides[0] as i64 - a.pads[0] as i64
                            + ky * a.dilations[0] as i64;
                        let ix = ox * a.strides[1] as i64 - a.pads[1] as i64
                            + kx * a.dilations[1] as i64;
                        if iy < 0 || iy >= h as i64 || ix < 0 || ix >= w as i64 {
                            continue;
                        }
                        let v = src[iy as usize * w + ix as usize];
                        if best.is_none_or(|b| v > b.0) {
                            best = Some((v, iy, ix));
                        }
                    }
                }
                if let Some((_, iy, ix)) = best {
                    let within = if column_major {
                        ix * h as i64 + iy
                    } else {
                        iy * w as i64 + ix
                    };
                    out[plane * oh * ow + oy as usize * ow + ox as usize] =
                        (plane * h * w) as i64 + within;
                }
            }
        }
    }
    Tensor::new_i64(vec![n, c, oh, ow], out)
}

/// The fused residual add and activation after an SE block's scale, as the graph before
/// fusion computed them (f32 add, then the activation).
fn se_epilogue(a: &SeAttrs, mut y: Tensor, residual: Option<&Tensor>) -> Tensor {
    if let Some(r) = residual {
        for (v, r) in y.data.iter_mut().zip(&r.data) {
            *v += *r;
        }
    }
    if let Some(act) = a.act {
        for v in &mut y.data {
            *v = act.apply(*v);
        }
    }
    y
}

/// The SE block written out step by step, exactly as the paper defines it: the gate (from
/// x, or from its channel means when the producer pooled x), then the scale.
fn squeeze_excite(
    a: &SeAttrs,
    x: &Tensor,
    pooled: Option<&Tensor>,
    [w1, b1, w2, b2]: [&Tensor; 4],
) -> Tensor {
    let ga = SeGateAttrs {
        inner: a.inner,
        gate: a.gate,
    };
    let gates = se_gate(&ga, pooled.unwrap_or(x), w1, b1, w2, b2);
    scale_planes(x, &gates)
}

/// `x[N, C, H, W]` with each plane multiplied (in f32) by its factor in `s[N, C]`.
fn scale_planes(x: &Tensor, s: &Tensor) -> Tensor {
    let hw = x.shape[2] * x.shape[3];
    let mut y = x.data.to_vec();
    for (i, v) in y.iter_mut().enumerate() {
        *v *= s.data[i / hw];
    }
    Tensor::new(x.shape.clone(), y)
}

/// The mean (f64) of each `[H, W]` plane of `x[N, C, ..]`, in (image, channel) order; a
/// rank-2 `x` is its own means.
fn plane_means(x: &Tensor) -> Vec<f64> {
    let planes = x.shape[0] * x.shape[1];
    let hw: usize = x.shape[2..].iter().product();
    (0..planes)
        .map(|k| {
            let p = &x.data[k * hw..(k + 1) * hw];
            p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64
        })
        .collect()
}

/// An SE block's gates `[N, C]`: the pool (f64), the two FC layers (f64 sums rounded to
/// f32 before each activation).
fn se_gate(
    a: &SeGateAttrs,
    x: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    b2: &Tensor,
) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1]);
    let r = w1.shape[0];
    // x [N, C, H, W], or its channel means [N, C] (pooled by the producing convolution)
    let means = plane_means(x);
    let mut gates = Vec::with_capacity(n * c);
    for ni in 0..n {
        let pooled = &means[ni * c..(ni + 1) * c];
        let hidden: Vec<f32> = (0..r)
            .map(|j| {
                let s: f64 = b1.data[j] as f64
                    + (0..c)
                        .map(|ci| w1.data[j * c + ci] as f64 * pooled[ci])
                        .sum::<f64>();
                a.inner.apply(s as f32)
            })
            .collect();
        for ci in 0..c {
            let s: f64 = b2.data[ci] as f64
                + (0..r)
                    .map(|j| w2.data[ci * r + j] as f64 * hidden[j] as f64)
                    .sum::<f64>();
            gates.push(a.gate.apply(s as f32));
        }
    }
    Tensor::new(vec![n, c], gates)
}

fn act(a: Activation, x: &Tensor) -> Tensor {
    Tensor::new(
        x.shape.clone(),
        x.data.iter().map(|&v| a.apply(v)).collect(),
    )
}

/// Binds symbolic dims from the concrete input shapes.
pub fn bind_symbols(g: &Graph, inputs: &[Tensor]) -> Result<Vec<u64>, IrError> {
    if inputs.len() != g.inputs.len() {
        return Err(err(format!(
            "graph has {} inputs, got {}",
            g.inputs.len(),
            inputs.len()
        )));
    }
    let mut syms: Vec<Option<u64>> = vec![None; g.sym_names.len()];
    for ((name, id), t) in g.inputs.iter().zip(inputs) {
        let ty = &g.node(*id).outputs[0];
        if ty.shape.len() != t.shape.len() {
            return Err(err(format!(
                "input '{name}': rank {} expected, got shape {:?}",
                ty.shape.len(),
                t.shape
            )));
        }
        for (d, &v) in ty.shape.iter().zip(&t.shape) {
            match *d {
                Dim::Known(k) if k as usize == v => {}
                Dim::Sym(s, k) if (v as u64).is_multiple_of(k) => {
                    let b = v as u64 / k;
                    match syms[s.0 as usize] {
                        Some(o) if o != b => {
                            return Err(err(format!(
                                "input '{name}': symbol '{}' bound to {o} and {b}",
                                g.sym_names[s.0 as usize]
                            )))
                        }
                        _ => syms[s.0 as usize] = Some(b),
                    }
                }
                _ => {
                    return Err(err(format!(
                        "input '{name}': expected {}, got shape {:?}",
                        ty.display(&g.sym_names),
                        t.shape
                    )))
                }
            }
        }
    }
    let syms: Vec<u64> = syms.into_iter().map(|s| s.unwrap_or(1)).collect();
    for c in &g.constraints {
        if c.holds(&syms) != Some(true) {
            let vals: Vec<String> = (c.lhs.symbols().into_iter())
                .chain(c.rhs.symbols())
                .map(|s| format!("{} = {}", g.sym_names[s.0 as usize], syms[s.0 as usize]))
                .collect();
            return Err(err(format!(
                "the input shapes break the constraint {} with {}",
                c.display(&g.sym_names),
                vals.join(", ")
            )));
        }
    }
    Ok(syms)
}

/// Evaluates one compute op (not `Input`/`Const`) on concrete operands.
pub fn eval_op(op: &Op, ins: &[&Tensor], syms: &[u64]) -> Result<Tensor, IrError> {
    Ok(match op {
        Op::Input { .. } | Op::Const(_) => {
            return Err(err("inputs and constants are not evaluated"))
        }
        Op::Identity | Op::Reorder { .. } => ins[0].clone(),
        Op::Binary(b) => binary(ins[0], ins[1], |x, y| b.apply(x, y))?,
        Op::Where => {
            let s = bshape(&bshape(&ins[0].shape, &ins[1].shape)?, &ins[2].shape)?;
            let mut data = Vec::with_capacity(s.iter().product());
            for_each_index(&s, |i| {
                data.push(if bcast_at(ins[0], i) != 0.0 {
                    bcast_at(ins[1], i)
                } else {
                    bcast_at(ins[2], i)
                })
            });
            Tensor::new(s, data)
        }
        Op::Elementwise { prog } => {
            let mut s = ins[0].shape.clone();
            for t in &ins[1..] {
                s = bshape(&s, &t.shape)?;
            }
            let mut data = Vec::with_capacity(s.iter().product());
            let mut regs = Vec::with_capacity(ins.len() + prog.len());
            for_each_index(&s, |i| {
                regs.clear();
                regs.extend(ins.iter().map(|t| bcast_at(t, i)));
                for instr in prog {
                    let v = instr.apply(&regs);
                    regs.push(v);
                }
                data.push(regs[regs.len() - 1]);
            });
            Tensor::new(s, data)
        }
        Op::Expand { shape } => {
            let s = concrete(shape, syms)?;
            let mut data = Vec::with_capacity(s.iter().product());
            for_each_index(&s, |i| data.push(bcast_at(ins[0], i)));
            Tensor::new(s, data)
        }
        Op::Slice {
            starts,
            steps,
            shape,
        } => {
            let s = concrete(shape, syms)?;
            let xst = strides(&ins[0].shape);
            let mut data = Vec::with_capacity(s.iter().product());
            for_each_index(&s, |i| {
                let p: i64 = (0..i.len())
                    .map(|d| (starts[d] as i64 + i[d] as i64 * steps[d]) * xst[d] as i64)
                    .sum();
                data.push(ins[0].data[p as usize]);
            });
            Tensor::new(s, data)
        }
        Op::Resize(a) => resize(a, ins[0], syms)?,
        Op::ConvTranspose2d(a) => conv_transpose2d(a, ins[0], ins[1], ins.get(2).copied())?,
        Op::Act(a) => act(*a, ins[0]),
        Op::GlobalAvgPool => {
            let axes: Vec<usize> = (2..ins[0].shape.len()).collect();
            reduce_mean(ins[0], &axes, true)
        }
        Op::ReduceMean { axes, keep_dims } => reduce_mean(ins[0], axes, *keep_dims),
        Op::Reduce {
            kind,
            axes,
            keep_dims,
        } => reduce_other(*kind, ins[0], axes, *keep_dims),
        Op::GlobalMaxPool => {
            let x = ins[0];
            let (nc, hw) = (
                x.shape[0] * x.shape[1],
                x.shape[2..].iter().product::<usize>(),
            );
            let data = (0..nc)
                .map(|i| {
                    x.data[i * hw..(i + 1) * hw]
                        .iter()
                        .copied()
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .collect();
            let mut shape = x.shape.clone();
            for d in shape.iter_mut().skip(2) {
                *d = 1;
            }
            Tensor::new(shape, data)
        }
        Op::Pool2d(a) => pool2d(a, ins[0]),
        Op::MaxPoolIndices { pool, column_major } => {
            max_pool2d_indices(pool, *column_major, ins[0])
        }
        Op::IntTensor { shape, values } => Tensor::new_i64(
            shape.iter().map(|&d| d as usize).collect(),
            values
                .iter()
                .map(|v| v.eval(syms).ok_or_else(|| err("unbound symbol")))
                .collect::<Result<_, _>>()?,
        ),
        Op::Concat { axis } => {
            let outer: usize = ins[0].shape[..*axis].iter().product();
            let mut shape = ins[0].shape.clone();
            shape[*axis] = ins.iter().map(|t| t.shape[*axis]).sum();
            let mut data = Vec::with_capacity(shape.iter().product());
            for o in 0..outer {
                for t in ins {
                    let row: usize = t.shape[*axis..].iter().product();
                    data.extend_from_slice(&t.data[o * row..(o + 1) * row]);
                }
            }
            Tensor::new(shape, data)
        }
        Op::Pad { pads, mode } => {
            let x = ins[0];
            let shape: Vec<usize> = x
                .shape
                .iter()
                .zip(pads)
                .map(|(&d, &(b, e))| d + b as usize + e as usize)
                .collect();
            let xs = strides(&x.shape);
            let mut data = Vec::with_capacity(shape.iter().product());
            for_each_index(&shape, |i| {
                let mut off = Some(0usize);
                for (d, &v) in i.iter().enumerate() {
                    let n = x.shape[d] as i64;
                    let p = v as i64 - pads[d].0 as i64;
                    let q = match mode {
                        crate::op::PadMode::Constant(_) | crate::op::PadMode::ConstantInput => {
                            (0..n).contains(&p).then_some(p)
                        }
                        crate::op::PadMode::Edge => Some(p.clamp(0, n - 1)),
                        crate::op::PadMode::Reflect => Some(if p < 0 {
                            -p
                        } else if p >= n {
                            2 * (n - 1) - p
                        } else {
                            p
                        }),
                    };
                    off = match (off, q) {
                        (Some(o), Some(q)) => Some(o + q as usize * xs[d]),
                        _ => None,
                    };
                }
                data.push(match (off, mode) {
                    (Some(o), _) => x.data[o],
                    (None, crate::op::PadMode::Constant(c)) => *c,
                    (None, crate::op::PadMode::ConstantInput) => ins[1].data[0],
                    (None, _) => unreachable!("only constant padding reads outside"),
                });
            });
            Tensor::new(shape, data)
        }
        Op::Transpose { perm } => {
            let x = ins[0];
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            let xs = strides(&x.shape);
            let mut data = Vec::with_capacity(x.data.len());
            for_each_index(&shape, |i| {
                let off: usize = i.iter().zip(perm).map(|(&v, &p)| v * xs[p]).sum();
                data.push(x.data[off]);
            });
            Tensor::new(shape, data)
        }
        Op::Softmax { axis } => {
            let x = ins[0];
            let len = x.shape[*axis];
            let inner: usize = x.shape[*axis + 1..].iter().product();
            let outer: usize = x.shape[..*axis].iter().product();
            let mut y = x.data.clone();
            for o in 0..outer {
                for i in 0..inner {
                    let at = |k: usize| (o * len + k) * inner + i;
                    let m = (0..len)
                        .map(|k| x.data[at(k)] as f64)
                        .fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = (0..len).map(|k| (x.data[at(k)] as f64 - m).exp()).sum();
                    for k in 0..len {
                        y[at(k)] = ((x.data[at(k)] as f64 - m).exp() / s) as f32;
                    }
                }
            }
            Tensor::new(x.shape.clone(), y)
        }
        Op::Reshape { shape } => {
            let s = concrete(shape, syms)?;
            if s.iter().product::<usize>() != ins[0].shape.iter().product::<usize>() {
                return Err(err("reshape changes the element count"));
            }
            Tensor {
                shape: s,
                ..ins[0].clone()
            }
        }
        Op::MatMul => matmul(ins[0], ins[1])?,
        Op::Gemm(a) => gemm(a, ins[0], ins[1], ins.get(2).copied())?,
        Op::Conv2d(a) => conv2d(
            a,
            ins[0],
            ins[1],
            ins.get(2).copied(),
            a.gate_slot().map(|s| ins[s]),
            a.residual_slot().map(|s| ins[s]),
        ),
        Op::SeGate(a) => se_gate(a, ins[0], ins[1], ins[2], ins[3], ins[4]),
        Op::SqueezeExcite(a) => {
            let pooled = a.means_slot().map(|s| ins[s]);
            let y = squeeze_excite(a, ins[0], pooled, [ins[1], ins[2], ins[3], ins[4]]);
            se_epilogue(a, y, a.residual_slot().map(|s| ins[s]))
        }
    })
}

/// The results of `op` after the first, computed from the first: a pooling
/// convolution's channel means (f64 sums, as the SE block's pool computed them).
fn extra_results(op: &Op, first: &Tensor) -> Vec<Tensor> {
    match op {
        Op::Conv2d(a) if a.pool => vec![channel_means(first)],
        _ => vec![],
    }
}

/// `[N, C, H, W]` -> the mean of each channel plane, `[N, C]`.
fn channel_means(x: &Tensor) -> Tensor {
    let means = plane_means(x).into_iter().map(|m| m as f32).collect();
    Tensor::new(vec![x.shape[0], x.shape[1]], means)
}

/// Runs the graph on `inputs` (in signature order) and returns the outputs in order.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, IrError> {
    let syms = bind_symbols(g, inputs)?;
    let order = g.topo_order().ok_or_else(|| err("graph has a cycle"))?;
    let mut vals: BTreeMap<ValueId, Tensor> = BTreeMap::new();
    for id in order {
        let n = g.node(id);
        let ins: Vec<&Tensor> = g
            .inputs(id)
            .iter()
            .map(|v: &ValueId| vals.get(v).ok_or_else(|| err("operand not computed")))
            .collect::<Result<_, _>>()?;
        let at = |e: IrError| IrError::AtNode {
            node: g.node_ref(id),
            source: Box::new(e),
        };
        let t = match &n.op {
            Op::Input { index } => inputs[*index as usize].clone(),
            Op::Const(c) => {
                let d = g.consts.get(*c);
                Tensor::new(d.shape.clone(), d.data.to_vec())
            }
            op => eval_op(op, &ins, &syms).map_err(at)?,
        };
        let want = n.outputs[0]
            .eval(&syms)
            .ok_or_else(|| at(err("unbound symbol")))?;
        if t.shape != want || t.dtype != n.outputs[0].dtype {
            return Err(at(err(format!(
                "computed {} {:?}, type says {}",
                t.dtype.name(),
                t.shape,
                n.outputs[0].display(&g.sym_names)
            ))));
        }
        for (k, e) in extra_results(&n.op, &t).into_iter().enumerate() {
            vals.insert(
                ValueId {
                    node: id,
                    slot: k as u8 + 1,
                },
                e,
            );
        }
        vals.insert(id.into(), t);
    }
    g.outputs
        .iter()
        .map(|(_, v)| {
            vals.get(v)
                .cloned()
                .ok_or_else(|| err("output not computed"))
        })
        .collect()
}
