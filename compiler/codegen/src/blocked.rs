//! Kernels over blocked tensors (`nChw{c}c`, chosen by the `assign-layout` pass): dense and
//! depthwise convolutions with register tiles, pooling, global pooling, and the reorders
//! between layouts. Every kernel reads and writes through [`View`]s, so the addressing of a
//! layout lives in one place.
//!
//! The convolution keeps a tile of `px` output pixels (of one output row) x `qn` output
//! channel blocks in vector accumulators: per input channel it loads `qn` weight vectors
//! (packed at compile time, see [`pack_dense`]) and broadcasts `px` input values, so each
//! load feeds `px` or `qn` FMAs, and the tile is stored once, after its epilogue. A stride
//! is a plain address step in this layout. Tile sizes come from [`conv_tile`].
use crate::kb::{Kb, R};
use crate::CodegenError;
use inkwell::values::{BasicValueEnum, IntValue, PointerValue, VectorValue};
use inkwell::IntPredicate;
use secc_ir::{Activation, BinaryOp, Dim, PoolAttrs, PoolKind};

/// How a kernel addresses one `[N, C, H, W]` tensor: plain is `block == 1` (one channel per
/// block), blocked `nChw{block}c` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// channels
    pub c: u64,
    /// rows (symbolic in a dynamic-size model)
    pub h: Dim,
    /// columns (symbolic in a dynamic-size model)
    pub w: Dim,
    /// channels per block (1 = plain NCHW)
    pub block: u64,
}

impl View {
    /// Channel blocks.
    pub fn blocks(&self) -> u64 {
        self.c.div_ceil(self.block)
    }
    /// Index of `(n, channel block cb, row y, column x)`, lane 0.
    pub(crate) fn at<'ctx>(
        &self,
        kb: &Kb<'_, 'ctx>,
        n: IntValue<'ctx>,
        cb: IntValue<'ctx>,
        y: IntValue<'ctx>,
        x: IntValue<'ctx>,
    ) -> R<IntValue<'ctx>> {
        let plane = kb.add(kb.mul(n, kb.i(self.blocks()))?, cb)?;
        let row = kb.add(kb.mul(plane, kb.dim(self.h)?)?, y)?;
        let pix = kb.add(kb.mul(row, kb.dim(self.w)?)?, x)?;
        kb.mul(pix, kb.i(self.block))
    }
}

/// The register tile of a blocked convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTile {
    /// output pixels along a row
    pub px: u64,
    /// output channel blocks
    pub qn: u64,
}

/// A step applied to the accumulators before the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue {
    /// add the residual operand (read at the output's position)
    Residual,
    /// an activation on every lane
    Act(Activation),
}

/// A convolution over blocked tensors. Arguments: x, packed weights, padded bias, the gate
/// `[N, C]` (when `gated`), the residual (with an [`Epilogue::Residual`]), y, and with
/// `pool` the channel means `[N, C]` and the partial sums.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedConv {
    /// the batch
    pub n: Dim,
    /// input (plain or blocked)
    pub x: View,
    /// output (blocked)
    pub y: View,
    /// kernel `[kh, kw]`
    pub k: [u64; 2],
    /// strides `[h, w]`
    pub strides: [u64; 2],
    /// dilations `[h, w]`
    pub dilations: [u64; 2],
    /// leading pads `[top, left]`
    pub pads: [u64; 2],
    /// one filter per channel (x and y share the channel blocks)
    pub depthwise: bool,
    /// applied in order before the store
    pub epilogue: Vec<Epilogue>,
    /// input channels scaled per image by a gate `[N, C]` (an SE block's scale): each
    /// pass's weights are scaled once into a stack buffer ([`gated_pass_floats`]), or as
    /// the tile loads them where a pass is too large for it
    pub gated: bool,
    /// the channel means of y are a second result: each work unit sums the outputs it
    /// wrote into this many partial sums per image and channel block, reduced at the end
    pub pool: Option<u64>,
    /// register tile
    pub tile: ConvTile,
    /// how the output is walked (dense convolutions)
    pub blocking: Blocking,
    /// sets of packed weights, one after another: image `n` reads set `n % weight_sets`
    /// (1 for a convolution; a Winograd convolution's batched GEMM has one per
    /// transformed position, see [`crate::winograd`])
    pub weight_sets: u64,
}

/// Bytes of L1 the blocked convolution plans to use for the weights of one pass, and for
/// the outputs of one row segment; bytes of L2 for the outputs of one band of rows.
const L1_WEIGHTS: u64 = 16 << 10;
const L1_OUTPUTS: u64 = 16 << 10;
const L2_OUTPUTS: u64 = 256 << 10;
/// Bytes of L2 all the weights of a convolution may take when every work unit reads them.
const L2_WEIGHTS: u64 = 1 << 20;
/// An input larger than this does not stay in L2 while one group's pass walks the map, so
/// re-reading it per group goes to L3 or DRAM (smaller inputs are read from L2 either way:
/// MobileNetV3-Large's 1x1 layers measured ~2% slower with the groups innermost).
const L2_INPUT: u64 = 1 << 20;

/// Weights of at least this many bytes are prefetched in software ([`Blocking::prefetch`]),
/// this far ahead (floats; about the DRAM latency at the rate a tile consumes weights).
/// At batch 1 a network's weights do not stay in L2 from one run to the next, so layers of
/// a quarter of a 1 MiB L2 and more come from L3 or DRAM: on Zen 5 (same run, 5 rounds)
/// lowering the threshold from 4 MiB to 256 KiB made SE-ResNet-50 4% / 2% faster at 1 / 2
/// threads, EfficientNet-B0 3% / 2%, MobileNetV3-Large 5% / 0%, batch 8 unchanged; 64 KiB
/// gained nothing more.
const STREAMED_WEIGHTS: u64 = 256 << 10;
const PREFETCH_AHEAD: u64 = 1024;

/// Bytes of L1 the weights one register tile sweeps per input channel block may take.
const TILE_WEIGHTS: u64 = 30 << 10;

/// Work units a convolution is cut into at least (where its shape allows), so that a few
/// threads share it evenly.
const MIN_UNITS: u64 = 16;

/// How a dense convolution walks its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// input channel blocks per pass (so the weights a pass reads stay in L1); partial
    /// sums go through the output between passes
    pub chunk: u64,
    /// tiles per row segment: a long row (a 1x1 convolution's pixels) is cut into
    /// segments whose outputs stay in L1
    pub seg: u64,
    /// output rows per work unit, when a row is one segment: every pass reuses its weights
    /// over all of them, so small maps read each weight once per image, not once per row
    pub band: u64,
    /// the output channel groups are the innermost loop over work units: every group
    /// reuses one segment's input from L2 (see [`conv_blocking`] for when); otherwise one
    /// group's weights are reused over the whole map before the next group's are read
    pub groups_inner: bool,
    /// how far ahead (in floats) each weight stream is prefetched, 0 for not at all: the
    /// weights of a large convolution come from memory once per run, and the hardware
    /// prefetchers stop at every 4 KiB page of each of the `qn` streams
    pub prefetch: u64,
}

/// The [`Blocking`] of a dense convolution with `groups` output channel groups of the tile's
/// `qn` blocks, over `oh` rows of `ow` pixels: the input channel blocks whose weights fit
/// [`L1_WEIGHTS`]; segments whose outputs fit [`L1_OUTPUTS`]; for rows of one segment,
/// bands of rows whose outputs fit [`L2_OUTPUTS`], as tall as [`MIN_UNITS`] allows; the
/// groups innermost when all the weights fit [`L2_WEIGHTS`] and the input (`input_bytes`
/// per image) is larger than they are and than [`L2_INPUT`], so the input is read from
/// memory once, not once per group (with two threads, each then reads half of it); and
/// software prefetches for weights of [`STREAMED_WEIGHTS`] or more. (Measured on
/// SE-ResNet-50, 2-vCPU Sapphire Rapids, same run: groups innermost, then chosen for its
/// 15 layers whose input outweighs the weights, took them from 7.67 to 7.21 ms at 2
/// threads, unchanged at 1 (the [`L2_INPUT`] floor, added after, keeps the 7 with inputs
/// over 1 MiB); prefetching took its 9 layers of 4 MiB or more from 12.4 to 11.2 ms at 1
/// thread and 6.8 to 6.0 at 2, and slowed layers whose weights stay in cache; on Zen 5
/// the threshold is lower, see [`STREAMED_WEIGHTS`].)
pub fn conv_blocking(
    tile: ConvTile,
    [icb, taps, ib, ob]: [u64; 4],
    [groups, oh, ow]: [u64; 3],
    input_bytes: u64,
) -> Blocking {
    let per_block = tile.qn * taps * ib * ob * 4;
    let chunk = (L1_WEIGHTS / per_block.max(1)).clamp(1, icb.max(1));
    let tile_bytes = (tile.px * tile.qn * ob * 4).max(1);
    let seg = (L1_OUTPUTS / tile_bytes).max(1);
    let ntx = ow.div_ceil(tile.px);
    let band = if ntx > seg {
        1
    } else {
        let fits = (L2_OUTPUTS / (ntx * tile_bytes)).max(1);
        let bands = MIN_UNITS.div_ceil(groups.max(1)).clamp(1, oh.max(1));
        fits.min(oh.div_ceil(bands)).max(1)
    };
    let weight_bytes = groups * per_block * icb;
    let groups_inner = groups > 1
        && weight_bytes <= L2_WEIGHTS
        && input_bytes > L2_INPUT
        && weight_bytes < input_bytes;
    Blocking {
        chunk,
        seg,
        band,
        groups_inner,
        prefetch: prefetch_for(weight_bytes),
    }
}

