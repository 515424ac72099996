//! Convolution kernels: the direct convolution and the transposed convolution over plain
//! NCHW, and the register-tiled convolution over blocked tensors with its weights packed
//! here, at compile time.
use super::{push_weight, shape_of, typical, unsupported, view_of, KernelKind, Plan};
use crate::blocked::{BlockedConv, View};
use crate::CodegenError;
use secc_artifact::DimDecl;
use secc_ir::{Conv2dAttrs, ConvTransposeAttrs, Dim, Graph, NodeId};

/// The input shape of a plain convolution, whose channel count the kernel needs at compile
/// time (batch and spatial extents may be symbolic).
fn conv_channels(g: &Graph, id: NodeId) -> Result<Vec<Dim>, CodegenError> {
    let x = shape_of(g, g.inputs(id)[0]);
    if x[1].known().is_none() {
        return Err(unsupported(
            g,
            id,
            "convolution needs a known channel count",
        ));
    }
    Ok(x)
}

/// Direct 2-D convolution over plain NCHW.
pub(super) fn conv2d(g: &Graph, id: NodeId, a: &Conv2dAttrs) -> Result<KernelKind, CodegenError> {
    let ins = g.inputs(id);
    Ok(KernelKind::Conv {
        attrs: a.clone(),
        x: conv_channels(g, id)?,
        w: shape_of(g, ins[1]),
        // a gated or residual convolution has an explicit bias
        bias: ins.len() >= 3,
    })
}

/// Transposed 2-D convolution over plain NCHW.
pub(super) fn conv_transpose2d(
    g: &Graph,
    id: NodeId,
    a: &ConvTransposeAttrs,
) -> Result<KernelKind, CodegenError> {
    let ins = g.inputs(id);
    Ok(KernelKind::ConvTranspose {
        attrs: a.clone(),
        x: conv_channels(g, id)?,
        w: shape_of(g, ins[1]),
        y: shape_of(g, id.into()),
        bias: ins.len() == 3,
    })
}

/// Vector registers of the target a blocked kernel is tiled for, by its vector width:
/// AVX-512 has 32 (16 lanes), AVX2 16 (8 lanes).
fn vector_registers(lanes: u64) -> u64 {
    if lanes >= 16 {
        32
    } else {
        16
    }
}

/// The blocked convolution of a conv node; a 1x1 stride-1 unpadded conv runs over its
/// pixels as one long row.
pub(super) fn blocked(g: &Graph, id: NodeId, a: &Conv2dAttrs) -> Result<BlockedConv, CodegenError> {
    let ins = g.inputs(id);
    let (mut x, mut y) = (view_of(g, ins[0]), view_of(g, id.into()));
    let w = &g.ty(ins[1]).shape;
    let k = [w[2].known().unwrap_or(1), w[3].known().unwrap_or(1)];
    let pointwise = k == [1, 1] && a.strides == [1, 1] && a.pads == [0; 4];
    if pointwise {
        let pixels = |v: &View| {
            v.h.checked_mul(v.w)
                .ok_or_else(|| unsupported(g, id, "pixel count overflows"))
        };
        (x.w, x.h) = (pixels(&x)?, Dim::Known(1));
        (y.w, y.h) = (pixels(&y)?, Dim::Known(1));
    }
    let depthwise = a.group > 1;
    // tiles and cache blocking are sized for the typical extent of a symbolic one; the
    // kernel handles every extent
    let (oh, ow) = (typical(y.h), typical(y.w));
    let taps = k[0] * k[1];
    let block_bytes = taps * x.block * y.block * 4;
    let regs = vector_registers(y.block);
    // the row-of-taps estimate was measured with 16-lane blocks (AVX-512); with 8 lanes
    // the per-tap estimate's tiles measured as fast or faster (5 x 2 against 4 x 2 for a
    // 64-channel 3x3 at 56x56: 2.5 against 5 ms)
    use crate::blocked::{Step, TapRow};
    let step = match (k[1] > 1 && y.block >= 16, x.block > 1) {
        (false, _) => Step::Tap,
        (true, false) => Step::PlainTaps,
        (true, true) => Step::Row(TapRow {
            kw: k[1],
            stride: a.strides[1],
            dilation: a.dilations[1],
        }),
    };
    let tile = crate::blocked::conv_tile(y.blocks(), ow, regs, depthwise, block_bytes, step);
    let groups = y.blocks().div_ceil(tile.qn);
    let input_bytes = x.blocks() * x.block * typical(x.h) * typical(x.w) * 4;
    let mut b = crate::blocked::conv_blocking(
        tile,
        [x.blocks(), taps, x.block, y.block],
        [groups, oh, ow],
        input_bytes,
    );
    if depthwise {
        // a depthwise kernel walks its own units (a row of one channel block each) and
        // its few weights stay in cache
        (b.groups_inner, b.prefetch) = (false, 0);
    }
    let mut c = BlockedConv {
        n: g.ty(ins[0]).shape[0],
        x,
        y,
        k,
        strides: a.strides,
        dilations: a.dilations,
        pads: [a.pads[0], a.pads[1]],
        depthwise,
        epilogue: a
            .residual
            .then_some(crate::blocked::Epilogue::Residual)
            .into_iter()
            .chain(a.act.map(crate::blocked::Epilogue::Act))
            .collect(),
        gated: a.gated,
        pool: None,
        tile,
        blocking: b,
        weight_sets: 1,
    };
    if a.pool {
        c.pool = Some(c.pool_partials().ok_or_else(|| {
            unsupported(g, id, "a pooling convolution needs known output extents")
        })?);
    }
    Ok(c)
}

