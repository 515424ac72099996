//! Winograd convolution over blocked tensors (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016): F(m x m, 3x3) computes each m x m output tile of
//! a 3x3 stride-1 convolution from an (m+2) x (m+2) input tile as
//! `Y = A^T [(G g G^T) . (B^T d B)] A`, `(m+2)^2` multiplications per tile and channel pair
//! instead of `9 m^2`: F(2x2, 3x3) (16 for 36) and F(4x4, 3x3) (36 for 144). It runs as
//! three kernel steps:
//!
//! 1. [`input`]: every input tile of every channel block to its `(m+2)^2` transformed
//!    positions `V = B^T d B`, stored as that many blocked "images" per image whose pixels
//!    are the tiles: `V[n][xi][cb][tile][lane]`;
//! 2. a batched GEMM per position, `M_xi = U_xi V_xi` over the channels: the blocked 1x1
//!    convolution ([`crate::blocked::conv`], register tiles and all) over `(m+2)^2 N`
//!    images whose weights are the set of their position ([`BlockedConv::weight_sets`]),
//!    `U = G g G^T` computed in f64 and packed at compile time;
//! 3. [`output`]: `Y = A^T M A` per tile, then the bias and the convolution's epilogue
//!    (residual, activation), stored where the tile lies inside the output.
//!
//! [`form`] picks the tile per convolution: F(4x4) does 56% of F(2x2)'s GEMM work but
//! stores 36/9 of the weights, which at batch 1 stream from memory every run.
//!
//! Written here rather than taken from a crate: no maintained Rust crate provides it over
//! this layout, and the GEMM is the code generator's own tiled kernel.
use crate::blocked::{epilogue, lanes, BlockedConv, Epilogue, View};
use crate::kb::{Kb, R};
use inkwell::values::{IntValue, VectorValue};
use secc_ir::Dim;

/// The transforms of F(2x2, 3x3): `B^T`, `G`, `A^T`.
static F2: Matrices = Matrices {
    bt: &[
        &[1.0, 0.0, -1.0, 0.0],
        &[0.0, 1.0, 1.0, 0.0],
        &[0.0, -1.0, 1.0, 0.0],
        &[0.0, 1.0, 0.0, -1.0],
    ],
    g: &[
        &[1.0, 0.0, 0.0],
        &[0.5, 0.5, 0.5],
        &[0.5, -0.5, 0.5],
        &[0.0, 0.0, 1.0],
    ],
    at: &[&[1.0, 1.0, 1.0, 0.0], &[0.0, 1.0, -1.0, -1.0]],
};