/// How far ahead a convolution whose weights take `weight_bytes` prefetches them
/// ([`Blocking::prefetch`]): weights of [`STREAMED_WEIGHTS`] or more come from L3 or DRAM.
pub fn prefetch_for(weight_bytes: u64) -> u64 {
    if weight_bytes >= STREAMED_WEIGHTS {
        PREFETCH_AHEAD
    } else {
        0
    }
}

/// The tap columns of a KxK convolution over a blocked input, as the tile estimate sees
/// them: `kw` columns `dilation` apart, output columns `stride` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapRow {
    /// tap columns
    pub kw: u64,
    /// column stride
    pub stride: u64,
    /// column dilation
    pub dilation: u64,
}

/// What one step of a dense tile's inner loop covers, for [`conv_tile`]'s estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// one tap of one input channel
    Tap,
    /// a row of taps of one input channel of a blocked input (16-lane blocks)
    Row(TapRow),
    /// one tap of one channel of a plain input with several tap columns (16-lane blocks)
    PlainTaps,
}

/// Chooses the register tile for `ocb` output channel blocks over rows of `ow` pixels, with
/// `regs` vector registers, for a kernel whose weights per output block and input block
/// (`taps x ib x ob` floats) take `block_bytes`: the tile with the fewest estimated cycles
/// per useful FMA. A step (one input channel) issues `px * qn` FMAs on two FMA ports and
/// `px + qn` loads, which measure at about one per cycle here (the broadcasts and the
/// weight vectors share the load ports with the address work), plus about a cycle of loop
/// overhead, and needs 8 independent accumulators to hide the FMA latency (4 cycles x 2
/// ports); tiles that overhang the row or the channel blocks waste their extra lanes.
/// (Measured on Sapphire Rapids: for 64 output channels over a 56x56 map, 6 px x 4 blocks
/// ran at 103 GFLOP/s, 28 px x 1 block at 58.)
///
/// Two limits the estimate does not see, measured there on 3x3 convolutions with 16-lane
/// blocks: the weights one tile sweeps per input block (`qn x block_bytes`) must leave
/// room in L1 ([`TILE_WEIGHTS`]; 4 blocks, 36 KiB, ran 10-15% slower than 3 or 2 blocks at
/// every map size from 7x7 to 56x56), and with several tap columns over a blocked input
/// ([`Step::Row`]) LLVM keeps the tap columns' weights and broadcasts live beside the
/// accumulators, so more than two thirds of the registers as accumulators spills (8 px x
/// 3 blocks and 12 x 2 ran 15-60% slower than 7 x 3). Such a step is a whole
/// row of taps of one input channel, whose broadcasts overlap (the estimate then prefers
/// 14 x 1 at 14x14 and 28x28, 8 x 2 at 56x56, 7 x 2 for stride 2 and at 7x7: each within
/// 5% of the fastest tile measured, and 10-25% faster than the 4 x 4 and 5 x 4 chosen
/// before).
///
/// A plain-input stem (one input channel per block, [`Step::PlainTaps`]) keeps the per-tap
/// estimate, but LLVM hoists the broadcasts of all its tap columns above their FMAs, so it
/// spills with far fewer accumulators: measured on Zen 5 (1 thread, 3 input channels at
/// 224x224, stride 2), 3x3 to 32 channels ran 328 us as 13 x 2 and 191-198 as 5..8 x 2;
/// 7x7 to 64 channels 1311 as 6 x 4, 1419 as 4 x 4, 1255 as 5 x 3 and 1117-1179 as 7 x 2,
/// 8 x 2 or 14 x 1. Such a step keeps at most half the registers as accumulators over at
/// most 2 blocks. (A loop over the tap columns instead of unrolling them kept 13 x 2 and
/// 6 x 4 from spilling, but ran no faster than these tiles unrolled.)
pub fn conv_tile(
    ocb: u64,
    ow: u64,
    regs: u64,
    depthwise: bool,
    block_bytes: u64,
    step: Step,
) -> ConvTile {
    if depthwise {
        // one weight vector per tap; the accumulators are the output pixels
        return ConvTile {
            px: ow.clamp(1, 8),
            qn: 1,
        };
    }
    let (max_qn, max_acc) = match step {
        Step::Tap => (4, regs),
        Step::Row(_) => (4, regs * 2 / 3),
        Step::PlainTaps => (2, regs / 2),
    };
    let max_qn = (TILE_WEIGHTS / block_bytes.max(1)).clamp(1, max_qn);
    let mut best = (f64::MAX, ConvTile { px: 1, qn: 1 });
    for qn in 1..=ocb.clamp(1, max_qn) {
        for px in 1..=ow.clamp(1, 28) {
            // accumulators and one weight vector per block; the rest (a broadcast, border
            // selects) needs a few registers too, or LLVM spills accumulators
            if px * qn + qn + 4 > regs || px * qn > max_acc {
                continue;
            }
            let (fmas, loads) = match step {
                // one input channel over a row of taps: the broadcasts of neighbouring
                // tap columns are the same input columns, loaded once
                Step::Row(t) => {
                    let cols = (px - 1) * t.stride + (t.kw - 1) * t.dilation + 1;
                    (px * qn * t.kw, cols + qn * t.kw)
                }
                Step::Tap | Step::PlainTaps => (px * qn, px + qn),
            };
            let step = (fmas as f64 / 2.0).max(loads as f64).max(4.0) + 1.0;
            let waste = (ow.div_ceil(px) * px) as f64 / ow as f64 * (ocb.div_ceil(qn) * qn) as f64
                / ocb as f64;
            let cost = step / fmas as f64 * waste;
            if cost < best.0 - 1e-9 {
                best = (cost, ConvTile { px, qn });
            }
        }
    }
    best.1
}

/// Dense weights `[O, C, kh, kw]` packed as `[O/c][C/ib][kh][ib][kw][c]` (zero where `O` or
/// `C` is padded): the `qn` weight vectors a step needs are contiguous per tap row.
pub fn pack_dense(w: &[f32], [o, c, kh, kw]: [usize; 4], ib: usize, ob: usize) -> Vec<f32> {
    let (ocb, icb) = (o.div_ceil(ob), c.div_ceil(ib));
    let mut out = vec![0f32; ocb * icb * kh * ib * kw * ob];
    for oc in 0..o {
        for ic in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = ((oc * c + ic) * kh + ky) * kw + kx;
                    let blk = (oc / ob * icb + ic / ib) * kh + ky;
                    let dst = ((blk * ib + ic % ib) * kw + kx) * ob + oc % ob;
                    out[dst] = w[src];
                }
            }
        }
    }
    out
}

/// Depthwise weights `[C, 1, kh, kw]` packed as `[C/c][kh][kw][c]`.
pub fn pack_depthwise(w: &[f32], [c, kh, kw]: [usize; 3], ob: usize) -> Vec<f32> {
    let mut out = vec![0f32; c.div_ceil(ob) * kh * kw * ob];
    for ch in 0..c {
        for t in 0..kh * kw {
            out[((ch / ob) * kh * kw + t) * ob + ch % ob] = w[ch * kh * kw + t];
        }
    }
    out
}

/// A vector padded to a multiple of `ob` with zeros (biases).
pub fn pad_to(v: &[f32], ob: usize) -> Vec<f32> {
    let mut out = v.to_vec();
    out.resize(v.len().div_ceil(ob) * ob, 0.0);
    out
}

pub(crate) fn lanes(v: &View) -> R<u32> {
    u32::try_from(v.block).map_err(|_| CodegenError::Llvm("block too wide".into()))
}

/// `a == b`
fn eq<'ctx>(kb: &Kb<'_, 'ctx>, a: IntValue<'ctx>, b: u64) -> R<IntValue<'ctx>> {
    Ok(kb.b.build_int_compare(IntPredicate::EQ, a, kb.i(b), "")?)
}

