//! Winograd F(2x2, 3x3) convolution over blocked tensors (Lavin and Gray, "Fast Algorithms
//! for Convolutional Neural Networks", 2016): a 3x3 stride-1 convolution computes each 2x2
//! output tile from a 4x4 input tile as `Y = A^T [(G g G^T) . (B^T d B)] A`, 16
//! multiplications per tile and channel pair instead of 36. It runs as three kernel steps:
//!
//! 1. [`input`]: every 4x4 input tile of every channel block to its 16 transformed
//!    positions `V = B^T d B` (adds only), stored as 16 blocked "images" per image whose
//!    pixels are the tiles: `V[n][xi][cb][tile][lane]`;
//! 2. a batched GEMM per position, `M_xi = U_xi V_xi` over the channels: this is the
//!    blocked 1x1 convolution ([`crate::blocked::conv`], register tiles and all) over
//!    `16 N` images whose weights are the set of their position
//!    ([`BlockedConv::weight_sets`]), `U = G g G^T` transformed and packed at compile time;
//! 3. [`output`]: `Y = A^T M A` per tile, then the bias and the convolution's epilogue
//!    (residual, activation), stored where the tile lies inside the output (odd extents).
//!
//! Written here rather than taken from a crate: no maintained Rust crate provides it over
//! this layout, and the GEMM is the code generator's own tiled kernel.
use crate::blocked::{epilogue, lanes, BlockedConv, Epilogue, View};
use crate::kb::{Kb, R};
use inkwell::values::{IntValue, VectorValue};
use secc_ir::Dim;

/// Transformed positions per tile (4 x 4).
pub const POSITIONS: u64 = 16;

/// Input and output channels a convolution needs at least for the Winograd form: with
/// fewer, the GEMM's reduction is too short to pay for the two transforms.
const MIN_CHANNELS: u64 = 32;

/// Whether blocked convolution `c` runs in the Winograd form: 3x3, stride 1, no
/// dilation, one group, not gated or pooling, blocked input and output of one block
/// width, known spatial extents and enough channels.
pub fn eligible(c: &BlockedConv) -> bool {
    let known = [c.x.h, c.x.w, c.y.h, c.y.w]
        .iter()
        .all(|d| d.known().is_some());
    c.k == [3, 3]
        && c.strides == [1, 1]
        && c.dilations == [1, 1]
        && !c.depthwise
        && !c.gated
        && c.pool.is_none()
        && c.weight_sets == 1
        && c.x.block > 1
        && c.x.block == c.y.block
        && known
        && c.x.c >= MIN_CHANNELS
        && c.y.c >= MIN_CHANNELS
}

/// Tiles `[rows, columns]` of an output of `oh x ow` pixels.
pub fn tiles(oh: u64, ow: u64) -> [u64; 2] {
    [oh.div_ceil(2), ow.div_ceil(2)]
}

/// One transform step of a Winograd convolution. The input transform's arguments: x, V;
/// the output transform's: M, bias (padded to the block), the residual (with an
/// [`Epilogue::Residual`]), y.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// the batch
    pub n: Dim,
    /// the convolution's input (input transform) or output (output transform)
    pub image: View,
    /// tiles `[rows, columns]` of the output
    pub tiles: [u64; 2],
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
        let img = kb.add(kb.mul(n, kb.i(POSITIONS))?, kb.i(xi))?;
        let plane = kb.add(kb.mul(img, kb.i(self.image.blocks()))?, cb)?;
        let tile = kb.add(kb.mul(plane, kb.i(self.tiles[0] * self.tiles[1]))?, t)?;
        kb.mul(tile, kb.i(self.image.block))
    }

    /// This thread's rows of tiles: `(image, channel block, tile row)` of each, with
    /// `body` run per tile column.
    fn for_tiles<'a, 'ctx>(
        &self,
        kb: &mut Kb<'a, 'ctx>,
        body: impl Fn(&mut Kb<'a, 'ctx>, [IntValue<'ctx>; 4]) -> R<()>,
    ) -> R<()> {
        let [th, tw] = self.tiles;
        let cbs = self.image.blocks();
        let rows = kb.mul(kb.dim(self.n)?, kb.i(cbs * th))?;
        let (lo, hi) = kb.split(rows)?;
        kb.for_loop(lo, hi, |kb, r| {
            let ty = kb.rem(r, kb.i(th))?;
            let r2 = kb.div(r, kb.i(th))?;
            let (cb, n) = (kb.rem(r2, kb.i(cbs))?, kb.div(r2, kb.i(cbs))?);
            kb.for_loop(kb.i(0), kb.i(tw), |kb, tx| body(kb, [n, cb, ty, tx]))
        })
    }
}

/// `B^T d` over four vectors (one column or row of a 4x4 input tile).
fn bt<'ctx>(kb: &Kb<'_, 'ctx>, d: [VectorValue<'ctx>; 4]) -> R<[VectorValue<'ctx>; 4]> {
    let (add, sub) = (
        |a, b| kb.b.build_float_add(a, b, ""),
        |a, b| kb.b.build_float_sub(a, b, ""),
    );
    Ok([
        sub(d[0], d[2])?,
        add(d[1], d[2])?,
        sub(d[2], d[1])?,
        sub(d[1], d[3])?,
    ])
}