/// Declares a pooling convolution's partial sums, `N x blocks x partials x block` floats,
/// and returns the buffer.
pub(super) fn declare_partials(p: &mut Plan, c: &BlockedConv) -> Option<u32> {
    let per = c.pool?;
    p.buffers.push(secc_artifact::BufferDecl {
        dtype: "f32".into(),
        shape: vec![
            super::dim_decl(c.n),
            DimDecl::Known(c.y.blocks() * per * c.y.block),
        ],
        kind: secc_artifact::BufferKind::Temp,
    });
    Some(p.buffers.len() as u32 - 1)
}

/// The bias of convolution `id` (zero without one), padded to the output block.
fn padded_bias(g: &Graph, id: NodeId, ob: usize) -> Result<Vec<f32>, CodegenError> {
    let bias = match g.inputs(id).get(2) {
        Some(b) => g
            .const_of(*b)
            .ok_or_else(|| unsupported(g, id, "blocked convolution weights must be constants"))?
            .data
            .to_vec(),
        None => {
            let c = g.ty(id.into()).shape[1].known().unwrap_or(0);
            vec![0.0; c as usize]
        }
    };
    Ok(crate::blocked::pad_to(&bias, ob))
}

/// What a Winograd convolution in the form F(m x m, 3x3) is planned from: its batched GEMM
/// and the extents its steps share.
pub(super) struct WinogradPlan {
    /// output tile side
    m: u64,
    /// tiles `[rows, columns]` of the output
    tiles: [Dim; 2],
    /// floats per image of the transformed input V and of the GEMM's result M
    floats: [Dim; 2],
    /// a blocked 1x1 convolution over `(m+2)^2 N` images of the tiles, one weight set per
    /// position, tiled and blocked for that shape
    gemm: BlockedConv,
}

/// The plan of blocked convolution `c` in the form F(m x m, 3x3), if its extents are
/// representable (symbolic tile counts whose expressions overflow keep the direct kernel).
pub(super) fn winograd_plan(c: &BlockedConv, m: u64) -> Option<WinogradPlan> {
    let positions = crate::winograd::positions(m);
    let tiles = crate::winograd::tiles(m, c.y.h, c.y.w)?;
    let t = tiles[0].checked_mul(tiles[1])?;
    // V and M: every position of every tile of every channel block, per image
    let per_image = |v: &View| t.checked_mul(Dim::Known(positions * v.blocks() * v.block));
    let floats = [per_image(&c.x)?, per_image(&c.y)?];
    let (x, y) = (
        View {
            h: Dim::Known(1),
            w: t,
            ..c.x
        },
        View {
            h: Dim::Known(1),
            w: t,
            ..c.y
        },
    );
    // sized for the typical extent of a symbolic tile count, like every blocked conv
    let t = typical(t);
    let (ib, ob) = (x.block, y.block);
    let tile = crate::blocked::conv_tile(
        y.blocks(),
        t,
        vector_registers(ob),
        false,
        ib * ob * 4,
        crate::blocked::Step::Tap,
    );
    let groups = y.blocks().div_ceil(tile.qn);
    let mut blocking = crate::blocked::conv_blocking(
        tile,
        [x.blocks(), 1, ib, ob],
        [groups, 1, t],
        x.blocks() * ib * t * 4,
    );
    // every image streams its own position's weights: all the sets from memory per run
    let set_bytes = y.blocks() * x.blocks() * ib * ob * 4;
    blocking.prefetch = crate::blocked::prefetch_for(positions * set_bytes);
    let gemm = BlockedConv {
        n: c.n.checked_mul(Dim::Known(positions))?,
        x,
        y,
        k: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0, 0],
        depthwise: false,
        epilogue: vec![],
        gated: false,
        pool: None,
        tile,
        blocking,
        weight_sets: positions,
    };
    Some(WinogradPlan {
        m,
        tiles,
        floats,
        gemm,
    })
}