/// Tap rows `[lo, hi)` of output row `oy` that read inside the input.
fn tap_rows<'ctx>(
    kb: &Kb<'_, 'ctx>,
    g: &BlockedConv,
    oy: IntValue<'ctx>,
) -> R<(IntValue<'ctx>, IntValue<'ctx>)> {
    let (pt, sh, dh) = (g.pads[0], g.strides[0], g.dilations[0]);
    let top = kb.mul(oy, kb.i(sh))?;
    // first ky with oy*sh - pt + ky*dh >= 0, last with it < h (signed, clamped at 0)
    let t = kb.imax(kb.sub(kb.i(pt), top)?, kb.i(0))?;
    let lo = kb.div(kb.add(t, kb.i(dh - 1))?, kb.i(dh))?;
    let u = kb.sub(kb.add(kb.dim(g.x.h)?, kb.i(pt + dh - 1))?, top)?;
    let hi = kb.imin(kb.div(kb.imax(u, kb.i(0))?, kb.i(dh))?, kb.i(g.k[0]))?;
    Ok((lo, hi))
}

/// Input columns of a tile: per tap column `kx` and pixel `j`, the (clamped) column and
/// whether it lies inside the row (`None` for interior tiles, which need no check).
type Cols<'ctx> = Vec<Vec<(IntValue<'ctx>, Option<IntValue<'ctx>>)>>;

fn tile_columns<'ctx>(
    kb: &Kb<'_, 'ctx>,
    g: &BlockedConv,
    ox0: IntValue<'ctx>,
    pxn: u64,
    border: bool,
) -> R<Cols<'ctx>> {
    let (sw, dw, pl, w) = (g.strides[1], g.dilations[1], g.pads[1], kb.dim(g.x.w)?);
    let base = kb.mul(ox0, kb.i(sw))?;
    (0..g.k[1])
        .map(|kx| {
            (0..pxn)
                .map(|j| {
                    let ix = kb.sub(kb.add(base, kb.i(j * sw + kx * dw))?, kb.i(pl))?;
                    if !border {
                        return Ok((ix, None));
                    }
                    let ok = kb.inside_n(ix, w)?;
                    let c = kb.imax(kb.imin(ix, kb.sub(w, kb.i(1))?)?, kb.i(0))?;
                    Ok((c, Some(ok)))
                })
                .collect()
        })
        .collect()
}

/// Whether the tile starting at output column `ox0` reads only inside its input rows.
fn interior<'ctx>(
    kb: &Kb<'_, 'ctx>,
    g: &BlockedConv,
    ox0: IntValue<'ctx>,
    pxn: u64,
) -> R<IntValue<'ctx>> {
    let (sw, dw, pl) = (g.strides[1], g.dilations[1], g.pads[1]);
    let first = kb.mul(ox0, kb.i(sw))?;
    let lo =
        kb.b.build_int_compare(IntPredicate::UGE, first, kb.i(pl), "")?;
    let last = kb.add(first, kb.i((pxn - 1) * sw + (g.k[1] - 1) * dw))?;
    let hi = kb.lt(last, kb.add(kb.dim(g.x.w)?, kb.i(pl))?)?;
    Ok(kb.b.build_and(lo, hi, "")?)
}

/// True when no tile of any row reaches into the column padding (known at compile time
/// only for known widths; symbolic widths check each tile).
fn all_interior(g: &BlockedConv) -> bool {
    let (Some(yw), Some(xw)) = (g.y.w.known(), g.x.w.known()) else {
        return false;
    };
    g.pads[1] == 0 && (yw - 1) * g.strides[1] + (g.k[1] - 1) * g.dilations[1] < xw
}

impl BlockedConv {
    /// Whether the epilogue reads a residual operand.
    pub fn residual(&self) -> bool {
        self.epilogue.contains(&Epilogue::Residual)
    }
    /// Index of the residual argument (after the gate).
    fn residual_arg(&self) -> usize {
        3 + usize::from(self.gated)
    }
    /// Index of the output argument.
    fn out_arg(&self) -> usize {
        self.residual_arg() + usize::from(self.residual())
    }
    /// Partial sums of the channel means per image and channel block, if pooling: one per
    /// work unit of an image's map (dense: band x segment; depthwise: row x tile), for
    /// known output extents.
    pub fn pool_partials(&self) -> Option<u64> {
        let (oh, ow) = (self.y.h.known()?, self.y.w.known()?);
        let ntx = ow.div_ceil(self.tile.px);
        Some(if self.depthwise {
            oh * ntx
        } else {
            oh.div_ceil(self.blocking.band) * ntx.div_ceil(self.blocking.seg)
        })
    }
}

/// The epilogue applied to the accumulator `v` of output element `yi`.
fn apply_epilogue<'ctx>(
    kb: &Kb<'_, 'ctx>,
    g: &BlockedConv,
    v: VectorValue<'ctx>,
    yi: IntValue<'ctx>,
) -> R<VectorValue<'ctx>> {
    epilogue(kb, &g.epilogue, kb.args[g.residual_arg()], v, yi)
}

/// `steps` applied to the vector `v` of output element `yi`, the residual (if a step adds
/// it) read from `residual` at the same index.
pub(crate) fn epilogue<'ctx>(
    kb: &Kb<'_, 'ctx>,
    steps: &[Epilogue],
    residual: PointerValue<'ctx>,
    v: VectorValue<'ctx>,
    yi: IntValue<'ctx>,
) -> R<VectorValue<'ctx>> {
    let mut v = v;
    for e in steps {
        v = match e {
            Epilogue::Residual => {
                let r = kb.vec_load_n(residual, yi, v.get_type().get_size())?;
                kb.b.build_float_add(v, r, "")?
            }
            Epilogue::Act(a) => kb.vact(*a, v)?,
        };
    }
    Ok(v)
}

fn vecs(v: Vec<BasicValueEnum<'_>>) -> Vec<VectorValue<'_>> {
    v.into_iter().map(|v| v.into_vector_value()).collect()
}

fn basics(v: Vec<VectorValue<'_>>) -> Vec<BasicValueEnum<'_>> {
    v.into_iter().map(|v| v.into()).collect()
}

/// Position of one work unit: image, first output channel block, output row, first column.
#[derive(Clone, Copy)]
struct Unit<'ctx> {
    n: IntValue<'ctx>,
    q0: IntValue<'ctx>,
    oy: IntValue<'ctx>,
    ox0: IntValue<'ctx>,
}

/// Tiles per output row, `ceil(w / px)`: a constant for a known width.
fn tiles_per_row<'ctx>(kb: &Kb<'_, 'ctx>, g: &BlockedConv) -> R<IntValue<'ctx>> {
    let px = g.tile.px;
    kb.div(kb.add(kb.dim(g.y.w)?, kb.i(px - 1))?, kb.i(px))
}

/// The unit at output row `r` of `n x groups x oh` rows (`qn` blocks per group) and tile
/// column `tx`, and its group.
fn unit_at<'ctx>(
    kb: &Kb<'_, 'ctx>,
    g: &BlockedConv,
    [groups, qn]: [u64; 2],
    r: IntValue<'ctx>,
    tx: IntValue<'ctx>,
) -> R<(Unit<'ctx>, IntValue<'ctx>)> {
    let oh = kb.dim(g.y.h)?;
    let oy = kb.rem(r, oh)?;
    let r2 = kb.div(r, oh)?;
    let grp = kb.rem(r2, kb.i(groups))?;
    let unit = Unit {
        n: kb.div(r2, kb.i(groups))?,
        q0: kb.mul(grp, kb.i(qn))?,
        oy,
        ox0: kb.mul(tx, kb.i(g.tile.px))?,
    };
    Ok((unit, grp))
}

/// Splits `n x groups x oh x ntx` tiles over the shares and runs `body(unit, group, tile
/// column)` on each: one tile per work unit for a known width, one row per work unit for a
/// symbolic one (so the run-time divisions that place a unit happen once per row).
fn for_units<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    g: &BlockedConv,
    groups: u64,
    qn: u64,
    body: impl Fn(&mut Kb<'a, 'ctx>, &Unit<'ctx>, IntValue<'ctx>, IntValue<'ctx>) -> R<()>,
) -> R<()> {
    let ntx = tiles_per_row(kb, g)?;
    let rows = kb.mul(kb.mul(kb.dim(g.n)?, kb.i(groups))?, kb.dim(g.y.h)?)?;
    if ntx.get_zero_extended_constant().is_some() {
        let (lo, hi) = kb.split(kb.mul(rows, ntx)?)?;
        return kb.for_loop(lo, hi, |kb, u| {
            let tx = kb.rem(u, ntx)?;
            let (unit, grp) = unit_at(kb, g, [groups, qn], kb.div(u, ntx)?, tx)?;
            body(kb, &unit, grp, tx)
        });
    }
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, r| {
        kb.for_loop(kb.i(0), ntx, |kb, tx| {
            let (unit, grp) = unit_at(kb, g, [groups, qn], r, tx)?;
            body(kb, &unit, grp, tx)
        })
    })
}