/// `A^T m` over four vectors (one column or row of a 4x4 tile of GEMM results).
fn at<'ctx>(kb: &Kb<'_, 'ctx>, m: [VectorValue<'ctx>; 4]) -> R<[VectorValue<'ctx>; 2]> {
    let b = &kb.b;
    let s = b.build_float_add(m[0], m[1], "")?;
    let d = b.build_float_sub(m[1], m[2], "")?;
    Ok([
        b.build_float_add(s, m[2], "")?,
        b.build_float_sub(d, m[3], "")?,
    ])
}

/// The input transform (arguments x, V): each thread a share of the rows of tiles.
pub fn input(kb: &mut Kb, t: &Transform) -> R<()> {
    let x = t.image;
    t.for_tiles(kb, |kb, [n, cb, ty, tx]| {
        let iy0 = kb.sub(kb.mul(ty, kb.i(2))?, kb.i(t.pads[0]))?;
        let ix0 = kb.sub(kb.mul(tx, kb.i(2))?, kb.i(t.pads[1]))?;
        // a tile wholly inside the input loads without checks
        let rows = kb.b.build_and(
            kb.inside_n(iy0, kb.dim(x.h)?)?,
            kb.inside_n(kb.add(iy0, kb.i(3))?, kb.dim(x.h)?)?,
            "",
        )?;
        let cols = kb.b.build_and(
            kb.inside_n(ix0, kb.dim(x.w)?)?,
            kb.inside_n(kb.add(ix0, kb.i(3))?, kb.dim(x.w)?)?,
            "",
        )?;
        let inner = kb.b.build_and(rows, cols, "")?;
        let tile = kb.add(kb.mul(ty, kb.i(t.tiles[1]))?, tx)?;
        kb.if_else(
            inner,
            |kb| input_tile(kb, t, [n, cb, tile], [iy0, ix0], false),
            |kb| input_tile(kb, t, [n, cb, tile], [iy0, ix0], true),
        )
    })
}