/// The transforms of F(4x4, 3x3) (interpolation points 0, 1, -1, 2, -2 and infinity).
static F4: Matrices = Matrices {
    bt: &[
        &[4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        &[0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        &[0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        &[0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        &[0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        &[0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ],
    g: &[
        &[1.0 / 4.0, 0.0, 0.0],
        &[-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        &[-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        &[1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        &[1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        &[0.0, 0.0, 1.0],
    ],
    at: &[
        &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        &[0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        &[0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        &[0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ],
};

/// `B^T` (`a x a`), `G` (`a x 3`) and `A^T` (`m x a`) of one form, `a = m + 2`.
struct Matrices {
    bt: &'static [&'static [f64]],
    g: &'static [&'static [f64]],
    at: &'static [&'static [f64]],
}

fn matrices(m: u64) -> &'static Matrices {
    if m == 4 {
        &F4
    } else {
        &F2
    }
}

/// Transformed positions per tile of F(m x m, 3x3): `(m + 2)^2`.
pub fn positions(m: u64) -> u64 {
    (m + 2) * (m + 2)
}

/// Input and output channels a convolution needs at least for a Winograd form: with
/// fewer, the GEMM's reduction is too short to pay for the two transforms.
const MIN_CHANNELS: u64 = 32;

/// Bytes the transformed input and the GEMM's result (V and M) may take together at batch
/// 1 for a layer to run in a Winograd form.
const MAX_TRANSFORMED: u64 = 1 << 30;

/// What one weight byte costs in GEMM FLOPs, for [`form`]'s estimate: at batch 1 every
/// weight streams from memory each run, measured here at 16-30 GB/s for one core against
/// 180-210 GFLOP/s in the GEMM (2-vCPU Sapphire Rapids), about 9 FLOPs a byte.
const FLOPS_PER_WEIGHT_BYTE: u64 = 9;

/// The Winograd form (output tile side `m`: 2 or 4) blocked convolution `c` runs in, if
/// any: 3x3, stride 1, no dilation, one group, not gated or pooling, blocked input and
/// output of one block width and enough channels; of the two forms the one whose GEMM
/// work plus weight streaming ([`FLOPS_PER_WEIGHT_BYTE`]) is smaller, for the typical
/// value of a symbolic extent (`plan::typical`). (SE-ResNet-50's 56x56 and 28x28 layers
/// take F(4x4), its 14x14 and 7x7 ones, with 4 to 16 times the weights, F(2x2).)
pub fn form(c: &BlockedConv) -> Option<u64> {
    let (oh, ow) = (crate::plan::typical(c.y.h), crate::plan::typical(c.y.w));
    let eligible = c.k == [3, 3]
        && c.strides == [1, 1]
        && c.dilations == [1, 1]
        && !c.depthwise
        && !c.gated
        && c.pool.is_none()
        && c.weight_sets == 1
        && c.x.block > 1
        && c.x.block == c.y.block
        && c.x.c >= MIN_CHANNELS
        && c.y.c >= MIN_CHANNELS;
    if !eligible {
        return None;
    }
    let channels = c.x.blocks() * c.x.block * c.y.blocks() * c.y.block;
    let tiles_of = |m: u64| oh.div_ceil(m) * ow.div_ceil(m);
    let cost = |m: u64| {
        let p = positions(m);
        2 * p * channels * tiles_of(m) + FLOPS_PER_WEIGHT_BYTE * 4 * p * channels
    };
    // V and M are live together during the GEMM: a form whose pair would take more than
    // MAX_TRANSFORMED at batch 1 (a huge map) leaves the layer to the direct kernel
    let transformed = |m: u64| {
        let per_tile = c.x.blocks() * c.x.block + c.y.blocks() * c.y.block;
        4 * positions(m) * tiles_of(m) * per_tile
    };
    [2, 4]
        .into_iter()
        .filter(|&m| transformed(m) <= MAX_TRANSFORMED)
        .min_by_key(|&m| (cost(m), m))
}

/// Tiles `[rows, columns]` of F(m x m) over an output of `oh x ow` pixels (expressions of
/// the symbols for symbolic extents).
pub fn tiles(m: u64, oh: Dim, ow: Dim) -> Option<[Dim; 2]> {
    Some([oh.div_ceil(m)?, ow.div_ceil(m)?])
}

/// One transform step of a Winograd convolution. The input transform's arguments: x, V;
/// the output transform's: M, bias (padded to the block), the residual (with an
/// [`Epilogue::Residual`]), y.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// output tile side: F(m x m, 3x3)
    pub m: u64,
    /// the batch
    pub n: Dim,
    /// the convolution's input (input transform) or output (output transform)
    pub image: View,
    /// tiles `[rows, columns]` of the output
    pub tiles: [Dim; 2],
    /// leading pads `[top, left]` (input transform)
    pub pads: [u64; 2],
    /// applied after the bias, before the store (output transform)
    pub epilogue: Vec<Epilogue>,
}

impl Transform {
    /// Index of position `xi` of tile `t` of image `n`, channel block `cb`, in the
    /// transformed buffer `[n][xi][cb][tile][lane]`.
    fn at<'ctx>(
        &self,
        kb: &Kb<'_, 'ctx>,
        [n, cb, t]: [IntValue<'ctx>; 3],
        xi: u64,
    ) -> R<IntValue<'ctx>> {
        let img = kb.add(kb.mul(n, kb.i(positions(self.m)))?, kb.i(xi))?;
        let plane = kb.add(kb.mul(img, kb.i(self.image.blocks()))?, cb)?;
        let per_plane = kb.mul(kb.dim(self.tiles[0])?, kb.dim(self.tiles[1])?)?;
        let tile = kb.add(kb.mul(plane, per_plane)?, t)?;
        kb.mul(tile, kb.i(self.image.block))
    }

    /// Runs `body(image, channel block, tile row, tile column)` on every tile of this
    /// thread's share of the rows of tiles.
    fn for_tiles<'a, 'ctx>(
        &self,
        kb: &mut Kb<'a, 'ctx>,
        body: impl Fn(&mut Kb<'a, 'ctx>, [IntValue<'ctx>; 4]) -> R<()>,
    ) -> R<()> {
        let (th, tw) = (kb.dim(self.tiles[0])?, kb.dim(self.tiles[1])?);
        let cbs = self.image.blocks();
        let rows = kb.mul(kb.mul(kb.dim(self.n)?, kb.i(cbs))?, th)?;
        let (lo, hi) = kb.split(rows)?;
        kb.for_loop(lo, hi, |kb, r| {
            let ty = kb.rem(r, th)?;
            let r2 = kb.div(r, th)?;
            let (cb, n) = (kb.rem(r2, kb.i(cbs))?, kb.div(r2, kb.i(cbs))?);
            kb.for_loop(kb.i(0), tw, |kb, tx| body(kb, [n, cb, ty, tx]))
        })
    }
}

/// `mat v` for a matrix of small constants over vectors: zero terms skipped, ones as adds
/// and subtractions, other coefficients as FMAs.
fn apply<'ctx>(
    kb: &Kb<'_, 'ctx>,
    mat: &[&[f64]],
    v: &[VectorValue<'ctx>],
) -> R<Vec<VectorValue<'ctx>>> {
    let nl = v[0].get_type().get_size();
    mat.iter()
        .map(|row| {
            let mut acc: Option<VectorValue<'ctx>> = None;
            for (&c, &x) in row.iter().zip(v) {
                let k = || kb.vec_splat_n(kb.fc(c as f32), nl);
                acc = Some(match (acc, c) {
                    (_, 0.0) => continue,
                    (None, 1.0) => x,
                    (None, _) => kb.b.build_float_mul(x, k()?, "")?,
                    (Some(a), 1.0) => kb.b.build_float_add(a, x, "")?,
                    (Some(a), -1.0) => kb.b.build_float_sub(a, x, "")?,
                    (Some(a), _) => kb.vec_fma(x, k()?, a)?,
                });
            }
            acc.ok_or_else(|| crate::CodegenError::Llvm("a zero transform row".into()))
        })
        .collect()
}

/// `mat X mat^T` of the `a x a` tile `x` (row-major), the rows of `mat` being `r` long:
/// down each column first, then along each row of the result.
fn sandwich<'ctx>(
    kb: &Kb<'_, 'ctx>,
    mat: &[&[f64]],
    x: &[VectorValue<'ctx>],
) -> R<Vec<VectorValue<'ctx>>> {
    let a = mat[0].len();
    let cols: Vec<Vec<VectorValue<'ctx>>> = (0..a)
        .map(|c| apply(kb, mat, &(0..a).map(|r| x[r * a + c]).collect::<Vec<_>>()))
        .collect::<R<_>>()?;
    let mut out = Vec::with_capacity(mat.len() * mat.len());
    for r in 0..mat.len() {
        let row: Vec<VectorValue<'ctx>> = cols.iter().map(|c| c[r]).collect();
        out.extend(apply(kb, mat, &row)?);
    }
    Ok(out)
}

/// The input transform (arguments x, V): each thread a share of the rows of tiles.
pub fn input<'a, 'ctx>(kb: &mut Kb<'a, 'ctx>, t: &Transform) -> R<()> {
    let (x, a) = (t.image, t.m + 2);
    t.for_tiles(kb, |kb, [n, cb, ty, tx]| {
        let iy0 = kb.sub(kb.mul(ty, kb.i(t.m))?, kb.i(t.pads[0]))?;
        let ix0 = kb.sub(kb.mul(tx, kb.i(t.m))?, kb.i(t.pads[1]))?;
        // a tile wholly inside the input loads without checks
        let within = |kb: &Kb<'a, 'ctx>, v0: IntValue<'ctx>, ext: Dim| -> R<IntValue<'ctx>> {
            let e = kb.dim(ext)?;
            Ok(kb.b.build_and(
                kb.inside_n(v0, e)?,
                kb.inside_n(kb.add(v0, kb.i(a - 1))?, e)?,
                "",
            )?)
        };
        let inner =
            kb.b.build_and(within(kb, iy0, x.h)?, within(kb, ix0, x.w)?, "")?;
        let tile = kb.add(kb.mul(ty, kb.dim(t.tiles[1])?)?, tx)?;
        kb.if_else(
            inner,
            |kb| input_tile(kb, t, [n, cb, tile], [iy0, ix0], false),
            |kb| input_tile(kb, t, [n, cb, tile], [iy0, ix0], true),
        )
    })
}

/// Transforms the input tile at `(iy0, ix0)` of image `n`, channel block `cb` into the
/// positions of tile `tile`; a `border` tile reads 0 outside the input.
fn input_tile<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    t: &Transform,
    [n, cb, tile]: [IntValue<'ctx>; 3],
    [iy0, ix0]: [IntValue<'ctx>; 2],
    border: bool,
) -> R<()> {
    let (px, pv) = (kb.args[0], kb.args[1]);
    let (x, a) = (t.image, t.m + 2);
    let nl = lanes(&x)?;
    let zero = kb.vec_splat_n(kb.fc(0.0), nl)?;
    let (h, w) = (kb.dim(x.h)?, kb.dim(x.w)?);
    let clamp = |kb: &Kb<'_, 'ctx>, v, n: IntValue<'ctx>| -> R<IntValue<'ctx>> {
        kb.imax(kb.imin(v, kb.sub(n, kb.i(1))?)?, kb.i(0))
    };
    let mut d = Vec::with_capacity((a * a) as usize);
    for r in 0..a {
        let iy = kb.add(iy0, kb.i(r))?;
        for c in 0..a {
            let ix = kb.add(ix0, kb.i(c))?;
            if !border {
                d.push(kb.vec_load_n(px, x.at(kb, n, cb, iy, ix)?, nl)?);
                continue;
            }
            let ok =
                kb.b.build_and(kb.inside_n(iy, h)?, kb.inside_n(ix, w)?, "")?;
            let at = x.at(kb, n, cb, clamp(kb, iy, h)?, clamp(kb, ix, w)?)?;
            let l = kb.vec_load_n(px, at, nl)?;
            d.push(kb.b.build_select(ok, l, zero, "")?.into_vector_value());
        }
    }
    for (xi, v) in sandwich(kb, matrices(t.m).bt, &d)?.into_iter().enumerate() {
        kb.vec_store(pv, t.at(kb, [n, cb, tile], xi as u64)?, v)?;
    }
    Ok(())
}

/// The output transform (arguments M, bias, [residual], y): each thread a share of the
/// rows of tiles.
pub fn output<'a, 'ctx>(kb: &mut Kb<'a, 'ctx>, t: &Transform) -> R<()> {
    let (y, m) = (t.image, t.m);
    let residual = t.epilogue.contains(&Epilogue::Residual);
    let (pm, pb) = (kb.args[0], kb.args[1]);
    let (pr, py) = (kb.args[2], kb.args[2 + usize::from(residual)]);
    let nl = lanes(&y)?;
    // whether tile row (column) `i` may lie outside the output in the last tile: past the
    // remainder of a known extent, any but the first of a symbolic one
    let outside = |ext: Dim, i: u64| match ext.known().map(|e| e % m) {
        Some(0) => false,
        Some(r) => i >= r,
        None => i >= 1,
    };
    t.for_tiles(kb, |kb, [n, cb, ty, tx]| {
        let tile = kb.add(kb.mul(ty, kb.dim(t.tiles[1])?)?, tx)?;
        let bias = kb.vec_load_n(pb, kb.mul(cb, kb.i(y.block))?, nl)?;
        let ms = (0..positions(m))
            .map(|xi| kb.vec_load_n(pm, t.at(kb, [n, cb, tile], xi)?, nl))
            .collect::<R<Vec<_>>>()?;
        let out = sandwich(kb, matrices(m).at, &ms)?;
        for i in 0..m {
            let oy = kb.add(kb.mul(ty, kb.i(m))?, kb.i(i))?;
            for j in 0..m {
                let ox = kb.add(kb.mul(tx, kb.i(m))?, kb.i(j))?;
                let v = out[(i * m + j) as usize];
                let store = |kb: &mut Kb<'a, 'ctx>| -> R<()> {
                    let yi = y.at(kb, n, cb, oy, ox)?;
                    let v = kb.b.build_float_add(v, bias, "")?;
                    let v = epilogue(kb, &t.epilogue, pr, v, yi)?;
                    kb.vec_store(py, yi, v)
                };
                let mut inside = None;
                if outside(y.h, i) {
                    inside = Some(kb.lt(oy, kb.dim(y.h)?)?);
                }
                if outside(y.w, j) {
                    let c = kb.lt(ox, kb.dim(y.w)?)?;
                    inside = Some(match inside {
                        Some(r) => kb.b.build_and(r, c, "")?,
                        None => c,
                    });
                }
                match inside {
                    Some(ok) => kb.if_then(ok, store)?,
                    None => store(kb)?,
                }
            }
        }
        Ok(())
    })
}

/// The transformed weights `U = G g G^T` of dense 3x3 weights `[O, C, 3, 3]` for F(m x m),
/// as `(m+2)^2` matrices `[xi][O][C]` (computed in f64).
pub fn transform_weights(w: &[f32], [o, c]: [usize; 2], m: u64) -> Vec<f32> {
    let g = matrices(m).g;
    let a = g.len();
    let mut u = vec![0f32; a * a * o * c];
    for oc in 0..o {
        for ic in 0..c {
            let k = &w[(oc * c + ic) * 9..][..9];
            // G k (a x 3), then (G k) G^T (a x a)
            let gk: Vec<[f64; 3]> = g
                .iter()
                .map(|row| {
                    let v = |col: usize| (0..3).map(|j| row[j] * f64::from(k[j * 3 + col])).sum();
                    [v(0), v(1), v(2)]
                })
                .collect();
            for r in 0..a {
                for s in 0..a {
                    let v: f64 = (0..3).map(|j| gk[r][j] * g[s][j]).sum();
                    u[((r * a + s) * o + oc) * c + ic] = v as f32;
                }
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms on one channel pair, with the matrices applied in f64, against the 3x3
    /// correlation they replace.
    #[test]
    fn transforms_compute_the_correlation() {
        for m in [2u64, 4] {
            let (a, mu) = ((m + 2) as usize, m as usize);
            let f = matrices(m);
            let g: Vec<f32> = (0..9).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            let d: Vec<f64> = (0..a * a)
                .map(|i| ((i * 5 % 13) as f64 - 6.0) / 4.0)
                .collect();
            let u = transform_weights(&g, [1, 1], m);
            let sandwich = |mat: &[&[f64]], x: &dyn Fn(usize, usize) -> f64, r: usize, s: usize| {
                (0..a)
                    .flat_map(|i| (0..a).map(move |j| (i, j)))
                    .map(|(i, j)| mat[r][i] * x(i, j) * mat[s][j])
                    .sum::<f64>()
            };
            let v: Vec<f64> = (0..a * a)
                .map(|p| sandwich(f.bt, &|i, j| d[i * a + j], p / a, p % a))
                .collect();
            for oy in 0..mu {
                for ox in 0..mu {
                    let want: f64 = (0..3)
                        .flat_map(|ky| (0..3).map(move |kx| (ky, kx)))
                        .map(|(ky, kx)| d[(oy + ky) * a + ox + kx] * f64::from(g[ky * 3 + kx]))
                        .sum();
                    let got =
                        sandwich(f.at, &|i, j| f64::from(u[i * a + j]) * v[i * a + j], oy, ox);
                    assert!(
                        (want - got).abs() < 1e-4,
                        "F({m}) ({oy},{ox}): {want} vs {got}"
                    );
                }
            }
        }
    }
}