/// What a tile emitter is called with: the tile's unit, its pixels, and whether it reaches
/// into the padding.
type TileFn<'b, 'a, 'ctx> = &'b dyn Fn(&mut Kb<'a, 'ctx>, &Unit<'ctx>, u64, bool) -> R<()>;

/// Runs `emit(unit, pxn, border)` for the tile at `tx`: `px` columns, or the row's
/// remainder for the last tile; border tiles (reaching into the padding) check their
/// columns. For a symbolic width the remainder (1 to `px` pixels, known only at run time)
/// runs as a full tile or as one tile per power of two in its binary form, so every width
/// runs register tiles of sizes fixed at compile time.
fn for_tile_kinds<'a, 'ctx>(
    kb: &mut Kb<'a, 'ctx>,
    g: &BlockedConv,
    u: &Unit<'ctx>,
    tx: IntValue<'ctx>,
    emit: TileFn<'_, 'a, 'ctx>,
) -> R<()> {
    let px = g.tile.px;
    let by_border = |kb: &mut Kb<'a, 'ctx>, u: &Unit<'ctx>, pxn: u64| -> R<()> {
        if all_interior(g) {
            return emit(kb, u, pxn, false);
        }
        let inner = interior(kb, g, u.ox0, pxn)?;
        kb.if_else(
            inner,
            |kb| emit(kb, u, pxn, false),
            |kb| emit(kb, u, pxn, true),
        )
    };
    if let Some(w) = g.y.w.known() {
        let tail = w % px;
        if tail == 0 {
            return by_border(kb, u, px);
        }
        let last = eq(kb, tx, w.div_ceil(px) - 1)?;
        return kb.if_else(last, |kb| by_border(kb, u, tail), |kb| by_border(kb, u, px));
    }
    let left = kb.sub(kb.dim(g.y.w)?, u.ox0)?;
    let full =
        kb.b.build_int_compare(IntPredicate::UGE, left, kb.i(px), "")?;
    kb.if_else(
        full,
        |kb| by_border(kb, u, px),
        |kb| {
            let bits = (0..u64::BITS).map(|b| 1u64 << b).take_while(|p| *p < px);
            for bit in bits.collect::<Vec<_>>().into_iter().rev() {
                let has = kb.b.build_and(left, kb.i(bit), "")?;
                let has = kb.b.build_int_compare(IntPredicate::NE, has, kb.i(0), "")?;
                // the larger pieces come first: this one starts after them
                let before = kb.b.build_and(left, kb.i(!(2 * bit - 1)), "")?;
                let piece = Unit {
                    ox0: kb.add(u.ox0, before)?,
                    ..*u
                };
                kb.if_then(has, |kb| by_border(kb, &piece, bit))?;
            }
            Ok(())
        },
    )
}

/// Emits a blocked convolution (dense or depthwise).
pub fn conv<'a, 'ctx>(kb: &mut Kb<'a, 'ctx>, g: &BlockedConv) -> R<()> {
    if g.depthwise {
        return depthwise(kb, g);
    }
    let qn = g.tile.qn;
    let ocb = g.y.blocks();
    let groups = ocb.div_ceil(qn);
    let ntx = tiles_per_row(kb, g)?;
    let (seg, band) = (g.blocking.seg, g.blocking.band);
    let nseg = kb.div(kb.add(ntx, kb.i(seg - 1))?, kb.i(seg))?;
    let oh = kb.dim(g.y.h)?;
    let nband = kb.div(kb.add(oh, kb.i(band - 1))?, kb.i(band))?;
    let nchunks = g.x.blocks().div_ceil(g.blocking.chunk);
    // a gated input: each pass's weights, scaled by the image's gates, in a stack buffer
    let wbuf = match gated_pass_floats(g) {
        Some(n) => Some(kb.stack_f32(n)?),
        None => None,
    };
    // a unit is one segment of a band of output rows of `qn` channel blocks
    let units = kb.mul(kb.mul(kb.dim(g.n)?, kb.i(groups))?, kb.mul(nband, nseg)?)?;
    let (lo, hi) = kb.split(units)?;
    kb.for_loop(lo, hi, |kb, u| {
        let [sg, bd, grp, n] =
            unit_position(kb, g.blocking.groups_inner, u, [nseg, nband, kb.i(groups)])?;
        let tx_lo = kb.mul(sg, kb.i(seg))?;
        let tx_hi = kb.imin(kb.add(tx_lo, kb.i(seg))?, ntx)?;
        let oy_lo = kb.mul(bd, kb.i(band))?;
        let oy_hi = kb.imin(kb.add(oy_lo, kb.i(band))?, oh)?;
        // the unit's output channel blocks: [q0, q0 + qcount), fewer in the last group
        let q0 = kb.mul(grp, kb.i(qn))?;
        let qcount = kb.imin(kb.i(qn), kb.sub(kb.i(ocb), q0)?)?;
        kb.for_loop(kb.i(0), kb.i(nchunks), |kb, ch| {
            let cb_lo = kb.mul(ch, kb.i(g.blocking.chunk))?;
            let pass = Pass {
                lo: cb_lo,
                hi: kb.imin(kb.add(cb_lo, kb.i(g.blocking.chunk))?, kb.i(g.x.blocks()))?,
                first: eq(kb, ch, 0)?,
                last: eq(kb, ch, nchunks - 1)?,
                wbuf,
            };
            if let Some(buf) = wbuf {
                scale_pass_weights(kb, g, buf, [n, q0, qcount], &pass)?;
            }
            kb.for_loop(oy_lo, oy_hi, |kb, oy| {
                kb.for_loop(tx_lo, tx_hi, |kb, tx| {
                    let unit = Unit {
                        n,
                        q0,
                        oy,
                        ox0: kb.mul(tx, kb.i(g.tile.px))?,
                    };
                    let emit = |kb: &mut Kb<'a, 'ctx>, qn_: u64| {
                        for_tile_kinds(kb, g, &unit, tx, &|kb, u, pxn, border| {
                            dense_tile(kb, g, u, [pxn, qn_], border, &pass)
                        })
                    };
                    let rem = ocb % qn;
                    if rem == 0 {
                        return emit(kb, qn);
                    }
                    let last = eq(kb, grp, groups - 1)?;
                    kb.if_else(last, |kb| emit(kb, rem), |kb| emit(kb, qn))
                })
            })
        })?;
        if g.pool.is_some() {
            // the unit's outputs, just written (in L1 or L2), summed per channel block
            let cols = [
                kb.mul(tx_lo, kb.i(g.tile.px))?,
                kb.imin(kb.mul(tx_hi, kb.i(g.tile.px))?, kb.dim(g.y.w)?)?,
            ];
            let part = kb.add(kb.mul(bd, nseg)?, sg)?;
            kb.for_loop(kb.i(0), qcount, |kb, q| {
                let cb = kb.add(q0, q)?;
                sum_outputs(kb, g, [n, cb], [oy_lo, oy_hi], cols, part)
            })?;
        }
        Ok(())
    })?;
    match g.pool {
        Some(per) => reduce_pool(kb, g, per),
        None => Ok(()),
    }
}