/// Pushes the three steps of blocked convolution `c` (node `id`) in the Winograd form of
/// `w`: input transform, batched GEMM, output transform with the bias and epilogue,
/// through two temporaries (the transformed input V and the GEMM's result M, `(m+2)^2`
/// floats per tile and channel each).
pub(super) fn push_winograd(
    g: &Graph,
    id: NodeId,
    c: &BlockedConv,
    w: WinogradPlan,
    p: &mut Plan,
    bufs: &mut super::Buffers,
) -> Result<(), CodegenError> {
    use crate::winograd::Transform;
    let ins = g.inputs(id);
    let internal = || unsupported(g, id, "Winograd form: operand without a buffer (internal)");
    let buf = |v: usize| {
        ins.get(v)
            .and_then(|v| bufs.of.get(v).copied())
            .ok_or_else(internal)
    };
    let x = buf(0)?;
    let residual = if c.residual() { Some(buf(3)?) } else { None };
    let weights = g
        .const_of(ins[1])
        .ok_or_else(|| unsupported(g, id, "blocked convolution weights must be constants"))?;
    let (o, ci, ib, ob) = (
        c.y.c as usize,
        c.x.c as usize,
        c.x.block as usize,
        c.y.block as usize,
    );
    let u = crate::winograd::transform_weights(&weights.data, [o, ci], w.m);
    let packed: Vec<f32> = u
        .chunks(o * ci)
        .flat_map(|s| crate::blocked::pack_dense(s, [o, ci, 1, 1], ib, ob))
        .collect();
    let uw = push_weight(p, vec![DimDecl::Known(packed.len() as u64)], &packed);
    let bias = padded_bias(g, id, ob)?;
    let b = push_weight(p, vec![DimDecl::Known(bias.len() as u64)], &bias);
    let zero = push_weight(
        p,
        vec![DimDecl::Known(bias.len() as u64)],
        &vec![0.0; bias.len()],
    );
    let mut temp = |floats: Dim| {
        p.buffers.push(secc_artifact::BufferDecl {
            dtype: "f32".into(),
            shape: vec![super::dim_decl(c.n), super::dim_decl(floats)],
            kind: secc_artifact::BufferKind::Temp,
        });
        p.buffers.len() as u32 - 1
    };
    let (vbuf, mbuf) = (temp(w.floats[0]), temp(w.floats[1]));
    let y = super::result_buffers(g, id, p, bufs)[0];
    let transform = |image: View, epilogue: Vec<crate::blocked::Epilogue>| Transform {
        m: w.m,
        n: c.n,
        image,
        tiles: w.tiles,
        pads: c.pads,
        epilogue,
    };
    let origin = g.node(id).origin.clone().unwrap_or_default();
    let mut out_args = vec![mbuf, b];
    out_args.extend(residual);
    out_args.push(y);
    let steps = [
        (
            KernelKind::WinoInput(transform(c.x, vec![])),
            vec![x, vbuf],
            vbuf,
        ),
        (
            KernelKind::ConvBlocked(w.gemm),
            vec![vbuf, uw, zero, mbuf],
            mbuf,
        ),
        (
            KernelKind::WinoOutput(transform(c.y, c.epilogue.clone())),
            out_args,
            y,
        ),
    ];
    for (kind, args, writes) in steps {
        p.steps.push(super::Step {
            name: format!("k{}_{}", p.steps.len(), kind.name()),
            kind,
            origin: origin.clone(),
            args,
            writes: vec![writes],
            grid: super::Grid::Stride(None),
        });
    }
    Ok(())
}

/// Replaces a blocked convolution's weight and bias arguments by their packed forms.
pub(super) fn pack_args(
    g: &Graph,
    id: NodeId,
    c: &BlockedConv,
    p: &mut Plan,
    args: &mut Vec<u32>,
) -> Result<(), CodegenError> {
    let ins = g.inputs(id);
    let missing = || unsupported(g, id, "blocked convolution weights must be constants");
    let w = g.const_of(ins[1]).ok_or_else(missing)?;
    let ob = c.y.block as usize;
    let [kh, kw] = [c.k[0] as usize, c.k[1] as usize];
    let packed = if c.depthwise {
        crate::blocked::pack_depthwise(&w.data, [c.y.c as usize, kh, kw], ob)
    } else {
        let shape = [c.y.c as usize, c.x.c as usize, kh, kw];
        crate::blocked::pack_dense(&w.data, shape, c.x.block as usize, ob)
    };
    args[1] = push_weight(p, vec![DimDecl::Known(packed.len() as u64)], &packed);
    let bias = padded_bias(g, id, ob)?;
    let b = push_weight(p, vec![DimDecl::Known(bias.len() as u64)], &bias);
    // the gate and the residual follow the (explicit) bias
    let rest = args.get(3..).map(<[u32]>::to_vec).unwrap_or_default();
    args.truncate(2);
    args.push(b);
    args.extend(rest);
    Ok(())
}