/// Transforms the 4x4 tile at input `(iy0, ix0)` of image `n`, channel block `cb` into
/// the 16 positions of tile `tile`; a `border` tile reads 0 outside the input.
fn input_tile<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    t: &Transform,
    [n, cb, tile]: [IntValue<'ctx>; 3],
    [iy0, ix0]: [IntValue<'ctx>; 2],
    border: bool,
) -> R<()> {
    let (px, pv) = (kb.args[0], kb.args[1]);
    let x = t.image;
    let nl = lanes(&x)?;
    let zero = kb.vec_splat_n(kb.fc(0.0), nl)?;
    let (h, w) = (kb.dim(x.h)?, kb.dim(x.w)?);
    let clamp = |kb: &Kb<'_, 'ctx>, v, n: IntValue<'ctx>| -> R<IntValue<'ctx>> {
        kb.imax(kb.imin(v, kb.sub(n, kb.i(1))?)?, kb.i(0))
    };
    let mut d = [[zero; 4]; 4];
    for (r, row) in d.iter_mut().enumerate() {
        let iy = kb.add(iy0, kb.i(r as u64))?;
        for (c, v) in row.iter_mut().enumerate() {
            let ix = kb.add(ix0, kb.i(c as u64))?;
            if !border {
                *v = kb.vec_load_n(px, x.at(kb, n, cb, iy, ix)?, nl)?;
                continue;
            }
            let ok =
                kb.b.build_and(kb.inside_n(iy, h)?, kb.inside_n(ix, w)?, "")?;
            let at = x.at(kb, n, cb, clamp(kb, iy, h)?, clamp(kb, ix, w)?)?;
            let l = kb.vec_load_n(px, at, nl)?;
            *v = kb.b.build_select(ok, l, zero, "")?.into_vector_value();
        }
    }
    // B^T d down each column, then (B^T d) B along each row
    let mut cols = [[zero; 4]; 4];
    for c in 0..4 {
        let col = bt(kb, [d[0][c], d[1][c], d[2][c], d[3][c]])?;
        for r in 0..4 {
            cols[r][c] = col[r];
        }
    }
    for (r, row) in cols.iter().enumerate() {
        for (c, v) in bt(kb, *row)?.into_iter().enumerate() {
            let xi = (r * 4 + c) as u64;
            kb.vec_store(pv, t.at(kb, [n, cb, tile], xi)?, v)?;
        }
    }
    Ok(())
}

/// The output transform (arguments M, bias, [residual], y): each thread a share of the
/// rows of tiles.
pub fn output<'a, 'ctx>(kb: &mut Kb<'a, 'ctx>, t: &Transform) -> R<()> {
    let y = t.image;
    let residual = t.epilogue.contains(&Epilogue::Residual);
    let (pm, pb) = (kb.args[0], kb.args[1]);
    let (pr, py) = (kb.args[2], kb.args[2 + usize::from(residual)]);
    let nl = lanes(&y)?;
    let (oh, ow) = (y.h.known().unwrap_or(0), y.w.known().unwrap_or(0));
    t.for_tiles(kb, |kb, [n, cb, ty, tx]| {
        let tile = kb.add(kb.mul(ty, kb.i(t.tiles[1]))?, tx)?;
        let bias = kb.vec_load_n(pb, kb.mul(cb, kb.i(y.block))?, nl)?;
        let mut m = Vec::with_capacity(POSITIONS as usize);
        for xi in 0..POSITIONS {
            m.push(kb.vec_load_n(pm, t.at(kb, [n, cb, tile], xi)?, nl)?);
        }
        // A^T m down each column, then (A^T m) A along each of the two rows
        let cols: Vec<[VectorValue; 2]> = (0..4)
            .map(|c| at(kb, [m[c], m[4 + c], m[8 + c], m[12 + c]]))
            .collect::<R<_>>()?;
        for i in 0..2u64 {
            let row = at(kb, [0, 1, 2, 3].map(|c| cols[c][i as usize]))?;
            let oy = kb.add(kb.mul(ty, kb.i(2))?, kb.i(i))?;
            for (j, v) in row.into_iter().enumerate() {
                let ox = kb.add(kb.mul(tx, kb.i(2))?, kb.i(j as u64))?;
                let store = |kb: &mut Kb<'a, 'ctx>| -> R<()> {
                    let yi = y.at(kb, n, cb, oy, ox)?;
                    let v = kb.b.build_float_add(v, bias, "")?;
                    let v = epilogue(kb, &t.epilogue, pr, v, yi)?;
                    kb.vec_store(py, yi, v)
                };
                // the last tile row or column of an odd extent has one pixel inside
                let mut inside = None;
                if oh % 2 == 1 && i == 1 {
                    inside = Some(kb.lt(oy, kb.i(oh))?);
                }
                if ow % 2 == 1 && j == 1 {
                    let c = kb.lt(ox, kb.i(ow))?;
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

/// The transformed weights `U = G g G^T` of dense 3x3 weights `[O, C, 3, 3]`, as 16
/// matrices `[xi][O][C]` (computed in f64).
pub fn transform_weights(w: &[f32], [o, c]: [usize; 2]) -> Vec<f32> {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut u = vec![0f32; 16 * o * c];
    for oc in 0..o {
        for ic in 0..c {
            let g = &w[(oc * c + ic) * 9..][..9];
            // G g (4x3), then (G g) G^T (4x4)
            let mut gg = [[0f64; 3]; 4];
            for (r, row) in gg.iter_mut().enumerate() {
                for (k, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|j| G[r][j] * f64::from(g[j * 3 + k])).sum();
                }
            }
            for r in 0..4 {
                for s in 0..4 {
                    let v: f64 = (0..3).map(|k| gg[r][k] * G[s][k]).sum();
                    u[((r * 4 + s) * o + oc) * c + ic] = v as f32;
                }
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F(2x2, 3x3) on one channel pair, written with the matrices of the paper, against
    /// the 3x3 correlation it replaces.
    #[test]
    fn transforms_compute_the_correlation() {
        let g: Vec<f32> = (0..9).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let d: Vec<f64> = (0..16).map(|i| ((i * 5 % 13) as f64 - 6.0) / 4.0).collect();
        let u = transform_weights(&g, [1, 1]);
        let bt = [
            [1.0, 0.0, -1.0, 0.0],
            [0.0, 1.0, 1.0, 0.0],
            [0.0, -1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, -1.0],
        ];
        let at = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
        let mut v = [[0f64; 4]; 4];
        for (r, row) in v.iter_mut().enumerate() {
            for (s, e) in row.iter_mut().enumerate() {
                *e = (0..4)
                    .flat_map(|i| (0..4).map(move |j| (i, j)))
                    .map(|(i, j)| bt[r][i] * d[i * 4 + j] * bt[s][j])
                    .sum();
            }
        }
        for oy in 0..2 {
            for ox in 0..2 {
                let want: f64 = (0..3)
                    .flat_map(|ky| (0..3).map(move |kx| (ky, kx)))
                    .map(|(ky, kx)| d[(oy + ky) * 4 + ox + kx] * f64::from(g[ky * 3 + kx]))
                    .sum();
                let got: f64 = (0..4)
                    .flat_map(|r| (0..4).map(move |s| (r, s)))
                    .map(|(r, s)| at[oy][r] * f64::from(u[r * 4 + s]) * v[r][s] * at[ox][s])
                    .sum();
                assert!((want - got).abs() < 1e-5, "({oy},{ox}): {want} vs {got}");
            }
        }
    }
}