/// Adds the outputs of image `n`, channel block `cb`, rows `[oy_lo, oy_hi)` and columns
/// `[c_lo, c_hi)` and stores the sum as partial `part` of `(n, cb)`.
fn sum_outputs<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    g: &BlockedConv,
    [n, cb]: [IntValue<'ctx>; 2],
    [oy_lo, oy_hi]: [IntValue<'ctx>; 2],
    [c_lo, c_hi]: [IntValue<'ctx>; 2],
    part: IntValue<'ctx>,
) -> R<()> {
    let py = kb.args[g.out_arg()];
    let nl = lanes(&g.y)?;
    let zero = kb.vec_splat_n(kb.fc(0.0), nl)?;
    let s = kb.for_carry(oy_lo, oy_hi, vec![zero.into()], |kb, oy, s| {
        let row = kb.vec_sum(c_lo, c_hi, s[0].into_vector_value(), |kb, ox| {
            kb.vec_load_n(py, g.y.at(kb, n, cb, oy, ox)?, nl)
        })?;
        Ok(vec![row.into()])
    })?;
    store_partial(kb, g, [n, cb], part, s[0].into_vector_value())
}

/// Stores `sum` as partial `part` of image `n`, channel block `cb` (`[n][cb][part]` vectors
/// of the pooling convolution's partial sums).
fn store_partial<'ctx>(
    kb: &Kb<'_, 'ctx>,
    g: &BlockedConv,
    [n, cb]: [IntValue<'ctx>; 2],
    part: IntValue<'ctx>,
    sum: VectorValue<'ctx>,
) -> R<()> {
    let per = g.pool.unwrap_or(1);
    let pair = kb.add(kb.mul(n, kb.i(g.y.blocks()))?, cb)?;
    let at = kb.mul(kb.add(kb.mul(pair, kb.i(per))?, part)?, kb.i(g.y.block))?;
    kb.vec_store(kb.args[g.out_arg() + 2], at, sum)
}

/// The channel means of a pooling convolution: after a barrier (every unit has stored its
/// partial sums), each thread adds the `per` partials of its (image, channel block) pairs
/// and stores their mean over the map into the `[N, C]` result (padding lanes masked).
fn reduce_pool(kb: &mut Kb<'_, '_>, g: &BlockedConv, per: u64) -> R<()> {
    kb.barrier()?;
    let (pm, pp) = (kb.args[g.out_arg() + 1], kb.args[g.out_arg() + 2]);
    let (nl, ob, cbs) = (lanes(&g.y)?, g.y.block, g.y.blocks());
    let pixels = g.y.h.known().zip(g.y.w.known()).map_or(1, |(h, w)| h * w);
    let inv = kb.vec_splat_n(kb.fc(1.0 / pixels as f32), nl)?;
    let zero = kb.vec_splat_n(kb.fc(0.0), nl)?;
    let (lo, hi) = kb.split(kb.mul(kb.dim(g.n)?, kb.i(cbs))?)?;
    kb.for_loop(lo, hi, |kb, pair| {
        let base = kb.mul(pair, kb.i(per * ob))?;
        let s = kb.vec_sum(kb.i(0), kb.i(per), zero, |kb, i| {
            kb.vec_load_n(pp, kb.add(base, kb.mul(i, kb.i(ob))?)?, nl)
        })?;
        let m = kb.b.build_float_mul(s, inv, "")?;
        let (n, cb) = (kb.div(pair, kb.i(cbs))?, kb.rem(pair, kb.i(cbs))?);
        let c0 = kb.mul(cb, kb.i(ob))?;
        let mask = kb.lane_mask_lanes(c0, kb.i(0), kb.i(g.y.c), nl)?;
        let at = kb.add(kb.mul(n, kb.i(g.y.c))?, c0)?;
        kb.vec_store_masked(pm, at, m, mask)
    })
}

/// Segment, band, group and image of dense work unit `u`, for `nseg` segments per band,
/// `nband` bands per image and `groups` groups: the group varies fastest when
/// `groups_inner`, else the segment.
fn unit_position<'ctx>(
    kb: &Kb<'_, 'ctx>,
    groups_inner: bool,
    u: IntValue<'ctx>,
    [nseg, nband, groups]: [IntValue<'ctx>; 3],
) -> R<[IntValue<'ctx>; 4]> {
    // `(u % d, u / d)`: one mixed-radix digit of `u` and the rest
    let digit =
        |u, d| -> R<(IntValue<'ctx>, IntValue<'ctx>)> { Ok((kb.rem(u, d)?, kb.div(u, d)?)) };
    if groups_inner {
        let (grp, r) = digit(u, groups)?;
        let (sg, r) = digit(r, nseg)?;
        let (bd, n) = digit(r, nband)?;
        Ok([sg, bd, grp, n])
    } else {
        let (sg, r) = digit(u, nseg)?;
        let (bd, r) = digit(r, nband)?;
        let (grp, n) = digit(r, groups)?;
        Ok([sg, bd, grp, n])
    }
}

/// The input channel blocks `[lo, hi)` one pass accumulates; the first pass starts from
/// the bias, the others from the partial sums in the output; the last applies the epilogue.
struct Pass<'ctx> {
    lo: IntValue<'ctx>,
    hi: IntValue<'ctx>,
    first: IntValue<'ctx>,
    last: IntValue<'ctx>,
    /// a gated convolution's scaled weights of this pass, `[q][cb - lo][kh][ib][kw][ob]`
    wbuf: Option<PointerValue<'ctx>>,
}

/// Bytes of stack a gated convolution may take for one pass's scaled weights; a larger
/// pass scales each weight vector as the tile loads it instead.
const GATED_STACK: u64 = 32 << 10;

/// Floats of a gated dense convolution's pass buffer, if it takes one.
pub(crate) fn gated_pass_floats(g: &BlockedConv) -> Option<u32> {
    let n = g.tile.qn * g.blocking.chunk * g.k[0] * g.k[1] * g.x.block * g.y.block;
    (g.gated && n * 4 <= GATED_STACK)
        .then(|| u32::try_from(n).ok())
        .flatten()
}

/// Copies the packed weights of `pass` for output blocks `[q0, q0 + qcount)` into `buf`,
/// each input channel's vectors scaled by image `n`'s gate. Measured on MobileNetV3-Large's
/// projection convolutions, scaling the weight vectors at every tile's load instead made
/// them 15-25% slower (the tile loop is load-bound); once per pass it costs one multiply
/// per weight per pass, against the pass's `px x seg` FMAs per weight.
fn scale_pass_weights<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    g: &BlockedConv,
    buf: PointerValue<'ctx>,
    [n, q0, qcount]: [IntValue<'ctx>; 3],
    pass: &Pass<'ctx>,
) -> R<()> {
    let (ib, ob, [kh, kw]) = (g.x.block, g.y.block, g.k);
    let nl = lanes(&g.y)?;
    let blk = kh * ib * kw * ob;
    let (pw, pg) = (kb.args[1], kb.args[3]);
    kb.for_loop(kb.i(0), qcount, |kb, q| {
        kb.for_loop(pass.lo, pass.hi, |kb, cb| {
            let src = kb.mul(
                kb.add(kb.mul(kb.add(q0, q)?, kb.i(g.x.blocks()))?, cb)?,
                kb.i(blk),
            )?;
            let local = kb.add(kb.mul(q, kb.i(g.blocking.chunk))?, kb.sub(cb, pass.lo)?)?;
            let dst = kb.mul(local, kb.i(blk))?;
            kb.for_loop(kb.i(0), kb.i(kh * ib), |kb, r| {
                // input channel of row r = (ky, i); padding lanes of the last block read
                // the last gate (their weights are zero)
                let ci = kb.add(kb.mul(cb, kb.i(ib))?, kb.rem(r, kb.i(ib))?)?;
                let ci = kb.imin(ci, kb.i(g.x.c - 1))?;
                let s = kb.load(pg, kb.add(kb.mul(n, kb.i(g.x.c))?, ci)?)?;
                let s = kb.vec_splat_n(s, nl)?;
                for kx in 0..kw {
                    let off = kb.add(kb.mul(r, kb.i(kw * ob))?, kb.i(kx * ob))?;
                    let w = kb.vec_load_n(pw, kb.add(src, off)?, nl)?;
                    let v = kb.b.build_float_mul(w, s, "")?;
                    kb.vec_store(buf, kb.add(dst, off)?, v)?;
                }
                Ok(())
            })
        })
    })
}

/// One `pxn x qn` tile of a dense convolution, over the input channel blocks of `pass`.
fn dense_tile<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    g: &BlockedConv,
    u: &Unit<'ctx>,
    [pxn, qn]: [u64; 2],
    border: bool,
    pass: &Pass<'ctx>,
) -> R<()> {
    let (px_, pb, py) = (kb.args[0], kb.args[2], kb.args[g.out_arg()]);
    // a gated convolution's pass reads its scaled copy of the weights
    let pw = pass.wbuf.unwrap_or(kb.args[1]);
    let (ib, ob) = (g.x.block, g.y.block);
    let nl = lanes(&g.y)?;
    let (icb, [kh, kw]) = (g.x.blocks(), g.k);
    let cols = tile_columns(kb, g, u.ox0, pxn, border)?;
    // the image's weight set: its first packed block
    let set0 = match g.weight_sets {
        1 => kb.i(0),
        s => kb.mul(kb.rem(u.n, kb.i(s))?, kb.i(g.y.blocks() * icb))?,
    };
    let out_at = |kb: &Kb<'_, 'ctx>, q: u64, j: u64| -> R<IntValue<'ctx>> {
        let ox = kb.add(u.ox0, kb.i(j))?;
        g.y.at(kb, u.n, kb.add(u.q0, kb.i(q))?, u.oy, ox)
    };
    let mut init = Vec::with_capacity((pxn * qn) as usize);
    for q in 0..qn {
        let b = kb.vec_load_n(pb, kb.mul(kb.add(u.q0, kb.i(q))?, kb.i(ob))?, nl)?;
        for j in 0..pxn {
            let partial = kb.vec_load_n(py, out_at(kb, q, j)?, nl)?;
            init.push(kb.b.build_select(pass.first, b, partial, "")?);
        }
    }
    let (ky_lo, ky_hi) = tap_rows(kb, g, u.oy)?;
    let row0 = kb.sub(kb.mul(u.oy, kb.i(g.strides[0]))?, kb.i(g.pads[0]))?;
    let zero = kb.fc(0.0);
    let acc = kb.for_carry(pass.lo, pass.hi, init, |kb, cb, acc| {
        // input channels in this block: ib, or the remainder of the last one
        let icn = kb.imin(kb.i(ib), kb.sub(kb.i(g.x.c), kb.mul(cb, kb.i(ib))?)?)?;
        kb.for_carry(ky_lo, ky_hi, acc, |kb, ky, acc| {
            let iy = kb.add(row0, kb.mul(ky, kb.i(g.dilations[0]))?)?;
            let xrow = g.x.at(kb, u.n, cb, iy, kb.i(0))?;
            // packed weights of (block q0 + q, cb, ky): [ib][kw][ob]
            let wrow = |kb: &Kb<'_, 'ctx>, q: u64| -> R<IntValue<'ctx>> {
                let blk = match pass.wbuf {
                    Some(_) => kb.add(
                        kb.mul(kb.i(q), kb.i(g.blocking.chunk))?,
                        kb.sub(cb, pass.lo)?,
                    )?,
                    None => kb.add(
                        set0,
                        kb.add(kb.mul(kb.add(u.q0, kb.i(q))?, kb.i(icb))?, cb)?,
                    )?,
                };
                let r = kb.add(kb.mul(blk, kb.i(kh))?, ky)?;
                kb.mul(r, kb.i(ib * kw * ob))
            };
            let wrows = (0..qn).map(|q| wrow(kb, q)).collect::<R<Vec<_>>>()?;
            kb.for_carry(kb.i(0), icn, acc, |kb, i, acc| {
                let mut acc = vecs(acc);
                // a gated input: this input channel's gate, for every weight vector
                let gate = match g.gated && pass.wbuf.is_none() {
                    true => {
                        let ci = kb.add(kb.mul(cb, kb.i(ib))?, i)?;
                        let gi = kb.add(kb.mul(u.n, kb.i(g.x.c))?, ci)?;
                        Some(kb.vec_splat_n(kb.load(kb.args[3], gi)?, nl)?)
                    }
                    false => None,
                };
                for (kx, col) in cols.iter().enumerate() {
                    let wo = kb.mul(kb.add(kb.mul(i, kb.i(kw))?, kb.i(kx as u64))?, kb.i(ob))?;
                    let wv = wrows
                        .iter()
                        .map(|r| {
                            let w = kb.vec_load_n(pw, kb.add(*r, wo)?, nl)?;
                            match gate {
                                Some(s) => Ok(kb.b.build_float_mul(w, s, "")?),
                                None => Ok(w),
                            }
                        })
                        .collect::<R<Vec<_>>>()?;
                    if g.blocking.prefetch > 0 && pass.wbuf.is_none() {
                        for r in &wrows {
                            let ahead = kb.add(*r, kb.add(wo, kb.i(g.blocking.prefetch))?)?;
                            kb.prefetch(pw, ahead)?;
                        }
                    }
                    for (j, (ix, ok)) in col.iter().enumerate() {
                        let xi = kb.add(kb.add(xrow, kb.mul(*ix, kb.i(ib))?)?, i)?;
                        let mut xs = kb.load(px_, xi)?;
                        if let Some(ok) = ok {
                            xs = kb.b.build_select(*ok, xs, zero, "")?.into_float_value();
                        }
                        let xv = kb.vec_splat_n(xs, nl)?;
                        for (q, w) in wv.iter().enumerate() {
                            let a = &mut acc[q * pxn as usize + j];
                            *a = kb.vec_fma(xv, *w, *a)?;
                        }
                    }
                }
                Ok(basics(acc))
            })
        })
    })?;
    let acc = vecs(acc);
    for q in 0..qn {
        for j in 0..pxn {
            let a = acc[(q * pxn + j) as usize];
            let yi = out_at(kb, q, j)?;
            let mut v = apply_epilogue(kb, g, a, yi)?;
            if !g.epilogue.is_empty() {
                v = kb.b.build_select(pass.last, v, a, "")?.into_vector_value();
            }
            kb.vec_store(py, yi, v)?;
        }
    }
    Ok(())
}

/// A depthwise convolution: lanes are channels, the tile is `px` output pixels of a row.
fn depthwise<'a, 'ctx>(kb: &mut Kb<'a, 'ctx>, g: &BlockedConv) -> R<()> {
    for_units(kb, g, g.y.blocks(), 1, |kb, u, _, tx| {
        for_tile_kinds(kb, g, u, tx, &|kb, u, pxn, border| {
            depthwise_tile(kb, g, u, pxn, border)
        })
    })?;
    match g.pool {
        Some(per) => reduce_pool(kb, g, per),
        None => Ok(()),
    }
}

fn depthwise_tile<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    g: &BlockedConv,
    u: &Unit<'ctx>,
    pxn: u64,
    border: bool,
) -> R<()> {
    let (px_, pw, pb, py) = (kb.args[0], kb.args[1], kb.args[2], kb.args[g.out_arg()]);
    let c = g.y.block;
    let nl = lanes(&g.y)?;
    let [kh, kw] = g.k;
    let cb = u.q0;
    let cols = tile_columns(kb, g, u.ox0, pxn, border)?;
    let b = kb.vec_load_n(pb, kb.mul(cb, kb.i(c))?, nl)?;
    let init = vec![BasicValueEnum::from(b); pxn as usize];
    let (ky_lo, ky_hi) = tap_rows(kb, g, u.oy)?;
    let row0 = kb.sub(kb.mul(u.oy, kb.i(g.strides[0]))?, kb.i(g.pads[0]))?;
    let zero = kb.vec_splat_n(kb.fc(0.0), nl)?;
    let acc = kb.for_carry(ky_lo, ky_hi, init, |kb, ky, acc| {
        let mut acc = vecs(acc);
        let iy = kb.add(row0, kb.mul(ky, kb.i(g.dilations[0]))?)?;
        let xrow = g.x.at(kb, u.n, cb, iy, kb.i(0))?;
        let wrow = kb.mul(kb.add(kb.mul(cb, kb.i(kh))?, ky)?, kb.i(kw * c))?;
        for (kx, col) in cols.iter().enumerate() {
            let wv = kb.vec_load_n(pw, kb.add(wrow, kb.i(kx as u64 * c))?, nl)?;
            for (j, (ix, ok)) in col.iter().enumerate() {
                let mut xv = kb.vec_load_n(px_, kb.add(xrow, kb.mul(*ix, kb.i(c))?)?, nl)?;
                if let Some(ok) = ok {
                    xv = kb.b.build_select(*ok, xv, zero, "")?.into_vector_value();
                }
                acc[j] = kb.vec_fma(xv, wv, acc[j])?;
            }
        }
        Ok(basics(acc))
    })?;
    let mut outs = Vec::with_capacity(pxn as usize);
    for (j, a) in vecs(acc).into_iter().enumerate() {
        let yi = g.y.at(kb, u.n, cb, u.oy, kb.add(u.ox0, kb.i(j as u64))?)?;
        let v = apply_epilogue(kb, g, a, yi)?;
        kb.vec_store(py, yi, v)?;
        outs.push(v);
    }
    // pooling (known extents: one tile per work unit): the tile's sum, from the registers,
    // is partial (row, tile) of its image and channel block
    if let (Some(_), Some(w)) = (g.pool, g.y.w.known()) {
        // a tree of adds: short dependency chains
        while outs.len() > 1 {
            let mut next = Vec::with_capacity(outs.len().div_ceil(2));
            for p in outs.chunks(2) {
                next.push(match p {
                    [a, b] => kb.b.build_float_add(*a, *b, "")?,
                    _ => p[0],
                });
            }
            outs = next;
        }
        let sum = outs.pop().unwrap_or(zero);
        let ntx = w.div_ceil(g.tile.px);
        let tx = kb.div(u.ox0, kb.i(g.tile.px))?;
        let part = kb.add(kb.mul(u.oy, kb.i(ntx))?, tx)?;
        store_partial(kb, g, [u.n, cb], part, sum)?;
    }
    Ok(())
}

/// Plain `[N, C, H, W]` to blocked (`to_blocked`) or back. Padding lanes are written as 0.
pub fn reorder(kb: &mut Kb, n: Dim, v: View, to_blocked: bool) -> R<()> {
    let (src, dst) = (kb.args[0], kb.args[1]);
    let plain = View { block: 1, ..v };
    let c = v.block;
    let (h, w) = (kb.dim(v.h)?, kb.dim(v.w)?);
    let rows = kb.mul(kb.mul(kb.dim(n)?, kb.i(v.blocks()))?, h)?;
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, r| {
        let y = kb.rem(r, h)?;
        let r2 = kb.div(r, h)?;
        let cb = kb.rem(r2, kb.i(v.blocks()))?;
        let img = kb.div(r2, kb.i(v.blocks()))?;
        kb.for_loop(kb.i(0), w, |kb, x| {
            let bi = v.at(kb, img, cb, y, x)?;
            for l in 0..c {
                let ch = kb.add(kb.mul(cb, kb.i(c))?, kb.i(l))?;
                let real = kb.lt(ch, kb.i(v.c))?;
                let chc = kb.imin(ch, kb.i(v.c - 1))?;
                let pi = plain.at(kb, img, chc, y, x)?;
                let bl = kb.add(bi, kb.i(l))?;
                if to_blocked {
                    let val = kb.load(src, pi)?;
                    let val = kb.b.build_select(real, val, kb.fc(0.0), "")?;
                    kb.store(dst, bl, val.into_float_value())?;
                } else {
                    kb.if_then(real, |kb| kb.store(dst, pi, kb.load(src, bl)?))?;
                }
            }
            Ok(())
        })
    })
}

/// Global average or max pool of a blocked `[N, C, H, W]` into a plain `[N, C, 1, 1]`.
pub fn global_pool(kb: &mut Kb, n: Dim, v: View, max: bool) -> R<()> {
    let (src, dst) = (kb.args[0], kb.args[1]);
    let nl = lanes(&v)?;
    let planes = kb.mul(kb.dim(n)?, kb.i(v.blocks()))?;
    let (lo, hi) = kb.split(planes)?;
    let hw = kb.mul(kb.dim(v.h)?, kb.dim(v.w)?)?;
    kb.for_loop(lo, hi, |kb, p| {
        let cb = kb.rem(p, kb.i(v.blocks()))?;
        let img = kb.div(p, kb.i(v.blocks()))?;
        let base = v.at(kb, img, cb, kb.i(0), kb.i(0))?;
        let init = kb.vec_splat_n(kb.fc(if max { f32::NEG_INFINITY } else { 0.0 }), nl)?;
        let acc = kb.for_carry(kb.i(0), hw, vec![init.into()], |kb, i, acc| {
            let x = kb.vec_load_n(src, kb.add(base, kb.mul(i, kb.i(v.block))?)?, nl)?;
            let op = if max { BinaryOp::Max } else { BinaryOp::Add };
            Ok(vec![kb
                .vec_binary(op, acc[0].into_vector_value(), x)?
                .into()])
        })?;
        let mut r = acc[0].into_vector_value();
        if !max {
            let s = kb.vec_splat_n(kb.recip(hw)?, nl)?;
            r = kb.b.build_float_mul(r, s, "")?;
        }
        for l in 0..v.block {
            let ch = kb.add(kb.mul(cb, kb.i(v.block))?, kb.i(l))?;
            let real = kb.lt(ch, kb.i(v.c))?;
            kb.if_then(real, |kb| {
                let e =
                    kb.b.build_extract_element(r, kb.ctx.i32_type().const_int(l, false), "")?
                        .into_float_value();
                kb.store(dst, kb.add(kb.mul(img, kb.i(v.c))?, ch)?, e)
            })?;
        }
        Ok(())
    })
}

/// Windowed max or average pooling of blocked tensors, all lanes at once. Taps outside the
/// input are skipped; the average divides by the taps inside the input, or inside the
/// padded input with `count_include_pad`.
pub fn pool(kb: &mut Kb, a: &PoolAttrs, n: Dim, x: View, y: View) -> R<()> {
    let (src, dst) = (kb.args[0], kb.args[1]);
    let nl = lanes(&x)?;
    let max = a.kind == PoolKind::Max;
    let (oh, ow) = (kb.dim(y.h)?, kb.dim(y.w)?);
    let (ih, iw) = (kb.dim(x.h)?, kb.dim(x.w)?);
    let rows = kb.mul(kb.mul(kb.dim(n)?, kb.i(y.blocks()))?, oh)?;
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, r| {
        let oy = kb.rem(r, oh)?;
        let r2 = kb.div(r, oh)?;
        let cb = kb.rem(r2, kb.i(y.blocks()))?;
        let img = kb.div(r2, kb.i(y.blocks()))?;
        let y0 = kb.sub(kb.mul(oy, kb.i(a.strides[0]))?, kb.i(a.pads[0]))?;
        kb.for_loop(kb.i(0), ow, |kb, ox| {
            let x0 = kb.sub(kb.mul(ox, kb.i(a.strides[1]))?, kb.i(a.pads[1]))?;
            let mut acc = kb.vec_splat_n(kb.fc(if max { f32::NEG_INFINITY } else { 0.0 }), nl)?;
            let mut cnt = kb.i(0);
            for ky in 0..a.kernel[0] {
                let iy = kb.add(y0, kb.i(ky * a.dilations[0]))?;
                for kx in 0..a.kernel[1] {
                    let ix = kb.add(x0, kb.i(kx * a.dilations[1]))?;
                    let ok =
                        kb.b.build_and(kb.inside_n(iy, ih)?, kb.inside_n(ix, iw)?, "")?;
                    let iyc = kb.imax(kb.imin(iy, kb.sub(ih, kb.i(1))?)?, kb.i(0))?;
                    let ixc = kb.imax(kb.imin(ix, kb.sub(iw, kb.i(1))?)?, kb.i(0))?;
                    let v = kb.vec_load_n(src, x.at(kb, img, cb, iyc, ixc)?, nl)?;
                    let op = if max { BinaryOp::Max } else { BinaryOp::Add };
                    let nv = kb.vec_binary(op, acc, v)?;
                    acc = kb.b.build_select(ok, nv, acc, "")?.into_vector_value();
                    let counted = if a.count_include_pad {
                        kb.b.build_and(
                            kb.lt(iy, kb.add(ih, kb.i(a.pads[2]))?)?,
                            kb.lt(ix, kb.add(iw, kb.i(a.pads[3]))?)?,
                            "",
                        )?
                    } else {
                        ok
                    };
                    let one = kb.b.build_int_z_extend(counted, kb.ctx.i64_type(), "")?;
                    cnt = kb.add(cnt, one)?;
                }
            }
            if !max {
                let cnt = kb.imax(cnt, kb.i(1))?;
                let cf = kb.b.build_signed_int_to_float(cnt, kb.ctx.f32_type(), "")?;
                acc = kb.b.build_float_div(acc, kb.vec_splat_n(cf, nl)?, "")?;
            }
            kb.vec_store(dst, y.at(kb, img, cb, oy, ox)?, acc)
        })
    })
}

/// Lanes of the packed GEMM's weight vectors: AVX-512 width (an AVX2 target splits each
/// into two registers; the kernel is bound by reading the weights, not by the FMAs).
pub const GEMM_LANES: u64 = 16;

/// `y[M, N] = a[M, K] @ W + bias` with the constant `W` packed at compile time as
/// `[N/16][K][16]` (alpha folded in) and the bias (beta * C, broadcast over rows) padded:
/// the FC layers of a classifier. A tile is 4 rows x 4 column blocks of accumulators; each
/// `a` element is broadcast once per tile row, each weight vector feeds every row of the
/// tile. Arguments: a, packed weights, padded bias, y.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedGemm {
    /// rows (the batch, for a classifier)
    pub m: Dim,
    /// inner extent
    pub k: u64,
    /// columns
    pub n: u64,
}

/// Rows and column blocks of the packed GEMM's register tile.
const GEMM_ROWS: u64 = 4;
const GEMM_BLOCKS: u64 = 4;

/// Packs `alpha * B` (`[K, N]`, or `[N, K]` when `trans_b`) as `[N/16][K][16]`.
pub fn pack_gemm(b: &[f32], [k, n]: [usize; 2], trans_b: bool, alpha: f32) -> Vec<f32> {
    let l = GEMM_LANES as usize;
    let mut out = vec![0f32; n.div_ceil(l) * k * l];
    for kk in 0..k {
        for j in 0..n {
            let v = if trans_b {
                b[j * k + kk]
            } else {
                b[kk * n + j]
            };
            out[((j / l) * k + kk) * l + j % l] = alpha * v;
        }
    }
    out
}

/// Emits the packed GEMM.
pub fn gemm<'a, 'ctx>(kb: &mut Kb<'a, 'ctx>, g: &PackedGemm) -> R<()> {
    let nb = g.n.div_ceil(GEMM_LANES);
    let groups = nb.div_ceil(GEMM_BLOCKS);
    let m = kb.dim(g.m)?;
    let row_tiles = kb.div(kb.add(m, kb.i(GEMM_ROWS - 1))?, kb.i(GEMM_ROWS))?;
    let (lo, hi) = kb.split(kb.mul(row_tiles, kb.i(groups))?)?;
    kb.for_loop(lo, hi, |kb, u| {
        let grp = kb.rem(u, kb.i(groups))?;
        let r0 = kb.mul(kb.div(u, kb.i(groups))?, kb.i(GEMM_ROWS))?;
        let q0 = kb.mul(grp, kb.i(GEMM_BLOCKS))?;
        let by_blocks = |kb: &mut Kb<'a, 'ctx>, row: IntValue<'ctx>, rows: u64| -> R<()> {
            let rem = nb % GEMM_BLOCKS;
            if rem == 0 {
                return gemm_tile(kb, g, row, q0, [rows, GEMM_BLOCKS]);
            }
            let last = eq(kb, grp, groups - 1)?;
            kb.if_else(
                last,
                |kb| gemm_tile(kb, g, row, q0, [rows, rem]),
                |kb| gemm_tile(kb, g, row, q0, [rows, GEMM_BLOCKS]),
            )
        };
        // four rows at once, or the last rows one by one
        let full =
            kb.b.build_int_compare(IntPredicate::SLE, kb.add(r0, kb.i(GEMM_ROWS))?, m, "")?;
        kb.if_else(
            full,
            |kb| by_blocks(kb, r0, GEMM_ROWS),
            |kb| kb.for_loop(r0, m, |kb, row| by_blocks(kb, row, 1)),
        )
    })
}

fn gemm_tile<'ctx>(
    kb: &mut Kb<'_, 'ctx>,
    g: &PackedGemm,
    r0: IntValue<'ctx>,
    q0: IntValue<'ctx>,
    [rows, qn]: [u64; 2],
) -> R<()> {
    let (pa, pw, pb, py) = (kb.args[0], kb.args[1], kb.args[2], kb.args[3]);
    let l = GEMM_LANES;
    let nl = l as u32;
    let mut init = Vec::new();
    for _ in 0..rows {
        for q in 0..qn {
            let bi = kb.mul(kb.add(q0, kb.i(q))?, kb.i(l))?;
            init.push(BasicValueEnum::from(kb.vec_load_n(pb, bi, nl)?));
        }
    }
    let wbase = (0..qn)
        .map(|q| kb.mul(kb.add(q0, kb.i(q))?, kb.i(g.k * l)))
        .collect::<R<Vec<_>>>()?;
    let abase = (0..rows)
        .map(|r| kb.mul(kb.add(r0, kb.i(r))?, kb.i(g.k)))
        .collect::<R<Vec<_>>>()?;
    let acc = kb.for_carry(kb.i(0), kb.i(g.k), init, |kb, kk, acc| {
        let mut acc = vecs(acc);
        let w = wbase
            .iter()
            .map(|b| kb.vec_load_n(pw, kb.add(*b, kb.mul(kk, kb.i(l))?)?, nl))
            .collect::<R<Vec<_>>>()?;
        for (r, ab) in abase.iter().enumerate() {
            let av = kb.vec_splat_n(kb.load(pa, kb.add(*ab, kk)?)?, nl)?;
            for (q, wv) in w.iter().enumerate() {
                let a = &mut acc[r * qn as usize + q];
                *a = kb.vec_fma(av, *wv, *a)?;
            }
        }
        Ok(basics(acc))
    })?;
    for (i, v) in vecs(acc).into_iter().enumerate() {
        let (r, q) = (i as u64 / qn, i as u64 % qn);
        let col = kb.mul(kb.add(q0, kb.i(q))?, kb.i(l))?;
        let yi = kb.add(kb.mul(kb.add(r0, kb.i(r))?, kb.i(g.n))?, col)?;
        let mask = kb.lane_mask_lanes(col, kb.i(0), kb.i(g.n), nl)?;
        kb.vec_store_masked(py, yi, v, mask)?;
    }
    Ok(())
}

/// Channel concatenation of blocked images. A work unit is one row of one image, across all
/// operands in order: an operand that starts on a block boundary is copied a block (vector)
/// at a time, padding lanes included, and the next operand, which then starts inside that
/// block, overwrites those lanes channel by channel; units write disjoint rows, so the order
/// within a unit is all the ordering needed.
pub fn concat(kb: &mut Kb, n: Dim, ins: &[View], y: View) -> R<()> {
    let dst = kb.args[ins.len()];
    let nl = lanes(&y)?;
    let c = y.block;
    let oh = kb.dim(y.h)?;
    let rows = kb.mul(kb.dim(n)?, oh)?;
    let (lo, hi) = kb.split(rows)?;
    kb.for_loop(lo, hi, |kb, r| {
        let row = kb.rem(r, oh)?;
        let img = kb.div(r, oh)?;
        let mut off = 0u64;
        for (k, x) in ins.iter().enumerate() {
            let src = kb.args[k];
            if off.is_multiple_of(c) {
                let ob = off / c;
                kb.for_loop(kb.i(0), kb.i(x.blocks()), |kb, cb| {
                    kb.for_loop(kb.i(0), kb.dim(x.w)?, |kb, col| {
                        let v = kb.vec_load_n(src, x.at(kb, img, cb, row, col)?, nl)?;
                        let yi = y.at(kb, img, kb.add(cb, kb.i(ob))?, row, col)?;
                        kb.vec_store(dst, yi, v)
                    })
                })?;
            } else {
                kb.for_loop(kb.i(0), kb.i(x.c), |kb, ch| {
                    let to = kb.add(ch, kb.i(off))?;
                    let (xb, xl) = (kb.div(ch, kb.i(x.block))?, kb.rem(ch, kb.i(x.block))?);
                    let (yb, yl) = (kb.div(to, kb.i(c))?, kb.rem(to, kb.i(c))?);
                    kb.for_loop(kb.i(0), kb.dim(x.w)?, |kb, col| {
                        let v = kb.load(src, kb.add(x.at(kb, img, xb, row, col)?, xl)?)?;
                        kb.store(dst, kb.add(y.at(kb, img, yb, row, col)?, yl)?, v)
                    })
                })?;
            }
            off += x.c;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(px: u64, qn: u64) -> ConvTile {
        ConvTile { px, qn }
    }

    /// 16-lane 3x3 taps over a blocked input, stride `s`.
    fn row(s: u64) -> Step {
        Step::Row(TapRow {
            kw: 3,
            stride: s,
            dilation: 1,
        })
    }

    /// The tiles the measurements in [`conv_tile`]'s notes found fastest (or within 5%).
    #[test]
    fn tiles_follow_the_measurements() {
        let b3 = 9 * 16 * 16 * 4;
        assert_eq!(conv_tile(16, 14, 32, false, b3, row(1)), tile(14, 1));
        assert_eq!(conv_tile(8, 28, 32, false, b3, row(1)), tile(14, 1));
        assert_eq!(conv_tile(4, 56, 32, false, b3, row(1)), tile(8, 2));
        assert_eq!(conv_tile(32, 7, 32, false, b3, row(1)), tile(7, 2));
        assert_eq!(conv_tile(8, 28, 32, false, b3, row(2)), tile(7, 2));
        // plain-input stems (7x7 to 64 channels, 3x3 to 32 and 16) within 5% of the
        // fastest tiles measured
        let plain = Step::PlainTaps;
        assert_eq!(conv_tile(4, 112, 32, false, 49 * 16 * 4, plain), tile(8, 2));
        assert_eq!(conv_tile(2, 112, 32, false, 9 * 16 * 4, plain), tile(8, 2));
        assert_eq!(conv_tile(1, 112, 32, false, 9 * 16 * 4, plain), tile(16, 1));
        // 1x1 convolutions and 8-lane blocks keep the per-tap estimate
        assert_eq!(
            conv_tile(16, 3136, 32, false, 16 * 16 * 4, Step::Tap),
            tile(6, 4)
        );
        assert_eq!(
            conv_tile(8, 56, 16, false, 9 * 8 * 8 * 4, Step::Tap),
            tile(5, 2)
        );
    }

    /// No tile sweeps more weights per input block than [`TILE_WEIGHTS`], nor keeps more
    /// than two thirds of the registers as accumulators when tap columns are live (half,
    /// over at most 2 blocks, for a plain input).
    #[test]
    fn tiles_respect_l1_and_register_limits() {
        for ocb in 1..40 {
            for ow in [1, 2, 7, 13, 14, 28, 56, 112] {
                let t = conv_tile(ocb, ow, 32, false, 9 * 16 * 16 * 4, row(1));
                assert!(t.qn * 9 * 16 * 16 * 4 <= TILE_WEIGHTS, "{ocb} {ow}: {t:?}");
                assert!(
                    t.px * t.qn <= 21 && t.px <= ow && t.qn <= ocb,
                    "{ocb} {ow}: {t:?}"
                );
                let t = conv_tile(ocb, ow, 32, false, 49 * 16 * 4, Step::PlainTaps);
                assert!(
                    t.px * t.qn <= 16 && t.qn <= 2 && t.px <= ow && t.qn <= ocb,
                    "plain {ocb} {ow}: {t:?}"
                );
            }
        }
    }
}
